#!/usr/bin/env bash
# The demo: a 3-host lab cluster, the portal (daphne) and two RQ workers.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/ensure-redis.sh

PORT=${PORT:-8000}
LAB_SPEED=${LAB_SPEED:-10}
LAB_DIR=${LAB_DIR:-$PWD/data/lab}
PY=.venv/bin/python
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "demo: stopping"
  for pid in "${pids[@]}" ${REDIS_STARTED_PID:-}; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

mkdir -p data/logs data/mail
# Approval requests are written as files a person can read, one per message.
export EMAIL_BACKEND=${EMAIL_BACKEND:-django.core.mail.backends.filebased.EmailBackend}
export EMAIL_FILE_PATH=${EMAIL_FILE_PATH:-$PWD/data/mail}
$PY manage.py migrate -v0
$PY manage.py collectstatic --noinput -v0

echo "demo: starting the lab (3 hosts) in $LAB_DIR"
rm -f "$LAB_DIR/manifest.json"
# --outdated: the hosts and the engine VM run the release's previous build, so he-upgrade
# has updates to apply (on an up-to-date cluster its plan says "Nothing to update").
$PY -m lab up --hosts 3 --speed "$LAB_SPEED" --state-dir "$LAB_DIR" --outdated >data/logs/lab.log 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -f "$LAB_DIR/manifest.json" ] && break; sleep 0.1; done
[ -f "$LAB_DIR/manifest.json" ] || { echo "demo: the lab did not start; see data/logs/lab.log" >&2; exit 1; }
# The import stores the engine password encrypted in the portal's database; earlier
# versions left it in plain text beside the manifest: remove that copy.
rm -f "$LAB_DIR/manifest.engine-password"
$PY manage.py import_cluster "$LAB_DIR/manifest.json" --name Lab \
  --poll-interval "$($PY -c "print(10 / float('$LAB_SPEED'))")"
export SSH_KEY_FILE
SSH_KEY_FILE=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['ssh_key'])" "$LAB_DIR/manifest.json")

for n in 1 2; do
  $PY manage.py rqworker default poll >"data/logs/worker$n.log" 2>&1 &
  pids+=($!)
done
# The emergency lane (maintenance modes, the diagnostic) has a worker of its own.
$PY manage.py rqworker emergency >data/logs/worker-emergency.log 2>&1 &
pids+=($!)
$PY manage.py ha_poller >data/logs/poller.log 2>&1 &
pids+=($!)
$PY -m daphne -b 127.0.0.1 -p "$PORT" heportal.asgi:application >data/logs/daphne.log 2>&1 &
pids+=($!)

echo "demo: accounts"
$PY manage.py demo_users
echo
echo "demo: approval requests are mailed to the approvers' addresses: written to $EMAIL_FILE_PATH/ (one file per message)"
echo "demo: HE Portal is at http://127.0.0.1:$PORT/  (logs in data/logs/, Ctrl-C to stop)"
wait -n "${pids[@]}" || true
echo "demo: a process exited; see data/logs/" >&2
