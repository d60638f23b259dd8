"""Basic auth: parsing, long passwords, the decoy for unknown users, the cache, the throttle;
and, through a real server, that refusing a known and an unknown user takes the same time."""

from __future__ import annotations

import base64
import http.client
import statistics
import time

import bcrypt
import pytest

from joulecast.serving.auth import BasicAuth, Throttle, parse_basic
from joulecast.serving.limits import ServerLimits
from joulecast.serving.server import ServiceServer


def header(user: str, password: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_scheme_is_case_insensitive_and_bad_headers_are_refused():
    assert parse_basic(header("u", "p:w", "basic")) == ("u", "p:w")
    assert parse_basic(header("u", "p", "BASIC")) == ("u", "p")
    for bad in (
        None,
        "",
        "Bearer x",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ):
        assert parse_basic(bad) is None


def test_a_password_past_72_bytes_is_cut_as_go_does_not_refused():
    long = "p" * 100
    auth = BasicAuth({"u": bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()})
    assert auth.check(header("u", long))
    assert auth.check(header("u", "p" * 72))  # what bcrypt sees is the same
    assert not auth.check(header("u", "p" * 71))


def test_unknown_users_run_bcrypt_against_a_decoy_of_the_same_cost_and_never_pass():
    auth = BasicAuth({"u": bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode()})
    attempt = auth.assess(header("nobody", "pw"))
    assert not isinstance(attempt, bool)
    assert attempt.hashed.split(b"$")[2] == b"05"
    assert not auth.verify(attempt)
    assert not auth.check(header("nobody", "pw"))


def test_a_verified_pair_is_remembered_a_wrong_one_is_not():
    auth = BasicAuth({"u": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()})
    assert not isinstance(auth.assess(header("u", "pw")), bool)
    assert auth.check(header("u", "pw"))
    assert auth.assess(header("u", "pw")) is True
    assert auth.check(header("u", "nope")) is False
    assert auth.assess(header("u", "nope")) is not True


def test_the_throttle_bounds_each_client_all_clients_and_checks_in_flight():
    now = [0.0]
    t = Throttle(concurrency=1, rate_per_client=1.0, rate_total=3.0, clock=lambda: now[0])
    assert [t.admit("a") for _ in range(6)] == [True] * 4 + [False] * 2  # burst 4, then none
    assert not t.admit("b")  # 4 in flight: the cap of concurrency * 4
    for _ in range(4):
        t.done()
    assert [t.admit("b") for _ in range(5)] == [True] * 4 + [False]
    for _ in range(4):
        t.done()
    assert [t.admit("c") for _ in range(4)] == [True] * 4  # the last 4 of the total's 12
    for _ in range(4):
        t.done()
    assert not t.admit("d")  # d has tokens of its own, all clients together have none
    now[0] += 1.0  # one second later: one more token for a, three for all
    assert t.admit("a")
    assert not t.admit("a")


@pytest.fixture
def guarded():
    users = {"known": bcrypt.hashpw(b"right", bcrypt.gensalt(6)).decode()}
    srv = ServiceServer(
        ("127.0.0.1", 0),
        metrics=lambda accept: (b"m 1\n", "text/plain; version=0.0.4"),
        health=lambda: (True, {"status": "ok"}),
        auth=BasicAuth(users),
        limits=ServerLimits(
            auth_rate_per_client=1000, auth_rate_total=1000, auth_failure_delay_s=0
        ),
    )
    srv.serve_in_thread()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_refusing_a_known_and_an_unknown_user_takes_the_same_time(guarded):
    conn = http.client.HTTPConnection("127.0.0.1", guarded.server_address[1], timeout=10)

    def refuse(user: str) -> float:
        started = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Authorization": header(user, "wrong")})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401
        return time.perf_counter() - started

    known, unknown = [], []
    for _ in range(60):  # interleaved, so drift in the machine's load hits both alike
        known.append(refuse("known"))
        unknown.append(refuse("nobody"))
    ratio = statistics.median(known) / statistics.median(unknown)
    print(
        f"median refusal: known {statistics.median(known) * 1e3:.2f} ms, "
        f"unknown {statistics.median(unknown) * 1e3:.2f} ms (ratio {ratio:.2f})"
    )
    assert 0.8 < ratio < 1.25
