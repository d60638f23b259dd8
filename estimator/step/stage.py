"""The STEP stage of a cycle: job histories in, projections and a track record out.

:class:`StepStage` takes every job's checkpoints, combined over its nodes
(``estimator/jobs.py``), projects running jobs with STEP beside the TDP baselines, in
epochs or, for a step plan of few epochs, in segments of the step plan
(:meth:`StepConfig.unit`), and scores finished jobs once (lost and failed jobs are not
scored). It does no I/O: it reads what the Prometheus room fetched, and other rooms'
figures (PRE forecasts of running jobs) come in through a callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from joulecast.estimator.jobs import CombinedJobs
from joulecast.estimator.prometheus.queries import EpochPoint, JobState
from joulecast.estimator.records import FinishedJob, MethodProjection, float_or_none
from joulecast.estimator.step.baselines import BaselineConfig, green_algorithms, mlco2
from joulecast.estimator.step.calibration import IntervalCalibration
from joulecast.estimator.step.trackrecord import ErrorEntry, JobFacts, TrackRecord, evaluate
from joulecast.step import Checkpoint, Progress, Projection, StepConfig, StepError, project


@dataclass(frozen=True)
class StepSettings:
    step: StepConfig = field(default_factory=StepConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    pue: float = 1.0  # applied alike to STEP energy and power projections
    track_epochs: tuple[int, ...] = (10, 15, 20)
    finished_ttl_s: float = 3600.0
    calibration_min_jobs: int = 10  # finished jobs before intervals are calibrated


@dataclass(frozen=True)
class JobResult:
    job_id: str
    energy_so_far_j: float
    epochs_completed: int
    epochs_planned: int
    methods: dict[str, MethodProjection]
    stabilizing_epoch: int | None = None
    window_start: int | None = None
    window_end: int | None = None
    unit: str = "epoch"  # what the window and stabilizing epoch count: epochs or segments
    progress_ratio: float | None = None  # share of the planned run done, in ``unit``
    nodes: int = 1


#: A running job's state -> projections of other methods to publish beside STEP's.
ExtraMethods = Callable[[JobState], dict[str, MethodProjection]]


@dataclass
class _Job:
    points: dict[int, EpochPoint] = field(default_factory=dict)
    step_points: dict[int, EpochPoint] = field(default_factory=dict)
    # STEP depends only on the checkpoints and the plan: reuse it until either changes.
    step_key: tuple | None = None
    unit: str = "epoch"
    step: dict[str, Projection] = field(default_factory=dict)
    progress: Progress | None = None
    state: JobState | None = None
    finished_at: float | None = None
    evaluated: bool = False
    last_seen: float = 0.0


def checkpoints_of(points: dict[int, EpochPoint], st: JobState) -> list[Checkpoint]:
    """The job's consistent checkpoints, from its start (energy 0 at registration).

    Epochs that ended before the job's first reading (while the exporter was away) carry
    their own times and no measured energy: the measured run starts at the last of them,
    at the first reading. ``points`` (keyed by epoch) is not changed.
    """
    start = st.start_s
    if start is not None:
        early = [p for p in points.values() if p.time_s < start]
        if early:
            origin = max(early, key=lambda p: p.epoch)
            points = {k: p for k, p in points.items() if p.epoch > origin.epoch}
            points[origin.epoch] = EpochPoint(origin.epoch, start, origin.energy_j)
        elif 0 not in points:
            # A job's energy counter is 0 at registration, whether or not that was scraped.
            points = {**points, 0: EpochPoint(0, start, 0.0)}
    cps: list[Checkpoint] = []
    last: Checkpoint | None = None
    for k in sorted(points):
        p = points[k]
        if last is not None and (p.time_s < last.time_s or p.energy_j < last.energy_j):
            continue  # an exporter restart lost energy: keep the consistent prefix
        cps.append(p)
        last = p
    return cps


def progress_of(
    points: dict[int, EpochPoint], st: JobState | None, unit: str = "epoch"
) -> Progress | None:
    """The job's checkpoints as STEP progress: in epochs, or in segments of the step plan
    (``points`` then hold step checkpoints)."""
    if st is None or not points:
        return None
    cps = checkpoints_of(points, st)
    if not cps:
        return None
    if unit == "step":
        return Progress.from_steps(cps, st.steps_planned) if st.steps_planned else None
    try:
        return Progress(tuple(cps), max(st.epochs_planned, cps[-1].epoch, 1))
    except StepError:
        return None


def projected_duration(
    st: JobState, progress: Progress | None, remaining_s: float | None
) -> float | None:
    if st.start_s is None or progress is None:
        return None
    if remaining_s is not None:
        return progress.last.time_s - st.start_s + remaining_s
    if progress.epochs_done > 0:
        elapsed = progress.last.time_s - st.start_s
        return elapsed / progress.epochs_done * max(st.epochs_planned, progress.epochs_done)
    return None


class StepStage:
    def __init__(self, settings: StepSettings) -> None:
        self.settings = settings
        self._jobs: dict[str, _Job] = {}
        self._track = TrackRecord()
        self._finished_errors: list[ErrorEntry] = []
        self.calibration = IntervalCalibration(settings.step.level, settings.calibration_min_jobs)

    def merge(self, jobs: CombinedJobs, now: float) -> None:
        """Take this cycle's jobs, each combined over its nodes (the book keeps every
        checkpoint, so each cycle's are whole; they are read, never changed)."""
        for job_id, points in jobs.epochs.items():
            job = self._jobs.setdefault(job_id, _Job())
            job.points = points
            job.last_seen = now
        for job_id, points in jobs.steps.items():
            job = self._jobs.setdefault(job_id, _Job())
            job.step_points = points
        for job_id, st in jobs.states.items():
            job = self._jobs.setdefault(job_id, _Job())
            if not st.features and job.state is not None:
                # the info series can be missing from one answer (a relabel between
                # running and finished): keep the features seen before
                st.features = job.state.features
            job.state = st
            job.last_seen = now
            if not st.running and job.finished_at is None:
                job.finished_at = st.end_s or now
            elif st.running and job.finished_at is not None:
                job.finished_at, job.evaluated = None, False  # resumed: scored when it ends

    def project_all(self, extra: ExtraMethods | None = None) -> dict[str, JobResult]:
        out = {}
        for job_id, job in self._jobs.items():
            result = self._project(job_id, job, extra)
            if result is not None:
                out[job_id] = result
        return out

    def _unit_points(self, job: _Job, st: JobState) -> tuple[str, dict[int, EpochPoint]]:
        unit = self.settings.step.unit(st.epochs_planned, st.steps_planned)
        if unit == "step" and job.step_points:
            return unit, job.step_points
        return "epoch", job.points

    def _step(self, job: _Job, st: JobState) -> None:
        unit, points = self._unit_points(job, st)
        key = (
            unit,
            len(points),
            max(points, default=-1),
            st.epochs_planned,
            st.steps_planned,
            st.start_s,
        )
        if key != job.step_key:
            job.step_key, job.unit = key, unit
            job.progress = progress_of(points, st, unit)
            cfg = self.settings.step
            job.step = project(job.progress, cfg) if job.progress is not None else {}

    def _project(self, job_id: str, job: _Job, extra: ExtraMethods | None) -> JobResult | None:
        st = job.state
        if st is None or not st.running:
            return None
        self._step(job, st)
        pue = self.settings.pue
        methods: dict[str, MethodProjection] = {}
        last: Projection | None = None
        for method, pr in job.step.items():
            assert job.progress is not None
            lower, upper, calibrated = self._interval(
                method, pr, job.progress.epochs_done, job.unit
            )
            methods[method] = MethodProjection(
                energy_j=pr.energy_j * pue,
                lower_j=lower * pue,
                upper_j=upper * pue,
                remaining_j=pr.remaining_j * pue,
                end_s=job.progress.last.time_s + pr.remaining_s,
                calibrated=calibrated,
            )
            last = pr
        if extra is not None:
            for method, m in extra(st).items():
                methods[method] = MethodProjection(
                    m.energy_j * pue,
                    None if m.lower_j is None else m.lower_j * pue,
                    None if m.upper_j is None else m.upper_j * pue,
                    end_s=m.end_s,
                )
        methods.update(self._baselines(st, job.progress, last))
        p = job.progress
        return JobResult(
            job_id=job_id,
            energy_so_far_j=st.energy_j,
            epochs_completed=st.epochs_completed,
            epochs_planned=st.epochs_planned,
            methods=methods,
            stabilizing_epoch=last.stabilizing_epoch if last else None,
            window_start=last.window_start if last else None,
            window_end=last.window_end if last else None,
            unit=job.unit,
            progress_ratio=min(p.epochs_done / p.epochs_planned, 1.0) if p else None,
            nodes=st.nodes,
        )

    def _interval(
        self, method: str, pr: Projection, epoch: int, unit: str
    ) -> tuple[float, float, bool]:
        """The conformal interval once enough jobs have finished, else the model's own."""
        cal = self.calibration.interval(method, epoch, unit)
        if cal is None:
            return pr.lower_j, pr.upper_j, False
        half = cal.half_width_ratio * pr.remaining_j
        so_far = pr.energy_j - pr.remaining_j
        return max(pr.energy_j - half, so_far), pr.energy_j + half, True

    def _baselines(
        self, st: JobState, progress: Progress | None, last: Projection | None
    ) -> dict[str, MethodProjection]:
        duration = projected_duration(st, progress, last.remaining_s if last else None)
        if duration is None or st.tdp_w <= 0:
            return {}
        mem_gb = float_or_none(st.features.get("host_ram_gb"))
        ga = green_algorithms(
            st.tdp_w, duration, st.gpu_utilization, mem_gb, self.settings.baselines
        )
        return {
            "mlco2": MethodProjection(mlco2(st.tdp_w, duration)),
            "green_algorithms": MethodProjection(ga),
        }

    def evaluate_finished(self, now: float) -> list[FinishedJob]:
        """Score each newly finished job once; return those that ran to their own end.

        The track record scores only jobs that ran their planned epochs (or steps): a
        projection for 50 epochs is not wrong because the run stopped early at 12. A
        failed or lost job is neither scored nor handed on. A job is scored in the unit it
        was projected in, against the sum over its nodes.
        """
        done = []
        for job_id, job in self._jobs.items():
            if job.finished_at is None or job.evaluated or job.state is None:
                continue
            job.evaluated = True
            st = job.state
            if st.failed or st.lost:
                continue
            unit, points = self._unit_points(job, st)
            progress = progress_of(points, st, unit)
            if progress is None or progress.checkpoints[0].epoch != 0:
                continue
            measured = progress.last.energy_j - progress.checkpoints[0].energy_j
            complete = progress.last.epoch >= progress.epochs_planned
            if complete:
                self._score(job_id, st, progress, measured, unit)
            epochs = progress_of(job.points, st) if unit == "step" else progress
            if epochs is None or epochs.epochs_done == 0:
                continue  # PRE learns per epoch: a run that marked none teaches it nothing
            done.append(FinishedJob(job_id, st, epochs, measured, job.finished_at or now, complete))
        return done

    def _score(
        self, job_id: str, st: JobState, progress: Progress, measured: float, unit: str
    ) -> None:
        facts = JobFacts(
            st.tdp_w, st.gpu_utilization, float_or_none(st.features.get("host_ram_gb"))
        )
        s = self.settings
        entries = evaluate(
            job_id, progress, measured, s.track_epochs, facts, s.step, s.baselines, unit
        )
        self._track.add(entries)
        self._finished_errors.extend(entries)
        self.calibration.add(entries)

    def forget(self, now: float) -> None:
        ttl = self.settings.finished_ttl_s
        gone = [
            j
            for j, job in self._jobs.items()
            if (job.finished_at is not None and now - job.finished_at > ttl)
            or now - job.last_seen > ttl
        ]
        for j in gone:
            del self._jobs[j]
        if gone:
            keep = set(self._jobs)
            self._finished_errors = [e for e in self._finished_errors if e.job_id in keep]

    def errors_by_job(self) -> tuple[ErrorEntry, ...]:
        return tuple(self._finished_errors)

    def summary(self) -> dict[tuple[str, int], tuple[int, float, float]]:
        return self._track.summary()
