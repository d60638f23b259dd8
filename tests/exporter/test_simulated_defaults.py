"""The simulated GPU's defaults give a README-style job a projection a user can trust."""

from __future__ import annotations

import random

import pytest

from joulecast.exporter.cli import build_parser, make_backend
from joulecast.step import Progress, StepConfig, project


@pytest.mark.parametrize("epoch_s", [0.5, 1.0, 2.0, 5.0])
def test_readme_job_on_default_simulated_gpu_projects_within_5_percent_by_epoch_15(
    epoch_s, tmp_path
):
    args = build_parser().parse_args(["--backend", "simulated", "--state.dir", str(tmp_path)])
    errors = []
    for seed in range(5):
        args.simulated_seed = seed
        backend = make_backend(args)
        backend.set_busy(lambda _i: True)
        rng = random.Random(seed)
        t, last, energies, ends = 0.0, 0.0, [], []
        backend.read(0, t)
        for _ in range(30):
            t += epoch_s * rng.uniform(0.97, 1.03)  # train_one_epoch()
            backend.read(0, t)
            energy = backend.true_energy(0)
            energies.append(energy - last)
            ends.append(t)
            last = energy
        progress = Progress.from_epoch_energies(energies, ends, 30).truncated(15)
        projected = project(progress, StepConfig())["step_epoch"].energy_j
        errors.append(abs(projected - sum(energies)) / sum(energies))
    assert sum(errors) / len(errors) < 0.05, errors
