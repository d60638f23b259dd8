#!/usr/bin/env bash
# Makes the checkout's virtual environment (.venv) and installs joulecast into it with the
# extras asked for (default: demo), so Debian's own /usr/bin/python3 works (PEP 668: no
# pip install into the system Python). As root it also installs, when missing, Debian's
# python3-venv and prometheus (and, for the tests, VictoriaMetrics, Alertmanager,
# docker-compose, Slurm and munge). PYTHON picks the interpreter the venv is made from (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
PY="${PYTHON:-python3}"
VENV="${JOULECAST_VENV:-.venv}"

want=()
"$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || want+=(python3-venv)
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
if [ "$extras" = "test" ]; then
  command -v victoria-metrics >/dev/null 2>&1 || want+=(victoria-metrics)
  command -v prometheus-alertmanager >/dev/null 2>&1 || want+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose)
  command -v slurmctld >/dev/null 2>&1 || want+=(slurm-wlm)
  command -v munged >/dev/null 2>&1 || want+=(munge)
fi
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${want[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  else
    echo "note: ${want[*]} not installed (needs root and apt-get); parts that need them are skipped" >&2
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "making the virtual environment $VENV from $("$PY" -c 'import sys; print(sys.executable)')"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
