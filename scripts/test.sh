#!/usr/bin/env bash
# Installs what the tests need into .venv (scripts/install.sh) and the training frameworks
# into their cached environment (scripts/frameworks.sh; JOULECAST_SKIP_FRAMEWORKS=1 skips
# those tests), then lints and runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
if [ "${JOULECAST_SKIP_FRAMEWORKS:-0}" != "1" ]; then
  JOULECAST_FRAMEWORKS_PYTHON="$(bash scripts/frameworks.sh | tail -n 1)"
  export JOULECAST_FRAMEWORKS_PYTHON
fi
PY="${JOULECAST_VENV:-.venv}/bin/python"
"$PY" -m ruff check .
"$PY" -m pytest -q "$@"
