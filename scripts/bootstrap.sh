#!/usr/bin/env bash
# Create .venv and install the exact versions of requirements.lock plus this
# package (editable). Safe to rerun: it reinstalls only when the lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: DeepLeak needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi

stamp=.venv/.deepleak-lock.sha256
wanted=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$wanted" > "$stamp"
fi
