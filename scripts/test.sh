#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, on SQLite and on PostgreSQL
# (RAG_TEST_POSTGRES_URL, default the local server at 127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The console's browser tests (tests/e2e) drive Debian's chromium: Playwright's own browser
# download is not reachable from here.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium for the console's browser tests (apt-get)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1 DO_NOT_TRACK=1
exec .venv/bin/python -m pytest -q "$@"
