"""Whether a live job's processes still run (pure decisions, one probe of the process table).

A training run killed without a word (the OOM killer, preemption, ``kill -9``,
``scancel -s KILL``) never posts its finish. The exporter notices instead:

* a job whose processes it can see (the PIDs its clients registered, checked against the
  process table with their start times, so a reused PID is not mistaken for the job) is
  *gone* as soon as none of them runs; a zombie counts as gone;
* a job with no process the exporter can see (its PIDs live in another PID namespace) but
  whose client declared a heartbeat is gone when no beat came for three intervals;
* any other job (posted by hand, an old client) is never judged.

A gone job is no longer charged from the check that found it gone (at most one liveness
interval after the last process went; three heartbeat intervals for a heartbeat-only job).
Once it has been gone for the grace period it ends as ``lost``; a registration of the same
job id before or after that continues it (a resumed run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: pid -> the process's start time (seconds since the epoch), or None when no such process
ProcessTable = Callable[[int], float | None]

HEARTBEATS_MISSED = 3
START_TIME_TOLERANCE_S = 0.05


def psutil_table(pid: int) -> float | None:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except psutil.Error:
        return None


def seen(pids: Iterable[int], table: ProcessTable) -> tuple[tuple[int, float], ...]:
    """The PIDs this exporter can see, with their start times."""
    out = []
    for pid in pids:
        start = table(pid)
        if start is not None:
            out.append((pid, start))
    return tuple(out)


def any_alive(processes: Iterable[tuple[int, float]], table: ProcessTable) -> bool:
    for pid, start in processes:
        now_start = table(pid)
        if now_start is not None and abs(now_start - start) <= START_TIME_TOLERANCE_S:
            return True
    return False


def alive(
    processes: tuple[tuple[int, float], ...],
    heartbeat_s: float | None,
    last_beat: float | None,
    now: float,
    table: ProcessTable,
) -> bool | None:
    """True / False, or None when there is nothing to judge the job by."""
    if processes:
        return any_alive(processes, table)
    if heartbeat_s and last_beat is not None:
        return now - last_beat <= HEARTBEATS_MISSED * heartbeat_s
    return None
