"""Flags of the queue room."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from joulecast.estimator.queue.slurm import SlurmQueue
from joulecast.estimator.queue.store import MAX_QUEUE, QueueStore
from joulecast.serving.files import FileRejections
from joulecast.serving.flags import add_flag, positive_int


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Queue")
    add_flag(
        g,
        "--queue.dir",
        default="",
        help="Directory of queued job specs (JSON); enables /api/v1/queue",
    )
    add_flag(
        g,
        "--queue.max-jobs",
        default=MAX_QUEUE,
        type=positive_int,
        help="Queued jobs accepted (429 past it), so forecasts and /metrics stay bounded",
    )
    add_flag(
        g,
        "--queue.slurm",
        default=False,
        boolean=True,
        help="Forecast Slurm's pending jobs too (their --comment states the plan; docs/slurm.md)",
    )
    add_flag(
        g,
        "--queue.slurm-command",
        default="squeue --json",
        help="Command that prints the controller's jobs as JSON",
    )


def slurm_queue(args: argparse.Namespace) -> SlurmQueue | None:
    return SlurmQueue(shlex.split(args.queue_slurm_command)) if args.queue_slurm else None


def queue_store(
    args: argparse.Namespace, rejections: FileRejections | None = None
) -> QueueStore | None:
    if not args.queue_dir:
        return None
    return QueueStore(Path(args.queue_dir), args.queue_max_jobs, rejections)
