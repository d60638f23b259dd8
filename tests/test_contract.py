"""Contract between the parts: every metric name that the estimator's queries, the
recording and alert rules and the dashboards spell is one that the exporter or the
estimator really publishes (or a recording rule defines), and the job features PRE reads
are labels of the exporter's job info series."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import joulecast
from joulecast.estimator.pre.model import JOB_COLUMNS
from joulecast.estimator.prometheus import queries
from tests.conftest import scrape
from tests.exporter.test_rapl import zone

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"joulecast[a-z0-9_:]*")
ALTERNATION = re.compile(r"(joulecast_[a-z0-9_]*)\(([a-z0-9_|]+)\)")


def names_in(text: str) -> set[str]:
    """Metric names in PromQL, JSON or Python text; ``prefix_(a|b)`` regexes expanded."""
    found = {p + alt for p, alts in ALTERNATION.findall(text) for alt in alts.split("|")}
    text = ALTERNATION.sub(" ", text)
    return found | {n for n in NAME.findall(text) if "_" in n or ":" in n}


@pytest.fixture(scope="module")
def exporter_samples(tmp_path_factory) -> dict[str, set[str]]:
    """Sample names -> label names of a simulated exporter with a running and a finished job."""
    from joulecast.exporter.cli import build, build_parser

    state = tmp_path_factory.mktemp("state")
    sysfs = tmp_path_factory.mktemp("sysfs")
    zone(sysfs, "intel-rapl:0", "package-0", 1_000_000)  # a RAPL package zone, as on Intel
    args = build_parser().parse_args(
        [
            *("--web.listen-address", "127.0.0.1:0", "--state.dir", str(state)),
            *("--backend", "simulated", "--path.sysfs", str(sysfs)),
        ]
    )
    exp = build(args)
    exp.start()
    try:
        features = {
            "model_gflops": 4.1,
            "batch_size": 64,
            "train_samples": 20000,
            "eval_samples": 5000,
            "input_height": 224,
            "input_width": 224,
            "host_ram_gb": 32,
            "budget_kwh": 1.0,
        }
        with joulecast.job("finished", epochs=2, url=exp.url, gpus=[0], features=features) as j:
            j.epoch_end()
            j.epoch_end()
        running = joulecast.job(
            "running", epochs=5, steps=50, url=exp.url, gpus=[0], features=features
        )
        running.register()
        running.epoch_end()
        running.progress(step=10, tokens=4096)
        running.flush()
        exp.sampler.sample_once()
        text = scrape(exp.url)
    finally:
        exp.stop()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def estimator_names() -> set[str]:
    """Families the estimator's collectors declare; counters are exposed with ``_total``."""
    source = " ".join(p.read_text() for p in (ROOT / "estimator").rglob("collector.py"))
    families = set(re.findall(r'"(joulecast_[a-z0-9_]+)"', source))
    return families | {f + "_total" for f in families}


def recorded_names() -> set[str]:
    rules = yaml.safe_load((ROOT / "prometheus" / "rules" / "joulecast.rules.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_estimator_queries_only_read_what_the_exporter_publishes(exporter_samples):
    source = " ".join(
        (ROOT / "estimator" / "prometheus" / f).read_text() for f in ("queries.py", "changes.py")
    )
    read = names_in(" ".join([queries.HISTORY, queries.STATE, queries.GPU_MODELS]))
    read |= {n for n in names_in(source) if not n.endswith("_")}  # not regex prefixes
    read.discard(queries.METRIC)  # a label the incremental query adds, not a metric
    assert read, "no metric names found in estimator/prometheus/queries.py"
    assert read - set(exporter_samples) == set()


@pytest.mark.parametrize(
    "path",
    [
        "prometheus/rules/joulecast.rules.yml",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "grafana" / "dashboards").glob("*.json")),
    ],
)
def test_rules_and_dashboards_use_published_names(path, exporter_samples):
    known = set(exporter_samples) | estimator_names() | recorded_names()
    used = names_in((ROOT / path).read_text())
    assert used, f"no metric names found in {path}"
    assert used - known == set()


def test_job_info_carries_the_features_pre_reads(exporter_samples):
    labels = exporter_samples["joulecast_job_info"]
    assert {"job_id", "gpu_model", *JOB_COLUMNS} <= labels
