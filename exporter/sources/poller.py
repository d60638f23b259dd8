"""The poller thread: reads every job source in turn, at an interval or when woken.

A prolog or epilog wakes it (:meth:`SourcePoller.wake`), so a scheduler's job is seen
when it starts and ends, not one interval later. A source that fails is logged once per
change of error and counted; the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from joulecast.exporter.sources.base import SourceError
from joulecast.exporter.sources.sync import SourceSync

log = logging.getLogger("joulecast.exporter")


@dataclass
class PollStats:
    polls: int = 0
    errors: int = 0
    last_success: float | None = None
    last_duration_s: float = 0.0
    last_error: str = ""


@dataclass
class SourcePoller:
    syncs: list[SourceSync]
    interval_s: float = 15.0
    stats: dict[str, PollStats] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> list[str]:
        return [s.source.name for s in self.syncs]

    def wake(self, name: str) -> bool:
        """Poll soon (a prolog or epilog says a job starts or ends); False: no such source."""
        if name not in self.names():
            return False
        self._wake.set()
        return True

    def poll_once(self) -> None:
        with self._lock:  # one poll at a time: the thread, or a test calling it
            for sync in self.syncs:
                self._poll(sync)

    def _poll(self, sync: SourceSync) -> None:
        st = self.stats.setdefault(sync.source.name, PollStats())
        start = time.monotonic()
        try:
            sync.apply(sync.source.poll())
        except SourceError as err:
            st.errors += 1
            if str(err) != st.last_error:
                log.warning("job source %s: %s", sync.source.name, err)
            st.last_error = str(err)
        else:
            st.last_success, st.last_error = time.time(), ""
        st.polls += 1
        st.last_duration_s = time.monotonic() - start

    def start(self) -> None:
        if self.syncs and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="job-sources", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        follow_up = False
        while not self._stop.is_set():
            self._wake.clear()
            self.poll_once()
            # after a wake, once more 2 s later: an epilog's job is COMPLETING until the
            # epilog exits, and only then has its final state
            woken = self._wake.wait(2.0 if follow_up else self.interval_s)
            follow_up = woken
            if woken:
                self._stop.wait(0.2)
