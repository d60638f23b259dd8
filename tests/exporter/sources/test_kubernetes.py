"""The Kubernetes source against a stand-in kubelet serving the real pod-resources gRPC API
on a unix socket: pods with whole GPUs, time-sliced replicas and MIG instances become jobs
with their namespace, pod and container; a shared board's energy is split, never copied; a
pod that goes away ends; a kubelet that is down or restarts costs no scrape and no job."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from joulecast.exporter.jobs.registry import JobRegistry
from joulecast.exporter.sources.kubernetes import KubeletSource, device_uuid
from joulecast.exporter.sources.sync import SourceSync
from tests.conftest import scrape
from tests.exporter.sources.kubelet import Pod, StandInKubelet
from tests.exporter.test_registry import mig_board

GPU = "nvidia.com/gpu"


def uuid(i: int) -> str:  # the simulated backend's board UUIDs
    return f"GPU-5e1a7ed0-0000-4000-8000-{i:012d}"


@pytest.fixture
def kubelet():
    d = Path(tempfile.mkdtemp(prefix="kubelet-", dir="/tmp"))  # a short unix socket path
    k = StandInKubelet(str(d / "kubelet.sock")).start()
    yield k
    k.stop()


def _wait(check, what: str, timeout: float = 15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out := check():
            return out
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen in {timeout}s")


def _job(exp, job_id):
    try:
        return exp.registry.get(job_id)
    except Exception:
        return None


def test_device_ids_name_boards_mig_instances_and_time_sliced_replicas():
    assert device_uuid("GPU-abc") == "GPU-abc"
    assert device_uuid("GPU-abc::3") == "GPU-abc"
    assert device_uuid("MIG-def") == "MIG-def"
    assert device_uuid("0") is None and device_uuid("") is None


def test_pods_become_jobs_split_shared_boards_and_end_when_they_go(kubelet, make_exporter):
    kubelet.pods = [
        Pod("ml", "train-a", {"trainer": [(GPU, [uuid(0)])], "logger": []}),
        Pod("ml", "sliced-b", {"main": [(GPU, [f"{uuid(1)}::0"])]}),
        Pod("vision", "sliced-c", {"main": [(GPU, [f"{uuid(1)}::1"])]}),
        Pod("ml", "cpu-only", {"web": [("cpu", ["0"])]}),
    ]
    exp = make_exporter(
        "--backend", "simulated", "--simulated.gpus", "3",
        "--source.kubernetes", "--kubelet.pod-resources-socket", kubelet.socket_path,
        "--sources.poll-interval", "0.3",
    )  # fmt: skip
    ids = ["ml:train-a:trainer", "ml:sliced-b:main", "vision:sliced-c:main"]
    _wait(lambda: all(_job(exp, j) for j in ids), "the GPU pods")
    a, b, c = (exp.registry.get(j) for j in ids)
    assert a.gpus == (0,) and b.gpus == (1,) and c.gpus == (1,)
    assert _job(exp, "ml:cpu-only:web") is None and _job(exp, "ml:train-a:logger") is None
    labels = a.spec.scheduler
    assert (labels.scheduler, labels.namespace, labels.pod, labels.container) == (
        "kubernetes", "ml", "train-a", "trainer"
    )  # fmt: skip

    # the time-sliced board's energy is split between its pods, and adds up to the board's
    def shared():
        return (
            exp.registry.get(ids[1]).energy_joules + exp.registry.get(ids[2]).energy_joules,
            exp.sampler.snapshot().gpus[1].energy_joules,
        )

    (jobs0, gpu0), _ = shared(), time.sleep(2.0)
    jobs1, gpu1 = shared()
    assert jobs1 - jobs0 == pytest.approx(gpu1 - gpu0, rel=0.1)
    b, c = exp.registry.get(ids[1]), exp.registry.get(ids[2])
    assert b.energy_joules == pytest.approx(c.energy_joules, rel=0.05)

    # down: polls fail and are counted, scrapes stay quick, the jobs stay
    kubelet.stop()
    errors = _wait(lambda: _errors(exp) >= 2 and _errors(exp), "failed polls")
    t0 = time.perf_counter()
    text = scrape(exp.url)
    assert time.perf_counter() - t0 < 1.0 and "joulecast_job_info" in text
    assert all(exp.registry.get(j).live for j in ids)

    # restarted on the same socket, without pod A: A ends as ended, the others go on
    kubelet.pods = kubelet.pods[1:]
    kubelet.start()
    _wait(lambda: not exp.registry.get(ids[0]).live, "the pod that went away")
    assert exp.registry.get(ids[0]).outcome == "ended"
    assert exp.registry.get(ids[1]).live and _errors(exp) >= errors


def _errors(exp) -> float:
    for fam in text_string_to_metric_families(scrape(exp.url)):
        for s in fam.samples:
            if (
                s.name == "joulecast_source_poll_errors_total"
                and s.labels["source"] == "kubernetes"
            ):
                return s.value
    return 0.0


def test_mig_pods_get_their_instances_share(kubelet):
    kubelet.pods = [
        Pod("ml", "small", {"m": [("nvidia.com/mig-1g.10gb", ["MIG-1g"])]}),
        Pod("ml", "large", {"m": [("nvidia.com/mig-4g.40gb", ["MIG-4g"])]}),
    ]
    reg = JobRegistry(mig_board())
    sync = SourceSync(reg, KubeletSource(kubelet.socket_path))
    sync.apply(sync.source.poll())
    reg.attribute(0, joules=700.0, idle_joules=140.0, utilization=0.9, dt=1.0)
    small, large = reg.get("ml:small:m"), reg.get("ml:large:m")
    assert small.energy_joules == pytest.approx(20.0 + 560.0 / 5)  # 1/7 idle, 1/5 active
    assert large.energy_joules == pytest.approx(80.0 + 560.0 * 4 / 5)
    assert small.energy_joules + large.energy_joules <= 700.0


def test_a_client_named_job_of_a_pod_is_that_pods_job(kubelet):
    from joulecast.schema import JobSpec, SchedulerLabels

    kubelet.pods = [Pod("ml", "ddp-0", {"trainer": [(GPU, ["GPU-board"])]})]
    reg = JobRegistry(mig_board())
    labels = SchedulerLabels(
        scheduler="kubernetes", namespace="ml", pod="ddp-0", container="trainer"
    )
    reg.register(JobSpec("llm-sft-7", 10, gpu_uuids=("GPU-board",), scheduler=labels))
    sync = SourceSync(reg, KubeletSource(kubelet.socket_path))
    for _ in range(3):
        sync.apply(sync.source.poll())
    assert [r.job_id for r in reg.snapshot()] == ["llm-sft-7"]  # no second job on the board
    assert reg.get("llm-sft-7").live


def test_the_client_in_a_pod_attaches_to_its_containers_job(kubelet, make_exporter, monkeypatch):
    import joulecast

    kubelet.pods = [
        Pod("ml", "sft-0", {"trainer": [(GPU, [uuid(0)])]}),
        Pod("ml", "sft-1", {"trainer": [(GPU, [uuid(1)])]}),
    ]
    exp = make_exporter(
        "--backend", "simulated", "--simulated.gpus", "2",
        "--source.kubernetes", "--kubelet.pod-resources-socket", kubelet.socket_path,
        "--sources.poll-interval", "0.3",
    )  # fmt: skip
    monkeypatch.setenv("POD_NAMESPACE", "ml")
    monkeypatch.setenv("POD_NAME", "sft-0")
    monkeypatch.setenv("CONTAINER_NAME", "trainer")
    with joulecast.job(None, epochs=2, url=exp.url, gpus=[0]) as job:  # the default id
        assert job.job_id == "ml:sft-0:trainer"
        job.epoch_end()
    monkeypatch.setenv("POD_NAME", "sft-1")
    monkeypatch.setenv("JOULECAST_JOB_ID", "llm-sft")  # one name for the job's pods
    with joulecast.job(None, epochs=2, url=exp.url, gpus=[1]) as job:
        job.flush()
        found = _wait(lambda: _ended(exp, "ml:sft-1:trainer"), "the container's job handed over")
        assert found.outcome == "ended"  # found before its client named it: no second job
        assert exp.registry.get("llm-sft").spec.scheduler.pod == "sft-1"
        calls = kubelet.calls
        _wait(lambda: kubelet.calls >= calls + 2, "two more polls")
        live = [r.job_id for r in exp.registry.snapshot() if r.live and 1 in r.gpus]
        assert live == ["llm-sft"]
        job.epoch_end()
    first = exp.registry.get("ml:sft-0:trainer")
    assert first.epochs_completed == 1 and first.spec.scheduler.container == "trainer"


def _ended(exp, job_id):
    r = _job(exp, job_id)
    return r if r is not None and not r.live else None
