"""Real processes for integration tests: Prometheus or VictoriaMetrics, exporter, estimator.

Each runs on a free loopback port with its data in a temporary directory and is stopped
when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


@dataclass
class Proc:
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        stop_all([self.proc])


def stop_all(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """Terminate the processes, last started first; kill those that do not exit."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_exporter(tmp: Path, *flags: str) -> Proc:
    port = free_port()
    log = tmp / f"exporter-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state.dir",
            str(tmp / f"exporter-state-{port}"),
            "--no-collector.rapl",
            *flags,
        ],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc)
    return Proc(proc, url, log)


def start_estimator(tmp: Path, prometheus_url: str, *flags: str, port: int | None = None) -> Proc:
    port = port or free_port()
    log = tmp / f"estimator-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "joulecast.estimator",
            "--prometheus.url",
            prometheus_url,
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--step.calibration-file",
            str(tmp / f"calibration-{port}.json"),
            *flags,
        ],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/metrics", proc)
    return Proc(proc, url, log)


def scrape_config(targets: dict[str, list[str]], interval: str) -> dict:
    return {
        "global": {"scrape_interval": interval},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [t.split("//")[-1] for t in urls]}]}
            for name, urls in targets.items()
        ],
    }


def start_tsdb(
    kind: str,
    tmp: Path,
    targets: dict[str, list[str]],
    interval: str = "1s",
    rule_files: list[str] | None = None,
) -> Proc:
    binary = {"prometheus": "prometheus", "victoriametrics": "victoria-metrics"}[kind]
    if shutil.which(binary) is None:
        pytest.skip(
            f"{binary} is not installed (Debian package {'prometheus' if kind == 'prometheus' else 'victoria-metrics'})"
        )
    port = free_port()
    cfg = scrape_config(targets, interval)
    if rule_files:
        cfg["rule_files"] = rule_files
        cfg["global"]["evaluation_interval"] = interval
    cfg_path = tmp / f"{kind}-{port}.yml"
    cfg_path.write_text(json.dumps(cfg))  # JSON is YAML
    data = tmp / f"{kind}-data-{port}"
    log = tmp / f"{kind}-{port}.log"
    if kind == "prometheus":
        args = [
            binary,
            f"--config.file={cfg_path}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
    else:
        args = [
            binary,
            f"-promscrape.config={cfg_path}",
            f"-storageDataPath={data}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-retentionPeriod=1d",
        ]
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + ("/-/ready" if kind == "prometheus" else "/health"), proc)
    return Proc(proc, url, log)


def prom_query(url: str, expr: str) -> list[dict]:
    data = urllib.parse.urlencode({"query": expr}).encode()
    with urllib.request.urlopen(url + "/api/v1/query", data=data, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def prom_query_range(
    url: str, expr: str, start: float, end: float, step: float = 1.0
) -> list[dict]:
    data = urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": step}
    ).encode()
    with urllib.request.urlopen(url + "/api/v1/query_range", data=data, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(fn, timeout: float = 30.0, interval: float = 0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r:.300})")


class Forwarder:
    """A loopback TCP forwarder the test opens and closes: the exporter 'away' and 'back'
    for the client while it keeps measuring."""

    def __init__(self, port: int, target: int) -> None:
        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                up = socket.create_connection(("127.0.0.1", target))
                pumps = [
                    threading.Thread(target=self.pump, args=(a, b), daemon=True)
                    for a, b in ((self.request, up), (up, self.request))
                ]
                for t in pumps:
                    t.start()
                for t in pumps:
                    t.join(60)

            @staticmethod
            def pump(a: socket.socket, b: socket.socket) -> None:
                try:
                    while data := a.recv(65536):
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (a, b):
                        with contextlib.suppress(OSError):
                            s.shutdown(socket.SHUT_RDWR)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Pipe)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_jobs(url: str, db_url: str, job_ids: list[str], gpus: int, epochs: int, epoch_s: float):
    """Client jobs on the exporter at ``url``, spread over its ``gpus``, each marking
    ``epochs`` epochs of ``epoch_s`` together, until the TSDB at ``db_url`` has them all."""
    import joulecast

    jobs = [joulecast.job(j, epochs=20, url=url, gpus=[i % gpus]) for i, j in enumerate(job_ids)]
    for job in jobs:
        job.register()
    for _ in range(epochs):
        time.sleep(epoch_s)
        for job in jobs:
            job.epoch_end()
    for job in jobs:
        job.flush()
    query = f"joulecast_job_epochs_completed == {epochs}"
    wait_for(lambda: len(prom_query(db_url, query)) == len(job_ids), timeout=30)
