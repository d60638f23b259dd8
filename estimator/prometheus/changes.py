"""Incremental state reads: every job's live figures each cycle, the rest only for the jobs
that need it.

A whole read of the state (``queries.STATE``) returns 16 series per job and node, most of
which change once or twice in a job's life (its TDP, GPUs, start, end, outcome). Between
whole reads (the first cycle, and one every ``--query.resync-interval``) a cycle asks for:

* ``LIVE``: the series that move every scrape or mark progress or plan (running, energy,
  epochs and steps completed and planned, the last epoch's end), of every job, as instant
  values: the last epoch checkpoint of each node comes with them;
* the others (``SETTLED``), by job id, only for the jobs the estimator's book says need
  them (:meth:`JobBook.needs_state`): jobs or nodes it does not know yet, and those whose
  ``running`` changed (an end brings its outcome, end time and final labels);
* the raw epoch checkpoints of the window, by job id, only for the jobs whose epoch count
  moved by more than one since the book's last checkpoint (:meth:`JobBook.needs_history`:
  an epoch may have ended and been scraped between two cycles), and the raw step
  checkpoints of every job with any (their counts cannot tell a gap).

The store's work and the answer grow with the jobs that started, ended or skipped an
epoch, not with the fleet: a query that compares every series with its value a window ago
(``S != S offset W``) costs the store two reads of every series, more than the whole read
it replaces. What else changes while a job runs (its GPUs, its budget) is read at the next
whole read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from joulecast.estimator.prometheus.client import PromClient, Sample, Series
from joulecast.estimator.prometheus.queries import (
    EPOCH_SERIES,
    STEP_SERIES,
    NodeHistory,
    NodeUpdates,
    T,
    checkpoint,
    group_history,
    group_updates,
    in_buckets,
    names_selector,
    split_on_limit,
    with_matcher,
)


@dataclass(frozen=True)
class Needs:
    """What an incremental read asks its book (``JobBook.needs_state``, ``.needs_history``):
    the jobs whose settled series, and those whose raw epoch checkpoints, are to be read."""

    state: Callable[[NodeUpdates], Iterable[str]]
    history: Callable[[NodeHistory], Iterable[str]]


LIVE = (
    '{__name__=~"joulecast_job_(running|energy_joules_total|epochs_completed|steps_completed|'
    'epochs_planned|steps_planned|epoch_end_energy_joules|epoch_end_timestamp_seconds)"}'
)
#: raw checkpoints: of epochs for the jobs with a gap, of steps for every job
EPOCH_HISTORY = names_selector(EPOCH_SERIES)
STEP_HISTORY = names_selector(STEP_SERIES)
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
    return names_selector(SETTLED)


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
) -> tuple[NodeUpdates, NodeHistory]:
    """Every job's live series, and its latest epoch checkpoint on each node."""
    selector = in_buckets(LIVE, buckets)
    samples = split_on_limit(lambda sel: client.query(sel, at), selector, splits)
    return group_updates(samples, skipped), latest_checkpoints(samples, skipped)


def latest_checkpoints(samples: list[Sample], skipped: Counter) -> NodeHistory:
    """The (count, timestamp, energy) of each node's last epoch, from instant samples."""
    at = {name: i for i, name in enumerate(EPOCH_SERIES)}
    by_node: dict[tuple[str, str], list[float | None]] = {}
    for s in samples:
        i = at.get(s.labels.get("__name__", ""))
        job_id = s.labels.get("job_id")
        if i is not None and job_id:
            by_node.setdefault((job_id, s.labels.get("instance", "")), [None] * 3)[i] = s.value
    out: NodeHistory = {}
    for (job_id, instance), raw in by_node.items():
        if None in raw:
            continue
        point = checkpoint(tuple(raw), skipped)  # type: ignore[arg-type]
        if point is not None:
            out.setdefault(job_id, {})[instance] = [point]
    return out


def fetch_checkpoints(
    client: PromClient,
    selector: str,
    job_ids: Iterable[str] | None,
    window_s: float,
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> list[Series]:
    """Raw samples of ``selector`` over the window, of ``job_ids`` (None: every job)."""
    return by_ids(
        lambda q: client.query_raw(q, window_s, at), in_buckets(selector, buckets), job_ids, splits
    )


def by_ids(
    fetch: Callable[[str], list[T]], selector: str, job_ids: Iterable[str] | None, splits: Counter
) -> list[T]:
    """``fetch`` of ``selector`` narrowed to ``job_ids`` (None: every job), in as few
    queries as the ids' length allows, each split when the store refuses it for its limit."""
    if job_ids is None:
        return split_on_limit(fetch, selector, splits)
    out: list[T] = []
    for matcher in id_matchers(job_ids):
        out += split_on_limit(fetch, with_matcher(selector, matcher), splits)
    return out


def merge_history(into: NodeHistory, more: NodeHistory) -> NodeHistory:
    for job_id, nodes in more.items():
        mine = into.setdefault(job_id, {})
        for instance, points in nodes.items():
            mine[instance] = [*mine.get(instance, []), *points]
    return into


def fetch_settled(
    client: PromClient,
    job_ids: Iterable[str],
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> NodeUpdates:
    """The ``SETTLED`` series of ``job_ids``, in as few queries as the ids' length allows."""
    base = in_buckets(settled_selector(), buckets)
    samples = by_ids(lambda sel: client.query(sel, at), base, job_ids, splits)
    return group_updates(samples, skipped)


def merge_updates(into: NodeUpdates, more: NodeUpdates) -> NodeUpdates:
    for job_id, nodes in more.items():
        mine = into.setdefault(job_id, {})
        for instance, fields in nodes.items():
            mine.setdefault(instance, {}).update(fields)
    return into


@dataclass(frozen=True)
class IncrementalRead:
    updates: NodeUpdates
    history: NodeHistory
    steps: NodeHistory


def fetch_incremental(
    client: PromClient,
    needs: Needs,
    window_s: float,
    at: float | None,
    skipped: Counter,
    splits: Counter,
    buckets: tuple[int, ...] | None = None,
) -> IncrementalRead:
    """Every job's live series and latest epoch; the settled series of the jobs
    ``needs.state`` names from them; the raw epoch checkpoints of the window for the jobs
    ``needs.history`` names (an epoch ended unseen between two cycles); the raw step
    checkpoints of every job (a step count says nothing of the checkpoints between)."""
    live, latest = fetch_live(client, at, skipped, splits, buckets)
    settled = fetch_settled(client, needs.state(live), at, skipped, splits, buckets)
    gaps = needs.history(latest)
    raw = fetch_checkpoints(client, EPOCH_HISTORY, gaps, window_s, at, skipped, splits, buckets)
    steps = fetch_checkpoints(client, STEP_HISTORY, None, window_s, at, skipped, splits, buckets)
    return IncrementalRead(
        merge_updates(live, settled),
        merge_history(latest, group_history(raw, skipped)),
        group_history(steps, skipped, STEP_SERIES),
    )
