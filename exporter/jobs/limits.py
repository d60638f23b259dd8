"""How many jobs the registry holds: live jobs are capped (429 past it), finished jobs are
kept for a time and a number, oldest first out, so what is published stays bounded
whatever clients post."""

from __future__ import annotations

from collections.abc import Iterable

from joulecast.exporter.jobs.model import JobRecord, TooManyJobs


def require_room(records: Iterable[JobRecord], max_live: int) -> None:
    live = sum(1 for r in records if r.live)
    if live >= max_live:
        raise TooManyJobs(f"{live} live jobs: the limit ({max_live}) is reached")


def expired(records: Iterable[JobRecord], now: float, max_finished: int, ttl_s: float) -> list[str]:
    """Finished jobs past ``max_finished`` (oldest first) and those finished over
    ``ttl_s`` ago."""
    finished = sorted(
        (r for r in records if r.finished_at is not None), key=lambda r: r.finished_at or 0.0
    )
    excess = max(0, len(finished) - max_finished)
    return [r.job_id for r in finished[:excess]] + [
        r.job_id for r in finished[excess:] if now - (r.finished_at or now) > ttl_s
    ]


def over(records: Iterable[JobRecord], max_finished: int) -> bool:
    return sum(1 for r in records if not r.live) > max_finished
