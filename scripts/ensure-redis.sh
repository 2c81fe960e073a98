# Sourced: make sure a Redis answers at REDIS_URL (default
# redis://127.0.0.1:6379/0, as in settings). When none answers there and the address is on
# this machine, start one at exactly that address, with its data under
# data/redis-PORT; REDIS_STARTED_PID is then its pid, for the caller to stop
# (only that process: never a Redis someone else started).
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
export REDIS_URL
REDIS_STARTED_PID=
redis_ping() { redis-cli -u "$1" ping 2>/dev/null | grep -q PONG; }
if ! redis_ping "$REDIS_URL"; then
  if ! [[ "$REDIS_URL" =~ ^redis://([^@/]*@)?(127\.[0-9.]+|localhost|\[::1\]):([0-9]+)(/[0-9]*)?$ ]]; then
    echo "ensure-redis: nothing answers at $REDIS_URL, and it is not an address on this machine" \
         "(redis://127.0.0.1:PORT/DB) where a Redis could be started" >&2
    return 1 2>/dev/null || exit 1
  fi
  redis_host=${BASH_REMATCH[2]}
  redis_port=${BASH_REMATCH[3]}
  [ "$redis_host" = "[::1]" ] && redis_host=::1
  redis_dir="$PWD/data/redis-$redis_port"
  mkdir -p -m 0700 "$redis_dir"
  echo "ensure-redis: no Redis at $REDIS_URL, starting one there"
  redis-server --port "$redis_port" --bind "$redis_host" --daemonize yes --save "" --appendonly no \
    --dir "$redis_dir" --logfile "$redis_dir/redis.log" --pidfile "$redis_dir/redis.pid"
  for _ in $(seq 50); do redis_ping "$REDIS_URL" && break; sleep 0.1; done
  if ! redis_ping "$REDIS_URL"; then
    echo "ensure-redis: the Redis started at $REDIS_URL does not answer; see $redis_dir/redis.log" >&2
    return 1 2>/dev/null || exit 1
  fi
  REDIS_STARTED_PID=$(cat "$redis_dir/redis.pid")
fi
