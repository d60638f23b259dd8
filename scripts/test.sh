#!/usr/bin/env bash
# Installs what the tests need into .venv (scripts/install.sh), then lints and runs the
# whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
PY="${JOULECAST_VENV:-.venv}/bin/python"
"$PY" -m ruff check .
"$PY" -m pytest -q "$@"
