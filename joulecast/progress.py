"""Step progress as the client counts it: which step markers to post, and when (pure).

A training loop reports its optimizer steps as often as it likes; :class:`StepCounter`
turns those counts into the markers the exporter needs: one at each end of a segment of
the step plan (a hundredth of it, :func:`joulecast.step.segment_ends`), timed where the
segment ended between two counts, or, without a plan, at most one a second. Standard
library only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from joulecast.step import segment_ends

UNPLANNED_INTERVAL_S = 1.0  # step markers of a run without a step plan, at most


@dataclass
class StepCounter:
    steps: int = 0  # optimizer steps done
    tokens: int | None = None
    time_s: float = field(default_factory=time.time)  # when ``steps`` was counted
    counted: bool = False  # a step was counted since the job registered
    unplanned_posted_s: float = 0.0

    def restart(self, now: float) -> None:
        """The job (re)registered in this process: counting starts again from ``now``."""
        self.time_s, self.counted = now, False

    def count(
        self, step: int, now: float, plan: int | None, tokens: int | None = None
    ) -> list[tuple[int, float]]:
        """Record ``step`` steps done at ``now``; returns the (step, time) markers due.

        The first count of a process starts where it is (a resumed run starts at its
        checkpoint, not at step 0); a count at or below the last one posts nothing.
        """
        prev, prev_t = self.steps, self.time_s
        if not self.counted:
            self.counted = True
            if prev == 0:
                prev = max(0, step - 1)
        self.steps, self.time_s = step, now
        if tokens is not None:
            self.tokens = tokens
        if step <= prev:
            return []
        if plan is None:
            if now - self.unplanned_posted_s < UNPLANNED_INTERVAL_S:
                return []
            self.unplanned_posted_s = now
            return [(step, now)]
        return [
            (end, prev_t + (now - prev_t) * (end - prev) / (step - prev))
            for end in segment_ends(prev, step, plan)
        ]
