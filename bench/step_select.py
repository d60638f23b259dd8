"""How STEP's default was chosen: grouped cross-validation over the real runs.

    python bench/step_select.py [--traces ../shared/data/traces/eatit_vgg16_rtx3090.csv]

Candidates: for ``step_epoch`` the half-life of the weighted mean of epoch energies; for
``step_power`` the power window and the half-life of the duration mean; for both the share
of the stable epochs the half-lives grow to. The objective is the mean absolute percentage
error averaged over the projection points 10, 15, 20 and 30. A candidate is admissible only
if it loses nothing (within 0.01 percentage points) to the previous default, plain means,
on the simulated corpus at any point.

Folds group the runs by dataset (plain, frozen and quantized runs of one dataset are in the
same fold, so a choice is never scored on a sibling of a run it was chosen on): in each of 4
folds the best candidate on the other folds' runs is scored on this fold's runs. The
cross-validated rows are what the choice did not see; the last block is the candidate chosen
on all runs (the default in ``joulecast.step.StepConfig``), scored on the held-out H200
traces recorded through the exporter (``bench/traces/h200``) and on the simulated corpus.
Writes bench/results/step_select.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.step import StepConfig  # noqa: E402
from joulecast.traces import Trace, read_traces, score  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "traces" / "eatit_vgg16_rtx3090.csv"
H200 = ROOT / "bench" / "traces" / "h200" / "traces.csv"
SIMULATED = ROOT / "bench" / "traces" / "simulated_load_model.csv"
POINTS = (10, 15, 20, 30)
SHARES = (0.0, 0.25, 0.5)
EPOCH_HALFLIVES = (None, 3.0, 5.0, 8.0, 12.0)
POWER = list(itertools.product((None, 5, 8, 10), (None, 3.0, 5.0, 8.0)))


def mape(traces: list[Trace], cfg: StepConfig, method: str) -> list[float]:
    out = []
    for k in POINTS:
        scores, _ = score(traces, k, cfg)
        out.append(scores[method].mape if method in scores else float("nan"))
    return out


def objective(traces: list[Trace], cfg: StepConfig, method: str) -> float:
    values = [v for v in mape(traces, cfg, method) if v == v]
    return statistics.fmean(values) if values else float("inf")


PREVIOUS = replace(StepConfig(), epoch_halflife=None, power_window=None, duration_halflife=None)
TOLERANCE = 0.01  # percentage points: "no loss on the simulated corpus" within its noise


def admissible(simulated: list[Trace] | None, cfg: StepConfig, method: str) -> bool:
    """No loss against the previous default (plain means) on the simulated corpus."""
    if not simulated:
        return True
    new, old = mape(simulated, cfg, method), mape(simulated, PREVIOUS, method)
    return all(a <= b + TOLERANCE for a, b in zip(new, old, strict=True))


def choose(traces: list[Trace], simulated: list[Trace] | None = None) -> StepConfig:
    """The best admissible candidate on ``traces``: per share the best of each method,
    then the share whose two methods' objectives sum lowest."""
    best: tuple[float, StepConfig] | None = None
    base = StepConfig()

    def pick(options, make, method):
        ok = [o for o in options if admissible(simulated, make(o), method)] or list(options)
        return min(ok, key=lambda o: objective(traces, make(o), method))

    for share in SHARES:
        epoch = pick(
            EPOCH_HALFLIVES,
            lambda h, share=share: replace(base, halflife_share=share, epoch_halflife=h),
            "step_epoch",
        )
        window, dur = pick(
            POWER,
            lambda wd, share=share: replace(
                base, halflife_share=share, power_window=wd[0], duration_halflife=wd[1]
            ),
            "step_power",
        )
        cfg = replace(
            base,
            halflife_share=share,
            epoch_halflife=epoch,
            power_window=window,
            duration_halflife=dur,
        )
        total = objective(traces, cfg, "step_epoch") + objective(traces, cfg, "step_power")
        if best is None or total < best[0]:
            best = (total, cfg)
    assert best is not None
    return best[1]


def dataset(job_id: str) -> str:
    return job_id.split("-", 2)[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", type=Path, default=DEFAULT)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "step_select.json"))
    args = ap.parse_args()
    traces = read_traces(args.traces)
    simulated = read_traces(SIMULATED) if SIMULATED.exists() else None
    names = sorted({dataset(t.job_id) for t in traces})
    fold_of = {name: i % args.folds for i, name in enumerate(names)}
    cv: dict[str, list[list[float]]] = {"step_epoch": [], "step_power": []}
    paper: dict[str, list[list[float]]] = {"step_epoch": [], "step_power": []}
    for fold in range(args.folds):
        test = [t for t in traces if fold_of[dataset(t.job_id)] == fold]
        train = [t for t in traces if fold_of[dataset(t.job_id)] != fold]
        cfg = choose(train, simulated)
        print(
            f"fold {fold}: {len(test)} runs held out; chosen on {len(train)}: "
            f"epoch half-life {cfg.epoch_halflife}, power window {cfg.power_window}, "
            f"duration half-life {cfg.duration_halflife}, share {cfg.halflife_share}",
            flush=True,
        )
        for method in cv:
            # each held-out run weighs once in the pooled mean: weight folds by their size
            cv[method].append([v * len(test) for v in mape(test, cfg, method)])
            paper[method].append([v * len(test) for v in mape(test, StepConfig.paper(), method)])

    def pooled(rows: list[list[float]]) -> list[float]:
        return [sum(col) / len(traces) for col in zip(*rows, strict=True)]

    chosen = choose(traces, simulated)
    default = StepConfig()
    out = {
        "points": POINTS,
        "cross_validated": {m: pooled(r) for m, r in cv.items()},
        "paper_same_runs": {m: pooled(r) for m, r in paper.items()},
        "chosen_on_all_runs": asdict(chosen),
        "default_matches_choice": chosen == default,
        "held_out_h200": {},
        "simulated": {},
    }
    for label, path in (("held_out_h200", H200), ("simulated", SIMULATED)):
        if path.exists():
            other = read_traces(path)
            for name, cfg in (
                ("joulecast", default),
                ("paper", StepConfig.paper()),
                (
                    "previous",
                    replace(
                        default, epoch_halflife=None, power_window=None, duration_halflife=None
                    ),
                ),
            ):
                out[label][name] = {m: mape(other, cfg, m) for m in ("step_epoch", "step_power")}
    print(f"\n{'MAPE % at epoch':<40}" + "".join(f"{k:>8}" for k in POINTS))
    for m in ("step_epoch", "step_power"):
        print(
            f"{'joulecast, cross-validated, ' + m:<40}"
            + "".join(f"{v:>8.2f}" for v in out["cross_validated"][m])
        )
        print(
            f"{'paper configuration, ' + m:<40}"
            + "".join(f"{v:>8.2f}" if v == v else f"{'-':>8}" for v in out["paper_same_runs"][m])
        )
    for label in ("held_out_h200", "simulated"):
        for name, methods in out[label].items():
            for m, vals in methods.items():
                print(
                    f"{label + ', ' + name + ', ' + m:<40}"
                    + "".join(f"{v:>8.2f}" if v == v else f"{'-':>8}" for v in vals)
                )
    print(f"\nchosen on all runs: {asdict(chosen)}")
    print(f"the default in joulecast.step.StepConfig is that choice: {chosen == default}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
