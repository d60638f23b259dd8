"""Keras callback (Keras 3 on any backend, or tf.keras)::

    from joulecast.integrations import keras as jc_keras
    model.fit(x, y, epochs=15, callbacks=[jc_keras.callback(job)])

Planned epochs come from ``fit(epochs=)``, planned steps from the steps of an epoch
times the epochs, both registered when training begins; every batch is counted
(``job.progress``). ``fit(initial_epoch=k)`` resumes the job after epoch k; early
stopping finishes it with the epochs really run. A job over its ``on_budget="stop"``
energy budget sets ``model.stop_training``: Keras ends the run after the current batch or
epoch, its other callbacks (checkpoints, loggers) run as for any early stop.
"""

from __future__ import annotations

import functools
from typing import Any

from joulecast.client import Job
from joulecast.integrations._lazy import first_importable


@functools.cache
def _callback_class() -> type:
    base = first_importable(
        [("keras.callbacks", "Callback"), ("tensorflow.keras.callbacks", "Callback")], "keras"
    )

    class JoulecastKerasCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job
            self._epoch = 0

        def _param(self, name: str) -> int | None:
            value = (getattr(self, "params", None) or {}).get(name)
            return int(value) if isinstance(value, int) and value > 0 else None

        def _planned(self) -> int | None:
            return self._param("epochs")

        def on_train_begin(self, logs: dict | None = None) -> None:
            epochs, steps = self._planned(), self._param("steps")
            self.job.begin(epochs, epochs * steps if epochs and steps else None)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            steps = self._param("steps")
            if steps:
                self.job.progress(self._epoch * steps + batch + 1)
            self._stop_if_over_budget()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.job.epoch_end(logs or {}, epoch=epoch + 1, epochs_planned=self._planned())
            self._stop_if_over_budget()

        def _stop_if_over_budget(self) -> None:
            if self.job.should_stop and getattr(self, "model", None) is not None:
                self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            self.job.train_end()

    JoulecastKerasCallback.__module__ = __name__
    JoulecastKerasCallback.__qualname__ = "JoulecastKerasCallback"
    return JoulecastKerasCallback


def __getattr__(name: str) -> Any:
    if name == "JoulecastKerasCallback":
        return _callback_class()
    raise AttributeError(name)


def callback(job: Job) -> Any:
    """A ``keras.callbacks.Callback`` that marks every epoch of ``job``."""
    return _callback_class()(job)
