"""Which GPUs a job's energy comes from, and how one board's energy is split among its jobs.

The rule (documented in docs/exporter.md):

* A job's GPUs are the ones it declared (indices, GPU or MIG UUIDs, e.g. from
  ``CUDA_VISIBLE_DEVICES`` or Slurm), else the GPUs on which one of its PIDs runs a compute
  process (refreshed every sample), else, with neither declared or on a backend that does
  not list processes (simulated GPUs), every GPU of the node.
  A MIG instance resolves to its parent board.
* In every sampling interval, a board's energy is split equally among the live jobs on it,
  except on a MIG board whose jobs are all bound to MIG instances: NVML has no power per
  instance, so each job gets the board's idle energy in proportion to its instances' share
  of the board's MIG memory (a proxy for its slices; idle slices are nobody's), and the
  active energy above idle in proportion to that share among the live jobs.
* The part of that energy up to the board's idle power is reported apart, as idle energy.

Pure functions over records and the node's :class:`GpuDirectory`; the registry holds the lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from joulecast.exporter.jobs.gpus import GpuDirectory
from joulecast.exporter.jobs.model import JobError, JobRecord
from joulecast.schema import JobSpec


@dataclass
class GpuIndex:
    """The charged jobs by board, their MIG shares, and the jobs found by PID alone."""

    by_gpu: dict[int, list[JobRecord]] = field(default_factory=dict)
    mig_shares: dict[tuple[str, int], float] = field(default_factory=dict)  # (job, board)
    pid_jobs: list[JobRecord] = field(default_factory=list)


def index(records: Iterable[JobRecord], gpus: GpuDirectory) -> GpuIndex:
    out = GpuIndex()
    for r in records:
        if not r.charged:
            continue
        if not r.gpus:
            out.pid_jobs.append(r)
            continue
        for g in r.gpus:
            out.by_gpu.setdefault(g, []).append(r)
            share = gpus.mig_share(g, r.spec.gpu_uuids)
            if share is not None:
                out.mig_shares[(r.job_id, g)] = share
    return out


def jobs_on(
    idx: GpuIndex, gpu_index: int, pids: tuple[int, ...]
) -> tuple[list[JobRecord], list[JobRecord]]:
    """The live jobs to charge for one board, and the PID-found ones first seen on it."""
    jobs = list(idx.by_gpu.get(gpu_index, ()))
    fresh: list[JobRecord] = []
    if pids and idx.pid_jobs:
        running = set(pids)
        for r in idx.pid_jobs:
            if running.intersection(r.spec.pids):
                jobs.append(r)
                if gpu_index not in r.seen_gpus:
                    r.seen_gpus = tuple(sorted((*r.seen_gpus, gpu_index)))
                    fresh.append(r)
    return jobs, fresh


def fill_gpu_facts(r: JobRecord, gpus: GpuDirectory) -> None:
    """TDP and memory of the job's GPUs; a MIG job counts its share of the board."""
    tdp = memory = 0.0
    models = set()
    for i in r.gpus or r.seen_gpus:
        g = gpus.info(i)
        if g is None:
            continue
        share = gpus.mig_share(i, r.spec.gpu_uuids)
        tdp += (g.default_power_limit_watts or 0.0) * (1.0 if share is None else share)
        if share is None:
            memory += g.memory_total_bytes or 0
        else:
            memory += sum(
                m.memory_total_bytes or 0 for m in gpus.mig_instances(i, r.spec.gpu_uuids)
            )
        models.add(g.model)
    r.tdp_watts, r.gpu_memory_bytes, r.gpu_models = tdp, float(memory), tuple(sorted(models))


def resolve_gpus(spec: JobSpec, gpus: GpuDirectory) -> tuple[int, ...]:
    """The boards a spec names; JobError for an index or UUID this node does not have."""
    known = set(gpus.indices())
    out: list[int] = []
    for i in spec.gpus:
        if i not in known:
            have = ", ".join(map(str, sorted(known))) or "none"
            raise JobError(f"unknown GPU index {i}; this node has GPUs: {have}")
        out.append(i)
    for uuid in spec.gpu_uuids:
        i = gpus.resolve_uuid(uuid)
        if i is None:
            raise JobError(f"unknown GPU UUID {uuid} on this node")
        out.append(i)
    if not out and (not spec.pids or not gpus.lists_processes):
        out = list(gpus.indices())
    return tuple(sorted(set(out)))


def split(
    shares: list[float | None], joules: float, idle_joules: float
) -> list[tuple[float, float]]:
    """(energy, idle part) of each job on a board: by MIG share when every job holds MIG
    instances of it, else equal."""
    n = len(shares)
    if any(s is None for s in shares):
        return [(joules / n, idle_joules / n)] * n
    held = sum(s for s in shares if s is not None)
    active = max(joules - idle_joules, 0.0)
    return [(idle_joules * s + active * s / held, idle_joules * s) for s in shares if s is not None]
