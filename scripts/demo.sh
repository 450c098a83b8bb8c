#!/usr/bin/env bash
# Set up a virtual environment (if needed) and run `hotline demo` on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/hotline demo "$@"
