#!/usr/bin/env bash
# Installs what the tests need, then lints and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
PY="${PYTHON:-python3}"
"$PY" -m ruff check .
"$PY" -m pytest -q "$@"
