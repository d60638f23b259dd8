"""The estimator's metric families: one collector per room, and the service's own health.

Each room renders its part of the latest :class:`EstimatorSnapshot`; this module only hands
each its view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from joulecast.estimator.pre.collector import PreCollector
from joulecast.estimator.queue.collector import QueueCollector
from joulecast.estimator.service import EstimatorSnapshot
from joulecast.estimator.step.collector import StepCollector, StepView


class ServiceCollector(Collector):
    """Build info, cycle timing, staleness and error counts of the estimator itself."""

    def __init__(self, snapshot: Callable[[], EstimatorSnapshot], version: str) -> None:
        self._snapshot = snapshot
        self._version = version

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        info = GaugeMetricFamily(
            "joulecast_estimator_build_info", "Estimator version.", labels=["version"]
        )
        info.add_metric([self._version], 1.0)
        yield info
        yield GaugeMetricFamily(
            "joulecast_estimator_cycle_duration_seconds",
            "Duration of the last cycle.",
            value=s.last_cycle_duration_s,
        )
        yield GaugeMetricFamily(
            "joulecast_estimator_queries_per_cycle",
            "Prometheus queries issued by the last cycle.",
            value=s.last_cycle_queries,
        )
        yield CounterMetricFamily("joulecast_estimator_cycles", "Cycles run.", value=s.cycles)
        if s.last_success_s is not None:
            yield GaugeMetricFamily(
                "joulecast_estimator_last_success_timestamp_seconds",
                "Wall time of the last successful cycle.",
                value=s.last_success_s,
            )
        yield GaugeMetricFamily(
            "joulecast_estimator_stale",
            "1 while the served estimates are from before a failed cycle.",
            value=1.0 if s.stale else 0.0,
        )
        if s.stale_since_s is not None and s.stale:
            yield GaugeMetricFamily(
                "joulecast_estimator_stale_since_timestamp_seconds",
                "When the estimates went stale.",
                value=s.stale_since_s,
            )
        yield GaugeMetricFamily(
            "joulecast_estimator_running_jobs", "Running jobs with estimates.", value=len(s.jobs)
        )
        errors = CounterMetricFamily(
            "joulecast_estimator_errors", "Failed cycles by kind.", labels=["kind"]
        )
        for kind, count in sorted(s.errors.items()):
            errors.add_metric([kind], count)
        yield errors
        skipped = CounterMetricFamily(
            "joulecast_estimator_skipped_samples",
            "Samples from Prometheus left out as non-finite or out of range, by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(s.skipped_samples.items()):
            skipped.add_metric([kind], count)
        yield skipped
        yield CounterMetricFamily(
            "joulecast_estimator_partial_responses",
            "Answers of the store that came with warnings (a partial response: a Thanos "
            "store or a Mimir querier short); their data is used.",
            value=s.partial_responses,
        )
        yield CounterMetricFamily(
            "joulecast_estimator_query_splits",
            "Queries the store refused for its series limit, done again in two halves.",
            value=s.limit_splits,
        )
        yield GaugeMetricFamily(
            "joulecast_estimator_jobs_dropped",
            "Jobs in Prometheus left out of the last cycle: the estimator tracks "
            "--jobs.max-tracked at most (running jobs first).",
            value=s.jobs_dropped,
        )


def room_collectors(snapshot: Callable[[], EstimatorSnapshot], version: str) -> list[Collector]:
    def step() -> StepView:
        s = snapshot()
        return StepView(
            s.jobs,
            s.errors_by_job,
            s.summary,
            s.carbon_intensity,
            s.calibration_jobs,
            s.calibration_min_jobs,
        )

    return [
        StepCollector(step),
        QueueCollector(lambda: snapshot().queue),
        PreCollector(lambda: snapshot().calibration),
        ServiceCollector(snapshot, version),
    ]


class EstimatorCollector(Collector):
    """All of the estimator's families in one collector (the rooms' in order)."""

    def __init__(self, snapshot: Callable[[], EstimatorSnapshot], version: str) -> None:
        self._parts = room_collectors(snapshot, version)

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()
