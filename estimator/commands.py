"""``joulecast``: the offline command line.

joulecast step evaluate TRACES.csv --at-epoch 15 [--json]
joulecast pre cv --data CSV [--json]
joulecast pre train --data CSV --out DIR
joulecast pre evaluate --model DIR --data CSV [--json]
joulecast forecast --gpu NAME --gflops G --batch-size B [--input-size HxW] --train-samples N
                   [--eval-samples N] --epochs E [--all-gpus] [--model DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from joulecast import __version__
from joulecast import cli as step_cli
from joulecast.serving.flags import positive_float, positive_int


def _size(v: str) -> tuple[int, int]:
    h, sep, w = v.lower().partition("x")
    try:
        hw = (int(h), int(w)) if sep else (int(h), int(h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r}: expected HxW, e.g. 224x224") from None
    if min(hw) < 1:
        raise argparse.ArgumentTypeError(f"{v!r}: sizes must be >= 1")
    return hw


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="joulecast",
        description="joulecast offline tools: STEP scoring, PRE models and forecasts",
    )
    p.add_argument("--version", action="version", version=f"joulecast {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    step = sub.add_parser("step", help="STEP projections").add_subparsers(
        dest="step_command", required=True
    )
    step_cli.add_step_evaluate_arguments(
        step.add_parser("evaluate", help="score STEP on per-epoch traces (MAPE, RMSE per method)")
    )

    pre = sub.add_parser("pre", help="PRE forecasting models").add_subparsers(
        dest="pre_command", required=True
    )
    cv = pre.add_parser(
        "cv",
        help="5-fold, leave-one-GPU-out and leave-one-architecture-out cross-validation",
    )
    cv.add_argument(
        "--data", type=Path, required=True, help="reference_runs.csv or a CSV in the PRE schema"
    )
    cv.add_argument(
        "--scheme",
        choices=["kfold", "logo", "loao", "all", "both"],
        default="all",
        help="kfold, logo (leave-one-GPU-out), loao (leave-one-architecture-out), "
        "all (the three), both (kfold and logo)",
    )
    cv.add_argument("--json", action="store_true")
    tr = pre.add_parser("train", help="fit every method and save them with metadata")
    tr.add_argument("--data", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument(
        "--no-cv", action="store_true", help="skip the cross-validation scores in the metadata"
    )
    pe = pre.add_parser(
        "evaluate", help="RMSE, MAE, MAPE per target and method of a saved model on a data set"
    )
    pe.add_argument("--model", type=Path, required=True)
    pe.add_argument("--data", type=Path, required=True)
    pe.add_argument("--json", action="store_true")

    fc = sub.add_parser("forecast", help="forecast a job's energy before it runs")
    fc.add_argument(
        "--gpu", required=True, help="GPU name, as NVML reports it or as in the spec table"
    )
    fc.add_argument(
        "--gflops", type=positive_float, required=True, help="forward GFLOPs per sample"
    )
    fc.add_argument("--batch-size", type=positive_int, required=True)
    fc.add_argument("--input-size", type=_size, default=None, help="HxW (optional)")
    fc.add_argument("--train-samples", type=positive_int, required=True)
    fc.add_argument("--eval-samples", type=int, default=0)
    fc.add_argument("--host-ram-gb", type=positive_float, default=None)
    fc.add_argument("--epochs", type=positive_int, required=True)
    fc.add_argument("--all-gpus", action="store_true", help="also every GPU of the spec table")
    fc.add_argument(
        "--model", type=Path, default=None, help="model directory (default: the shipped seed model)"
    )
    fc.add_argument("--json", action="store_true")
    return p


class Progress:
    """Folds done, on standard error: a bar on a terminal, a log line per fold otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()

    def __call__(self, method: str, fold: int, folds: int) -> None:
        if self.tty:
            bar = "#" * (20 * fold // folds)
            end = "\n" if fold == folds else ""
            print(
                f"\r{self.what} {method:<17} [{bar:<20}] {fold}/{folds}", end=end, file=sys.stderr
            )
        else:
            print(f"{self.what}: {method} fold {fold}/{folds} done", file=sys.stderr, flush=True)


def _fmt_scores(scores: dict) -> dict:
    return {t: asdict(s) for t, s in scores.items()}


def cmd_pre_cv(args: argparse.Namespace) -> int:
    from joulecast.estimator.pre.cv import SCHEMES, cross_validate, tdp_baselines
    from joulecast.estimator.pre.dataset import load_training_table

    df = load_training_table(args.data)
    schemes = {
        "both": ["kfold", "logo"],
        "all": ["kfold", "logo", "loao"],
    }.get(args.scheme, [args.scheme])
    out: dict = {"data": str(args.data), "rows": len(df), "gpus": sorted(df["gpu_model"].unique())}
    for scheme in schemes:
        res = cross_validate(
            df, ["pre_paper", "pre_physics"], scheme, tdp_baselines(), Progress(scheme)
        )
        out[scheme] = {
            m: {
                "overall": _fmt_scores(r["overall"]),
                "per_gpu": {g: _fmt_scores(s) for g, s in r["per_gpu"].items()},
            }
            for m, r in res.items()
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for scheme in schemes:
        print(f"\n{scheme} ({SCHEMES[scheme]}), {len(df)} runs")
        print(
            f"{'method':<17} {'power RMSE W':>12} {'power MAPE %':>12} {'epoch kJ RMSE':>13} {'epoch MAPE %':>12} {'cov (power/epoch)':>18}"
        )
        for m, r in out[scheme].items():
            p, e = r["overall"]["power_w"], r["overall"]["epoch_energy_j"]
            cov = f"{p['coverage']:.2f}/{e['coverage']:.2f}" if p["coverage"] is not None else "-"
            print(
                f"{m:<17} {p['rmse']:>12.2f} {p['mape']:>12.1f} {e['rmse'] / 1000:>13.3f} {e['mape']:>12.1f} {cov:>18}"
            )
    return 0


def train_models(data: Path, with_cv: bool = True, progress=None) -> tuple[dict, dict]:
    from joulecast.estimator.pre.cv import _select_physics, cross_validate
    from joulecast.estimator.pre.dataset import file_hash, load_training_table
    from joulecast.estimator.pre.model import PaperPRE, PhysicsPRE

    df = load_training_table(data)
    models = {
        "pre_paper": PaperPRE().fit(df),
        "pre_physics": PhysicsPRE(**_select_physics(df, "kfold")).fit(df),
    }
    meta: dict = {
        "training_data": {
            "file": data.name,
            "sha256": file_hash(data),
            "rows": len(df),
            "gpus": sorted(df["gpu_model"].unique()),
        }
    }
    if with_cv:
        res = cross_validate(
            df, list(models), "kfold", progress=progress("cv kfold") if progress else None
        )
        meta["cv_kfold"] = {m: _fmt_scores(r["overall"]) for m, r in res.items()}
        if df["gpu_model"].nunique() >= 2:  # how each method does on a GPU it never saw
            res = cross_validate(
                df, list(models), "logo", progress=progress("cv logo") if progress else None
            )
            meta["cv_logo"] = {m: _fmt_scores(r["overall"]) for m, r in res.items()}
    return models, meta


def cmd_pre_train(args: argparse.Namespace) -> int:
    from joulecast.estimator.pre.store import save

    print(f"training pre_paper and pre_physics on {args.data} ...", file=sys.stderr, flush=True)
    models, meta = train_models(args.data, with_cv=not args.no_cv, progress=Progress)
    save(args.out, models, meta)
    print(f"saved {', '.join(models)} to {args.out}")
    return 0


def cmd_pre_evaluate(args: argparse.Namespace) -> int:
    from joulecast.estimator.pre.cv import score
    from joulecast.estimator.pre.dataset import load_training_table
    from joulecast.estimator.pre.store import load

    models, _ = load(args.model)
    df = load_training_table(args.data)
    out = {m: _fmt_scores(score(df, model.predict_interval(df))) for m, model in models.items()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'method':<14} {'target':<15} {'RMSE':>10} {'MAE':>10} {'MAPE %':>8}")
    for m, targets in out.items():
        for t, s in targets.items():
            print(f"{m:<14} {t:<15} {s['rmse']:>10.2f} {s['mae']:>10.2f} {s['mape']:>8.1f}")
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from joulecast.estimator.pre.forecast import forecast_job, method_ratings
    from joulecast.estimator.pre.gpus import all_names, lookup
    from joulecast.estimator.pre.store import SEED_DIR, load

    models, meta = load(args.model or SEED_DIR)
    requested = lookup(args.gpu).name  # a clear error before any work
    features = {
        "model_gflops": args.gflops,
        "batch_size": args.batch_size,
        "train_samples": args.train_samples,
        "eval_samples": args.eval_samples,
        "host_ram_gb": args.host_ram_gb,
        "input_height": args.input_size[0] if args.input_size else None,
        "input_width": args.input_size[1] if args.input_size else None,
    }
    gpus = [requested] + ([g for g in all_names() if g != requested] if args.all_gpus else [])
    fcs = forecast_job(models, features, args.epochs, gpus, method_ratings(meta))
    # the requested GPU first (its recommended method, then the others in their domain);
    # then every other GPU by its recommended method, by energy
    first = sorted(
        (f for f in fcs if f.gpu_model == requested), key=lambda f: (not f.recommended, f.method)
    )
    rest = sorted(
        (f for f in fcs if f.gpu_model != requested and f.recommended), key=lambda f: f.energy_j
    )
    rows = [asdict(f) for f in first + rest]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'GPU':<24} {'method':<12} {'energy kWh':>11} {'interval kWh':>17} {'duration h':>10} {'power W':>8}"
    )
    for i, r in enumerate(rows):
        if i == len(first) and rest:
            print("other GPU models, each by its recommended method, least energy first:")
        mark = "*" if r["recommended"] else " "
        print(
            f"{r['gpu_model'][:24]:<24} {r['method'] + mark:<12} {r['energy_j'] / 3.6e6:>11.4f} "
            f"{r['energy_lower_j'] / 3.6e6:>8.4f}-{r['energy_upper_j'] / 3.6e6:<8.4f} {r['duration_s'] / 3600:>10.2f} {r['power_w']:>8.0f}"
        )
    print(
        "* the method the model store rates best for that GPU (cross-validated epoch-energy "
        "error; pre_paper speaks only for GPU models in its training data)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from joulecast.estimator.pre.dataset import DataError
    from joulecast.estimator.pre.gpus import UnknownGpu
    from joulecast.estimator.pre.store import ModelError

    try:
        if args.command == "step":
            return step_cli.cmd_step_evaluate(args)
        if args.command == "forecast":
            return cmd_forecast(args)
        return {"cv": cmd_pre_cv, "train": cmd_pre_train, "evaluate": cmd_pre_evaluate}[
            args.pre_command
        ](args)
    except (UnknownGpu, ModelError, DataError, OSError) as err:
        print(f"joulecast: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
