"""The PRE room's metric families: self-calibration state and model quality."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from joulecast.estimator.pre.calibration import Calibration


class PreCollector(Collector):
    def __init__(self, view: Callable[[], Calibration | None]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        c = self._view()
        if c is None:
            return
        yield GaugeMetricFamily(
            "joulecast_pre_history_rows",
            "Finished jobs recorded as PRE training rows.",
            value=c.history_rows,
        )
        yield GaugeMetricFamily(
            "joulecast_pre_model_training_rows",
            "Rows the current retrained PRE model was fit on (0: seed model).",
            value=c.model_rows,
        )
        retrains = CounterMetricFamily(
            "joulecast_pre_retrains", "PRE retraining rounds by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(c.retrains.items()):
            retrains.add_metric([outcome], n)
        yield retrains
        err = GaugeMetricFamily(
            "joulecast_pre_history_error_ratio",
            "Mean absolute relative error of epoch energy on finished jobs, current vs retrained model.",
            labels=["method", "model"],
        )
        for label, errors in (("current", c.current_error), ("candidate", c.candidate_error)):
            for method, mape in sorted(errors.items()):
                err.add_metric([method, label], mape / 100.0)
        yield err
        if c.last_retrain_s is not None:
            yield GaugeMetricFamily(
                "joulecast_pre_last_retrain_timestamp_seconds",
                "Wall time of the last retraining round.",
                value=c.last_retrain_s,
            )
