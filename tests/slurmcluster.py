"""A real one-host Slurm for the tests: Debian's munge, slurmctld and slurmd, run as root in
a temporary folder on free ports, with fake GPUs declared as generic resources (character
devices, as gres.conf requires)."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.stack import stop_all

NODE = "jcnode"
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


def free_low_port(taken: set[int]) -> int:
    """A free TCP port below 32768 (the ephemeral range), not Slurm's usual ones."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in taken or port in (16817, 16818):
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port below 32768")


SLURM_CONF = """\
ClusterName=joulecast
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SrunPortRange={srun_lo}-{srun_hi}
AuthType=auth/munge
AuthInfo=socket={dir}/munge/sock
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
MinJobAge=300
KillWait=1
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=20
DefMemPerCPU=10
{extra}
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={host} CPUs=16 RealMemory=16000 Gres=gpu:{gpus} State=UNKNOWN
PartitionName=gpu Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    dir: Path
    gpus: int = 4
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.dir / "slurm.conf")}

    @property
    def squeue_command(self) -> str:
        return f"env SLURM_CONF={self.dir / 'slurm.conf'} squeue --json"

    def exporter_flags(self, gpus: int, poll_s: float = 0.5) -> tuple[str, ...]:
        """An exporter with ``gpus`` simulated GPUs tracking this cluster's jobs."""
        return (
            "--backend", "simulated", "--simulated.gpus", str(gpus),
            "--source.slurm", "--slurm.node-name", NODE,
            "--slurm.squeue-command", self.squeue_command,
            "--sources.poll-interval", f"{poll_s:g}",
        )  # fmt: skip

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def sbatch(self, *args: str) -> str:
        """Submit; the job's id as joulecast names it is for the caller to make."""
        out = self.run("sbatch", "--parsable", "-o", str(self.dir / "job-%j.out"), *args)
        return out.strip().split(";")[0]

    def jobs(self) -> dict[str, dict]:
        doc = json.loads(self.run("squeue", "--json"))
        out = {}
        for j in doc["jobs"]:
            task = j.get("array_task_id")
            key = (
                f"{j['array_job_id']}_{task}"
                if j.get("array_job_id") and task is not None
                else str(j["job_id"])
            )
            out[key] = j
        return out

    def wait_state(self, job_id: str, states: set[str], timeout: float = 60.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.jobs().get(job_id)
            if job is not None and job["job_state"] in states:
                return job
            time.sleep(0.3)
        raise AssertionError(
            f"job {job_id} not in {states} after {timeout}s: {self.jobs().get(job_id)}"
        )

    def output(self, slurm_id: str) -> str:
        path = self.dir / f"job-{slurm_id}.out"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop_all(self.procs, timeout=15)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_slurm(
    gpus: int = 4, extra: str = "", daemon_env: dict[str, str] | None = None
) -> SlurmCluster:
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)}: Debian's slurm-wlm and munge)")
    if os.geteuid() != 0:
        pytest.skip("the test Slurm runs its daemons as root")
    # outside pytest's private (0700) folders: munged runs as the munge user
    d = Path(tempfile.mkdtemp(prefix="joulecast-slurm-"))
    d.chmod(0o755)
    for sub in ("state", "spool", "dev", "munge"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for i in range(gpus):
        dev = d / "dev" / f"gpu{i}"
        if not dev.exists():
            os.mknod(dev, 0o600 | 0o020000, os.makedev(1, 3))  # a character device
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    shutil.chown(d / "munge", "munge", "munge")
    (d / "munge").chmod(0o711)
    taken: set[int] = set()
    ctld, slurmd, srun_lo = free_low_port(taken), free_low_port(taken), free_low_port(taken)
    host = socket.gethostname().split(".")[0]
    (d / "slurm.conf").write_text(
        SLURM_CONF.format(
            host=host,
            node=NODE,
            dir=d,
            gpus=gpus,
            ctld_port=ctld,
            d_port=slurmd,
            srun_lo=min(srun_lo, 32000),
            srun_hi=min(srun_lo, 32000) + 100,
            extra=extra,
        )
    )
    (d / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File={d}/dev/gpu[0-{gpus - 1}]\n")
    cluster = SlurmCluster(d, gpus)
    munge_log = (d / "munged.out").open("w")
    cluster.procs.append(
        subprocess.Popen(
            [
                "runuser", "-u", "munge", "--", "munged", "-F", "--force",
                f"--socket={d}/munge/sock", f"--key-file={key}",
                f"--log-file={d}/munge/log", f"--pid-file={d}/munge/pid",
                f"--seed-file={d}/munge/seed",
            ],
            stdout=munge_log, stderr=subprocess.STDOUT,
        )
    )  # fmt: skip
    _wait_for(lambda: (d / "munge" / "sock").exists(), "munged", cluster)
    conf = str(d / "slurm.conf")
    for argv in (["slurmctld", "-D", "-c", "-f", conf], ["slurmd", "-D", "-N", NODE, "-f", conf]):
        out = (d / f"{argv[0]}.out").open("w")
        cluster.procs.append(
            subprocess.Popen(
                argv,
                env={**cluster.env, **(daemon_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
        time.sleep(0.5)

    def idle() -> bool:
        out = cluster.run("sinfo", "-h", "-o", "%t", check=False).strip()
        return out in ("idle", "mix", "alloc")

    _wait_for(idle, "slurmd registering with slurmctld", cluster, timeout=60)
    return cluster


def _wait_for(ok, what: str, cluster: SlurmCluster, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.poll() is not None for p in cluster.procs):
            break
        if ok():
            return
        time.sleep(0.2)
    logs = {p.name: p.read_text()[-1500:] for p in cluster.dir.glob("*.out")}
    logs.update({p.name: p.read_text()[-1500:] for p in cluster.dir.glob("*.log")})
    cluster.stop()
    raise RuntimeError(f"{what} did not come up: {logs}")
