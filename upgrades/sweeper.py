"""The sweeper: keeps the run rows true when workers or Redis fail.

It runs in the HA poller's loop (``manage.py ha_poller``), a process that
lives whether or not any RQ worker is alive, and uses only the database and
RQ's job records:

1. A run whose executing worker stopped its heartbeat for LOST_AFTER
   (killed, machine gone) is marked interrupted, with the step it was running;
   not right after a database outage, when no worker could write one.
2. A run that should advance but has no worker and no live job (Redis was
   unreachable when it was queued, or restarted and lost its queue) is queued
   again; so is a cancelled or abandoned run handed to a worker for its
   clean-up (``services.runs._end_through_worker``). Claiming is a
   conditional update, so a job queued twice is harmless.
3. An approval request past its expiry is closed (upgrades/services/approvals.py).
"""
import logging
from datetime import timedelta

import django_rq
import redis
from django.db.models import Q
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from . import services
from .models import RUN_ADVANCING, RunStatus, UpgradeRun
from .timefmt import format_time

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
# Heartbeats come every 5 s: four missed ones mean the worker is gone, and a
# sweep every 5 s notices it within 25 s.
LOST_AFTER = timedelta(seconds=20)
# Time for a freshly queued job to be picked up or at least seen in Redis.
REQUEUE_AFTER = timedelta(seconds=10)
LIVE_JOB = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def sweep(now=None, *, lost_workers=True):
    """One pass; returns (runs interrupted, runs queued again).

    ``lost_workers`` False right after a database outage: no worker could write
    its heartbeat while the database was away, so a stale one proves nothing yet."""
    now = now or timezone.now()
    services.expire_approvals(now)  # a request past its expiry is closed: its run runs nothing
    return mark_lost_workers(now) if lost_workers else 0, requeue_stranded_runs(now)


def mark_lost_workers(now):
    lost = UpgradeRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=now - LOST_AFTER).exclude(executor="")
    count = 0
    for run in lost:
        reason = (f"the worker executing this run ({run.executor}) stopped: no heartbeat since "
                  f"{format_time(run.heartbeat_at)}")
        if services.interrupt_run(run, executor=run.executor, reason=reason):
            log.warning("run %s interrupted: %s", run.pk, reason)
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
