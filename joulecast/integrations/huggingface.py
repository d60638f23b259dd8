"""Hugging Face ``Trainer`` callback: ``Trainer(callbacks=[joulecast.integrations.huggingface.callback(job)])``."""

from __future__ import annotations

import importlib
from typing import Any

from joulecast.client import Job


def _base() -> type:
    try:
        return importlib.import_module("transformers").TrainerCallback
    except (ImportError, AttributeError) as err:
        raise ImportError(
            "joulecast.integrations.huggingface needs transformers installed"
        ) from err


def callback(job: Job) -> Any:
    class JoulecastTrainerCallback(_base()):  # type: ignore[misc]
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            metrics = {}
            history = getattr(state, "log_history", None) or []
            for k, v in (history[-1] if history else {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics[k] = float(v)
            job.epoch_end(metrics)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            job.finish()

    return JoulecastTrainerCallback()
