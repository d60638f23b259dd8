"""Where the STEP interval calibration is kept across restarts: one JSON file, replaced
atomically, so a crash leaves the old calibration or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from joulecast.estimator.step.calibration import IntervalCalibration

log = logging.getLogger("joulecast.estimator")


class CalibrationFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load_into(self, calibration: IntervalCalibration) -> None:
        if not self.path.exists():
            return
        try:
            calibration.restore(json.loads(self.path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("interval calibration %s not loaded (%s); starting afresh", self.path, err)
            return
        log.info("interval calibration from %s: %s", self.path, calibration.sizes())

    def save(self, calibration: IntervalCalibration) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(calibration.state(), fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as err:
            log.warning("interval calibration not saved to %s: %s", self.path, err)
            return False
        return True
