"""Where the STEP interval calibration is kept across restarts: one JSON file, replaced
atomically, so a crash leaves the old calibration or the new one, never half of one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from joulecast.estimator.step.calibration import IntervalCalibration
from joulecast.serving.files import FileRejections, read_small, write_json_atomic

log = logging.getLogger("joulecast.estimator")


class CalibrationFile:
    def __init__(self, path: Path, rejections: FileRejections | None = None) -> None:
        self.path = path
        self.rejections = rejections or FileRejections()

    def load_into(self, calibration: IntervalCalibration) -> None:
        """Restore the calibration; an unusable file is set aside and calibration starts
        afresh (it is rebuilt from the jobs that finish from now on)."""
        if not self.path.exists():
            return
        try:
            calibration.restore(json.loads(read_small(self.path, 64 * 1024 * 1024)))
        except OSError as err:
            log.warning("interval calibration %s not loaded (%s); starting afresh", self.path, err)
            return
        except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
            self.rejections.set_aside(self.path, "calibration", f"{err}; starting afresh")
            return
        log.info("interval calibration from %s: %s", self.path, calibration.sizes())

    def save(self, calibration: IntervalCalibration) -> bool:
        try:
            write_json_atomic(self.path, calibration.state())
        except OSError as err:
            log.warning("interval calibration not saved to %s: %s", self.path, err)
            return False
        return True
