"""The sweeper: keeps the run rows true when workers or Redis fail.

It runs in the HA poller's loop (``manage.py ha_poller``), a process that
lives whether or not any RQ worker is alive, and uses only the database and
RQ's job records:

1. A run whose executing worker stopped its heartbeat for LOST_AFTER
   (killed, machine gone) is marked interrupted, with the step it was running.
   Time the database refused or held writes (restarting, locked) does not
   count: the workers' heartbeats were refused too.
2. A run that should advance but has no worker and no live job (Redis was
   unreachable when it was queued, or restarted and lost its queue) is queued
   again; so is a cancelled or abandoned run handed to a worker for its
   clean-up (``services.runs._end_through_worker``). Claiming is a
   conditional update, so a job queued twice is harmless.
3. An approval request past its expiry is closed (upgrades/services/approvals.py).
4. A step left running in a run no worker executes (its end could not be
   recorded: the database was away longer than the worker waited) is marked
   interrupted, so retry, skip and resume apply to it.
5. A webhook delivery whose attempt is due but was never taken (Redis away) is queued
   again (upgrades/webhooks.py).
"""
import logging
import time
from datetime import timedelta

import django_rq
import redis
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from . import services, webhooks
from .models import RUN_ADVANCING, RunStatus, RunStep, StepStatus, UpgradeRun
from .timefmt import format_time

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
# Heartbeats come every 5 s: four missed ones mean the worker is gone, and a
# sweep every 5 s notices it within 25 s.
LOST_AFTER = timedelta(seconds=20)
# Time for a freshly queued job to be picked up or at least seen in Redis.
REQUEUE_AFTER = timedelta(seconds=10)
LIVE_JOB = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def sweep(now=None):
    """One pass; returns (runs interrupted, runs queued again)."""
    global _away
    now = now or timezone.now()
    try:
        services.expire_approvals(now)  # a request past its expiry is closed: its run runs nothing
        if _away:  # back: the workers get LOST_AFTER from now to write their heartbeats again
            _database_away()
            _away = False
        result = mark_lost_workers(now), requeue_stranded_runs(now)
        repair_cut_off_steps()
        webhooks.requeue_due(now)
    except DatabaseError:
        _database_away()
        raise
    return result


# A heartbeat the database refused (restarting) or held (locked by another process) is
# not a lost worker: heartbeats count again from the first sweep the database answers
# after refusing, or from a write it held.
_heartbeats_count_from = None  # time.monotonic(); None: since this process started
HELD_WRITE_SECONDS = 2.0  # a write held this long waited for a lock: the heartbeats did too


class _HeldBack(Exception):
    pass


_away = False  # the last sweep met the database refusing


def _database_away():
    global _heartbeats_count_from, _away
    _heartbeats_count_from, _away = time.monotonic(), True


def mark_lost_workers(now):
    if _heartbeats_count_from is not None and \
            time.monotonic() - _heartbeats_count_from < LOST_AFTER.total_seconds():
        return 0
    lost = UpgradeRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=now - LOST_AFTER).exclude(executor="")
    count = 0
    for run in lost:
        reason = (f"the worker executing this run ({run.executor}) stopped: no heartbeat since "
                  f"{format_time(run.heartbeat_at)}")
        started = time.monotonic()
        try:
            with transaction.atomic():
                interrupted = services.interrupt_run(run, executor=run.executor, reason=reason)
                if interrupted and time.monotonic() - started > HELD_WRITE_SECONDS:
                    raise _HeldBack
        except _HeldBack:
            log.warning("the database held writes for %.0f s: heartbeats count again from now",
                        time.monotonic() - started)
            _database_away()
            return count
        if interrupted:
            log.warning("run %s interrupted: %s", run.pk, reason)
            count += 1
    return count


def repair_cut_off_steps():
    """Steps running in a run without an executor: no worker will record their end."""
    runs = RunStep.objects.filter(status=StepStatus.RUNNING, run__executor="").values_list("run_id", flat=True)
    count = 0
    for run_id in sorted(set(runs)):
        if services.repair_cut_off_steps(run_id, "its end was never recorded: no worker executes the run"):
            log.warning("run %s: a step left running without a worker is marked interrupted", run_id)
            count += 1
    return count


def requeue_stranded_runs(now):
    stranded = UpgradeRun.objects.filter(status__in=RUN_ADVANCING, executor="").filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=now - REQUEUE_AFTER)).filter(
        created_at__lt=now - timedelta(seconds=2))  # let a new run's own enqueue happen first
    count = 0
    for run in stranded:
        try:
            if run.job_id and _job_is_live(run.job_id):
                continue
        except (redis.RedisError, OSError) as exc:
            log.info("sweeper: Redis unreachable, run %s stays as it is: %s", run.pk, exc)
            break
        if services.enqueue_run(run):
            log.warning("run %s queued again (its job was lost or never queued)", run.pk)
            count += 1
    return count


def _job_is_live(job_id):
    try:
        job = Job.fetch(job_id, connection=django_rq.get_connection("default"))
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in LIVE_JOB
