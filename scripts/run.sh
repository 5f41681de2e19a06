#!/usr/bin/env bash
# Set up (first time) and start the service on its embedded defaults:
# SQLite + embedded Qdrant under ${RAG_DATA_DIR:-./data}, on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 DO_NOT_TRACK=1
exec .venv/bin/rag-service serve "$@"
