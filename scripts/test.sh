#!/usr/bin/env bash
# The whole test suite: set-up, a reachable Redis, then pytest in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/ensure-redis.sh
if [ -n "${DATABASE_URL:-}" ]; then
  echo "test: database $DATABASE_URL"
else
  echo "test: database SQLite"
fi
status=0
.venv/bin/pytest -n "${TEST_WORKERS:-3}" "$@" || status=$?
if [ "$status" -eq 5 ]; then echo "test: no tests ran" >&2; exit 1; fi
exit "$status"
