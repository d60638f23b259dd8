#!/usr/bin/env bash
# The whole joulecast loop on this machine (no GPU or Docker needed): installs what it
# needs into .venv (scripts/install.sh), then runs scripts/demo.py. Extra arguments go to
# demo.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh demo
exec "${JOULECAST_VENV:-.venv}/bin/python" scripts/demo.py "$@"
