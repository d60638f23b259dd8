#!/usr/bin/env bash
# The quick benchmark set (under 10 minutes on 2 cores). Each script prints its table and
# writes JSON to bench/results/. Full sets: see each script's --help.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
echo "== STEP accuracy (real traces)";           "$PY" bench/step_bench.py
echo "== STEP default, cross-validated";       "$PY" bench/step_select.py
echo "== budgets on real traces";               "$PY" bench/budget_replay.py
echo "== PRE accuracy (reference runs)";         "$PY" bench/pre_bench.py --quick
echo "== PRE forecast latency";                 "$PY" bench/pre_latency.py
echo "== marker delivery";                       "$PY" bench/marker_bench.py
echo "== exporter cost";                         "$PY" bench/exporter_bench.py --scrapes 100 --idle-seconds 5
echo "== Prometheus answers decoded";           "$PY" bench/prom_decode.py --samples 20000 --series 6000 --out bench/results/prom_decode_quick.json
echo "== estimator scale";                       "$PY" bench/estimator_scale.py --jobs 1000 --shards 1 4 --tsdb prometheus --fill 30 --cycles 4 --out bench/results/estimator_scale_quick.json
echo "== serving under floods";                  "$PY" bench/http_flood.py
