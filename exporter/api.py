"""The job marker API (JSON over HTTP), independent of the HTTP server plumbing.

    POST /api/v1/jobs                      register a job      -> 201 (200: continued)
    POST /api/v1/jobs/{job_id}/epochs      mark an epoch end   -> 200
    POST /api/v1/jobs/{job_id}/steps       mark step progress  -> 200
    POST /api/v1/jobs/{job_id}/heartbeat   the client is alive -> 200
    POST /api/v1/jobs/{job_id}/budget      the client's projection crossed its budget -> 200
    POST /api/v1/jobs/{job_id}/finish      finish the job      -> 200
    GET  /api/v1/jobs                      list jobs           -> 200
    GET  /api/v1/jobs/{job_id}             one job with a page of its epochs -> 200
         ?epochs.offset=0&epochs.limit=1000  (at most 10,000 a page; ``epochs_page``
         says the total and the next offset)
    POST /api/v1/sources/{source}/poll     poll a job source now (a prolog or epilog) -> 202

Every bad input is a 4xx with ``{"error": "..."}``.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joulecast.exporter.jobs.model import JobError
from joulecast.exporter.jobs.registry import JobRegistry
from joulecast.schema import (
    SchemaError,
    parse_budget_event,
    parse_epoch_marker,
    parse_finish,
    parse_job_spec,
    parse_step_marker,
    validate_job_id,
)

log = logging.getLogger("joulecast.exporter")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any]
    route: str


_ACTIONS = ("epochs", "steps", "heartbeat", "budget", "finish")
EPOCH_PAGE = 1000
MAX_EPOCH_PAGE = 10_000


def _page(query: str) -> tuple[int, int]:
    """(offset, limit) of ``epochs.offset`` and ``epochs.limit``; SchemaError if bad."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - {"epochs.offset", "epochs.limit"})
    if unknown:
        raise SchemaError(f"unknown query parameter(s): {', '.join(unknown)[:200]}")

    def one(name: str, default: int, hi: int) -> int:
        values = params.get(name, [str(default)])
        v = values[-1]
        if len(values) > 1 or not (v.isascii() and v.isdigit()) or len(v) > 12:
            raise SchemaError(f"'{name}' must be one non-negative integer")
        if int(v) > hi:
            raise SchemaError(f"'{name}' must be at most {hi}")
        return int(v)

    return one("epochs.offset", 0, 10**9), one("epochs.limit", EPOCH_PAGE, MAX_EPOCH_PAGE)


def _error(status: int, message: str, route: str) -> ApiResponse:
    return ApiResponse(status, {"error": message}, route)


class MarkerApi:
    def __init__(
        self,
        registry: JobRegistry,
        token: str | None = None,
        wake: Callable[[str], bool] | None = None,
    ) -> None:
        self._registry = registry
        self._token = token or None
        self._wake = wake

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
        given = headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode())

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> ApiResponse:
        path, _, query = path.partition("?")
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["api", "v1", "sources"]:
            return self._source(method, parts[3:], headers)
        if parts[:3] != ["api", "v1", "jobs"]:
            return _error(404, f"no such endpoint: {path[:200]}", "other")
        route = (
            "/api/v1/jobs"
            + ("/{job_id}" if len(parts) > 3 else "")
            + (f"/{parts[4]}" if len(parts) == 5 and parts[4] in _ACTIONS else "")
        )
        if not self._authorized(headers):
            return _error(401, "missing or wrong bearer token", route)
        try:
            return self._dispatch(method, parts[3:], body, route, query)
        except (SchemaError, JobError) as err:
            status = getattr(err, "status", 400)
            return _error(status, str(err), route)
        except sqlite3.Error as err:
            log.error("job state could not be saved: %s", err)
            return _error(503, "job state could not be saved; the marker was not recorded", route)

    def _source(self, method: str, rest: list[str], headers: Mapping[str, str]) -> ApiResponse:
        route = "/api/v1/sources/{source}/poll"
        if len(rest) != 2 or rest[1] != "poll":
            return _error(404, "no such endpoint", "other")
        if not self._authorized(headers):
            return _error(401, "missing or wrong bearer token", route)
        if method != "POST":
            return _error(405, f"{method} is not allowed here", route)
        if self._wake is None or not self._wake(rest[0]):
            return _error(404, f"no job source '{rest[0][:64]}' is enabled", route)
        return ApiResponse(202, {"source": rest[0], "polling": True}, route)

    @staticmethod
    def _json(body: bytes) -> Any:
        if not body:
            raise SchemaError("request body must be a JSON object")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise SchemaError(f"request body is not valid JSON: {err}") from err
        except RecursionError:
            raise SchemaError("request body is nested too deeply") from None

    def _dispatch(
        self, method: str, rest: list[str], body: bytes, route: str, query: str = ""
    ) -> ApiResponse:
        reg = self._registry
        if not rest:
            if method == "GET":
                return ApiResponse(200, {"jobs": [r.public() for r in reg.snapshot()]}, route)
            if method == "POST":
                record, created = reg.register(parse_job_spec(self._json(body)))
                return ApiResponse(201 if created else 200, record.public(), route)
            return _error(405, f"{method} is not allowed here", route)
        job_id = validate_job_id(rest[0])
        if len(rest) == 1:
            if method != "GET":
                return _error(405, f"{method} is not allowed here", route)
            offset, limit = _page(query)
            record = reg.get(job_id)
            epochs, total = reg.epoch_page(job_id, offset, limit)
            following = offset + limit if offset + limit < total else None
            page = {"offset": offset, "limit": limit, "total": total, "next_offset": following}
            return ApiResponse(
                200, {**record.public(), "epochs": epochs, "epochs_page": page}, route
            )
        if len(rest) == 2 and method == "POST":
            if rest[1] == "epochs":
                marker = parse_epoch_marker(self._json(body))
                record = reg.mark_epoch(job_id, marker)
                log.debug(
                    "job %s epoch %d recorded: %.1f J at %s",
                    job_id,
                    marker.epoch,
                    record.epoch_end_energy_joules,
                    record.epoch_end_timestamp,
                )
                return ApiResponse(200, record.public(), route)
            if rest[1] == "steps":
                record = reg.mark_steps(job_id, parse_step_marker(self._json(body)))
                return ApiResponse(200, record.public(), route)
            if rest[1] == "heartbeat":
                record = reg.heartbeat(job_id)
                return ApiResponse(200, {"job_id": job_id, "state": record.state()}, route)
            if rest[1] == "budget":
                record = reg.note_budget(job_id, parse_budget_event(self._json(body)))
                return ApiResponse(200, record.public(), route)
            if rest[1] == "finish":
                marker = parse_finish(self._json(body) if body.strip() else None)
                return ApiResponse(200, reg.finish(job_id, marker).public(), route)
        if len(rest) == 2 and rest[1] in _ACTIONS:
            return _error(405, f"{method} is not allowed here", route)
        return _error(404, "no such endpoint", route)
