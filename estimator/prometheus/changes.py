"""Incremental state reads: every job's live figures each cycle, the rest only for the jobs
that need it.

A whole read of the state (``queries.STATE``) returns 16 series per job and node, most of
which change once or twice in a job's life (its TDP, GPUs, start, end, outcome). Between
whole reads (the first cycle, and one every ``--query.resync-interval``) a cycle asks for:

* ``LIVE``: the series that move every scrape or mark progress or plan (running, energy,
  epochs and steps completed and planned), of every job;
* the others (``SETTLED``), by job id, only for the jobs the estimator's book says need
  them (:meth:`JobBook.needs_state`): jobs or nodes it does not know yet, and those whose
  ``running`` changed (an end brings its outcome, end time and final labels).

The store's work and the answer grow with the jobs that started or ended, not with the
fleet: a query that compares every series with its value a window ago (``S != S offset W``)
costs the store two reads of every series, more than the whole read it replaces. What else
changes while a job runs (its GPUs, its budget) is read at the next whole read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from joulecast.estimator.prometheus.client import PromClient
from joulecast.estimator.prometheus.queries import (
    NodeUpdates,
    group_updates,
    in_buckets,
    split_on_limit,
    with_matcher,
)

LIVE = (
    '{__name__=~"joulecast_job_(running|energy_joules_total|epochs_completed|steps_completed|'
    'epochs_planned|steps_planned)"}'
)
#: read for the jobs that need them
SETTLED = (
    "joulecast_job_info",
    "joulecast_job_failed",
    "joulecast_job_lost",
    "joulecast_job_start_timestamp_seconds",
    "joulecast_job_end_timestamp_seconds",
    "joulecast_job_gpu_tdp_watts",
    "joulecast_job_gpu_memory_bytes",
    "joulecast_job_gpus",
    "joulecast_job_energy_budget_joules",
    "joulecast_job_gpu_utilization_mean_ratio",
)
#: a query's job-id matcher at most this long (VictoriaMetrics' -search.maxQueryLen is
#: 16 KiB by default)
MAX_IDS_CHARS = 8000


def settled_selector() -> str:
    names = "|".join(n.removeprefix("joulecast_job_") for n in SETTLED)
    return f'{{__name__=~"joulecast_job_({names})"}}'


def id_matchers(job_ids: Iterable[str]) -> list[str]:
    """``job_id=~"a|b|..."`` matchers holding every id, each at most ``MAX_IDS_CHARS``
    long. Ids are letters, digits and ``_.:-`` (``validate_job_id``): only the dot is a
    regular-expression character, escaped for RE2 and for the PromQL string."""
    out: list[str] = []
    chunk: list[str] = []
    size = 0
    for job_id in sorted(job_ids):
        alt = job_id.replace(".", "\\\\.")
        if chunk and size + len(alt) + 1 > MAX_IDS_CHARS:
            out.append(f'job_id=~"{"|".join(chunk)}"')
            chunk, size = [], 0
        chunk.append(alt)
        size += len(alt) + 1
    if chunk:
        out.append(f'job_id=~"{"|".join(chunk)}"')
    return out


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


def fetch_settled(
    client: PromClient,
    job_ids: Iterable[str],
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> NodeUpdates:
    """The ``SETTLED`` series of ``job_ids``, in as few queries as the ids' length allows."""
    out: NodeUpdates = {}
    base = in_buckets(settled_selector(), buckets)
    for matcher in id_matchers(job_ids):
        selector = with_matcher(base, matcher)
        samples = split_on_limit(lambda sel: client.query(sel, at), selector, splits)
        merge_updates(out, group_updates(samples, skipped))
    return out


def merge_updates(into: NodeUpdates, more: NodeUpdates) -> NodeUpdates:
    for job_id, nodes in more.items():
        mine = into.setdefault(job_id, {})
        for instance, fields in nodes.items():
            mine.setdefault(instance, {}).update(fields)
    return into


def fetch_incremental(
    client: PromClient,
    needs_state: Callable[[NodeUpdates], Iterable[str]],
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> NodeUpdates:
    """Every job's live series, and the settled ones of the jobs ``needs_state`` names
    from them."""
    live = fetch_live(client, at, skipped, splits, buckets)
    settled = fetch_settled(client, needs_state(live), at, skipped, splits, buckets)
    return merge_updates(live, settled)
