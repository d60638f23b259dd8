"""PyTorch Lightning callback::

    from joulecast.integrations import lightning as jc_lightning
    trainer = L.Trainer(max_epochs=15, callbacks=[jc_lightning.callback(job)])

Planned epochs come from ``max_epochs``; ``fit(ckpt_path=...)`` resumes the job at the
restored epoch; under DDP (``ddp``, ``ddp_spawn``, torchrun) only global rank 0 posts
markers and every rank attaches its process to the job. The callback pickles.
"""

from __future__ import annotations

import functools
from typing import Any

from joulecast.client import Job
from joulecast.integrations._lazy import first_importable


def _metrics(trainer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dict(getattr(trainer, "callback_metrics", {}) or {}).items():
        out[str(k)] = v  # tensors: the client reads .item(); names are made safe there
    return out


@functools.cache
def _callback_class() -> type:
    base = first_importable(
        [("lightning.pytorch", "Callback"), ("pytorch_lightning", "Callback")], "lightning"
    )

    class JoulecastLightningCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

        @staticmethod
        def _planned(trainer: Any) -> int | None:
            epochs = getattr(trainer, "max_epochs", None)
            return int(epochs) if isinstance(epochs, int) and epochs > 0 else None

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            self.job.rank = int(getattr(trainer, "global_rank", 0) or 0)
            self.job.attach()  # every rank's process and GPUs belong to the job

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            planned = self._planned(trainer)
            if planned:
                self.job.set_planned(planned)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if getattr(trainer, "sanity_checking", False):
                return
            self.job.epoch_end(
                _metrics(trainer),
                epoch=int(trainer.current_epoch) + 1,
                epochs_planned=self._planned(trainer),
            )

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.job.train_end()

    JoulecastLightningCallback.__module__ = __name__
    JoulecastLightningCallback.__qualname__ = "JoulecastLightningCallback"
    return JoulecastLightningCallback


def __getattr__(name: str) -> Any:
    if name == "JoulecastLightningCallback":
        return _callback_class()
    raise AttributeError(name)


def callback(job: Job) -> Any:
    """A ``lightning.pytorch.Callback`` that marks every epoch of ``job``."""
    return _callback_class()(job)
