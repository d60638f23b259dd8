#!/usr/bin/env bash
# Installs what joulecast needs on a fresh Debian/Ubuntu machine: the Python package (with
# its test extras when asked) and, as root, Debian's prometheus (and VictoriaMetrics,
# Alertmanager for the tests) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
PY="${PYTHON:-python3}"

want=()
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
if [ "$extras" = "test" ]; then
  command -v victoria-metrics >/dev/null 2>&1 || want+=(victoria-metrics)
  command -v prometheus-alertmanager >/dev/null 2>&1 || want+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose)
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
"$PY" -m pip install -q --disable-pip-version-check -e ".[$extras]"
