"""The RQ worker class the portal runs (settings.RQ["WORKER_CLASS"]).

RQ's parent process quits on a Redis error while it watches a job (its
heartbeats to Redis fail), which during a Redis restart would leave the job
running without a parent and the worker gone. Runs do not need RQ's
bookkeeping to be true — the run row and its heartbeat are — so the parent
skips a failed heartbeat and keeps watching; RQ reconnects on the next call.
"""
import logging

import redis
from rq.worker import Worker as RqWorker

log = logging.getLogger(__name__)


class Worker(RqWorker):
    def heartbeat(self, *args, **kwargs):
        try:
            return super().heartbeat(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("worker %s: heartbeat to Redis failed (%s); carrying on", self.name, exc)

    def maintain_heartbeats(self, *args, **kwargs):
        try:
            return super().maintain_heartbeats(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("worker %s: job heartbeat to Redis failed (%s); carrying on", self.name, exc)
