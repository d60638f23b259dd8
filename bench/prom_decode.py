"""Decoding the Prometheus API's answers: the typed decoder (msgspec) against the checked one
(json.loads, then every label and value checked), side by side on the same bytes.

    python bench/prom_decode.py                  # 60,000 instant samples, 20,000 series of 8 points
    python bench/prom_decode.py --series 6000    # a shard's share

The answers are built as a store answers the estimator's reads: an instant answer like an
incremental cycle's live read (six series per job, the exporter's labels) and a range answer
like a window of raw checkpoints. Each decoder runs ``--rounds`` times in turn on the same
bytes; the best round of each is kept and their ratio reported. Both must give the same
samples. Writes bench/results/prom_decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.estimator.prometheus import decode as dec  # noqa: E402

NAMES = (
    "running",
    "energy_joules_total",
    "epochs_completed",
    "epochs_planned",
    "epoch_end_energy_joules",
    "epoch_end_timestamp_seconds",
)


def _metric(i: int, name: str) -> dict[str, str]:
    return {
        "__name__": f"joulecast_job_{name}",
        "instance": f"node-{i % 10}",
        "job": f"joulecast-exporter-{i % 10}",
        "job_bucket": str(i % 1024),
        "job_id": f"j{i:06d}-1",
    }


def instant_answer(n: int) -> bytes:
    result = [
        {"metric": _metric(i // len(NAMES), NAMES[i % len(NAMES)]), "value": [1.8e9, f"{i * 1.5}"]}
        for i in range(n)
    ]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def range_answer(n: int, points: int) -> bytes:
    result = [
        {
            "metric": _metric(i // 3, NAMES[2 + i % 3]),
            "values": [[1.8e9 + 15 * k, f"{i + k * 0.5}"] for k in range(points)],
        }
        for i in range(n)
    ]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    ).encode()


def checked(raw: bytes, expect: str) -> dec.Answer:
    data = dec._body(raw, 200, "")
    return dec._checked_instant(data) if expect == "vector" else dec._checked_range(data)


def typed(raw: bytes, expect: str) -> dec.Answer:
    out = dec._typed(raw, expect)
    assert out is not None, "the typed decoder refused a well-formed answer"
    return out


def best(raw: bytes, expect: str, rounds: int) -> dict[str, float]:
    times = {"checked": [], "typed": []}
    for _ in range(rounds):
        for name, f in (("checked", checked), ("typed", typed)):
            t0 = time.perf_counter()
            f(raw, expect)
            times[name].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def same(a: dec.Answer, b: dec.Answer) -> bool:
    return [(s.labels, s.value, s.timestamp) for s in a.samples] == [
        (s.labels, s.value, s.timestamp) for s in b.samples
    ] and [(s.labels, s.points) for s in a.series] == [(s.labels, s.points) for s in b.series]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=60_000, help="instant samples")
    ap.add_argument("--series", type=int, default=20_000, help="range series")
    ap.add_argument("--points", type=int, default=8, help="points per range series")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "prom_decode.json")
    args = ap.parse_args()
    rows = []
    for kind, expect, raw in (
        ("instant", "vector", instant_answer(args.samples)),
        ("range", "matrix", range_answer(args.series, args.points)),
    ):
        if not same(checked(raw, expect), typed(raw, expect)):
            raise SystemExit(f"{kind}: the decoders disagree")
        t = best(raw, expect, args.rounds)
        rows.append(
            {
                "answer": kind,
                "mib": len(raw) / 2**20,
                "checked_s": t["checked"],
                "typed_s": t["typed"],
                "speedup": t["checked"] / t["typed"],
            }
        )
        print(
            f"{kind:>8} {len(raw) / 2**20:6.1f} MiB  checked {t['checked']:.3f} s  "
            f"typed {t['typed']:.3f} s  x{t['checked'] / t['typed']:.1f}"
        )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join(["python", "bench/prom_decode.py", *sys.argv[1:]]),
        "rounds": args.rounds,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
