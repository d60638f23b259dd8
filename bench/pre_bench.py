"""PRE accuracy: 5-fold CV (the seed study's protocol), leave-one-GPU-out and
leave-one-architecture-out, every method.

    python bench/pre_bench.py            # reference runs (5-fold, LOGO, LOAO) and Zeus (LOGO)
    python bench/pre_bench.py --quick    # reference runs only

Data: ../shared/data/reference_runs.csv (700 runs, 3 GPUs; del Rey et al.) and
../shared/data/zeus_power_summary.csv (1,609 configurations, 4 GPUs; the Zeus project),
whose workloads get approximate GFLOPs and sample counts from bench/zeus_workloads.csv
(same values on every GPU, so they only set each workload's scale). ``pre_physics`` is
tuned inside the training folds only (nested CV). mlco2 and green_algorithms are the TDP
baselines given the true epoch duration. Prints tables and writes bench/results/pre.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.estimator.pre.cv import cross_validate, tdp_baselines  # noqa: E402
from joulecast.estimator.pre.dataset import load_reference_runs, validate  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def load_zeus(path: Path, workloads: Path) -> pd.DataFrame:
    z = pd.read_csv(path)
    w = pd.read_csv(workloads)
    df = z.merge(w, on=["network", "dataset"], how="inner")
    out = pd.DataFrame(
        {
            "gpu_model": df["gpu"],
            "model_gflops": df["model_gflops"],
            "batch_size": df["batch_size"],
            "train_samples": df["train_samples"],
            "eval_samples": df["eval_samples"],
            "power_limit_w": df["power_limit"],
            "power_w": df["average_power"],
            "epoch_s": df["time_per_epoch"],
        }
    )
    out["epoch_energy_j"] = out["power_w"] * out["epoch_s"]
    return validate(out, path)


def table(title: str, res: dict) -> None:
    print(f"\n{title}")
    print(
        f"{'method':<17} {'power RMSE W':>12} {'power MAPE %':>12} {'epoch RMSE kJ':>13} {'epoch MAPE %':>12} {'90% cov. power/epoch':>21}"
    )
    for m, r in res.items():
        p, e = r["overall"]["power_w"], r["overall"]["epoch_energy_j"]
        cov = f"{p.coverage:.2f}/{e.coverage:.2f}" if p.coverage is not None else "-"
        print(
            f"{m:<17} {p.rmse:>12.2f} {p.mape:>12.1f} {e.rmse / 1000:>13.3f} {e.mape:>12.1f} {cov:>21}"
        )


def as_json(res: dict) -> dict:
    return {
        m: {
            "overall": {t: asdict(s) for t, s in r["overall"].items()},
            "per_gpu": {g: {t: asdict(s) for t, s in v.items()} for g, v in r["per_gpu"].items()},
        }
        for m, r in res.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pre.json")
    args = ap.parse_args()
    out: dict = {}
    ref = load_reference_runs(SHARED / "reference_runs.csv")
    runs = [
        ("reference_runs, 5-fold", ref, "kfold"),
        ("reference_runs, leave-one-GPU-out", ref, "logo"),
        ("reference_runs, leave-one-architecture-out", ref, "loao"),
    ]
    if not args.quick:
        runs.append(
            (
                "zeus_power_summary, leave-one-GPU-out",
                load_zeus(SHARED / "zeus_power_summary.csv", ROOT / "bench" / "zeus_workloads.csv"),
                "logo",
            )
        )
    for title, df, scheme in runs:
        t = time.perf_counter()
        res = cross_validate(df, ["pre_paper", "pre_physics"], scheme, tdp_baselines())
        table(
            f"{title} ({len(df)} rows, {df['gpu_model'].nunique()} GPUs, {time.perf_counter() - t:.0f} s)",
            res,
        )
        if scheme == "logo":
            for g in sorted(df["gpu_model"].unique()):
                p = res["pre_physics"]["per_gpu"][g]
                q = res["pre_paper"]["per_gpu"][g]
                print(
                    f"   held out {g:<22} pre_physics power {p['power_w'].mape:5.1f} % epoch {p['epoch_energy_j'].mape:6.1f} %"
                    f" | pre_paper power {q['power_w'].mape:6.1f} % epoch {q['epoch_energy_j'].mape:7.1f} %"
                )
        out[title] = as_json(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
