# Sourced: make sure REDIS_URL points at a Redis that answers. Uses the one at
# REDIS_URL (default 127.0.0.1:6379) when reachable, else starts our own on
# port 6390 with its data under data/redis (exported as REDIS_URL); when this
# call started it, REDIS_STARTED_PID says so, for the caller to stop it.
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
redis_ping() { redis-cli -u "$1" ping 2>/dev/null | grep -q PONG; }
if ! redis_ping "$REDIS_URL"; then
  own_url="redis://127.0.0.1:6390/0"
  if ! redis_ping "$own_url"; then
    mkdir -p data/redis
    echo "ensure-redis: no Redis at $REDIS_URL, starting one on 127.0.0.1:6390"
    redis-server --port 6390 --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --dir "$PWD/data/redis" --logfile "$PWD/data/redis/redis.log" --pidfile "$PWD/data/redis/redis.pid"
    for _ in $(seq 50); do redis_ping "$own_url" && break; sleep 0.1; done
    REDIS_STARTED_PID=$(cat "$PWD/data/redis/redis.pid")
  fi
  REDIS_URL=$own_url
fi
export REDIS_URL
