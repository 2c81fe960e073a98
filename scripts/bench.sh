#!/usr/bin/env bash
# Benchmarks on demand; results are appended to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/ensure-redis.sh
trap '[ -z "${REDIS_STARTED_PID:-}" ] || kill "$REDIS_STARTED_PID"' EXIT
for b in ${BENCHES:-live_output ha_polling}; do
  echo "== bench/$b.py"
  (cd bench && ../.venv/bin/python "$b.py")
done
