#!/usr/bin/env bash
# Creates .venv and installs the service with everything its tests need.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
# torch first, from the CPU build on local disk; then pin it so nothing pulls a CUDA build.
$PIP install -q "torch==2.13.0"
$PIP install -q -c constraints.txt -e ".[test,bench]"
rm -f .venv/.installed-* && touch "$stamp"
