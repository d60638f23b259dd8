"""Flags of the queue room."""

from __future__ import annotations

import argparse
from pathlib import Path

from joulecast.estimator.queue.store import QueueStore
from joulecast.flags import add_flag


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Queue")
    add_flag(
        g,
        "--queue.dir",
        default="",
        help="Directory of queued job specs (JSON); enables /api/v1/queue",
    )


def queue_store(args: argparse.Namespace) -> QueueStore | None:
    return QueueStore(Path(args.queue_dir)) if args.queue_dir else None
