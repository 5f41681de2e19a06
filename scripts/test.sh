#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, on SQLite and on PostgreSQL
# (RAG_TEST_POSTGRES_URL, default the local server at 127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 DO_NOT_TRACK=1
exec .venv/bin/python -m pytest -q "$@"
