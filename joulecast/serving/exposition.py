"""A faster encoder of collected metric families for the two formats Prometheus asks for.

prometheus_client renders the text and OpenMetrics formats correctly but validates and
escapes every label name of every sample: at 8 GPUs and 100 jobs (1,500 samples) that made
a scrape slower than node_exporter's (``bench/exporter_bench.py``). Our collectors only emit
valid names, so this encoder escapes label values alone; families
of the types it does not know (histograms, summaries, info, state sets) and exotic names
are handed back to prometheus_client. ``tests/joulecast/test_exposition.py`` parses both
outputs and requires the same samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

_SIMPLE = {"gauge", "counter", "unknown"}
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _value(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v != v:
        return "NaN"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{v:.1f}"
    return repr(float(v))


def _escape(v: str) -> str:
    if "\\" in v or '"' in v or "\n" in v:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return v


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _simple(metric: Metric) -> bool:
    return (
        metric.type in _SIMPLE
        and bool(_NAME.match(metric.name))
        and all(s.timestamp is None and s.exemplar is None for s in metric.samples)
    )


class _One(Collector):
    """A single family, for the library's encoder."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Metric]:
        yield self._metric


def encode_text(families: Iterable[Metric]) -> bytes:
    out: list[str] = []
    for m in families:
        if not _simple(m):
            out.append(generate_latest(_One(m)).decode())
            continue
        name = m.name + "_total" if m.type == "counter" else m.name
        mtype = "untyped" if m.type == "unknown" else m.type
        doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {mtype}\n")
        out.extend(
            f"{s.name}{_labels(s.labels)} {_value(s.value)}\n"
            for s in m.samples
            if not s.name.endswith("_created")
        )
        created = [s for s in m.samples if s.name.endswith("_created")]
        if created:
            out.append(f"# HELP {m.name}_created {doc}\n# TYPE {m.name}_created gauge\n")
            out.extend(f"{s.name}{_labels(s.labels)} {_value(s.value)}\n" for s in created)
    return "".join(out).encode()


def encode_openmetrics(families: Iterable[Metric]) -> bytes:
    out: list[str] = []
    for m in families:
        if not _simple(m):
            text = generate_openmetrics(_One(m)).decode()
            out.append(text[: -len("# EOF\n")] if text.endswith("# EOF\n") else text)
            continue
        doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        out.append(f"# HELP {m.name} {doc}\n# TYPE {m.name} {m.type}\n")
        if m.unit:
            out.append(f"# UNIT {m.name} {m.unit}\n")
        out.extend(f"{s.name}{_labels(s.labels)} {_value(s.value)}\n" for s in m.samples)
    out.append("# EOF\n")
    return "".join(out).encode()


def encoder_for(content_type: str):
    """The fast encoder for a negotiated content type, or None for the library's."""
    if content_type.startswith("application/openmetrics-text; version=1.0.0"):
        return encode_openmetrics
    if content_type.startswith("text/plain; version=0.0.4"):
        return encode_text
    return None
