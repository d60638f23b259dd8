"""Incremental state reads: every job's live figures each cycle, of the rest only what changed.

A whole read of the state (``queries.STATE``) returns 16 series per job and node, most of
which change once or twice in a job's life (its plan, TDP, GPUs, start, end, outcome).
Between whole reads (the first cycle, and one every ``--query.resync-interval``) a cycle
asks for:

* ``LIVE``: the series that move every scrape or mark progress (running, energy, epochs
  and steps completed), of every job;
* one query for the others, that returns only those whose value differs from their value
  ``window`` seconds ago, or that are new within it (a new job, an info series with new
  labels). The mean GPU utilisation drifts every scrape; it is read when new and at the
  whole reads.

Comparisons and ``label_replace`` may drop ``__name__``, and ``or`` joins series on their
labels without it, so each metric's part names its metric in the ``joulecast_metric``
label. The answer grows with what changed, not with the fleet.
"""

from __future__ import annotations

import math
from collections import Counter

from joulecast.estimator.prometheus.client import PromClient
from joulecast.estimator.prometheus.queries import (
    METRIC,
    NodeUpdates,
    group_updates,
    in_buckets,
    split_on_limit,
)

LIVE = '{__name__=~"joulecast_job_(running|energy_joules_total|epochs_completed|steps_completed)"}'
#: read when their value changes
SETTLED = (
    "joulecast_job_info",
    "joulecast_job_epochs_planned",
    "joulecast_job_steps_planned",
    "joulecast_job_failed",
    "joulecast_job_lost",
    "joulecast_job_start_timestamp_seconds",
    "joulecast_job_end_timestamp_seconds",
    "joulecast_job_gpu_tdp_watts",
    "joulecast_job_gpu_memory_bytes",
    "joulecast_job_gpus",
    "joulecast_job_energy_budget_joules",
)
#: read when new, and at the whole reads
DRIFTING = ("joulecast_job_gpu_utilization_mean_ratio",)


def _selector(name: str, matchers: str) -> str:
    """``{__name__="name", <matchers>}``; ``matchers`` is a ``{...}`` set, maybe empty."""
    inner = matchers[1:-1]
    return f'{{__name__="{name}"{"," + inner if inner else ""}}}'


def changed_query(window_s: float, matchers: str = "{}") -> str:
    """The series of ``SETTLED`` whose value changed in the last ``window_s`` seconds, and
    those of ``SETTLED`` and ``DRIFTING`` new within it, each part labelled with its
    metric's name."""
    w = f"{max(1, math.ceil(window_s))}s"
    parts = []
    for name in SETTLED + DRIFTING:
        sel = _selector(name, matchers)
        expr = f"({sel} unless {sel} offset {w})"
        if name in SETTLED:
            expr = f"({sel} != {sel} offset {w}) or {expr}"
        parts.append(f'label_replace({expr}, "{METRIC}", "{name}", "", "")')
    return " or ".join(parts)


def fetch_live(
    client: PromClient,
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> NodeUpdates:
    selector = in_buckets(LIVE, buckets)
    return group_updates(
        split_on_limit(lambda sel: client.query(sel, at), selector, splits), skipped
    )


def fetch_changed(
    client: PromClient,
    window_s: float,
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> NodeUpdates:
    matchers = in_buckets("{}", buckets)
    samples = split_on_limit(
        lambda m: client.query(changed_query(window_s, m), at), matchers, splits
    )
    return group_updates(samples, skipped)


def merge_updates(into: NodeUpdates, more: NodeUpdates) -> NodeUpdates:
    for job_id, nodes in more.items():
        mine = into.setdefault(job_id, {})
        for instance, fields in nodes.items():
            mine.setdefault(instance, {}).update(fields)
    return into


def fetch_incremental(
    client: PromClient,
    window_s: float,
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> NodeUpdates:
    """What changed of every job's state since ``window_s`` seconds ago."""
    live = fetch_live(client, at, skipped, splits, buckets)
    return merge_updates(live, fetch_changed(client, window_s, at, skipped, splits, buckets))
