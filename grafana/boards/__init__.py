"""The provisioned dashboards, one module each; ``BOARDS`` maps the JSON file each one is
written to (grafana/dashboards/) to the function that builds it."""

from __future__ import annotations

from collections.abc import Callable

from boards import accounting, estimator, jobs, node, queue
from boards.common import Board

BOARDS: dict[str, Callable[[], Board]] = {
    "node.json": node.board,
    "jobs.json": jobs.board,
    "queue.json": queue.board,
    "estimator.json": estimator.board,
    "accounting.json": accounting.board,
}
