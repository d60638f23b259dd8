"""Past runs of a job, by (scheduler, user, job name): what a pending job that states no
plan is forecast from.

A batch job is usually submitted again and again under the same name by the same user
(nightly fine-tunes, sweeps, array jobs). Every job the estimator sees finish with the
outcome ``finished`` and scheduler labels is remembered here: its GPU model and count,
measured energy, duration, epochs and PRE features. A pending job of the same user and
name then gets

* the ``history`` forecast on every GPU model the earlier runs were measured on: the median
  energy and duration of those runs (the ones with the same GPU count when there are any),
  scaled by epochs when both the pending job and the runs state them; the interval is the
  range of those runs;
* a PRE forecast on every GPU model of the fleet from the latest run's features and epochs,
  when that run had them, with anything the pending job's comment states taking precedence.

Bounded (``per_key`` runs of ``max_keys`` names, the least recently finished forgotten
first) and kept across restarts in one JSON file replaced atomically.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from joulecast.estimator.pre.model import JOB_COLUMNS, Forecast
from joulecast.estimator.prometheus.queries import JobState
from joulecast.estimator.records import float_or_none
from joulecast.serving.files import FileRejections, read_small, write_json_atomic

log = logging.getLogger("joulecast.estimator")

#: (scheduler, user, job name)
RunKey = tuple[str, str, str]
METHOD = "history"


@dataclass(frozen=True)
class Run:
    """One finished run as measured: the sum over its nodes."""

    job_id: str
    gpu_model: str
    gpus: int
    energy_j: float
    duration_s: float
    finished_s: float
    epochs: int = 0  # epochs it marked; 0 when it marked none
    features: dict[str, float] = field(default_factory=dict)  # its PRE features, if stated


def run_key(labels: Mapping[str, str]) -> RunKey | None:
    sched, user, name = (labels.get(k, "") for k in ("scheduler", "user", "job_name"))
    return (sched, user, name) if sched and user and name else None


def finished_run(st: JobState) -> tuple[RunKey, Run] | None:
    """A job state as a run to remember, or None: still running, not ``finished`` (failed,
    cancelled, timed out, lost...), without scheduler labels, GPU or energy."""
    key = run_key(st.features)
    if key is None or st.running or st.failed or st.lost:
        return None
    if st.features.get("state") != "finished" or st.start_s is None or st.end_s is None:
        return None
    gpu = (st.features.get("gpu_model") or "").split(",")[0]
    duration = st.end_s - st.start_s
    if not gpu or st.energy_j <= 0 or duration <= 0:
        return None
    feats = {c: v for c in JOB_COLUMNS if (v := float_or_none(st.features.get(c))) is not None}
    run = Run(
        st.job_id, gpu, max(st.gpus, 1), st.energy_j, duration, st.end_s, st.epochs_completed, feats
    )
    return key, run


class RunHistory:
    def __init__(
        self,
        path: Path | None = None,
        per_key: int = 10,
        max_keys: int = 5000,
        rejections: FileRejections | None = None,
    ) -> None:
        self.path = path
        self.per_key = per_key
        self.max_keys = max_keys
        self.rejections = rejections or FileRejections()
        self._runs: OrderedDict[RunKey, list[Run]] = OrderedDict()
        self._ids: set[str] = set()
        if path is not None:
            self._load(path)

    # -- learning ---------------------------------------------------------------------
    def observe(self, states: Iterable[JobState]) -> int:
        """Remember every newly finished run among ``states``; returns how many."""
        added = 0
        for st in states:
            found = finished_run(st) if st.job_id not in self._ids else None
            if found is not None and self._add(*found):
                added += 1
        return added

    def _add(self, key: RunKey, run: Run) -> bool:
        """Keep ``run`` among the latest ``per_key`` of its name; False if it is older."""
        runs = sorted([*self._runs.pop(key, []), run], key=lambda r: r.finished_s)
        kept, gone = runs[-self.per_key :], runs[: -self.per_key]
        self._runs[key] = kept  # most recently finished name last
        self._ids.update(r.job_id for r in kept)
        self._ids.difference_update(r.job_id for r in gone)
        while len(self._runs) > self.max_keys:
            _, evicted = self._runs.popitem(last=False)
            self._ids.difference_update(r.job_id for r in evicted)
        return run in kept

    def runs(self, key: RunKey) -> list[Run]:
        return list(self._runs.get(key, ()))

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs.values())

    # -- forecasting ------------------------------------------------------------------
    def plan(self, key: RunKey) -> tuple[int, dict[str, float]] | None:
        """(epochs, features) of the latest run that marked epochs and stated features."""
        for run in reversed(self._runs.get(key, ())):
            if run.epochs and run.features:
                return run.epochs, dict(run.features)
        return None

    def forecasts(self, key: RunKey, gpus: int = 0, epochs: int = 0) -> list[Forecast]:
        """The ``history`` forecast on each GPU model the runs of ``key`` were measured on."""
        by_model: dict[str, list[Run]] = {}
        for run in self._runs.get(key, ()):
            by_model.setdefault(run.gpu_model, []).append(run)
        return [_forecast(model, _alike(runs, gpus), epochs) for model, runs in by_model.items()]

    # -- persistence ------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            doc = json.loads(read_small(path, 64 * 1024 * 1024))
            entries = [(tuple(e["key"]), [Run(**r) for r in e["runs"]]) for e in doc["runs"]]
        except OSError as err:
            log.warning("run history %s not loaded (%s); starting afresh", path, err)
            return
        except (ValueError, RecursionError, KeyError, TypeError) as err:
            self.rejections.set_aside(path, "runs", f"{err!r}; starting afresh")
            return
        for key, runs in entries:
            if len(key) == 3 and all(isinstance(k, str) for k in key):
                for run in runs:
                    self._add(key, run)  # type: ignore[arg-type]
        log.info("run history from %s: %d runs of %d names", path, len(self), len(self._runs))

    def save(self) -> bool:
        if self.path is None:
            return True
        doc = {
            "runs": [
                {"key": list(k), "runs": [asdict(r) for r in v]} for k, v in self._runs.items()
            ]
        }
        try:
            write_json_atomic(self.path, doc)
        except OSError as err:
            log.warning("run history not saved to %s: %s", self.path, err)
            return False
        return True


def _alike(runs: list[Run], gpus: int) -> list[Run]:
    same = [r for r in runs if r.gpus == gpus]
    return same or runs


def _forecast(model: str, runs: list[Run], epochs: int) -> Forecast:
    def scale(r: Run) -> float:
        return epochs / r.epochs if epochs and r.epochs else 1.0

    energies = [r.energy_j * scale(r) for r in runs]
    durations = [r.duration_s * scale(r) for r in runs]
    energy, duration = statistics.median(energies), statistics.median(durations)
    n_epochs = epochs or statistics.median([r.epochs for r in runs]) or 1
    return Forecast(
        method=METHOD,
        gpu_model=model,
        power_w=energy / duration,
        epoch_s=duration / n_epochs,
        epoch_energy_j=energy / n_epochs,
        energy_j=energy,
        duration_s=duration,
        energy_lower_j=min(energies),
        energy_upper_j=max(energies),
    )
