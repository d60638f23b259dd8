"""Training-side client: posts job and epoch markers to the node's exporter.

Standard library only. The client never breaks a training run and never loses a marker
silently: markers go out in order from a background sender (training never waits on the
network), are retried while the exporter is away, carry the epoch-end time measured here,
and whatever could not be delivered is reported once when the job ends.

    import joulecast
    with joulecast.job("run-42", epochs=100, features={"batch_size": 64}) as job:
        for epoch in range(100):
            train_one_epoch()
            job.epoch_end({"loss": loss})

Progress below the epoch (LLM fine-tuning of one or two epochs, a ``max_steps`` budget)
is marked per optimizer step, as cheaply as a counter::

    with joulecast.job("llm-sft", epochs=1, steps=5000) as job:
        for batch in loader:
            train_step(batch)
            job.step()                        # or job.progress(step=n, tokens=t)

The network sees one step marker per segment of the plan (a hundredth of it), charged at
the moment the segment ended.

The same job id entered again continues the job (a resumed run, or another rank of a
distributed one); a ``with`` block left by an exception marks the job ``failed``. In a
multi-node run the first process of every node (local rank 0) posts that node's markers
to the node's own exporter; the others attach their processes.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from joulecast.budget import BUDGET_STOPPED, Budget, BudgetWatch
from joulecast.environment import (
    gpus_from_environment,
    job_id_from_environment,
    kubernetes_labels,
    local_rank_from_environment,
    nodes_from_environment,
    rank_from_environment,
)
from joulecast.progress import StepCounter
from joulecast.schema import (
    MAX_STEPS,
    EpochMarker,
    FinishMarker,
    JobFeatures,
    JobSpec,
    SchemaError,
    StepMarker,
    metric_name,
    parse_features,
    parse_gpu_selector,
    planned_epochs,
    validate_job_id,
)
from joulecast.sender import PostFn, Request, Response, Sender, http_post

DEFAULT_URL = "http://127.0.0.1:9866"
MAX_METRICS = 32
DEFAULT_HEARTBEAT_S = 10.0
log = logging.getLogger("joulecast")

__all__ = [
    "DEFAULT_URL",
    "Job",
    "Response",
    "gpus_from_environment",
    "job",
    "rank_from_environment",
]


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


class Job:
    """A training job as the exporter knows it. Use :func:`joulecast.job` to create one.

    The first process of each node (local rank 0) posts that node's epoch and step markers
    and its finish, with the run's global epoch and step, to the node's exporter; every
    process registers, so that the exporter attributes all of the job's processes and GPUs.
    """

    def __init__(
        self,
        job_id: str | None,
        epochs: int,
        *,
        features: Mapping[str, Any] | None = None,
        gpus: list[int | str] | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 5.0,
        post: PostFn = http_post,
        embedded: bool | Callable[[], float] = False,
        start_epoch: int | None = None,
        rank: int | None = None,
        local_rank: int | None = None,
        flush_timeout: float | None = None,
        steps: int | None = None,
        heartbeat: float | None = None,
        budget_kwh: float | None = None,
        on_budget: str = "warn",
        budget_on: str = "projection",
        budget_kg_co2e: float | None = None,
        grid_g_per_kwh: float | None = None,
        on_over_budget: Callable[[Job], None] | None = None,
        budget_confirm: int = 2,
    ) -> None:
        self.job_id = validate_job_id(job_id or job_id_from_environment())
        self.epochs_planned = planned_epochs(epochs)
        self.steps_planned: int | None = _steps_or_none(steps)
        self.heartbeat_s = (
            heartbeat
            if heartbeat is not None
            else _env_float("JOULECAST_HEARTBEAT", DEFAULT_HEARTBEAT_S)
        )
        self.features: JobFeatures = parse_features(dict(features) if features else None)
        self.url = (url or os.environ.get("JOULECAST_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("JOULECAST_TOKEN")
        self.timeout = timeout
        self.flush_timeout = (
            flush_timeout
            if flush_timeout is not None
            else _env_float("JOULECAST_FLUSH_TIMEOUT", 30.0)
        )
        self.rank = rank_from_environment() if rank is None else int(rank)
        self.local_rank = (
            int(local_rank)
            if local_rank is not None
            else (local_rank_from_environment() if rank is None else self.rank)
        )
        self.start_epoch = start_epoch
        self.counter = StepCounter()
        self.summary: dict[str, float] = {}
        self.epoch = start_epoch or 0
        self._post_fn = post
        if gpus is None:
            indices, uuids = gpus_from_environment()
            self._gpus: list[int | str] = [*indices, *uuids]
        else:
            self._gpus = list(gpus)
        self._listeners: list[Callable[[int], None]] = []
        self._entered = False
        self._finished = False
        self._marked = False  # a marker was made in this process
        self._registered_pid: int | None = None
        self._warned: set[str] = set()
        self._sender: Sender | None = None
        self.embedded = None
        self._embedded_callable = False  # measures in process: no exporter to contact
        self.budget: BudgetWatch | None = None
        self._on_over_budget = on_over_budget
        if budget_kwh is not None or budget_kg_co2e is not None:
            budget = Budget(
                budget_kwh, on_budget, budget_on, budget_kg_co2e, grid_g_per_kwh,
                nodes_from_environment(), budget_confirm,
            )  # fmt: skip
            self._setup_budget(budget)
        if embedded:
            self._setup_embedded(embedded)

    # -- pickling (Lightning ddp_spawn sends callbacks, and their job, to new processes) --
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_sender"] = None  # threads do not travel; the new process makes its own
        state["_listeners"] = []
        state["embedded"] = None
        state["_marked"] = False
        state["_registered_pid"] = None
        state["_exit_hook"] = False  # the new process registers its own
        return state

    @property
    def posts(self) -> bool:
        """Whether this process posts markers: the first process of its node."""
        return self.local_rank == 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- energy budget (joulecast.budget) ------------------------------------------------
    def _setup_budget(self, budget: Budget) -> None:
        self.budget = BudgetWatch(budget, self.job_id, self.epochs_planned, self.steps_planned)
        if self.features.budget_kwh is None:  # the exporter, the alert and Grafana see it too
            self.features = replace(self.features, budget_kwh=budget.limit_j / 3.6e6)

    @property
    def over_budget(self) -> bool:
        """Whether the run should stop for its energy budget (``on_budget="stop"``: True
        for good once the projection crossed it; ``"warn"``: while it is over). A plain
        loop reads it after each epoch or step; the framework callbacks stop on it."""
        return self.budget is not None and self.budget.over_budget

    @property
    def should_stop(self) -> bool:
        """Over a ``stop`` budget: the framework callbacks stop the run gracefully."""
        return self.over_budget and self.budget is not None and self.budget.budget.action == "stop"

    def _budget_answer(self, request: Request, resp: Response) -> None:
        """Feed the budget watch with a marker's answer; a crossing is told to the exporter
        (queued after what is queued: the marker itself is delivered)."""
        if self.budget is None or resp.status != 200:
            return
        event = self.budget.on_answer(request.what, resp.body)
        if event is None:
            return
        if event.over and self._on_over_budget is not None:
            try:
                self._on_over_budget(self)
            except Exception:  # a user's callback must not stop the sender
                log.exception("joulecast: on_over_budget callback failed")
        path = f"/api/v1/jobs/{self.job_id}/budget"
        self._get_sender().submit(Request(path, event.as_dict(), "budget"))

    # -- embedded mode -------------------------------------------------------------------
    def _setup_embedded(self, embedded: bool | Callable[[], float]) -> None:
        from joulecast.embedded import EmbeddedStep, nvml_energy

        if callable(embedded):
            energy: Callable[[], float] | None = embedded
            self._embedded_callable = True
        else:
            gpu_indices = [g for g in self._gpus if isinstance(g, int)]
            energy = nvml_energy(gpu_indices or None)
        if energy is None:
            return
        self.embedded = EmbeddedStep(self.epochs_planned, energy)
        self._listeners.append(self._embedded_epoch)

    def _embedded_epoch(self, epoch: int) -> None:
        self.embedded.on_epoch(epoch, self.epochs_planned)
        last = self.embedded.checkpoint
        if self.budget is not None and last is not None:
            self.budget.on_epoch(last.epoch, last.time_s, last.energy_j)

    @property
    def _uses_exporter(self) -> bool:
        """Embedded mode with an energy callable measures in process: no exporter."""
        return not (self.embedded is not None and self._embedded_callable)

    # -- protocol ------------------------------------------------------------------------
    def spec(self) -> JobSpec:
        indices, uuids = parse_gpu_selector(self._gpus) if self._gpus else ((), ())
        return JobSpec(
            job_id=self.job_id,
            epochs_planned=self.epochs_planned,
            gpus=indices,
            gpu_uuids=uuids,
            pids=(os.getpid(),),
            features=self.features,
            start_epoch=self.start_epoch,
            steps_planned=self.steps_planned,
            heartbeat_s=self.heartbeat_s if self.heartbeat_s > 0 else None,
            scheduler=kubernetes_labels(),
        )

    def _registration(self) -> Request:
        return Request("/api/v1/jobs", self.spec().as_dict(), "registration")

    def _get_sender(self) -> Sender:
        if self._sender is None:
            if not getattr(self, "_exit_hook", False):
                # a script that ends without finish()/close() (a plain loop, sys.exit, a
                # notebook kernel shutting down) still delivers what it queued
                atexit.register(_flush_at_exit, weakref.ref(self), os.getpid())
                self._exit_hook = True
            self._sender = Sender(
                lambda: self.url,
                token=self.token,
                timeout=self.timeout,
                post=self._post_fn,
                on_delivered=self._delivered,
                on_refused=self._refused,
                on_unreachable=lambda msg: self._warn_once(
                    "unreachable",
                    f"joulecast exporter at {self.url} unreachable ({msg}); "
                    "markers are kept and sent when it answers; training goes on",
                ),
            )
        return self._sender

    def _delivered(self, request: Request, resp: Response) -> Request | None:
        self._budget_answer(request, resp)
        if resp.status == 404 and request.what != "registration":
            return self._registration()  # the exporter lost the job (state wiped)
        if resp.status == 409 and request.what == "heartbeat" and not self._finished:
            return self._plan_update()  # ended as lost while alive (paused): continue it
        return None

    def _plan_update(self) -> Request:
        """A registration that only refreshes the plan (never rewinds recorded epochs)."""
        spec = replace(self.spec(), start_epoch=None)
        return Request("/api/v1/jobs", spec.as_dict(), "registration")

    def _start_heartbeat(self) -> None:
        if self.heartbeat_s > 0 and self.posts:
            beat = Request(f"/api/v1/jobs/{self.job_id}/heartbeat", {}, "heartbeat")
            self._get_sender().start_heartbeat(beat, self.heartbeat_s)

    def _refused(self, request: Request, resp: Response) -> None:
        log.warning(
            "joulecast exporter refused %s of job %s (HTTP %d: %s)",
            request.what,
            self.job_id,
            resp.status,
            resp.body.get("error", "no reason given"),
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def register(self) -> bool:
        """Register (or continue) the job now, waiting at most ``timeout`` s for the answer.

        On success a job the exporter already knows is continued from the epoch it has
        recorded (unless ``start_epoch`` says where the run resumes); when the exporter does
        not answer, the registration is queued and sent when it does.
        """
        if not self._uses_exporter:
            return False
        self._registered_pid = os.getpid()
        self.counter.restart(time.time())
        if self.budget is not None and not self.budget.started:
            self.budget.start(time.time())  # the exporter's own start replaces it below
        self._start_heartbeat()
        try:
            resp = self._post_fn(
                self.url + "/api/v1/jobs", self.spec().as_dict(), self.token, min(self.timeout, 1.0)
            )
        except (OSError, ValueError):
            self._get_sender().submit(self._registration())
            return False
        if resp.status in (200, 201):
            if self.budget is not None and isinstance(resp.body.get("created_at"), (int, float)):
                self.budget.start(float(resp.body["created_at"]))
            done = resp.body.get("epochs_completed")
            if self.start_epoch is None and isinstance(done, int) and self.posts:
                self.epoch = max(self.epoch, done)
            return True
        if resp.status in (429, 502, 503, 504):
            self._get_sender().submit(self._registration())
            return False
        self._refused(self._registration(), resp)
        return False

    def attach(self) -> None:
        """Register this process with the job unless it already did (a rank of a
        distributed run started by the framework, e.g. ``ddp_spawn``)."""
        if self._registered_pid != os.getpid():
            self.register()

    def resume_at(self, epoch: int) -> None:
        """The run resumes after ``epoch`` (a framework restored a checkpoint): the next
        marker is ``epoch + 1``, and the exporter forgets any epoch recorded after it."""
        epoch = int(epoch)
        if epoch == self.epoch and self.start_epoch == epoch:
            return
        self.start_epoch = epoch
        self.epoch = epoch
        if self._uses_exporter:
            self._get_sender().submit(self._registration())

    def set_planned(self, epochs: float | None = None, steps: int | None = None) -> None:
        """The plan as the framework knows it (``fit(epochs=)``, ``max_epochs``, a step
        budget as fractional epochs; ``max_steps``, Lightning's estimated stepping
        batches). A plan that changes after registration is sent to the exporter at once,
        before the next marker."""
        changed = False
        if epochs is not None:
            try:
                epochs = planned_epochs(epochs)
            except SchemaError:
                epochs = None
            if epochs is not None and epochs != self.epochs_planned:
                self.epochs_planned = epochs
                changed = True
                if self.embedded is not None:
                    self.embedded.epochs_planned = epochs
        new_steps = _steps_or_none(steps)
        if new_steps is not None and new_steps != self.steps_planned:
            self.steps_planned = new_steps
            changed = True
        if changed and self.budget is not None:
            self.budget.set_plan(self.epochs_planned, self.steps_planned)
        if changed and self._registered_pid == os.getpid() and self._uses_exporter and self.posts:
            self._get_sender().submit(self._plan_update())

    def begin(self, epochs: float | None = None, steps: int | None = None) -> None:
        """A framework's training begins with this plan: register the job with it now (or
        update the plan of the job registered), before the first marker."""
        self.set_planned(epochs, steps)  # sent at once if this process registered already
        self.attach()  # else registered now, with the plan

    def clean_metrics(self, metrics: Mapping[str, Any] | None) -> dict[str, float]:
        """Metrics as the exporter takes them: Prometheus-style names, finite numbers only
        (one warning per job for what is dropped), at most 32."""
        clean: dict[str, float] = {}
        for key, value in (metrics or {}).items():
            number = _as_number(value)
            if number is None:
                continue
            name = metric_name(key)
            if name is None:
                self._warn_once(f"name:{key}", f"joulecast: metric {key!r} has no usable name")
                continue
            if not math.isfinite(number):
                self._warn_once(
                    "nonfinite", f"joulecast: non-finite metric {key!r} = {number} not posted"
                )
                continue
            if len(clean) >= MAX_METRICS and name not in clean:
                self._warn_once(
                    "many", f"joulecast: only the first {MAX_METRICS} metrics are posted"
                )
                continue
            clean[name] = number
        return clean

    def epoch_end(
        self,
        metrics: Mapping[str, Any] | None = None,
        *,
        epochs_planned: float | None = None,
        epoch: int | None = None,
        at: float | None = None,
    ) -> None:
        """Mark the end of the next epoch (or of ``epoch``), measured now (or at ``at``).

        Returns at once: the marker is queued for the background sender. Never raises.
        """
        if epoch is not None and int(epoch) != self.epoch + 1 and not self._marked:
            self.resume_at(int(epoch) - 1)  # a framework resumed from a checkpoint
        self._marked = True
        self.epoch = int(epoch) if epoch is not None else self.epoch + 1
        if epochs_planned is not None:
            self.set_planned(epochs_planned)
        for listener in self._listeners:
            listener(self.epoch)
        if not self.posts or not self._uses_exporter:
            return
        marker = EpochMarker(
            epoch=self.epoch,
            metrics=self.clean_metrics(metrics),
            epochs_planned=self.epochs_planned,
            time=time.time() if at is None else at,
        )
        request = Request(
            f"/api/v1/jobs/{self.job_id}/epochs", marker.as_dict(), f"epoch {self.epoch}"
        )
        self._get_sender().submit(request)

    def step(self, n: int = 1, *, tokens: int | None = None) -> None:
        """``n`` more optimizer steps done (and ``tokens`` more tokens): cheap enough for
        every step. Never raises."""
        c = self.counter
        total = None if tokens is None else (c.tokens or 0) + int(tokens)
        self.progress(c.steps + int(n), tokens=total)

    def progress(
        self,
        step: int,
        *,
        steps_planned: int | None = None,
        tokens: int | None = None,
        at: float | None = None,
    ) -> None:
        """The run has done ``step`` optimizer steps in all (``tokens`` tokens), now or at
        ``at``. A step marker goes out at each end of a segment of the step plan (a
        hundredth of it), timed where the segment ended between two calls; without a plan,
        at most one a second (:class:`joulecast.progress.StepCounter`). A step below the
        last one is a resumed run. Never raises."""
        try:
            step = int(step)
            tokens = None if tokens is None else int(tokens)
        except (TypeError, ValueError):
            return
        if not 0 <= step <= MAX_STEPS:
            return
        if steps_planned is not None:
            self.set_planned(steps=steps_planned)
        now = time.time() if at is None else at
        due = self.counter.count(step, now, self.steps_planned, tokens)
        if self.posts and self._uses_exporter:
            for end, end_at in due:
                self._post_step(end, end_at)

    def _post_step(self, step: int, at: float) -> None:
        marker = StepMarker(step, self.steps_planned, self.counter.tokens, at)
        request = Request(f"/api/v1/jobs/{self.job_id}/steps", marker.as_dict(), f"step {step}")
        self._get_sender().submit(request)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued marker is delivered (at most ``timeout`` s)."""
        if self._sender is None:
            return True
        return self._sender.flush(self.flush_timeout if timeout is None else timeout)

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        """The run's own end summary (Hugging Face's ``train_runtime``, mean ``train_loss``),
        posted with the finish onto the job's final record."""
        self.summary.update(self.clean_metrics(summary))

    def finish(self, outcome: str = "finished") -> None:
        """End the job (``finished``, also when stopped early, or ``failed``; a run its
        budget stopped before its plan's end is ``budget_stopped``), deliver what is queued
        within ``flush_timeout`` and report once what could not be delivered."""
        if self._finished:
            return
        self._finished = True
        if outcome == "finished" and self._stopped_short():
            outcome = BUDGET_STOPPED
        if self.embedded is not None:
            self.embedded.finish()
        if not self._uses_exporter:
            return
        if self._sender is not None:
            self._sender.stop_heartbeat()
        if self.posts:
            payload = FinishMarker(outcome, dict(list(self.summary.items())[:32])).as_dict()
            self._get_sender().submit(
                Request(f"/api/v1/jobs/{self.job_id}/finish", payload, "finish")
            )
        self.close()

    def _stopped_short(self) -> bool:
        """The budget stopped the run before the end of its plan."""
        if self.budget is None or not self.budget.stopped:
            return False
        if self.budget.unit == "step" and self.steps_planned:
            return self.counter.steps < self.steps_planned
        return self.epoch < self.epochs_planned

    def close(self) -> int:
        """Flush and stop the sender; returns (and reports once) what was not delivered."""
        if self._sender is None:
            return 0
        lost = self._sender.close(self.flush_timeout)
        if lost:
            log.warning(
                "joulecast: %d marker(s) of job %s could not be delivered to %s within %.0f s "
                "(last error: %s)",
                lost,
                self.job_id,
                self.url,
                self.flush_timeout,
                self._sender.last_error or "queue full",
            )
            log.warning("joulecast: undelivered: %s", ", ".join(self._sender.lost) or "?")
        self._sender = None
        return lost

    def train_end(self) -> None:
        """A framework's training ended: inside a ``with`` block deliver what is queued
        (the block finishes the job); without one, finish the job here."""
        if self._entered:
            self.flush()
        else:
            self.finish()

    def add_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(epoch)`` at every epoch end (used by the embedded STEP mode)."""
        self._listeners.append(fn)

    def __enter__(self) -> Job:
        self._entered = True
        if self.embedded is not None:
            self.embedded.start()
        self.register()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        failed = exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, SystemExit))  # type: ignore[arg-type]
        self.finish("failed" if failed else "finished")


def _flush_at_exit(ref: weakref.ref, pid: int) -> None:
    """At interpreter exit: deliver what a job still has queued, within its flush timeout,
    and say what could not be (not in a forked child, which inherits the hook)."""
    job = ref()
    if job is not None and os.getpid() == pid:
        job.close()


def _steps_or_none(steps: Any) -> int | None:
    """A step plan as the schema takes it; None when absent or unusable."""
    if steps is None or isinstance(steps, bool):
        return None
    try:
        value = int(steps)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if 1 <= value <= MAX_STEPS else None


def _as_number(v: Any) -> float | None:
    """A metric value as a float: Python and NumPy numbers, 0-d tensors; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    item = getattr(v, "item", None)  # numpy scalars, torch/jax 0-d arrays
    if callable(item):
        try:
            out = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return float(out) if isinstance(out, (int, float)) and not isinstance(out, bool) else None
    return None


def job(job_id: str | None, epochs: int, **kwargs: Any) -> Job:
    """Create a job handle; use it as a context manager around the training loop.
    ``job_id=None`` takes ``JOULECAST_JOB_ID`` or, under Slurm, the Slurm job's id."""
    return Job(job_id, epochs, **kwargs)
