#!/usr/bin/env bash
# Benchmarks on demand; results are appended to docs/benchmarks.md.
# BENCHES: which (names in bench/); BENCH_SIZE=smoke: each at a tiny size, nothing
# written (make bench-smoke, run by CI). A bench that fails stops the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/ensure-redis.sh
trap '[ -z "${REDIS_STARTED_PID:-}" ] || kill "$REDIS_STARTED_PID"' EXIT
for b in ${BENCHES:-live_output ha_polling}; do
  echo "== bench/$b.py${BENCH_SIZE:+ ($BENCH_SIZE)}"
  start=$SECONDS
  if ! (cd bench && ../.venv/bin/python "$b.py"); then
    echo "bench/$b.py FAILED (see above)" >&2
    exit 1
  fi
  echo "== bench/$b.py: $((SECONDS - start)) s"
done
