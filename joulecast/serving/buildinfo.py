"""Version and source revision, for ``joulecast_build_info`` on both daemons."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from joulecast import __version__


@functools.cache
def revision() -> str:
    """The git commit of the source tree this runs from (an editable or source install),
    ``JOULECAST_REVISION`` baked into an image, else ``unknown``."""
    import os

    baked = os.environ.get("JOULECAST_REVISION", "").strip()
    if baked:
        return baked
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def labels(daemon: str) -> dict[str, str]:
    return {
        "daemon": daemon,
        "version": __version__,
        "revision": revision(),
        "pythonversion": platform.python_version(),
    }
