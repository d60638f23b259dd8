"""PyTorch Lightning callback: ``Trainer(callbacks=[joulecast.integrations.lightning.callback(job)])``."""

from __future__ import annotations

import importlib
from typing import Any

from joulecast.client import Job


def _base() -> type:
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name).Callback
        except (ImportError, AttributeError):
            continue
    raise ImportError("joulecast.integrations.lightning needs lightning installed")


def callback(job: Job) -> Any:
    class JoulecastLightningCallback(_base()):  # type: ignore[misc]
        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if getattr(trainer, "sanity_checking", False):
                return
            metrics = {}
            for k, v in dict(getattr(trainer, "callback_metrics", {}) or {}).items():
                try:
                    metrics[str(k).replace("/", "_")] = float(v)
                except (TypeError, ValueError):
                    continue
            job.epoch_end(metrics)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            job.finish()

    return JoulecastLightningCallback()
