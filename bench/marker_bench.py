"""Epoch-marker delivery: what ``epoch_end`` costs the training loop, how fast markers go
through, and the energy error of markers delivered late.

    python bench/marker_bench.py [--markers 2000] [--threads 20]

An in-process exporter on loopback (simulated GPU). Measured side by side in one run:

* ``epoch_end`` latency as the loop sees it (background sender) against a synchronous POST
  per marker (what the loop would pay without the sender);
* throughput: markers recorded per second, one job and ``--threads`` jobs at once;
* late delivery: a job whose exporter is unreachable for its first half. Each epoch's
  energy from the markers is compared with the GPU's own integrated energy at the epoch's
  end (the job is alone on its GPU), once as recorded (charged at the marker's end time)
  and once as it would be charged at delivery time.

Writes bench/results/markers.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import joulecast  # noqa: E402
from joulecast.exporter.cli import build, build_parser  # noqa: E402
from joulecast.sender import http_post  # noqa: E402


def start_exporter(state: Path):
    args = build_parser().parse_args(
        [
            "--web.listen-address",
            "127.0.0.1:0",
            "--state.dir",
            str(state),
            "--no-collector.rapl",
            "--backend",
            "simulated",
            "--simulated.gpus",
            "2",
            "--jobs.max-live",
            "5000",
        ]
    )
    exp = build(args)
    exp.start()
    return exp


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def loop_latency(url: str, n: int) -> dict:
    job = joulecast.job("lat-async", epochs=n, url=url, gpus=[1])
    job.__enter__()
    lat = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        job.epoch_end({"loss": 1.0})
        lat.append(time.perf_counter() - t)
    job.flush(120)
    elapsed = time.perf_counter() - start
    job.__exit__(None, None, None)
    sync = []
    http_post(
        url + "/api/v1/jobs", {"job_id": "lat-sync", "epochs_planned": n, "gpus": [1]}, None, 5
    )
    for i in range(1, min(n, 500) + 1):
        t = time.perf_counter()
        http_post(url + "/api/v1/jobs/lat-sync/epochs", {"epoch": i, "time": time.time()}, None, 5)
        sync.append(time.perf_counter() - t)
    return {
        "markers": n,
        "epoch_end_p50_us": statistics.median(lat) * 1e6,
        "epoch_end_p99_us": pct(lat, 0.99) * 1e6,
        "sync_post_p50_us": statistics.median(sync) * 1e6,
        "sync_post_p99_us": pct(sync, 0.99) * 1e6,
        "one_job_markers_per_s": n / elapsed,
    }


def concurrent(url: str, threads: int, per_job: int) -> dict:
    jobs = [joulecast.job(f"conc-{i}", epochs=per_job, url=url, gpus=[1]) for i in range(threads)]
    for j in jobs:
        j.__enter__()
    barrier = threading.Barrier(threads)

    def run(j) -> None:
        barrier.wait()
        for _ in range(per_job):
            j.epoch_end()
        j.flush(120)

    start = time.perf_counter()
    ts = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    for j in jobs:
        j.__exit__(None, None, None)
    return {
        "jobs": threads,
        "markers": threads * per_job,
        "markers_per_s": threads * per_job / elapsed,
    }


def late_delivery(exp, epochs: int, epoch_s: float) -> dict:
    away = threading.Event()
    away.set()

    def post(url, payload, token, timeout):
        if away.is_set():
            raise ConnectionRefusedError("exporter away (benchmark)")
        return http_post(url, payload, token, timeout)

    gpu = lambda: exp.sampler.snapshot().gpus[0].integrated_energy_joules  # noqa: E731
    spec = {"job_id": "late", "epochs_planned": epochs, "gpus": [0]}
    http_post(exp.url + "/api/v1/jobs", spec, None, 5)
    e0 = gpu()
    job = joulecast.job("late", epochs=epochs, url=exp.url, gpus=[0], post=post, flush_timeout=60)
    job.__enter__()
    truth, at_delivery = [], []
    for epoch in range(1, epochs + 1):
        time.sleep(epoch_s)
        job.epoch_end()
        truth.append(gpu() - e0)
        if epoch == epochs // 2:
            away.clear()  # the exporter is back: the queued markers go out now
            job.flush(30)
            now_energy = exp.registry.get("late").energy_joules
            at_delivery = [now_energy] * (epochs // 2)
    job.__exit__(None, None, None)
    recorded = [e["energy_joules"] for e in exp.registry.epochs("late")]

    def per_epoch(series: list[float]) -> list[float]:
        return [b - a for a, b in zip([0.0, *series], series, strict=False)]

    true_pe = per_epoch(truth)[: epochs // 2]
    rec_pe = per_epoch(recorded)[: epochs // 2]
    del_pe = per_epoch(at_delivery)
    err = lambda got: statistics.mean(  # noqa: E731
        abs(g - t) / t for g, t in zip(got, true_pe, strict=True)
    )
    return {
        "epochs": epochs,
        "epoch_seconds": epoch_s,
        "late_markers": epochs // 2,
        "recorded": len(recorded),
        "epoch_energy_error_charged_at_end_time": err(rec_pe),
        "epoch_energy_error_if_charged_at_delivery": err(del_pe),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markers", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=20)
    ap.add_argument("--late-epochs", type=int, default=10)
    ap.add_argument("--epoch-seconds", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "markers.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exp = start_exporter(Path(tmp))
        try:
            out = {
                "latency": loop_latency(exp.url, args.markers),
                "concurrent": concurrent(exp.url, args.threads, 50),
                "late": late_delivery(exp, args.late_epochs, args.epoch_seconds),
            }
        finally:
            exp.stop()
    lat, conc, late = out["latency"], out["concurrent"], out["late"]
    print(
        f"epoch_end as the loop sees it: p50 {lat['epoch_end_p50_us']:.0f} us, "
        f"p99 {lat['epoch_end_p99_us']:.0f} us; a synchronous POST: p50 "
        f"{lat['sync_post_p50_us']:.0f} us, p99 {lat['sync_post_p99_us']:.0f} us "
        f"({lat['sync_post_p50_us'] / lat['epoch_end_p50_us']:.0f}x the loop's cost)"
    )
    print(
        f"throughput: one job {lat['one_job_markers_per_s']:.0f} markers/s; "
        f"{conc['jobs']} jobs at once {conc['markers_per_s']:.0f} markers/s"
    )
    print(
        f"late delivery: {late['recorded']}/{late['epochs']} recorded; epoch energy error of the "
        f"{late['late_markers']} late markers {late['epoch_energy_error_charged_at_end_time']:.2%} "
        f"(charged at their end time) vs "
        f"{late['epoch_energy_error_if_charged_at_delivery']:.0%} (if charged at delivery)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
