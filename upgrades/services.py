"""Every state change goes through here, and each one is audited."""
import django_rq
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from . import audit, events
from .models import Cluster, Host, RunStatus, RunStep, Runbook, StepStatus, UpgradeRun
from .permissions import can_admin, can_operate
from .remote import ssh
from .remote.base import RemoteError
from .runbooks import get_runbook


def start_runbook(*, host, slug, user):
    """Create a run of runbook ``slug`` on ``host`` and queue it for a worker."""
    if not can_operate(user):
        raise PermissionDenied("Only operators can start runs.")
    spec = get_runbook(slug)
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
        transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


def enqueue_run(run_id):
    from .jobs import execute_run

    django_rq.get_queue("default").enqueue(execute_run, run_id, job_timeout=3600)


def claim_run(run_id):
    """Move a pending run to running; False when another worker got it first."""
    claimed = UpgradeRun.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=timezone.now())
    if claimed:
        run = UpgradeRun.objects.get(pk=run_id)
        audit.record(None, "run.running", run)
        events.publish(events.run_group(run.pk), events.run_event(run))
    return bool(claimed)


def start_step(step):
    step.status = StepStatus.RUNNING
    step.started_at = timezone.now()
    step.save(update_fields=["status", "started_at"])
    audit.record(None, "step.start", step, host=step.host.name if step.host else "", command=step.command)
    events.publish(events.run_group(step.run_id), events.step_event(step))


def finish_step(step, *, exit_code, error=""):
    step.exit_code = exit_code
    step.error = error
    step.status = StepStatus.SUCCEEDED if exit_code == 0 and not error else StepStatus.FAILED
    step.finished_at = timezone.now()
    step.save(update_fields=["status", "exit_code", "error", "finished_at"])
    audit.record(None, "step.finish", step, status=step.status, exit_code=exit_code, error=error)
    events.publish(events.run_group(step.run_id), events.step_event(step))
    return step.status == StepStatus.SUCCEEDED


def finish_run(run, status):
    run.status = status
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    audit.record(None, f"run.{status}", run)
    events.publish(events.run_group(run.pk), events.run_event(run))


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
