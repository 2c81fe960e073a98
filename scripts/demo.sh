#!/usr/bin/env bash
# The demo: a 3-host lab cluster, the portal (daphne), RQ workers and the HA poller.
# It writes the configuration file every process reads (HEPORTAL_CONFIG, default
# data/heportal.env), so `manage.py ...` in another shell needs no exports. A process
# that exits is started again (the lab excepted: it is reported); Ctrl-C stops
# everything this script started.
set -euo pipefail
set -m  # see pid_of below
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/ensure-redis.sh

PORT=${PORT:-8000}
LAB_SPEED=${LAB_SPEED:-10}
export HEPORTAL_DATA_DIR=${HEPORTAL_DATA_DIR:-$PWD/data}
LAB_DIR=${LAB_DIR:-$HEPORTAL_DATA_DIR/lab}
LOGS=$HEPORTAL_DATA_DIR/logs
export HEPORTAL_CONFIG=${HEPORTAL_CONFIG:-$PWD/data/heportal.env}
PY=.venv/bin/python
# A process restarted more often than this within a minute is left stopped.
MAX_RESTARTS=${DEMO_MAX_RESTARTS:-5}
HEADER="# Written by make demo (scripts/demo.sh) at each start; edits are lost. docs/deployment.md"

declare -A pid_of=() started_at=() restarts=()
# Each process runs in a process group of its own (job control, set -m), so Ctrl-C at the
# terminal reaches this script only and the processes get the TERM sent here: the workers
# and the poller handle SIGINT themselves, and stopping on their own they would race the
# loop below, which starts a process that stopped again. A worker takes a first TERM as "finish the job first" and a second as
# "now"; a job may be waiting on a lab that is stopping too, so the stop is bounded: TERM,
# TERM again after 10 s, KILL (named) after 20 s. Redis goes last: the others report to it.
running() {
  local name
  for name in "${!pid_of[@]}"; do kill -0 "${pid_of[$name]}" 2>/dev/null && echo "$name"; done
}
cleanup() {
  trap - INT TERM EXIT
  echo; echo "demo: stopping"
  local name round
  for round in TERM TERM KILL; do
    for name in $(running); do
      [ "$round" = KILL ] && echo "demo: $name did not stop within 20 s; killing it" >&2
      kill -s "$round" "${pid_of[$name]}" 2>/dev/null || true
    done
    for _ in $(seq 100); do [ -z "$(running)" ] && break; sleep 0.1; done
  done
  wait "${pid_of[@]}" 2>/dev/null || true
  if [ -n "${REDIS_STARTED_PID:-}" ] && kill "$REDIS_STARTED_PID" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$REDIS_STARTED_PID" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

mkdir -p "$LOGS" "$HEPORTAL_DATA_DIR/mail" "$(dirname "$HEPORTAL_CONFIG")"
# Approval requests are written as files a person can read, one per message.
export EMAIL_BACKEND=${EMAIL_BACKEND:-django.core.mail.backends.filebased.EmailBackend}
export EMAIL_FILE_PATH=${EMAIL_FILE_PATH:-$HEPORTAL_DATA_DIR/mail}
export PORTAL_URL=${PORTAL_URL:-http://localhost:$PORT}

# The configuration file: what this demo's processes use, for every other process too.
# A file the demo did not write (a real installation's) is never overwritten.
write_config() {
  if [ -s "$HEPORTAL_CONFIG" ] && [ "$(head -n1 "$HEPORTAL_CONFIG")" != "$HEADER" ]; then
    echo "demo: $HEPORTAL_CONFIG was not written by make demo; not replacing it" \
         "(set HEPORTAL_CONFIG to another file)" >&2
    exit 1
  fi
  local key
  {
    echo "$HEADER"
    for key in HEPORTAL_DATA_DIR REDIS_URL SSH_KEY_FILE DATABASE_URL PORTAL_URL EMAIL_BACKEND EMAIL_FILE_PATH; do
      [ -n "${!key:-}" ] && printf '%s=%s\n' "$key" "${!key}"
    done
  } >"$HEPORTAL_CONFIG.tmp"
  chmod 600 "$HEPORTAL_CONFIG.tmp"
  mv "$HEPORTAL_CONFIG.tmp" "$HEPORTAL_CONFIG"
}
write_config  # before the SSH key is known: migrate and collectstatic read this one already

# Each process of the demo: started by launch NAME, again by the loop at the end.
proc_lab() {
  # --outdated: the hosts and the engine VM run the release's previous build, so he-upgrade
  # has updates to apply (on an up-to-date cluster its plan says "Nothing to update").
  exec $PY -m lab up --hosts 3 --speed "$LAB_SPEED" --state-dir "$LAB_DIR" --outdated
}
proc_worker1() { exec $PY manage.py rqworker default poll; }
proc_worker2() { exec $PY manage.py rqworker default poll; }
# The emergency lane (maintenance modes, the diagnostic) has a worker of its own.
proc_worker-emergency() { exec $PY manage.py rqworker emergency; }
# Webhook deliveries: a worker of their own, with the scheduler that runs their retries.
proc_worker-hooks() { exec $PY manage.py rqworker hooks --with-scheduler; }
proc_poller() { exec $PY manage.py ha_poller; }
proc_daphne() { exec $PY -m daphne -b 127.0.0.1 -p "$PORT" heportal.asgi:application; }
launch() {
  [ -n "${started_at[$1]:-}" ] || : >"$LOGS/$1.log"  # a fresh log at each demo, kept across restarts
  "proc_$1" >>"$LOGS/$1.log" 2>&1 &
  pid_of[$1]=$!
  started_at[$1]=$SECONDS
}

echo "demo: starting the lab (3 hosts) in $LAB_DIR"
rm -f "$LAB_DIR/manifest.json"
launch lab
$PY manage.py migrate -v0
$PY manage.py collectstatic --noinput -v0
for _ in $(seq 300); do [ -f "$LAB_DIR/manifest.json" ] && break; sleep 0.1; done
[ -f "$LAB_DIR/manifest.json" ] || { echo "demo: the lab did not start; see $LOGS/lab.log" >&2; exit 1; }
export SSH_KEY_FILE
SSH_KEY_FILE=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['ssh_key'])" "$LAB_DIR/manifest.json")
write_config
# The import stores the engine password encrypted in the portal's database; earlier
# versions left it in plain text beside the manifest: remove that copy.
rm -f "$LAB_DIR/manifest.engine-password"
$PY manage.py import_cluster "$LAB_DIR/manifest.json" --name Lab \
  --poll-interval "$($PY -c "print(10 / float('$LAB_SPEED'))")"

for name in worker1 worker2 worker-emergency worker-hooks poller daphne; do launch "$name"; done

echo "demo: accounts"
$PY manage.py demo_users
echo
echo "demo: approval requests are mailed to the approvers' addresses: written to $EMAIL_FILE_PATH/ (one file per message)"
echo "demo: settings for every process (another shell's manage.py too): $HEPORTAL_CONFIG"
echo "demo: HE Portal is at http://127.0.0.1:$PORT/  (logs in $LOGS/, Ctrl-C to stop)"

# One process exiting stops nothing else: it is started again and said so.
while [ ${#pid_of[@]} -gt 0 ]; do
  dead=
  if wait -n -p dead "${pid_of[@]}"; then status=0; else status=$?; fi
  [ -n "$dead" ] || { [ "$status" -eq 127 ] && break; continue; }  # 127: none of them is ours any more
  for name in "${!pid_of[@]}"; do [ "${pid_of[$name]}" = "$dead" ] && break; done
  unset "pid_of[$name]"
  if [ "$name" = lab ]; then
    echo "demo: the lab exited (status $status), not restarted: the portal runs on without its hosts;" \
         "see $LOGS/lab.log (Ctrl-C and make demo again to start it)" >&2
    continue
  fi
  # A process that ran a minute starts counting its restarts afresh.
  (( SECONDS - started_at[$name] >= 60 )) && restarts[$name]=0
  restarts[$name]=$(( ${restarts[$name]:-0} + 1 ))
  if (( restarts[$name] > MAX_RESTARTS )); then
    echo "demo: $name exited (status $status) $MAX_RESTARTS times within a minute; left stopped," \
         "the others run on; see $LOGS/$name.log" >&2
    continue
  fi
  echo "demo: $name exited (status $status); starting it again (log: $LOGS/$name.log)" >&2
  sleep 1
  launch "$name"
done
echo "demo: no process left running" >&2
