#!/usr/bin/env bash
# The whole test suite: set-up, then pytest in parallel (each test process
# starts its own Redis server; see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -n "${DATABASE_URL:-}" ]; then
  echo "test: database $DATABASE_URL"
else
  echo "test: database SQLite"
fi
# The suite never reads a developer's data/heportal.env (written by make demo).
export HEPORTAL_CONFIG="${HEPORTAL_CONFIG:-$PWD/tests/data/empty.env}"
status=0
.venv/bin/pytest -n "${TEST_WORKERS:-3}" "$@" || status=$?
if [ "$status" -eq 5 ]; then echo "test: no tests ran" >&2; exit 1; fi
exit "$status"
