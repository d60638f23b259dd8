#!/usr/bin/env bash
# Makes (once) the virtual environment of real training frameworks, CPU builds, that the
# callback tests run in: Keras 3 + JAX, PyTorch Lightning, Hugging Face transformers
# (tests/frameworks/requirements.txt). It is cached under the user's cache directory, keyed
# by the requirements and the Python version, so only a fresh machine pays the install
# (about 2 GB). Prints the environment's Python on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
req=tests/frameworks/requirements.txt
key=$( (cat "$req"; "$PY" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/joulecast/frameworks-$key"
if [ ! -f "$dir/.complete" ]; then
  echo "installing the training frameworks (CPU) into $dir" >&2
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
  touch "$dir/.complete"
fi
echo "$dir/bin/python"
