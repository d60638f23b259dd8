"""The job sources' own health: polls, errors, the last success, what a sync did."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from joulecast.exporter.sampler import NodeSnapshot
from joulecast.exporter.sources.poller import SourcePoller


class SourcesCollector:
    name = "sources"

    def __init__(self, poller: SourcePoller) -> None:
        self._poller = poller

    def collect_from(self, snap: NodeSnapshot) -> Iterator[Metric]:
        L = ["source"]
        polls = CounterMetricFamily("joulecast_source_polls", "Polls of a job source.", labels=L)
        errors = CounterMetricFamily(
            "joulecast_source_poll_errors", "Polls of a job source that failed.", labels=L
        )
        last = GaugeMetricFamily(
            "joulecast_source_last_success_timestamp_seconds",
            "Wall time of a job source's last successful poll.",
            labels=L,
        )
        duration = GaugeMetricFamily(
            "joulecast_source_poll_duration_seconds",
            "How long a job source's last poll took.",
            labels=L,
        )
        jobs = CounterMetricFamily(
            "joulecast_source_jobs",
            "Jobs a source reported, by what the exporter did with them (registered, ended, "
            "lost: vanished from the source; missed: seen only after they ended, not "
            "measured; refused: naming a GPU this node does not have).",
            labels=["source", "action"],
        )
        for sync in self._poller.syncs:
            name = sync.source.name
            st = self._poller.stats.get(name)
            if st is not None:
                polls.add_metric([name], st.polls)
                errors.add_metric([name], st.errors)
                duration.add_metric([name], st.last_duration_s)
                if st.last_success is not None:
                    last.add_metric([name], st.last_success)
            c = sync.counts
            for action in ("registered", "ended", "lost", "missed", "refused"):
                jobs.add_metric([name, action], getattr(c, action))
        yield from (polls, errors, last, duration, jobs)
