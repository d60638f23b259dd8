"""One cycle's reads from the TSDB, whole or incremental, as one :class:`TsdbView`."""

from __future__ import annotations

from collections import Counter

from joulecast.estimator.prometheus.changes import Needs, fetch_incremental
from joulecast.estimator.prometheus.client import PromClient
from joulecast.estimator.prometheus.queries import (
    TsdbView,
    fetch_gpu_models,
    fetch_history,
    fetch_state,
    sane,
)


def _carbon(
    client: PromClient, query: str | None, default: float | None, at: float, skipped: Counter
) -> float | None:
    if not query:
        return default
    samples = client.query(query, at)
    if samples and sane(samples[0].value, 0, 1e5):
        return samples[0].value
    if samples:
        skipped["carbon_out_of_range"] += 1
    return default


def fetch_cycle(
    client: PromClient,
    window_s: float,
    at: float,
    *,
    fleet: bool = False,
    carbon_query: str | None = None,
    carbon_default: float | None = None,
    buckets: tuple[int, ...] | None = None,
    needs: Needs | None = None,
) -> TsdbView:
    """One cycle's reads; raises :class:`PromError` when any of them fails.

    The checkpoints of the last ``window_s`` seconds and the whole state of every job, or,
    with ``needs``, every job's live series and latest epoch and the rest of what the
    jobs it names lack (``changes.py``)."""
    skipped: Counter = Counter()
    splits: Counter = Counter()
    bad_labels, partial = client.bad_labels, client.partial_responses
    if needs is None:
        history, steps = fetch_history(client, window_s, at, skipped, splits, buckets)
        states, updates = fetch_state(client, at, skipped, splits, buckets), {}
    else:
        read = fetch_incremental(client, needs, window_s, at, skipped, splits, buckets)
        history, steps, states, updates = read.history, read.steps, {}, read.updates
    carbon = _carbon(client, carbon_query, carbon_default, at, skipped)
    gpus = tuple(fetch_gpu_models(client, at)) if fleet else ()
    if client.bad_labels > bad_labels:
        skipped["bad_label"] += client.bad_labels - bad_labels
    return TsdbView(
        history,
        states,
        steps,
        gpus,
        carbon,
        dict(skipped),
        splits["limit"],
        client.partial_responses - partial,
        updates,
    )
