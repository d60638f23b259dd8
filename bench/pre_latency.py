"""PRE forecast latency per job: one job, one GPU, both methods, with the shipped seed model.

    python bench/pre_latency.py

Times ``forecast_job`` (feature frame, both models, intervals) for a single job on one GPU
and on all 34 GPU models of the spec table, median and p99 over 200 calls each. Prints a
table and writes bench/results/pre_latency.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.estimator.pre.forecast import forecast_job  # noqa: E402
from joulecast.estimator.pre.gpus import all_names  # noqa: E402
from joulecast.estimator.pre.store import SEED_DIR, load  # noqa: E402

FEATURES = {
    "model_gflops": 4.1,
    "batch_size": 64,
    "train_samples": 50000,
    "eval_samples": 10000,
    "input_height": 224,
    "input_width": 224,
}


def timed(gpus: list[str], n: int = 200) -> dict:
    models, _ = load(SEED_DIR)
    forecast_job(models, FEATURES, 30, gpus)  # warm-up
    lat = []
    for _ in range(n):
        s = time.perf_counter()
        forecast_job(models, FEATURES, 30, gpus)
        lat.append(time.perf_counter() - s)
    lat.sort()
    return {
        "gpus": len(gpus),
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[int(0.99 * len(lat)) - 1],
    }


def main() -> None:
    rows = [timed(["NVIDIA A100-SXM4-80GB"]), timed(all_names())]
    print(
        f"{'GPU models':>10} {'p50 ms':>8} {'p99 ms':>8}   (one job, pre_paper + pre_physics, with intervals)"
    )
    for r in rows:
        print(f"{r['gpus']:>10} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    out = ROOT / "bench" / "results" / "pre_latency.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
