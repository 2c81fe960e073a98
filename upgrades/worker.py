"""The RQ worker class the portal runs (settings.RQ["WORKER_CLASS"]).

RQ's parent process quits on a Redis error while it watches a job (its
heartbeats to Redis fail) or records the job's end, which during a Redis
restart would leave the job running without a parent and the worker gone.
Runs do not need RQ's bookkeeping to be true — the run row and its heartbeat
are — so the parent skips what Redis refused and keeps working (said once
an outage, and when Redis is back); RQ reconnects on the next call. RQ
registers a worker (its hash and the ``rq:workers`` sets that ``Worker.count``
and the ``heportal_rq_workers`` metric read) only at birth: a Redis restarted
without its data would count a working worker as none, so each heartbeat
registers it again when its hash is gone. RQ waits longer after each Redis
error while it listens (1, 2, 4 ... 60 s) and never starts again from 1 s
while it stays idle, so after a few outages a worker came back up to a minute
after Redis did, unregistered and not taking runs meanwhile: here it waits at
most ``MAX_REDIS_WAIT`` seconds between tries. RQ logs each failed try (its
listening loop and its pubsub thread, each every 2 s): ``_RetryLines`` lets
one through a minute, saying how many it left out.

The parent also knows at once when its work horse (the forked child that
executes a run) is gone: killed by a signal, or exited without ending its job.
It marks the run that horse executed interrupted there and then, instead of
leaving it to the sweeper's missed heartbeats (``upgrades.sweeper``).

Asked to stop (SIGTERM or Ctrl-C: RQ's warm shutdown), RQ waits for the job,
which for a run can be an hour-long upgrade. Here the parent tells its horse
(``HANDOVER_SIGNAL``) to hand the run over once its current step has ended
(``jobs.HANDOVER``, ``services.hand_over_run``): the run is queued again for
another worker, which goes on from the next step, and this worker exits. A
second SIGTERM is RQ's cold shutdown: the horse is killed and its run marked
interrupted at once. Only the parent must get the SIGTERM (systemd
``KillMode=mixed``): the horse, in a process group of its own, dies of one.
"""
import logging
import os
import signal
import socket
import time

import redis
from rq import worker_registration
from rq.worker import Worker as RqWorker

from . import events, jobs, services
from .models import RunStatus, UpgradeRun
from .outage import UNAVAILABLE, drop_connections

log = logging.getLogger(__name__)
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
HANDOVER_SIGNAL = signal.SIGUSR1
MAX_REDIS_WAIT = 2.0
RETRY_LINE_EVERY = 60.0  # s: at most one of RQ's "could not connect to Redis" lines this often


class _RetryLines(logging.Filter):
    """RQ's line for each failed Redis try: an outage's first, then one a ``RETRY_LINE_EVERY``.
    Its own state: the worker starts it again (``reset``) at each heartbeat Redis took."""

    def __init__(self):
        super().__init__()
        self.last = None
        self.left_out = 0

    def filter(self, record):
        if "could not connect to Redis instance" not in record.getMessage():
            return True
        now = time.monotonic()
        if self.last is not None and now - self.last < RETRY_LINE_EVERY:
            self.left_out += 1
            return False
        if self.left_out:
            record.msg, record.args = f"{record.getMessage()} ({self.left_out} such lines left out " \
                                      f"in the last {now - self.last:.0f} s)", None
        self.last, self.left_out = now, 0
        return True

    def reset(self):
        self.last, self.left_out = None, 0


class Worker(RqWorker):
    _horse_exit = None  # (pid, wait status) of the last work horse reaped
    _redis_down = False
    _retry_lines = None
    max_connection_wait_time = MAX_REDIS_WAIT  # rq/worker/base.py@3.0.0: 60 s

    def _skip(self, what, exc):
        """Redis refused ``what``: said once an outage; the next heartbeat that passes says it is back."""
        if not self._redis_down:
            log.warning("worker %s: Redis unavailable (%s not written: %s); carrying on", self.name, what, exc)
        self._redis_down = True

    def _register_again_if_lost(self):
        """Redis lost this worker's registration (restarted empty, or flushed): write it again."""
        if self.birth_date is None or self.connection.exists(self.key):
            return
        with self.connection.pipeline() as pipeline:
            pipeline.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
            worker_registration.register(self, pipeline)
            pipeline.expire(self.key, self.worker_ttl + 60)
            pipeline.execute()
        log.warning("worker %s: its registration was gone from Redis; registered again", self.name)

    def heartbeat(self, *args, **kwargs):
        try:
            if kwargs.get("pipeline", args[1] if len(args) > 1 else None) is None:
                self._register_again_if_lost()
            result = super().heartbeat(*args, **kwargs)
        except REDIS_DOWN as exc:
            return self._skip("heartbeat", exc)
        if kwargs.get("pipeline", args[1] if len(args) > 1 else None) is None:
            if self._retry_lines is not None:
                self._retry_lines.reset()  # Redis answered: the next outage's first line is said
            if self._redis_down:
                self._redis_down = False
                log.warning("worker %s: Redis is back", self.name)
        return result

    def maintain_heartbeats(self, *args, **kwargs):
        try:
            self._register_again_if_lost()
            return super().maintain_heartbeats(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._skip("job heartbeat", exc)

    def set_state(self, *args, **kwargs):
        try:
            return super().set_state(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._skip("state", exc)

    def check_for_suspension(self, *args, **kwargs):
        try:
            return super().check_for_suspension(*args, **kwargs)
        except REDIS_DOWN as exc:  # not known to be suspended; listening retries Redis with a back-off
            self._skip("suspension check", exc)

    def run_maintenance_tasks(self, *args, **kwargs):
        try:
            return super().run_maintenance_tasks(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._skip("registry clean-up", exc)

    def bootstrap(self, *args, **kwargs):
        self._retry_lines = _RetryLines()
        self.log.addFilter(self._retry_lines)
        return super().bootstrap(*args, **kwargs)

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        # Set before any fork, so a horse has it from its first instruction (a signal's
        # default action would kill it); in the parent it sets a flag nobody reads.
        signal.signal(HANDOVER_SIGNAL, jobs.request_handover)

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            log.warning("worker %s: stopping; the run its work horse %s executes is handed over to another "
                        "worker after the current step (stop again to kill it now)", self.name, self.horse_pid)
            try:
                os.kill(self.horse_pid, HANDOVER_SIGNAL)
            except ProcessLookupError:  # it has just ended
                pass

    def wait_for_horse(self):
        pid, status, rusage = super().wait_for_horse()
        if pid:
            self._horse_exit = (pid, status)
        return pid, status, rusage

    def monitor_work_horse(self, job, queue, execution):
        self._horse_exit = None
        try:
            super().monitor_work_horse(job, queue, execution)
        except REDIS_DOWN as exc:
            self._skip(f"the end of job {job.id}", exc)
        finally:
            if self._horse_exit is not None and self._horse_exit[1] != os.EX_OK:
                interrupt_runs_of_horse(*self._horse_exit)


def interrupt_runs_of_horse(pid, status):
    """The horse ``pid`` is gone: the run it was executing (its executor token is
    ``host:pid:…``, see services.claim_run) is interrupted now, naming the signal.
    Conditional on that executor, like the sweeper; with the database away the
    sweeper does it later."""
    if os.WIFSIGNALED(status):
        how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        how = f"exited with status {os.waitstatus_to_exitcode(status)}"
    try:
        runs = UpgradeRun.objects.filter(status=RunStatus.RUNNING,
                                         executor__startswith=f"{socket.gethostname()}:{pid}:")
        for run in runs:
            reason = f"the process executing this run ({run.executor}) {how}"
            if services.interrupt_run(run, executor=run.executor, reason=reason):
                log.warning("run %s interrupted: %s", run.pk, reason)
    except UNAVAILABLE as exc:
        log.warning("work horse %s %s; its run is left to the sweeper (database unavailable: %s)", pid, how, exc)
    except Exception:  # never the reason the parent quits: the sweeper is still there
        log.exception("work horse %s %s; marking its run interrupted failed", pid, how)
    finally:
        drop_connections()  # the next horse is forked from here: it must not share a connection
    events.flush()
