"""The exporter's metric names in PromQL (with ``changes.py``, its incremental reads), and
the grouping of their answers.

Each cycle issues a fixed number of queries whatever the number of jobs: one raw-sample
query for the epoch and step checkpoints of every job, one instant query for every job's
state (or two for what changed of it, ``changes.py``), and optionally one for the grid
carbon intensity. Results are grouped by ``job_id``
and then by ``instance`` (the node's exporter): a job that spans nodes has one entry per
node, combined into one job by ``estimator/jobs.py``. Nothing depends on series order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from joulecast.estimator.prometheus.client import PromClient, PromError, Sample, Series
from joulecast.step import Checkpoint

T = TypeVar("T")

STATE = (
    '{__name__=~"joulecast_job_(info|epochs_planned|epochs_completed|running|failed|lost|'
    "energy_joules_total|start_timestamp_seconds|end_timestamp_seconds|gpu_tdp_watts|"
    "gpu_memory_bytes|gpu_utilization_mean_ratio|gpus|energy_budget_joules|"
    'steps_planned|steps_completed)"}'
)
#: (count, timestamp, energy) series of the two kinds of checkpoint
EPOCH_SERIES = (
    "joulecast_job_epochs_completed",
    "joulecast_job_epoch_end_timestamp_seconds",
    "joulecast_job_epoch_end_energy_joules",
)
STEP_SERIES = (
    "joulecast_job_steps_completed",
    "joulecast_job_step_end_timestamp_seconds",
    "joulecast_job_step_end_energy_joules",
)


def names_selector(names: tuple[str, ...]) -> str:
    """``{__name__=~"joulecast_job_(a|b|...)"}`` for the ``joulecast_job_*`` ``names``."""
    alts = "|".join(n.removeprefix("joulecast_job_") for n in names)
    return f'{{__name__=~"joulecast_job_({alts})"}}'


HISTORY = names_selector(EPOCH_SERIES + STEP_SERIES)
GPU_MODELS = "count by (model) (joulecast_gpu_info)"
#: the label a query names its metric in where PromQL would drop ``__name__``
METRIC = "joulecast_metric"


#: A checkpoint as read: the job's energy and wall time when ``epoch`` ended (for step
#: checkpoints ``epoch`` holds the step count). It is STEP's own checkpoint, so the book's
#: points go to the projection as they are.
EpochPoint = Checkpoint


#: job_id -> instance -> checkpoints
NodeHistory = dict[str, dict[str, list[EpochPoint]]]


@dataclass
class JobState:
    """A job as the exporter last reported it."""

    job_id: str
    epochs_planned: float = 0
    epochs_completed: int = 0
    running: bool = True
    failed: bool = False  # ended with an error: neither scored nor learned from
    lost: bool = False  # its processes vanished without a finish: neither scored nor learned
    energy_j: float = 0.0
    start_s: float | None = None
    end_s: float | None = None
    tdp_w: float = 0.0
    gpu_memory_bytes: float = 0.0
    gpu_utilization: float | None = None
    gpus: int = 0
    budget_j: float | None = None
    features: dict[str, str] = field(default_factory=dict)
    steps_planned: int | None = None
    steps_completed: int = 0
    nodes: int = 1  # exporters the job was seen on (after combining)

    def copy(self) -> JobState:
        """A shallow copy, four times quicker than ``copy.copy`` (no ``__reduce_ex__``)."""
        out = object.__new__(JobState)
        out.__dict__.update(self.__dict__)
        return out


#: every first character a job id may have (``validate_job_id``): the halves a query is
#: split along when a store refuses it for its series limit
ID_FIRST = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_SPLITS = 6  # halvings: 64 queries at most in place of one


def with_matcher(selector: str, matcher: str) -> str:
    """``{...}`` with one more label matcher."""
    sep = "" if selector.endswith("{}") else ","
    return f"{selector[:-1]}{sep}{matcher}}}"


def in_buckets(selector: str, buckets: tuple[int, ...] | None) -> str:
    """``selector`` for the jobs of a shard's buckets (``job_bucket``, joulecast/shards.py)."""
    if buckets is None:
        return selector
    return with_matcher(selector, f'job_bucket=~"{"|".join(map(str, buckets))}"')


def narrowed(selector: str, chars: str) -> str:
    """``selector`` for the jobs whose id starts with one of ``chars``."""
    return with_matcher(selector, f'job_id=~"[{chars}].*"')


def split_on_limit(
    fetch: Callable[[str], list[T]],
    selector: str,
    splits: Counter,
    chars: str = ID_FIRST,
    depth: int = 0,
) -> list[T]:
    """``fetch(selector)``; when the store refuses it for its series limit, the same over
    two halves of the jobs (by the first character of their id), and so on: the cycle is
    done in more queries rather than failed. Counted in ``splits["limit"]``."""
    try:
        return fetch(selector if chars == ID_FIRST else narrowed(selector, chars))
    except PromError as err:
        if err.kind != "limit" or depth >= MAX_SPLITS or len(chars) < 2:
            raise
    splits["limit"] += 1
    half = len(chars) // 2
    return [
        *split_on_limit(fetch, selector, splits, chars[:half], depth + 1),
        *split_on_limit(fetch, selector, splits, chars[half:], depth + 1),
    ]


def fetch_history(
    client: PromClient,
    window_s: float,
    at: float | None = None,
    skipped: Counter | None = None,
    splits: Counter | None = None,
    buckets: tuple[int, ...] | None = None,
) -> tuple[NodeHistory, NodeHistory]:
    """Epoch and step checkpoints of every job (of ``buckets``) and node seen in the last
    ``window_s`` s."""
    splits = Counter() if splits is None else splits
    selector = in_buckets(HISTORY, buckets)
    series = split_on_limit(lambda sel: client.query_raw(sel, window_s, at), selector, splits)
    return group_history(series, skipped), group_history(series, skipped, STEP_SERIES)


MAX_EPOCH = 1_000_000


def sane(value: float, lo: float = 0.0, hi: float = 1e15) -> bool:
    return math.isfinite(value) and lo <= value <= hi


def group_history(
    series: list[Series], skipped: Counter | None = None, names: tuple[str, ...] = EPOCH_SERIES
) -> NodeHistory:
    """Checkpoints per job and node, from the (count, timestamp, energy) series ``names``.
    A point with a non-finite or absurd value (a NaN from a broken remote write, a
    negative energy) is skipped and counted in ``skipped``."""
    skipped = Counter() if skipped is None else skipped
    # Samples of one scrape of one node share a timestamp: join the three series on it.
    by_node: dict[tuple[str, str], dict[float, dict[str, float]]] = {}
    wanted = set(names)
    for s in series:
        job_id = s.labels.get("job_id")
        name = s.labels.get("__name__", "")
        if not job_id or name not in wanted:
            continue
        slot = by_node.setdefault((job_id, s.labels.get("instance", "")), {})
        for ts, v in s.points:
            slot.setdefault(ts, {})[name] = v
    out: NodeHistory = {}
    for (job_id, instance), samples in by_node.items():
        points: dict[int, EpochPoint] = {}
        for _, vals in sorted(samples.items()):
            try:
                raw = tuple(vals[n] for n in names)
            except KeyError:
                continue
            point = checkpoint(raw, skipped)
            if point is not None:
                points.setdefault(point.epoch, point)
        out.setdefault(job_id, {})[instance] = sorted(points.values(), key=lambda p: p.epoch)
    return out


def checkpoint(raw: tuple[float, ...], skipped: Counter) -> EpochPoint | None:
    """The checkpoint of one (count, timestamp, energy) reading, or None (counted in
    ``skipped``) when a value is not finite or out of range."""
    if not all(math.isfinite(v) for v in raw):
        skipped["non_finite"] += 1
        return None
    if not (sane(raw[0], 0, MAX_EPOCH) and sane(raw[1]) and sane(raw[2])):
        skipped["out_of_range"] += 1
        return None
    return EpochPoint(int(raw[0]), raw[1], raw[2])


_FIELDS = {
    "joulecast_job_epochs_planned": ("epochs_planned", float),
    "joulecast_job_epochs_completed": ("epochs_completed", int),
    "joulecast_job_energy_joules_total": ("energy_j", float),
    "joulecast_job_start_timestamp_seconds": ("start_s", float),
    "joulecast_job_end_timestamp_seconds": ("end_s", float),
    "joulecast_job_gpu_tdp_watts": ("tdp_w", float),
    "joulecast_job_gpu_memory_bytes": ("gpu_memory_bytes", float),
    "joulecast_job_gpu_utilization_mean_ratio": ("gpu_utilization", float),
    "joulecast_job_gpus": ("gpus", int),
    "joulecast_job_energy_budget_joules": ("budget_j", float),
    "joulecast_job_steps_planned": ("steps_planned", int),
    "joulecast_job_steps_completed": ("steps_completed", int),
}
_FLAGS = {
    "joulecast_job_running": "running",
    "joulecast_job_failed": "failed",
    "joulecast_job_lost": "lost",
}
#: job_id -> instance -> state
NodeStates = dict[str, dict[str, JobState]]


def fetch_state(
    client: PromClient,
    at: float | None = None,
    skipped: Counter | None = None,
    splits: Counter | None = None,
    buckets: tuple[int, ...] | None = None,
) -> NodeStates:
    splits = Counter() if splits is None else splits
    selector = in_buckets(STATE, buckets)
    return group_state(split_on_limit(lambda sel: client.query(sel, at), selector, splits), skipped)


#: job_id -> instance -> {JobState attribute: value}: what one read says of each node
NodeUpdates = dict[str, dict[str, dict[str, Any]]]


def _field(name: str, s: Sample, fields: dict[str, Any], skipped: Counter) -> None:
    """Set the JobState attribute ``name``'s sample carries (a bad value is counted)."""
    if name == "joulecast_job_info":
        fields["features"] = {
            k: v
            for k, v in s.labels.items()
            if v and k not in ("__name__", "job_id", "job_bucket", "instance", "job", METRIC)
        }
    elif name in _FLAGS:
        fields[_FLAGS[name]] = s.value >= 0.5
    elif name in _FIELDS:
        attr, conv = _FIELDS[name]
        if not math.isfinite(s.value):
            skipped["non_finite"] += 1
        elif not sane(s.value, -1e15, 1e15) or (conv is int and abs(s.value) > MAX_EPOCH):
            skipped["out_of_range"] += 1
        else:
            fields[attr] = conv(s.value)


def group_updates(samples: list[Sample], skipped: Counter | None = None) -> NodeUpdates:
    """What the samples say of every job on every node. A non-finite or absurd value says
    nothing (and is counted in ``skipped``): one bad series never stops a cycle. A sample
    of a query that names its metric in ``joulecast_metric`` (functions and comparisons may
    drop ``__name__``) is read under that name."""
    skipped = Counter() if skipped is None else skipped
    out: NodeUpdates = {}
    for s in samples:
        job_id = s.labels.get("job_id")
        if not job_id:
            continue
        fields = out.setdefault(job_id, {}).setdefault(s.labels.get("instance", ""), {})
        _field(s.labels.get(METRIC) or s.labels.get("__name__", ""), s, fields, skipped)
    return out


def group_state(samples: list[Sample], skipped: Counter | None = None) -> NodeStates:
    """Every job's state on every node, from a whole read."""
    return {
        job_id: {inst: JobState(job_id, **fields) for inst, fields in nodes.items()}
        for job_id, nodes in group_updates(samples, skipped).items()
    }


def fetch_gpu_models(client: PromClient, at: float | None = None) -> list[str]:
    return sorted({s.labels.get("model", "") for s in client.query(GPU_MODELS, at)} - {""})


@dataclass(frozen=True)
class TsdbView:
    """Everything one cycle reads from Prometheus, fetched in a fixed number of queries:
    the whole state of every job (``states``), or what changed of it (``updates``)."""

    history: NodeHistory
    states: NodeStates
    steps: NodeHistory = field(default_factory=dict)
    fleet_gpus: tuple[str, ...] = ()
    carbon_intensity: float | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # bad samples left out, by kind
    limit_splits: int = 0  # queries split in halves for a store's series limit
    partial_responses: int = 0  # answers that came with warnings
    #: an incremental read (estimator/prometheus/changes.py): what changed of each node's
    #: state, in place of ``states``
    updates: NodeUpdates = field(default_factory=dict)
