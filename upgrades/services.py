"""Every state change goes through here, and each one is audited."""
import logging
import os
import socket
import uuid

import django_rq
import redis
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import audit, events
from .models import (RUN_ACTIVE, RUN_ADVANCING, RUN_TERMINAL, Cluster, Host, RunStatus, RunStep, Runbook,
                     StepStatus, UpgradeRun)
from .permissions import can_admin, can_operate
from .remote import ssh
from .remote.base import RemoteError
from .runbooks import get_runbook

log = logging.getLogger(__name__)

JOB_TIMEOUT = 24 * 3600  # a rolling upgrade of many hosts; the run's own steps have timeouts


class RunConflict(Exception):
    """The cluster already has an active run: only one at a time (a database constraint)."""


def start_runbook(*, host, slug, user):
    """Create a run of runbook ``slug`` on ``host`` and queue it for a worker.

    The run is saved first, then queued once the transaction commits. If the
    queue (Redis) is unreachable the run stays pending with ``queued_at``
    unset, and the sweeper queues it as soon as Redis answers again.
    """
    if not can_operate(user):
        raise PermissionDenied("Only operators can start runs.")
    spec = get_runbook(slug)
    try:
        with transaction.atomic():
            runbook, _ = Runbook.objects.get_or_create(
                slug=spec.slug, defaults={"name": spec.name, "description": spec.description})
            run = UpgradeRun.objects.create(cluster=host.cluster, runbook=runbook, requested_by=user)
            RunStep.objects.bulk_create([
                RunStep(run=run, order=n, key=step.key, host=host, title=step.title,
                        action=step.action, command=step.command)
                for n, step in enumerate(spec.steps, start=1)
            ])
            audit.record(user, "run.start", run, runbook=spec.slug, host=host.name)
            transaction.on_commit(lambda: enqueue_run(run))
    except IntegrityError:
        if not UpgradeRun.objects.filter(cluster=host.cluster, status__in=RUN_ACTIVE).exists():
            raise
        raise RunConflict(active_run_message(host.cluster)) from None
    return run


def active_run_message(cluster):
    """What the second operator reads when a cluster is busy."""
    active = UpgradeRun.objects.filter(cluster=cluster, status__in=RUN_ACTIVE).select_related("runbook").first()
    if active is None:
        return f"Cluster {cluster.name} just got another run; nothing was started."
    return (f"Cluster {cluster.name} already has an active run: #{active.pk} {active.runbook.name} "
            f"({active.get_status_display().lower()}). Only one run per cluster at a time; nothing was started.")


def enqueue_run(run):
    """Queue a job to advance ``run``; False (and logged) when Redis is unreachable.

    Each job gets its own id, kept on the run with the time, so the sweeper
    can tell a lost job (Redis restarted, or was away) from a queued one.
    """
    from .jobs import advance_run

    job_id = f"run-{run.pk}-{uuid.uuid4().hex[:12]}"
    try:
        django_rq.get_queue("default").enqueue(advance_run, run.pk, job_id=job_id, job_timeout=JOB_TIMEOUT)
    except (redis.RedisError, OSError) as exc:
        log.warning("run %s not queued (the sweeper queues it when Redis is back): %s", run.pk, exc)
        return False
    run.job_id, run.queued_at = job_id, timezone.now()
    UpgradeRun.objects.filter(pk=run.pk).update(job_id=run.job_id, queued_at=run.queued_at)
    return True


def claim_run(run_id):
    """Take a run for this process: a token when it was ours to advance, else None.

    A conditional update, so two workers never execute one run. The token
    names this process (host:pid) for whoever looks at a stuck run.
    """
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    claimed = UpgradeRun.objects.filter(pk=run_id, status__in=RUN_ADVANCING, executor="").update(
        status=RunStatus.RUNNING, executor=token, heartbeat_at=now,
        started_at=Coalesce(F("started_at"), Value(now)))
    if not claimed:
        return None
    run = UpgradeRun.objects.get(pk=run_id)
    audit.record(None, "run.running", run, executor=token)
    events.publish(events.run_group(run.pk), events.run_event(run))
    return token


def heartbeat(run_id, token):
    """Still ours? False once the sweeper took the run away."""
    return bool(UpgradeRun.objects.filter(pk=run_id, executor=token).update(heartbeat_at=timezone.now()))


def release_run(run, token, status):
    """The executing worker ends its turn with ``status``; False if the run was no longer its own."""
    now = timezone.now()
    finished = now if status in RUN_TERMINAL else None
    if not UpgradeRun.objects.filter(pk=run.pk, executor=token).update(
            status=status, finished_at=finished, executor="", heartbeat_at=None):
        return False
    run.status, run.finished_at, run.executor = status, finished, ""
    audit.record(None, f"run.{status}", run)
    events.publish(events.run_group(run.pk), events.run_event(run))
    return True


def interrupt_run(run, *, executor, reason):
    """Mark a run whose worker was lost as interrupted, and the step it was
    running too (its output is kept). Conditional on the same executor, so a
    worker that is alive after all loses nothing it has written."""
    with transaction.atomic():
        if not UpgradeRun.objects.filter(pk=run.pk, executor=executor, status=RunStatus.RUNNING).update(
                status=RunStatus.INTERRUPTED, finished_at=timezone.now(), executor="", heartbeat_at=None):
            return False
        steps = list(run.steps.filter(status=StepStatus.RUNNING))
        for step in steps:
            step.status, step.error, step.finished_at = StepStatus.INTERRUPTED, reason, timezone.now()
            step.save(update_fields=["status", "error", "finished_at"])
            events.publish(events.run_group(run.pk), events.step_event(step))
        run.refresh_from_db()
        audit.record(None, "run.interrupted", run, reason=reason, executor=executor,
                     steps=[f"{s.order}. {s.title}" for s in steps])
        events.publish(events.run_group(run.pk), events.run_event(run))
    return True


def start_step(step):
    step.status = StepStatus.RUNNING
    step.started_at = timezone.now()
    step.save(update_fields=["status", "started_at"])
    audit.record(None, "step.start", step, host=step.host.name if step.host else "", command=step.command)
    events.publish(events.run_group(step.run_id), events.step_event(step, lines=0))


def finish_step(step, *, exit_code, error="", lines=None):
    """Record how the step ended; ``lines`` is its last output line (for viewers to check)."""
    step.exit_code = exit_code
    step.error = error
    step.status = StepStatus.SUCCEEDED if exit_code == 0 and not error else StepStatus.FAILED
    step.finished_at = timezone.now()
    step.save(update_fields=["status", "exit_code", "error", "finished_at"])
    audit.record(None, "step.finish", step, status=step.status, exit_code=exit_code, error=error)
    events.publish(events.run_group(step.run_id), events.step_event(step, lines=lines))
    return step.status == StepStatus.SUCCEEDED


def import_cluster(*, name, engine, password_file, hosts, poll_interval=None, user=None):
    """Create or update a cluster and its hosts from inventory data.

    The whole inventory is checked first (``upgrades.inventory``): any problem
    raises ValidationError listing them all, and nothing is written. Only what
    the data mentions is set; no ``engine`` block leaves the engine URL and
    credentials as they are, and a host keeps the fields its entry leaves out.
    """
    from .inventory import validate

    found = validate(name=name, engine=engine, hosts=hosts, poll_interval=poll_interval)
    values = dict(found.cluster)
    if password_file:
        values["credentials_ref"] = f"file:{password_file}"
    with transaction.atomic():
        cluster, created = Cluster.objects.update_or_create(name=name, defaults=values)
        for host in found.hosts:
            fields = dict(host)
            Host.objects.update_or_create(cluster=cluster, name=fields.pop("name"), defaults=fields)
        audit.record(user, "cluster.import" if created else "cluster.reimport", cluster,
                     hosts=[host["name"] for host in found.hosts], fields=sorted(values))
    return cluster


def accept_host_key(*, host, known_hosts_line, user):
    """Pin the SSH host key an admin reviewed; replaces keys pinned for the same address."""
    if not can_admin(user):
        raise PermissionDenied("Only admins can accept host keys.")
    line = known_hosts_line.strip()
    name = ssh.known_hosts_name(host.address, host.ssh_port)
    try:
        offered = ssh.pinned_keys(line, host.address, host.ssh_port) if "\n" not in line else []
    except RemoteError as exc:
        raise ValidationError(exc.message) from None
    if not offered:
        raise ValidationError(f"That is not one known_hosts line for {name}.")
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        kept, replaced = [], []
        for old in host.known_hosts.splitlines():
            if not old.strip():
                continue
            try:
                mine = ssh.pinned_keys(old, host.address, host.ssh_port)
            except RemoteError:
                # An unreadable line would make every connection fail: drop it too.
                mine = [("unreadable", old[:80])]
            if mine:
                replaced.extend(fingerprint for _, fingerprint in mine)
            else:
                kept.append(old)
        host.known_hosts = "\n".join(kept + [line])
        host.save(update_fields=["known_hosts"])
        key_type, fingerprint = offered[0]
        audit.record(user, "host.key_accept", host, key_type=key_type, fingerprint=fingerprint,
                     replaced=replaced)
    return host
