"""Writes bench/traces/simulated_load_model.csv: per-epoch traces from the exporter's
simulated GPU backend (SIMULATED data, labelled as such in the file name and card).

    python bench/make_simulated_traces.py

24 runs on simulated A100 and RTX 3090 profiles: a warm-up of 1-4 epochs, an evaluation
dip every epoch, AR(1) noise, 30-60 epochs of 20-60 s, simulated in 10 ms steps.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.exporter.devices.simulated import SimulatedBackend  # noqa: E402


def main() -> None:
    rng = random.Random(7)
    out = ROOT / "bench" / "traces" / "simulated_load_model.csv"
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job_id", "epoch", "epoch_end_time_s", "epoch_energy_j"])
        for run in range(24):
            profile = "a100" if run % 2 == 0 else "rtx3090"
            epoch_s = rng.uniform(20, 60)
            epochs = rng.randint(30, 60)
            warmup = epoch_s * rng.uniform(1, 4)
            b = SimulatedBackend(
                1, profile=profile, busy=lambda _i: True, warmup_s=warmup, cycle_s=epoch_s, seed=run
            )
            t = 0.0
            b.read(0, t)
            last = 0.0
            for e in range(1, epochs + 1):
                t += epoch_s * rng.uniform(0.98, 1.02)
                b.read(0, t)
                energy = b.true_energy(0)
                w.writerow([f"sim-{profile}-{run:02d}", e, f"{t:.3f}", f"{energy - last:.3f}"])
                last = energy
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
