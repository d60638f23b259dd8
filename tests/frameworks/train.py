"""Tiny real training runs with joulecast's callbacks, as a user's script would be.

Run by tests/frameworks/test_callbacks.py with the Python of the frameworks' virtual
environment (CPU builds). Usage::

    python train.py FRAMEWORK MODE URL JOB_ID WORKDIR

FRAMEWORK: keras | lightning | hf. MODE: plain, early, crash (raises after epoch 3), kill
(SIGKILL after epoch 3), resume (from the checkpoint of epoch 2), ddp, ddp_spawn, odd,
slow (Keras: 0.8 s epochs, end times written to WORKDIR/ends.txt), steps (HF:
max_steps of 2.5 epochs), short (HF: max_steps of 0.75 epoch; Lightning: max_steps of 0.8
epoch), one (HF: one epoch), budget (12 epochs of 4 steps of 0.1 s, the job's budget from
JOULECAST_TEST_BUDGET_KWH and JOULECAST_TEST_ON_BUDGET), budget_ddp (Lightning: budget
under ddp on 2 processes). In short and one an epoch has 100 optimizer steps of
JOULECAST_TEST_STEP_SECONDS each (default 0).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import joulecast

FIT_EPOCHS = 5
JOB_EPOCHS = 100  # what the job says; the framework's plan must win
STEP_S = float(os.environ.get("JOULECAST_TEST_STEP_SECONDS", "0") or 0)
LONG_MODES = ("short", "one")  # 100 optimizer steps an epoch, STEP_S each
BUDGET_MODES = ("budget", "budget_ddp")
BUDGET_EPOCHS = 12
BUDGET_STEP_S = 0.1  # a step of the budget runs: epochs long enough to measure


def die(mode: str, epoch: int) -> None:
    if epoch == 3 and mode == "crash":
        raise RuntimeError("simulated crash after epoch 3")
    if epoch == 3 and mode == "kill":
        time.sleep(0.5)  # the marker is on the wire; the kill comes at an arbitrary moment
        os.kill(os.getpid(), signal.SIGKILL)


# -- Keras 3 on JAX -------------------------------------------------------------------------
def run_keras(mode: str, job: joulecast.Job, work: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    import numpy as np

    from joulecast.integrations import keras as jc_keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    ckpt = work / "keras.weights.h5"

    class SlowEpochs(keras.callbacks.Callback):
        """Epochs long enough to bring the exporter back halfway; writes each end time."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            time.sleep(0.8)
            with open(work / "ends.txt", "a") as f:
                f.write(f"{time.time()}\n")

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch + 1 == 2:
                self.model.save_weights(ckpt)
            if mode == "early" and epoch + 1 == 2:
                self.model.stop_training = True
            die(mode, epoch + 1)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    initial = 0
    if mode == "resume":
        model.save_weights(work / "unused.weights.h5")
        model.load_weights(ckpt)
        initial = 2

    class SlowSteps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            time.sleep(BUDGET_STEP_S)

    callbacks = [jc_keras.callback(job), Checkpoint()]  # joulecast's first: it marks first
    if mode == "slow":
        callbacks.insert(0, SlowEpochs())  # the epoch ends after it
    if mode in BUDGET_MODES:
        callbacks.insert(0, SlowSteps())
    model.fit(
        x,
        y,
        epochs=BUDGET_EPOCHS if mode in BUDGET_MODES else FIT_EPOCHS,
        initial_epoch=initial,
        batch_size=64,
        verbose=0,
        validation_split=0.25,
        callbacks=callbacks,
    )


# -- PyTorch Lightning ------------------------------------------------------------------------
def run_lightning(mode: str, job: joulecast.Job, work: Path) -> None:
    import lightning.pytorch as pl
    from lightning_tiny import SlowSteps, StopAt2, Tiny, data

    from joulecast.integrations import lightning as jc_lightning

    kwargs: dict = {}
    if mode in ("ddp", "ddp_spawn"):
        kwargs = {"strategy": mode, "devices": 2}
    if mode == "budget_ddp":
        kwargs = {"strategy": "ddp", "devices": 2}
    if mode == "short":
        kwargs = {"max_steps": 80}  # 100 batches an epoch: 0.8 epoch
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=work, filename="{epoch}", save_top_k=-1)
    callbacks = [jc_lightning.callback(job), ckpt] + ([StopAt2()] if mode == "early" else [])
    if mode == "short":
        callbacks.append(SlowSteps(STEP_S))
    if mode in BUDGET_MODES:
        callbacks.append(SlowSteps(BUDGET_STEP_S))
    trainer = pl.Trainer(
        max_epochs=BUDGET_EPOCHS if mode in BUDGET_MODES else FIT_EPOCHS,
        accelerator="cpu",
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        **kwargs,
    )
    train, val = data(steps=100 if mode == "short" else None)
    path = str(work / "epoch=1.ckpt") if mode == "resume" else None
    trainer.fit(Tiny(mode), train, val, ckpt_path=path)


# -- Hugging Face Trainer ---------------------------------------------------------------------
def run_hf(mode: str, job: joulecast.Job, work: Path) -> None:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from joulecast.integrations import huggingface as jc_hf

    class SlowSteps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            time.sleep(BUDGET_STEP_S if mode in BUDGET_MODES else STEP_S)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(8, 1)

        def forward(self, x, labels=None):
            out = self.net(x)
            loss = torch.nn.functional.mse_loss(out, labels) if labels is not None else None
            return {"loss": loss, "logits": out}

    g = torch.Generator().manual_seed(0)
    long = mode in LONG_MODES
    xs = torch.randn(400 if long else 64, 8, generator=g)
    data = [{"x": x, "labels": x.sum().reshape(1)} for x in xs]
    max_steps = {"steps": 10, "short": 75}.get(mode, -1)  # steps: 4 an epoch, 2.5 epochs
    budget = mode in BUDGET_MODES
    epochs = 1 if long else BUDGET_EPOCHS if budget else FIT_EPOCHS
    args = TrainingArguments(
        output_dir=str(work / "hf"),
        num_train_epochs=epochs,
        per_device_train_batch_size=4 if long else 16,
        eval_strategy="no" if long or budget else "epoch",
        logging_strategy="epoch",
        save_strategy="no" if long or budget else "epoch",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        max_steps=max_steps,
    )
    trainer = Trainer(
        model=Tiny(),
        args=args,
        train_dataset=data,
        eval_dataset=data[:32],
        callbacks=[jc_hf.callback(job)] + ([SlowSteps()] if long or budget else []),
    )
    trainer.train()
    # what the Trainer itself logged, for the test to compare with the markers
    (work / "hf_log_history.json").write_text(json.dumps(trainer.state.log_history))


def main() -> None:
    framework, mode, url, job_id, work = sys.argv[1:6]
    work_dir = Path(work)
    run = {"keras": run_keras, "lightning": run_lightning, "hf": run_hf}[framework]
    budget = {}
    if os.environ.get("JOULECAST_TEST_BUDGET_KWH"):
        budget = {
            "budget_kwh": float(os.environ["JOULECAST_TEST_BUDGET_KWH"]),
            "on_budget": os.environ.get("JOULECAST_TEST_ON_BUDGET", "stop"),
        }
    with joulecast.job(
        job_id, epochs=JOB_EPOCHS, url=url, gpus=[0], flush_timeout=30, **budget
    ) as job:
        run(mode, job, work_dir)


if __name__ == "__main__":
    main()
