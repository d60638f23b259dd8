"""Flags of the queue room."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from joulecast.estimator.queue.runs import RunHistory
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
    add_flag(
        g,
        "--queue.runs-file",
        default="",
        help="JSON file keeping the finished runs by user and job name that pending jobs are "
        "forecast from, across restarts (empty: kept in memory only)",
    )


def slurm_queue(args: argparse.Namespace) -> SlurmQueue | None:
    return SlurmQueue(shlex.split(args.queue_slurm_command)) if args.queue_slurm else None


def run_history(
    args: argparse.Namespace, rejections: FileRejections | None = None
) -> RunHistory | None:
    """Past runs are remembered only where a scheduler's pending jobs are forecast."""
    if not args.queue_slurm:
        return None
    return RunHistory(
        Path(args.queue_runs_file) if args.queue_runs_file else None, rejections=rejections
    )


def queue_store(
    args: argparse.Namespace, rejections: FileRejections | None = None
) -> QueueStore | None:
    if not args.queue_dir:
        return None
    return QueueStore(Path(args.queue_dir), args.queue_max_jobs, rejections)
