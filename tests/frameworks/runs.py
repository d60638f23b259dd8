"""What the framework tests share: the frameworks' Python, the marks that skip without
it, and the command line of a user's training script (tests/frameworks/train.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = os.environ.get("JOULECAST_FRAMEWORKS_PYTHON", "")

MARKS = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not PYTHON or not Path(PYTHON).exists(),
        reason="no frameworks environment (JOULECAST_FRAMEWORKS_PYTHON; scripts/test.sh makes it)",
    ),
]


def command(url: str, framework: str, mode: str, job_id: str, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    env.pop("RANK", None)
    env.pop("LOCAL_RANK", None)
    return {
        "args": [PYTHON, str(HERE / "train.py"), framework, mode, url, job_id, str(work)],
        "env": env,
        "cwd": work,
    }
