"""STEP error against the share of the run done, in epochs and in step segments.

    python bench/step_progress.py            # evaluate (records the step streams if missing)
    python bench/step_progress.py --record   # record the step streams again first

Epoch-based: the real per-epoch traces (36 RTX 3090 runs, 11 H200 runs recorded through
the exporter), projected when 5, 10, 25 and 50 % of their planned epochs are done.

Step-based: step streams recorded through the exporter (simulated GPUs, labelled so in
bench/traces/steps/README.md): a training loop marks every optimizer step with
``Job.progress``-style segment markers (a hundredth of the plan each) and the exporter's
answers give the energy at each segment end. Each stream is projected at the same shares
in step segments, and in epochs as a two-epoch run would be (which cannot project before
its epochs do). Prints a table and writes bench/results/step_progress.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.sender import http_post  # noqa: E402
from joulecast.step import Checkpoint, Progress, StepConfig, project, segment_ends  # noqa: E402
from joulecast.traces import read_traces  # noqa: E402

SHARES = (0.05, 0.10, 0.25, 0.50)
EPOCH_TRACES = [
    ROOT.parent / "shared" / "data" / "traces" / "eatit_vgg16_rtx3090.csv",
    ROOT / "bench" / "traces" / "h200" / "traces.csv",
]
STREAMS = ROOT / "bench" / "traces" / "steps" / "streams.csv"


def record(path: Path, runs: int = 6, steps: int = 300) -> None:
    """Step streams through a real exporter (simulated GPUs, in process)."""
    from joulecast.exporter.cli import build, build_parser

    rng = random.Random(7)
    rows = []
    with tempfile.TemporaryDirectory() as state:
        args = build_parser().parse_args(
            [
                "--web.listen-address",
                "127.0.0.1:0",
                "--state.dir",
                state,
                "--no-collector.rapl",
                "--backend",
                "simulated",
                "--simulated.gpus",
                "1",
                "--simulated.warmup-seconds",
                "1",
                "--simulated.cycle-seconds",
                "3",
            ]
        )
        exp = build(args)
        exp.start()
        try:
            for run in range(runs):
                job_id = f"stream-{run}"
                step_s = rng.uniform(0.05, 0.08)
                spec = {"job_id": job_id, "epochs_planned": 2, "steps_planned": steps, "gpus": [0]}
                http_post(exp.url + "/api/v1/jobs", spec, None, 5)
                t0 = time.time()
                rows.append((job_id, steps, 0, t0, 0.0))
                for step in range(1, steps + 1):
                    slow = 3.0 if step <= steps // 20 else 1.0  # compilation, first batches
                    time.sleep(step_s * slow * rng.uniform(0.8, 1.2))
                    for end in segment_ends(step - 1, step, steps):
                        answer = http_post(
                            exp.url + f"/api/v1/jobs/{job_id}/steps",
                            {"step": end, "time": time.time()},
                            None,
                            5,
                        ).body
                        rows.append(
                            (
                                job_id,
                                steps,
                                end,
                                answer["step_end_timestamp"],
                                answer["step_end_energy_joules"],
                            )
                        )
                http_post(exp.url + f"/api/v1/jobs/{job_id}/finish", {}, None, 5)
                time.sleep(2.5)  # the simulated GPU cools down between runs
        finally:
            exp.stop()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job_id", "steps_planned", "step", "time_s", "energy_j"])
        w.writerows(rows)


def read_streams(path: Path) -> dict[str, tuple[int, list[Checkpoint]]]:
    out: dict[str, tuple[int, list[Checkpoint]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            plan, cps = out.setdefault(row["job_id"], (int(row["steps_planned"]), []))
            cps.append(Checkpoint(int(row["step"]), float(row["time_s"]), float(row["energy_j"])))
    return out


def error_at(p: Progress, units: float, truth: float, cfg: StepConfig) -> float | None:
    known = p.truncated(math.floor(units + 1e-9))
    pr = project(known, cfg).get("step_epoch")
    return None if pr is None else abs(pr.energy_j - truth) / truth


def summarise(errors: dict[float, list[float | None]]) -> dict[str, dict]:
    out = {}
    for share, errs in errors.items():
        got = [e for e in errs if e is not None]
        out[f"{share:.0%}"] = {
            "runs": len(errs),
            "projected": len(got),
            "mape": 100 * sum(got) / len(got) if got else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "step_progress.json")
    args = ap.parse_args()
    if args.record or not STREAMS.exists():
        record(STREAMS)
    cfg = StepConfig()
    results: dict[str, dict] = {}
    for path in EPOCH_TRACES:
        if not path.exists():
            continue
        errors: dict[float, list[float | None]] = {s: [] for s in SHARES}
        for tr in read_traces(path):
            p = Progress.from_epoch_energies(tr.energies, tr.end_times, len(tr.energies))
            for s in SHARES:
                errors[s].append(error_at(p, s * len(tr.energies), tr.total_j, cfg))
        results[f"epochs: {path.parent.name}/{path.name}"] = summarise(errors)
    by_steps: dict[float, list[float | None]] = {s: [] for s in SHARES}
    by_epochs: dict[float, list[float | None]] = {s: [] for s in SHARES}
    for plan, cps in read_streams(STREAMS).values():
        truth = cps[-1].energy_j
        steps = Progress.from_steps(cps, plan)
        epochs = Progress(
            tuple(
                Checkpoint(i, c.time_s, c.energy_j)
                for i, c in enumerate(c for c in cps if c.epoch in (0, plan // 2, plan))
            ),
            2,
        )
        for s in SHARES:
            if steps is not None:
                by_steps[s].append(error_at(steps, s * steps.epochs_planned, truth, cfg))
            by_epochs[s].append(error_at(epochs, s * 2, truth, cfg))
    results["steps (simulated streams), in step segments"] = summarise(by_steps)
    results["steps (simulated streams), in 2 epochs"] = summarise(by_epochs)
    print(f"{'set':58s}" + "".join(f"{f'{s:.0%}':>16s}" for s in SHARES))
    for name, row in results.items():
        cells = []
        for s in SHARES:
            c = row[f"{s:.0%}"]
            mape = "none" if c["mape"] is None else f"{c['mape']:.2f} %"
            cells.append(f"{mape} ({c['projected']}/{c['runs']})")
        print(f"{name:58s}" + "".join(f"{x:>16s}" for x in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
