"""``/api/v1/queue``: queued jobs over HTTP, validated like the exporter's marker API.

POST   /api/v1/queue            a queued job spec -> 201 (200 when it replaced one)
GET    /api/v1/queue            the queue with each job's latest forecasts
DELETE /api/v1/queue/{job_id}   -> 200, 404 when not queued
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from joulecast.estimator.pre.model import Forecast
from joulecast.estimator.queue.store import QueueStore, parse_queued_job
from joulecast.schema import SchemaError, validate_job_id


class QueueApi:
    def __init__(
        self,
        store: QueueStore,
        forecasts: Callable[[], dict[str, list[Forecast]]],
        token: str | None = None,
    ) -> None:
        self.store = store
        self._forecasts = forecasts
        self._token = token or None

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if self._token is not None and not hmac.compare_digest(
            headers.get("Authorization", "").encode(), f"Bearer {self._token}".encode()
        ):
            return 401, {"error": "missing or wrong bearer token"}
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        try:
            if parts == ["api", "v1", "queue"]:
                if method == "GET":
                    queued = self._forecasts()
                    return 200, {
                        "jobs": [
                            {
                                **j.as_dict(),
                                "forecasts": [asdict(f) for f in queued.get(j.job_id, [])],
                            }
                            for j in self.store.jobs()
                        ],
                        "invalid_files": self.store.invalid_files,
                    }
                if method == "POST":
                    try:
                        payload = json.loads(body.decode("utf-8")) if body else None
                    except (UnicodeDecodeError, ValueError) as err:
                        return 400, {"error": f"request body is not valid JSON: {err}"}
                    except RecursionError:
                        return 400, {"error": "request body is nested too deeply"}
                    job = parse_queued_job(payload)
                    created = self.store.add(job)
                    return (201 if created else 200), job.as_dict()
                return 405, {"error": f"{method} is not allowed here"}
            if len(parts) == 4 and parts[:3] == ["api", "v1", "queue"]:
                if method != "DELETE":
                    return 405, {"error": f"{method} is not allowed here"}
                job_id = validate_job_id(parts[3])
                if self.store.remove(job_id):
                    return 200, {"job_id": job_id, "removed": True}
                return 404, {"error": f"job '{job_id}' is not queued"}
        except SchemaError as err:
            return 400, {"error": str(err)}
        except OverflowError as err:
            return 429, {"error": str(err)}
        except OSError as err:
            return 503, {
                "error": f"the queue could not be written; nothing was queued ({err.strerror or err})"
            }
        return 404, {"error": "no such endpoint"}
