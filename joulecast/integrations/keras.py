"""Keras callback: ``model.fit(..., callbacks=[joulecast.integrations.keras.callback(job)])``."""

from __future__ import annotations

import importlib
from typing import Any

from joulecast.client import Job


def _base() -> type:
    for name in ("keras", "tensorflow.keras"):
        try:
            return importlib.import_module(name).callbacks.Callback
        except (ImportError, AttributeError):
            continue
    raise ImportError("joulecast.integrations.keras needs keras or tensorflow installed")


def callback(job: Job) -> Any:
    class JoulecastKerasCallback(_base()):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            job.epoch_end(logs or {})

        def on_train_end(self, logs: dict | None = None) -> None:
            job.finish()

    return JoulecastKerasCallback()
