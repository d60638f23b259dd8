"""Both daemons' serving conventions: TLS and basic auth from --web.config.file, gzip,
build info and process metrics, promtool-clean output, clear start-up errors."""

from __future__ import annotations

import base64
import gzip
import http.client
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.stack import free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made here."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            f"{name}.crt",
        )
    return d


def web_config(d: Path, client_auth: str = "NoClientCert", users: bool = True) -> Path:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    lines = [
        "tls_server_config:",
        "  cert_file: server.crt",
        "  key_file: server.key",
        f"  client_auth_type: {client_auth}",
        "  client_ca_file: ca.crt",
    ]
    if users:
        lines += ["basic_auth_users:", f"  prometheus: '{hashed}'"]
    path = d / f"web-{client_auth}-{users}.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def get(url: str, ctx: ssl.SSLContext | None = None, auth: str | None = None, **headers):
    req = urllib.request.Request(url, headers=headers)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def client_ctx(pki: Path, cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(pki / "client.crt", pki / "client.key")
    return ctx


def test_exporter_tls_and_basic_auth_guard_every_path(make_exporter, pki):
    exp = make_exporter("--backend", "simulated", "--web.config.file", str(web_config(pki)))
    url = exp.url
    assert url.startswith("https://")
    ctx = client_ctx(pki)
    for path in ("/metrics", "/healthz", "/api/v1/jobs", "/"):
        assert get(url + path, ctx, "prometheus:s3cret")[0] == 200, path
        status, headers, body = get(url + path, ctx, "prometheus:wrong")
        assert status == 401 and b"error" in body
        assert get(url + path, ctx)[0] == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP: no answer
        urllib.request.urlopen(url.replace("https://", "http://") + "/metrics", timeout=3).read()


def test_client_certificates_when_required(make_exporter, pki):
    cfg = web_config(pki, "RequireAndVerifyClientCert", users=False)
    exp = make_exporter("--backend", "simulated", "--web.config.file", str(cfg))
    assert get(exp.url + "/healthz", client_ctx(pki, cert=True))[0] == 200
    with pytest.raises((ssl.SSLError, OSError)):
        get(exp.url + "/healthz", client_ctx(pki, cert=False))


def test_estimator_behind_tls_and_auth_with_its_own_client_options(pki, tmp_path):
    """The estimator serves TLS + auth and reads a Prometheus behind TLS with a private CA."""
    from joulecast.estimator.cli import build, build_parser

    (tmp_path / "pw").write_text("unused\n")
    args = build_parser().parse_args(
        [
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            str(web_config(pki)),
            "--prometheus.url",
            "https://127.0.0.1:9",
            "--prometheus.tls.ca-file",
            str(pki / "ca.crt"),
            "--prometheus.username",
            "u",
            "--prometheus.password-file",
            str(tmp_path / "pw"),
            "--no-pre.enabled",
        ]
    )
    service = build(args)
    service.server.serve_in_thread()
    try:
        url = service.url
        assert url.startswith("https://")
        ctx = client_ctx(pki)
        assert get(url + "/metrics", ctx)[0] == 401
        status, _, body = get(url + "/metrics", ctx, "prometheus:s3cret")
        assert status == 200 and b"joulecast_build_info{" in body
        status, headers, body = get(url + "/", ctx, "prometheus:s3cret")
        assert status == 200 and b"joulecast estimator" in body  # a landing page, as the exporter
        assert service.estimator.client.config.password == "unused"
        assert service.estimator.client.config.ca_file == str(pki / "ca.crt")
    finally:
        service.server.shutdown()
        service.server.server_close()


def test_gzip_build_info_and_process_metrics(make_exporter):
    exp = make_exporter("--backend", "simulated")
    status, headers, body = get(exp.url + "/metrics", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert 'joulecast_build_info{daemon="exporter"' in text
    assert "process_resident_memory_bytes" in text and "python_info" in text
    status, headers, body = get(
        exp.url + "/metrics", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool is not installed")
def test_promtool_check_metrics_is_clean(make_exporter):
    exp = make_exporter("--backend", "simulated", "--simulated.gpus", "2")
    import joulecast

    with joulecast.job("lint", epochs=2, url=exp.url, gpus=[0], features={"batch_size": 8}) as j:
        j.epoch_end({"loss": 1.0})
    exp.sampler.sample_once()
    text = get(exp.url + "/metrics")[2]
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_keep_alive_answers_in_one_segment(make_exporter):
    """Headers and body of a small answer leave in one write: on a kept-alive connection
    nothing waits for a delayed ACK (before, each such request took about 44 ms)."""
    import socket

    exp = make_exporter("--backend", "simulated")
    host, port = exp.url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        for _ in range(20):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(65536)  # one segment on loopback: the whole answer at once
            head, _, body = first.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            assert head.startswith(b"HTTP/1.1 200") and len(body) == length


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60
    )


def test_start_up_errors_say_what_is_wrong(tmp_path):
    bad = run_cli("joulecast.estimator", "--prometheus.url", "localhost:9090")
    assert bad.returncode == 2 and "http://" in bad.stderr
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(
            "joulecast.exporter",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state.dir",
            str(tmp_path / "s"),
            "--backend",
            "simulated",
        )
    assert busy.returncode == 1 and f"127.0.0.1:{port}" in busy.stderr
    cfg = tmp_path / "web.yml"
    cfg.write_text("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    nocert = run_cli(
        "joulecast.exporter",
        "--web.config.file",
        str(cfg),
        "--state.dir",
        str(tmp_path / "s"),
        "--web.listen-address",
        f"127.0.0.1:{free_port()}",
        "--backend",
        "simulated",
    )
    assert nocert.returncode == 1 and "cert_file" in nocert.stderr


def test_former_flag_spellings_still_work_with_a_warning(tmp_path):
    from joulecast.exporter.cli import build_parser

    args = build_parser().parse_args(["--simulated-gpus", "3", "--state-dir", str(tmp_path)])
    assert args.simulated_gpus == 3 and args.state_dir == str(tmp_path)
    assert "--simulated-gpus" not in build_parser().format_help()
