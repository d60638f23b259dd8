"""Durable job state: one SQLite file in the state directory.

Every acknowledged marker is committed with ``synchronous=FULL`` before the API answers,
so a ``kill -9`` loses no marker. Energy counters between markers are checkpointed every
few seconds; after a restart a job's counter resumes from its last checkpoint (energy used
while the exporter was down is not measured and not invented).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from joulecast.exporter.jobs.model import JobRecord
from joulecast.exporter.jobs.rows import decode_epoch, decode_job
from joulecast.serving.files import FileRejections

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    gpus TEXT NOT NULL,
    created_at REAL NOT NULL,
    epochs_planned INTEGER NOT NULL,
    epochs_completed INTEGER NOT NULL,
    energy REAL NOT NULL,
    idle_energy REAL NOT NULL,
    epoch_end_energy REAL NOT NULL,
    epoch_end_ts REAL,
    finished_at REAL,
    metrics TEXT NOT NULL,
    utilization_seconds REAL NOT NULL DEFAULT 0,
    busy_seconds REAL NOT NULL DEFAULT 0,
    outcome TEXT,
    extra TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    job_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    ts REAL NOT NULL,
    energy REAL NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch)
);
CREATE TABLE IF NOT EXISTS rejected (
    job_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    job_row TEXT NOT NULL,
    epoch_rows TEXT NOT NULL,
    rejected_at REAL NOT NULL
);
"""


log = logging.getLogger("joulecast.exporter")


_EXTRA_FLOATS = (
    "budget_projected_joules",
    "step_end_energy_joules",
    "step_end_timestamp",
    "last_alive",
    "last_heartbeat",
    "gone_since",
)


def _extra(raw: str | None) -> dict:
    """The ``extra`` column as JobRecord fields; what is missing or malformed is left out."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict = {}
    for name in ("steps_planned", "steps_completed", "tokens_completed", "budget_crossings"):
        if isinstance(data.get(name), int) and not isinstance(data.get(name), bool):
            out[name] = data[name]
    if isinstance(data.get("budget_over"), bool):
        out["budget_over"] = data["budget_over"]
    for name in _EXTRA_FLOATS:
        if isinstance(data.get(name), (int, float)):
            out[name] = float(data[name])
    summary = data.get("summary")
    if isinstance(summary, dict):
        out["summary"] = {
            str(k): float(v) for k, v in summary.items() if isinstance(v, (int, float))
        }
    procs = data.get("processes")
    if isinstance(procs, list):
        out["processes"] = tuple(
            (int(p[0]), float(p[1]))
            for p in procs
            if isinstance(p, list) and len(p) == 2 and all(isinstance(x, (int, float)) for x in p)
        )
    return out


class StateStoreError(RuntimeError):
    """The state directory cannot be used (permissions, corruption)."""


class JobStore:
    """The state file. One that SQLite cannot read (a smashed page, not a database) is set
    aside with its WAL and a new one started; a job row that does not decode is moved to
    the ``rejected`` table with its epochs and the reason, and the other jobs load."""

    def __init__(self, state_dir: Path, rejections: FileRejections | None = None) -> None:
        self.rejections = rejections or FileRejections()
        self.path = state_dir / "jobs.sqlite"
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except sqlite3.DatabaseError as err:
            self._set_aside(str(err))
            try:
                self._db = self._open()
            except (OSError, sqlite3.Error) as again:
                raise StateStoreError(f"cannot use state directory {state_dir}: {again}") from again
        except (OSError, sqlite3.Error) as err:
            raise StateStoreError(f"cannot use state directory {state_dir}: {err}") from err
        self._lock = threading.Lock()
        self.write_failures = 0
        self.last_failure: tuple[float, str] | None = None  # (wall time, message)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            self._db = db
            self._migrate()
            db.execute("SELECT count(*) FROM jobs").fetchone()
            db.execute("SELECT count(*) FROM epochs").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _set_aside(self, reason: str) -> None:
        """Move the unreadable database (and its WAL and shared memory) out of the way."""
        self.rejections.set_aside(self.path, "state", f"{reason}; job state starts empty")
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(
                    side.with_name(f"{side.name}.rejected-{time.strftime('%Y%m%dT%H%M%S')}")
                )

    def _write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``work`` in one transaction. On failure (disk full, I/O error) roll back if a
        transaction is still open, count it, keep the real error, and re-raise it."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                work(self._db)
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error as rollback_err:
                        log.debug("rollback after %s failed too: %s", err, rollback_err)
                self.write_failures += 1
                self.last_failure = (time.time(), f"{type(err).__name__}: {err}")
                log.error("job state could not be written to %s: %s", self.path, err)
                raise
            self.last_failure = None

    def healthy(self) -> tuple[bool, str]:
        """False while the last write failed (cleared by the next successful one)."""
        if self.last_failure is None:
            return True, "job state writable"
        return False, f"cannot persist job state: {self.last_failure[1]}"

    def _migrate(self) -> None:
        """State directories written before the ``outcome`` column get it (NULL: finished),
        and before the ``extra`` column (steps, liveness, summary as JSON) that one."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "outcome" not in columns:
            self._db.execute("ALTER TABLE jobs ADD COLUMN outcome TEXT")
        if "extra" not in columns:
            self._db.execute("ALTER TABLE jobs ADD COLUMN extra TEXT")

    def _row(self, r: JobRecord) -> tuple:
        return (
            r.job_id,
            json.dumps(r.spec.as_dict()),
            json.dumps(list(r.gpus)),
            r.created_at,
            r.epochs_planned,
            r.epochs_completed,
            r.energy_joules,
            r.idle_energy_joules,
            r.epoch_end_energy_joules,
            r.epoch_end_timestamp,
            r.finished_at,
            json.dumps(r.last_metrics),
            r.utilization_seconds,
            r.busy_seconds,
            r.outcome,
            json.dumps(r.extra()),
        )

    def save(self, record: JobRecord, epoch_metrics: dict[str, float] | None = None) -> None:
        """Write one job (and, after an epoch marker, its epoch row) durably."""

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                self._row(record),
            )
            if epoch_metrics is not None and record.epoch_end_timestamp is not None:
                db.execute(
                    "INSERT OR REPLACE INTO epochs VALUES (?,?,?,?,?)",
                    (
                        record.job_id,
                        record.epochs_completed,
                        record.epoch_end_timestamp,
                        record.epoch_end_energy_joules,
                        json.dumps(epoch_metrics),
                    ),
                )

        self._write(work)

    def checkpoint(self, records: Iterable[JobRecord]) -> None:
        """Persist the energy counters of many jobs in one transaction."""
        rows = [
            (r.energy_joules, r.idle_energy_joules, r.utilization_seconds, r.busy_seconds, r.job_id)
            for r in records
        ]
        if rows:
            self._write(
                lambda db: db.executemany(
                    "UPDATE jobs SET energy=?, idle_energy=?, utilization_seconds=?, busy_seconds=?"
                    " WHERE job_id=?",
                    rows,
                )
            )

    def delete(self, job_ids: list[str]) -> None:
        if not job_ids:
            return

        def work(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM jobs WHERE job_id=?", [(j,) for j in job_ids])
            db.executemany("DELETE FROM epochs WHERE job_id=?", [(j,) for j in job_ids])

        self._write(work)

    def truncate_epochs(self, job_id: str, after: int) -> None:
        """Forget the epochs after ``after`` (a resumed run trains them again)."""
        self._write(
            lambda db: db.execute("DELETE FROM epochs WHERE job_id=? AND epoch>?", (job_id, after))
        )

    def epoch(self, job_id: str, epoch: int) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ts, energy, metrics FROM epochs WHERE job_id=? AND epoch=?",
                (job_id, epoch),
            ).fetchone()
        if row is None:
            return None
        try:
            return decode_epoch(epoch, *row)
        except ValueError as err:
            log.warning("%s: epoch %d of job %s is unreadable: %s", self.path, epoch, job_id, err)
            return None

    def epochs(self, job_id: str, offset: int = 0, limit: int = -1) -> tuple[list[dict], int]:
        """A page of a job's epochs, in order, and how many it has; rows that do not decode
        are left out of the page with a warning."""
        with self._lock:
            total = self._db.execute(
                "SELECT count(*) FROM epochs WHERE job_id=?", (job_id,)
            ).fetchone()[0]
            rows = self._db.execute(
                "SELECT epoch, ts, energy, metrics FROM epochs WHERE job_id=? ORDER BY epoch"
                " LIMIT ? OFFSET ?",
                (job_id, limit, offset),
            ).fetchall()
        out = []
        for row in rows:
            try:
                out.append(decode_epoch(*row))
            except ValueError as err:
                log.warning("%s: an epoch row of job %s is unreadable: %s", self.path, job_id, err)
        return out, total

    def load(self) -> list[JobRecord]:
        """Every stored job that decodes. An unreadable database is set aside (job state
        starts empty); a job row that does not decode is moved to ``rejected``."""
        try:
            with self._lock:
                rows = self._db.execute("SELECT * FROM jobs").fetchall()
        except sqlite3.DatabaseError as err:
            with self._lock:
                self._db.close()
                self._set_aside(str(err))
                self._db = self._open()
            return []
        out = []
        for row in rows:
            try:
                out.append(decode_job(row, _extra(row[15] if len(row) > 15 else None)))
            except (ValueError, TypeError) as err:
                self._reject(row, str(err))
        return out

    def _reject(self, row: tuple, reason: str) -> None:
        job_id = str(row[0])
        log.warning(
            "%s: job %r is unreadable (%s); moved to its rejected table",
            self.path,
            job_id[:200],
            reason,
        )

        def work(db: sqlite3.Connection) -> None:
            epochs = db.execute("SELECT * FROM epochs WHERE job_id=?", (row[0],)).fetchall()
            db.execute(
                "INSERT INTO rejected VALUES (?,?,?,?,?)",
                (job_id, reason, repr(row), repr(epochs), time.time()),
            )
            db.execute("DELETE FROM jobs WHERE job_id=?", (row[0],))
            db.execute("DELETE FROM epochs WHERE job_id=?", (row[0],))

        self._write(work)
        self.rejections.count("state_row")

    def close(self) -> None:
        with self._lock:
            self._db.close()
