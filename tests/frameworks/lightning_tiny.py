"""A tiny LightningModule and callbacks at module level: ``ddp_spawn`` pickles them."""

from __future__ import annotations

import os
import signal
import time

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


def die(mode: str, epoch: int) -> None:
    if epoch == 3 and mode == "crash":
        raise RuntimeError("simulated crash after epoch 3")
    if epoch == 3 and mode == "kill":
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)


class Tiny(pl.LightningModule):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.net = torch.nn.Linear(8, 1)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("val/loss", loss, sync_dist=True)
        if self.mode == "odd":
            self.log("val_acc@1", 0.5 + 0.01 * self.current_epoch, sync_dist=True)
            self.log("exploded", float("inf"), sync_dist=True)

    def on_train_epoch_end(self) -> None:
        die(self.mode, self.current_epoch + 1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class StopAt2(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 == 2:
            trainer.should_stop = True


class SlowSteps(pl.Callback):
    """Optimizer steps long enough for a scrape to see their progress."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)


def data(steps: int | None = None) -> tuple[DataLoader, DataLoader]:
    """4 batches an epoch, or ``steps`` batches of 2 samples."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * steps if steps else 128, 8, generator=g)
    ds = TensorDataset(x, x.sum(dim=1, keepdim=True))
    return DataLoader(ds, batch_size=2 if steps else 32), DataLoader(ds, batch_size=64)
