"""STEP: Stable Training Epoch Projection (pure maths, standard library only).

The online methods of del Rey et al. (section 4.3, RQ 3.2, of the seed study "How to use
model architecture and training environment to estimate the energy consumption of DL
training"): once the per-epoch power profile of a training run has stabilised, a window of
``w`` stable epochs is enough to project the run's total energy.

* power-based   ``E = P_w * t``            (P_w mean power over the window, t total duration)
* epoch-based   ``E = E_w * s / w + E_u``  (E_w window energy, s stable epochs of the run,
  E_u energy of the unstable epochs)

Two configurations are provided:

* ``StepConfig.paper()``: the paper's defaults, stabilizing epoch 10, window 5, formulas as
  written (the whole duration is charged at ``P_w``; the stable part is ``s/w`` windows).
* ``StepConfig()`` (joulecast's default): the stabilizing epoch is detected from the energy
  profile (:func:`detect_stabilizing_epoch`), the window is every stable epoch seen so far,
  what has already been measured is kept as measured, and the two methods are two
  estimators of what is left:

  - ``step_epoch``: ``E = E_now + e * n_remaining``, ``e`` an exponentially weighted mean of
    the stable epochs' energies (half-life ``max(epoch_halflife, halflife_share * n)``
    epochs for ``n`` stable epochs: recent epochs count more while a run drifts, and the
    mean widens towards a plain mean as stable epochs accumulate);
  - ``step_power``: ``E = E_now + P * d * n_remaining``, ``P`` the mean power of the last
    ``power_window`` stable epochs and ``d`` an exponentially weighted mean of epoch
    durations with its own half-life: power follows the compute profile, duration the
    stalls of input pipelines and evaluation, and each gets the memory that fits it.

  The half-lives and the window were chosen by cross-validation over the real runs
  (``python bench/step_select.py``); ``docs/estimator.md`` shows the accuracy of both.

Inputs are epoch checkpoints: the job's energy counter and wall time at epoch ends
(epoch 0 is the job's start). A run that reports optimizer steps is projected the same way
in *segments* of its step plan (:data:`STEP_SEGMENTS` of them, one per cent of the run
each; :meth:`Progress.from_steps`): a one-epoch fine-tune gets its first projection a few
per cent into the run. :meth:`StepConfig.unit` says which unit a job is projected in.
Checkpoints need not be consecutive: when epochs are shorter than the scrape interval some
are missed, and the energy between two seen epoch ends is still exact.
"""

from __future__ import annotations

import functools
import math
import operator
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

METHODS = ("step_power", "step_epoch")
#: A step plan is projected in this many equal segments (the client marks their ends).
STEP_SEGMENTS = 100


def segment_steps(steps_planned: int) -> int:
    """Optimizer steps in one projection segment of a run planned at ``steps_planned``."""
    return max(1, math.ceil(steps_planned / STEP_SEGMENTS))


def segment_ends(step_from: int, step_to: int, steps_planned: int) -> list[int]:
    """The segment ends in ``(step_from, step_to]``: where the client posts a step marker
    (the plan's last step is one too)."""
    seg = segment_steps(steps_planned)
    out = list(range((step_from // seg + 1) * seg, step_to + 1, seg))
    if step_from < steps_planned <= step_to and steps_planned % seg:
        out.append(steps_planned)
    return out


class StepError(ValueError):
    """The checkpoints cannot be used (not increasing, negative energy...)."""


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    time_s: float  # wall time (any origin; only differences are used)
    energy_j: float  # the job's cumulative energy at this epoch end


@dataclass(frozen=True)
class Progress:
    """A running job: its epoch checkpoints (epoch 0 = start) and planned epochs."""

    checkpoints: tuple[Checkpoint, ...]
    epochs_planned: float  # may be fractional: a step budget that ends mid-epoch

    def __post_init__(self) -> None:
        cps = self.checkpoints
        if not cps:
            raise StepError("no checkpoints")
        for a, b in zip(cps, cps[1:], strict=False):
            if b.epoch <= a.epoch or b.time_s < a.time_s or b.energy_j < a.energy_j - 1e-9:
                raise StepError(f"checkpoints not increasing at epoch {b.epoch}")
        if any(not math.isfinite(c.energy_j) or not math.isfinite(c.time_s) for c in cps):
            raise StepError("checkpoints must be finite")

    @property
    def last(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def epochs_done(self) -> int:
        return self.last.epoch

    @classmethod
    def from_epoch_energies(
        cls, energies: Sequence[float], end_times: Sequence[float], epochs_planned: int
    ) -> Progress:
        """Build from per-epoch energies and end times (time since the start of epoch 1)."""
        cps = [Checkpoint(0, 0.0, 0.0)]
        total = 0.0
        for i, (e, t) in enumerate(zip(energies, end_times, strict=True), start=1):
            total += e
            cps.append(Checkpoint(i, float(t), total))
        return cls(tuple(cps), epochs_planned)

    @classmethod
    def from_steps(cls, checkpoints: Sequence[Checkpoint], steps_planned: int) -> Progress | None:
        """Step checkpoints (``epoch`` holding the step count; step 0 the start) as
        progress in segments of the plan. Checkpoints off the segment grid (a plan that
        changed, a client that marks elsewhere) are left out; the plan's last step, which
        may end a partial segment, counts as the end of that segment."""
        seg = segment_steps(steps_planned)
        out: list[Checkpoint] = []
        for c in checkpoints:
            if c.epoch % seg == 0:
                unit = c.epoch // seg
            elif c.epoch == steps_planned:
                unit = c.epoch // seg + 1
            else:
                continue
            if out and unit <= out[-1].epoch:
                continue
            out.append(Checkpoint(unit, c.time_s, c.energy_j))
        if not out:
            return None
        try:
            return cls(tuple(out), round(steps_planned / seg, 3))
        except StepError:
            return None

    def truncated(self, epoch: int) -> Progress:
        """The job as it was when epoch ``epoch`` ended."""
        return Progress(tuple(c for c in self.checkpoints if c.epoch <= epoch), self.epochs_planned)


@dataclass(frozen=True)
class StepConfig:
    stabilizing_epoch: int | None = None  # None: detect
    window: int | None = None  # None: every stable epoch seen so far
    keep_measured: bool = True  # False: the paper's formulas as written
    min_window: int = 3  # stable epochs needed before projecting
    min_tail: int = 3  # stable epochs after a change point for the detector to accept it
    min_stabilizing_epoch: int = 1  # the first epoch (autotuning, caches, compilation) never counts
    level: float = 0.9  # two-sided level of the interval
    max_unstable_fraction: float = 0.5  # the detector never places s past this share of the run
    # step_epoch: half-life (epochs) of the weighted mean of epoch energies; None: plain mean
    epoch_halflife: float | None = 3.0
    halflife_share: float = 0.5  # half-life grows to this share of the stable epochs seen
    # step_power: mean power over the last ``power_window`` stable epochs (None: all) ...
    power_window: int | None = 8
    # ... times a weighted mean of epoch durations with this half-life (None: plain mean)
    duration_halflife: float | None = 3.0
    #: a job that reports a step plan is projected in step segments while it plans fewer
    #: epochs than this (too few for a stable window of epochs early in the run)
    steps_below_epochs: float = 10.0

    def unit(self, epochs_planned: float, steps_planned: int | None) -> str:
        """``"step"`` or ``"epoch"``: the progress unit a job is projected in."""
        return "step" if steps_planned and epochs_planned < self.steps_below_epochs else "epoch"

    @classmethod
    def paper(cls) -> StepConfig:
        return cls(stabilizing_epoch=10, window=5, keep_measured=False, min_window=5)


@dataclass(frozen=True)
class Projection:
    method: str
    energy_j: float
    lower_j: float
    upper_j: float
    remaining_j: float
    remaining_s: float  # projected time to the end of the planned epochs
    stabilizing_epoch: int
    window_start: int  # window = epochs (window_start, window_end]
    window_end: int


@dataclass(slots=True)  # made for every segment of every projection: slots are quicker
class Segment:
    """Energy and time between two seen epoch ends, spread over ``n`` epochs."""

    start: int
    end: int
    energy_j: float
    duration_s: float


def segments(p: Progress) -> list[Segment]:
    return [
        Segment(a.epoch, b.epoch, b.energy_j - a.energy_j, b.time_s - a.time_s)
        for a, b in zip(p.checkpoints, p.checkpoints[1:], strict=False)
    ]


def _per_epoch(segs: Sequence[Segment], durations: bool = False) -> list[float]:
    """Each epoch's energy (or duration), a segment's spread evenly over its epochs."""
    out: list[float] = []
    for s in segs:
        x = s.duration_s if durations else s.energy_j
        n = s.end - s.start
        if n == 1:
            out.append(x)  # x / 1 is x: most segments are one epoch
        else:
            out.extend([x / n] * n)
    return out


def _l1_cost(xs: Sequence[float]) -> float:
    med = statistics.median(xs)
    return sum(abs(x - med) for x in xs)


def detect_stabilizing_epoch(
    energies: Sequence[float],
    *,
    min_tail: int = 3,
    max_fraction: float = 0.5,
    z: float = 3.0,
    rel_floor: float = 0.02,
) -> int:
    """The number of leading epochs that are not yet stable (0 if stable from the start).

    Leading epochs are trimmed while the first remaining one is an outlier against the
    robust spread of the epochs after it: further than ``z`` robust standard deviations
    (1.4826 x median absolute deviation) and ``rel_floor`` of their median. A warm-up ramp,
    a slow first epoch and a higher plateau of frozen-layer epochs are trimmed epoch by
    epoch; isolated spikes later in the run (evaluation, checkpointing, stalls) are part of
    the stable regime and stay in the mean. At least ``min_tail`` epochs remain, and at most
    ``max_fraction`` of the epochs seen are trimmed, so a short job still projects.
    """
    k = len(energies)
    limit = int(max_fraction * k)
    s = 0
    while s < limit and k - s - 1 >= min_tail:
        rest = energies[s + 1 :]
        med = statistics.median(rest)
        mad = statistics.median(abs(x - med) for x in rest) * 1.4826
        if abs(energies[s] - med) <= max(z * mad, rel_floor * abs(med)):
            break
        s += 1
    return s


def _stdev(xs: Sequence[float]) -> float:
    """Sample standard deviation in floats (statistics.stdev is exact but slow)."""
    n = len(xs)
    if n < 2:
        return 0.0
    m = math.fsum(xs) / n
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1))


def _quantile(level: float, dof: int) -> float:
    """Two-sided quantile, with a small-sample inflation approximating Student's t."""
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    if dof <= 0:
        return z * 3
    # Cornish-Fisher style expansion of t's quantile in 1/dof.
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


@functools.lru_cache(maxsize=4096)
def _weights(n: int, halflife: float) -> tuple[tuple[float, ...], float]:
    """The ``n`` weights of :func:`weighted_mean` and their sum (the same for every job
    with as many epochs in its window)."""
    w = tuple([0.5 ** ((n - 1 - i) / halflife) for i in range(n)])
    return w, math.fsum(w)


def weighted_mean(xs: Sequence[float], halflife: float | None) -> float:
    """Exponentially weighted mean, the last value weighing most; plain mean if None."""
    if not halflife:
        return math.fsum(xs) / len(xs)
    w, total = _weights(len(xs), halflife)
    return math.fsum(map(operator.mul, w, xs)) / total


def _halflife(base: float | None, share: float, n: int) -> float | None:
    return None if base is None else max(base, share * n)


def _window(
    p: Progress, cfg: StepConfig
) -> tuple[int, Checkpoint, Checkpoint, list[Segment]] | None:
    """(stabilizing epoch, window start, window end, the segments inside the window)."""
    segs = segments(p)
    if not segs:
        return None
    if cfg.stabilizing_epoch is not None:
        stab = cfg.stabilizing_epoch
    else:
        floor = cfg.min_stabilizing_epoch
        tail = [s for s in segs if s.start >= floor]
        stab = floor + detect_stabilizing_epoch(
            _per_epoch(tail), min_tail=cfg.min_tail, max_fraction=cfg.max_unstable_fraction
        )
    # The window starts at the first seen checkpoint at or after the stabilizing epoch.
    starts = [c for c in p.checkpoints if c.epoch >= stab]
    if not starts:
        return None
    a = starts[0]
    if cfg.window is not None:
        ends = [c for c in p.checkpoints if c.epoch >= a.epoch + cfg.window]
        if not ends:
            return None
        b = ends[0]
    else:
        b = p.last
    if b.epoch - a.epoch < cfg.min_window or b.time_s <= a.time_s:
        return None
    inside = [s for s in segs if s.start >= a.epoch and s.end <= b.epoch]
    # Epochs merged into one segment (missed scrapes) hide their profile: the detector
    # needs a few distinct epoch ends in the window to judge stability.
    if cfg.stabilizing_epoch is None and len(inside) < cfg.min_tail:
        return None
    return stab, a, b, inside


def project(p: Progress, cfg: StepConfig | None = None) -> dict[str, Projection]:
    """Both STEP projections, or ``{}`` while the job has too few stable epochs."""
    cfg = cfg or StepConfig()
    w = _window(p, cfg)
    if w is None:
        return {}
    stab, a, b, inside = w
    n_w = b.epoch - a.epoch
    e_w = b.energy_j - a.energy_j
    t_w = b.time_s - a.time_s
    p_w = e_w / t_w
    d_w = t_w / n_w
    planned = max(p.epochs_planned, p.epochs_done)
    now = p.last
    start = p.checkpoints[0]
    n_left = planned - now.epoch
    t_left = n_left * d_w

    # Per-epoch spread inside the window gives the interval.
    per = _per_epoch(inside)
    sd = _stdev(per)
    q = _quantile(cfg.level, len(per) - 1)
    half_epoch = q * sd * math.sqrt(n_left + n_left**2 / max(len(per), 1))

    if cfg.keep_measured:
        durs = _per_epoch(inside, durations=True)
        e_epoch_mean = weighted_mean(
            per, _halflife(cfg.epoch_halflife, cfg.halflife_share, len(per))
        )
        recent = inside[-cfg.power_window :] if cfg.power_window else inside
        recent_t = math.fsum(s.duration_s for s in recent)
        p_recent = math.fsum(s.energy_j for s in recent) / recent_t if recent_t > 0 else p_w
        d_mean = weighted_mean(
            durs, _halflife(cfg.duration_halflife, cfg.halflife_share, len(durs))
        )
        t_left = n_left * d_mean
        e_power = now.energy_j + p_recent * t_left
        e_epoch = now.energy_j + e_epoch_mean * n_left
    else:
        total_t = (now.time_s - start.time_s) + t_left
        e_power = p_w * total_t
        s_run = planned - a.epoch
        e_epoch = e_w * s_run / n_w + (a.energy_j - start.energy_j)
    out = {}
    for method, e in (("step_power", e_power), ("step_epoch", e_epoch)):
        remaining = max(e - now.energy_j, 0.0)
        out[method] = Projection(
            method=method,
            energy_j=e,
            lower_j=max(e - half_epoch, now.energy_j),
            upper_j=e + half_epoch,
            remaining_j=remaining,
            remaining_s=t_left,
            stabilizing_epoch=stab,
            window_start=a.epoch,
            window_end=b.epoch,
        )
    return out


def first_epoch_extrapolation(p: Progress, epochs: int = 1) -> float | None:
    """carbontracker's way: the first ``epochs`` epochs times planned / epochs."""
    cps = [c for c in p.checkpoints if c.epoch == epochs]
    if not cps:
        return None
    return (cps[0].energy_j - p.checkpoints[0].energy_j) * max(p.epochs_planned, 1) / epochs
