"""Self-calibration: finished jobs become rows; a retrain is kept only when not worse."""

from __future__ import annotations

import pytest

from joulecast.estimator.pre.calibration import HistoryRow, HistoryStore, Retrainer
from joulecast.estimator.pre.dataset import load_reference_runs
from joulecast.estimator.pre.model import JOB_COLUMNS, PhysicsPRE
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def runs():
    return load_reference_runs(shared_path("data/reference_runs.csv"))


def rows_from(df, prefix):
    out = []
    for i, r in df.reset_index(drop=True).iterrows():
        feats = {c: (None if r[c] != r[c] else float(r[c])) for c in JOB_COLUMNS}
        epochs = 10
        out.append(
            HistoryRow(
                f"{prefix}-{i}",
                r["gpu_model"],
                feats,
                epochs,
                r["epoch_energy_j"] * epochs,
                r["epoch_s"] * epochs,
                0.0,
            )
        )
    return out


def test_history_store_dedupes_and_rejects_unknown(tmp_path, runs):
    h = HistoryStore(tmp_path / "h.csv")
    (row,) = rows_from(runs.head(1), "a")
    assert h.add(row) and not h.add(row)
    assert not h.add(HistoryRow("b", "Radeon", row.features, 10, 1.0, 1.0, 0.0))
    assert not h.add(HistoryRow("c", row.gpu_model, row.features, 10, 0.0, 1.0, 0.0))
    again = HistoryStore(tmp_path / "h.csv")  # survives a restart
    assert len(again) == 1 and again.frame()["power_w"].iloc[0] == pytest.approx(
        runs["power_w"].iloc[0]
    )


def test_retrain_learns_a_new_gpu_and_is_kept(tmp_path, runs):
    known = runs[runs["gpu_model"] != "GeForce RTX 3090"].sample(200, random_state=1)
    new_gpu = runs[runs["gpu_model"] == "GeForce RTX 3090"].sample(40, random_state=1)
    ref = tmp_path / "ref.csv"
    known.to_csv(ref, index=False)
    current = {"pre_physics": PhysicsPRE(n_estimators=100, interval_folds=0).fit(known)}
    h = HistoryStore(tmp_path / "h.csv")
    for r in rows_from(new_gpu, "j"):
        h.add(r)
    rt = Retrainer(h, ref, tmp_path / "models")
    new = rt.retrain(current)
    assert new is not None and rt.state.retrains == {"accepted": 1}
    assert rt.state.candidate_error["pre_physics"] < rt.state.current_error["pre_physics"]
    assert list((tmp_path / "models").glob("*/metadata.json"))


def test_retrain_is_rejected_when_worse_and_skipped_when_too_few(tmp_path, runs):
    sub = runs.sample(150, random_state=2)
    current = {"pre_physics": PhysicsPRE(n_estimators=100, interval_folds=0).fit(sub)}
    h = HistoryStore(tmp_path / "h.csv")
    rt = Retrainer(h, None, tmp_path / "models")
    assert rt.retrain(current) is None and rt.state.retrains == {"skipped_too_few_rows": 1}
    # rows the current model has already seen, with their targets scrambled: no gain possible
    noisy = sub.head(12).copy()
    noisy["epoch_energy_j"] = noisy["epoch_energy_j"].sample(frac=1, random_state=0).to_numpy()
    noisy["epoch_s"] = noisy["epoch_energy_j"] / noisy["power_w"]
    for r in rows_from(noisy, "n"):
        h.add(r)
    ref = tmp_path / "ref.csv"
    sub.to_csv(ref, index=False)
    rt = Retrainer(h, ref, tmp_path / "models")
    before = rt.state.retrains.copy()
    out = rt.retrain(current)
    assert sum(rt.state.retrains.values()) == sum(before.values()) + 1
    cand, cur = rt.state.candidate_error["pre_physics"], rt.state.current_error["pre_physics"]
    # the decision follows the rule: kept only if not worse on the finished jobs
    if out is None:
        assert rt.state.retrains.get("rejected_worse") == 1 and cand > cur
    else:
        assert rt.state.retrains.get("accepted") == 1 and cand <= cur


def test_restart_starts_from_the_newest_retrained_models_that_load(tmp_path, runs):
    from joulecast.estimator.pre.calibration import startup_models
    from joulecast.estimator.pre.store import SEED_DIR, save

    root = tmp_path / "pre-models"
    assert startup_models(SEED_DIR, root)[1] == SEED_DIR  # nothing retrained yet
    model = PhysicsPRE(n_estimators=20, interval_folds=0).fit(runs.head(60))
    save(root / "20260101T000000", {"pre_physics": model}, {})
    save(root / "20260201T000000", {"pre_physics": model}, {})
    models, used = startup_models(SEED_DIR, root)
    assert used == root / "20260201T000000" and set(models) == {"pre_physics"}
    (root / "20260201T000000" / "pre_physics.joblib").write_bytes(b"damaged")
    assert startup_models(SEED_DIR, root)[1] == root / "20260101T000000"  # damaged: skipped
