"""Rehearsals: the real plan, run on a twin of the cluster in the lab, before anyone approves it.

``request`` makes the plan exactly as for the real run (same runbook, parameters and
plan text; its sha256 kept) and queues ``execute`` on the workers. ``execute`` takes a
snapshot of the cluster (``upgrades.twin``), starts a lab shaped like it
(``python -m lab up --from-snapshot``), registers the lab as a cluster of its own (the
twin: its own lock, never the real one's), makes the plan there again and checks it is
the same text, and runs it with the same engine in this worker. Approval steps and
people's steps are played by the rehearsal: web-admin host maintenance/activation by
the lab's admin actions, anything else confirmed (each one listed in ``played``). The
twin lab is stopped afterwards, whatever happened. The twin's simulated time is the
estimate of the real run's length (the lab's model of durations: an estimate).

An approval policy with ``rehearsal_hours`` lets a run start only after a successful
rehearsal of the same plan hash within that many hours (``require_for_start``).
"""
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from datetime import timedelta

import django_rq
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from . import audit, permissions, state as cluster_state, twin
from .models import (REHEARSAL_ACTIVE, Cluster, Rehearsal, RehearsalStatus, RunStatus, RunStep, StepKind,
                     StepStatus, UpgradeRun)
from .remote.ssh import SshPool

log = logging.getLogger(__name__)

POLICY_APPROVAL_PREFIX = "approve."  # approval steps the approval policy adds (not the runbook's)
LAB_START_TIMEOUT = 120
# The time a plan is made at, in file names (he-upgrade's engine backup): not what makes
# two plans the same plan, so the text and its hash carry a placeholder.
STAMP = re.compile(r"\b\d{8}-\d{6}\b")
STAMP_TEXT = "YYYYMMDD-HHMMSS"


class RehearsalRefused(Exception):
    """A rehearsal cannot be started now (the message says why); nothing was stored."""


# The plan and its hash -----------------------------------------------------------

def plan_text(steps):
    """The plan as people read it, from planned steps or stored run steps: one line per
    step (order, title, host, kind) and its command. Approval steps the policy adds are
    left out (the same plan is rehearsed without them and run with them), and so is the
    time stamp in file names (``STAMP``)."""
    lines, order = [], 0
    for step in steps:
        if step.key.startswith(POLICY_APPROVAL_PREFIX):
            continue
        order += 1
        kind = getattr(step, "kind", None) or step.action
        host = step.host.name if step.host else ""
        lines.append(f"{order}. {step.title}" + (f" on {host}" if host else "") + f" [{kind}]")
        if step.command:
            lines.append(f"   {step.command}")
    return STAMP.sub(STAMP_TEXT, "\n".join(lines) + "\n")


def plan_hash(text):
    return hashlib.sha256(text.encode()).hexdigest()


def run_plan_hash(run):
    return plan_hash(plan_text(run.steps.select_related("host").order_by("order")))


# Requesting ------------------------------------------------------------------------

def check_machine():
    """What the lab needs on this machine: bubblewrap. RehearsalRefused says what is missing."""
    if shutil.which("bwrap") is None:
        raise RehearsalRefused("Rehearsals need bubblewrap (bwrap) on the portal host: the twin lab runs "
                               "every host command in a bwrap sandbox. Install the Debian package bubblewrap "
                               "(scripts/bootstrap.sh; docs/deployment.md). Nothing was started.")


def request(*, cluster, slug, params, user, queue=True):
    """Plan as for the real run and queue the rehearsal. ValidationError for bad
    parameters, PermissionDenied for non-operators, RehearsalRefused when the machine
    lacks bubblewrap or REHEARSAL_MAX_TWINS twins already run."""
    from .services import plan_run

    if cluster.twin_of.exists():
        raise RehearsalRefused(f"{cluster.name} is a twin: rehearse on the real cluster.")
    if not permissions.can_operate(user, cluster):
        raise PermissionDenied("Only operators can rehearse runs.")
    plan = plan_run(cluster=cluster, slug=slug, params=params, policy=False)
    check_machine()
    text = plan_text(plan.steps)
    with transaction.atomic():
        busy = list(Rehearsal.objects.select_for_update().filter(status__in=REHEARSAL_ACTIVE))
        if len(busy) >= settings.REHEARSAL_MAX_TWINS:
            raise RehearsalRefused(
                f"Rehearsal #{busy[0].pk} ({busy[0].runbook} on {busy[0].cluster.name}) is running: at most "
                f"{settings.REHEARSAL_MAX_TWINS} twin(s) at a time (REHEARSAL_MAX_TWINS). Nothing was started.")
        rehearsal = Rehearsal.objects.create(
            cluster=cluster, runbook=slug, params={k: v for k, v in plan.params.items() if v not in (None, "")},
            plan_text=text, plan_sha256=plan_hash(text), requested_by=user)
        audit.record(user, "rehearsal.request", rehearsal, runbook=slug, params=rehearsal.params,
                     plan_sha256=rehearsal.plan_sha256)
        if queue:
            transaction.on_commit(lambda: enqueue(rehearsal))
    return rehearsal


def enqueue(rehearsal):
    django_rq.get_queue("default").enqueue(execute, rehearsal.pk, job_id=f"rehearsal-{rehearsal.pk}",
                                           job_timeout=settings.REHEARSAL_TIME_LIMIT + 600)


# Executing (an RQ job) ---------------------------------------------------------------

def execute(rehearsal_id):
    """Snapshot, twin, run, tear down; the rehearsal ends succeeded or failed with why."""
    from lab.launcher import start_lab

    claimed = Rehearsal.objects.filter(pk=rehearsal_id, status=RehearsalStatus.PENDING).update(
        status=RehearsalStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        return
    rehearsal = Rehearsal.objects.select_related("cluster", "requested_by").get(pk=rehearsal_id)
    audit.record(None, "rehearsal.running", rehearsal)
    # A directory of its own, even for two portals (or test databases) sharing the place.
    os.makedirs(settings.REHEARSAL_DIR, exist_ok=True)
    where = tempfile.mkdtemp(prefix=f"{rehearsal.pk}-", dir=settings.REHEARSAL_DIR)
    lab, error = None, ""
    try:
        check_machine()
        with SshPool() as pool:
            try:
                rehearsal.snapshot = twin.take(rehearsal.cluster, pool)
            except twin.SnapshotError as exc:
                raise RehearsalRefused(f"No snapshot of {rehearsal.cluster.name}: {exc}") from None
            rehearsal.save(update_fields=["snapshot"])
            lab = _start_twin(rehearsal, where, start_lab)
            rehearsal.twin = _register_twin(rehearsal, lab, where)
            rehearsal.notes = lab.manifest.get("twin", {}).get("from_the_lab_model", []) + \
                [f"twin set-up: {p}" for p in lab.manifest.get("twin", {}).get("problems", [])] + \
                rehearsal.snapshot.get("notes", [])
            rehearsal.save(update_fields=["twin", "notes"])
            _settle(rehearsal)
            rehearsal.twin_before = twin.take(rehearsal.twin, pool)
            rehearsal.save(update_fields=["twin_before"])
            run = _twin_run(rehearsal)
            started = lab.state()["now"]
            late = _drive(rehearsal, run, lab)
            rehearsal.simulated_seconds = lab.state()["now"] - started
            try:
                rehearsal.twin_after = twin.take(rehearsal.twin, pool)
            except twin.SnapshotError as exc:
                rehearsal.notes = rehearsal.notes + [f"the twin after the run could not be read: {exc}"]
        run.refresh_from_db()
        error = "" if run.status == RunStatus.SUCCEEDED else failure_reason(run)
        if late:
            error = f"the rehearsal's time limit ({settings.REHEARSAL_TIME_LIMIT} s) passed, the twin's run " \
                    f"was cancelled: {error}"
    except RehearsalRefused as exc:
        error = str(exc)
    except Exception as exc:  # the rehearsal says what broke; the real cluster was never touched
        log.exception("rehearsal %s failed", rehearsal_id)
        error = f"the rehearsal itself failed: {type(exc).__name__}: {exc}"
    finally:
        if lab is not None:
            lab.stop()
        shutil.rmtree(where, ignore_errors=True)
    rehearsal.status = RehearsalStatus.FAILED if error else RehearsalStatus.SUCCEEDED
    rehearsal.error, rehearsal.finished_at = error, timezone.now()
    rehearsal.save()
    audit.record(None, f"rehearsal.{rehearsal.status}", rehearsal, plan_sha256=rehearsal.plan_sha256,
                 **({"error": error} if error else {}),
                 **({"run": rehearsal.run_id} if rehearsal.run_id else {}))


def _start_twin(rehearsal, where, start_lab):
    """The twin lab, accepting the portal's SSH key (the one the workers use)."""
    os.makedirs(os.path.join(where, "lab", "keys"), mode=0o700, exist_ok=True)
    shutil.copy(settings.SSH_KEY_FILE, os.path.join(where, "lab", "keys", "client_ed25519"))
    path = os.path.join(where, "snapshot.json")
    with open(path, "w") as f:
        json.dump(rehearsal.snapshot, f)
    return start_lab(os.path.join(where, "lab"), speed=settings.REHEARSAL_LAB_SPEED, from_snapshot=path,
                     timeout=LAB_START_TIMEOUT)


def _register_twin(rehearsal, lab, where):
    from .services import import_cluster

    manifest = lab.manifest
    password_file = os.path.join(where, "engine-password")
    with open(password_file, "w") as f:
        f.write(manifest["engine"]["password"])
    return import_cluster(name=f"twin {rehearsal.pk} of {rehearsal.cluster.name}"[:100], engine=manifest["engine"],
                          engine_vm=manifest.get("engine_vm"), password_file=password_file,
                          hosts=manifest["hosts"], poll_interval=max(10 / lab.speed, 0.2))


def _settle(rehearsal, timeout=120):
    """Wait until the twin's agents publish what the snapshot says (every host live, the
    engine VM where it runs on the real cluster): the plan is made on that state."""
    from .poller import ClusterPoller

    wanted = (rehearsal.snapshot.get("engine_vm") or {}).get("host")
    poller = ClusterPoller(rehearsal.twin.pk)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            poller.poll()
            twin_cluster = Cluster.objects.get(pk=rehearsal.twin.pk)
            state = cluster_state.from_poll(twin_cluster)
            where = state.engine_vm_host.name if state.engine_vm_host else None
            if not state.error and all(h.live for h in state.hosts) and where == wanted \
                    and twin_cluster.detected_release:
                return
            time.sleep(0.5)
    finally:
        poller.close()
    raise RehearsalRefused(f"The twin did not settle in {timeout} s: {state.describe()}")


def _twin_run(rehearsal):
    """The plan made on the twin; refused unless its text is the real plan's."""
    from .services import create_run, plan_run

    twin_cluster = Cluster.objects.get(pk=rehearsal.twin_id)  # as the polls left it
    state = cluster_state.from_poll(twin_cluster)
    plan = plan_run(cluster=twin_cluster, slug=rehearsal.runbook, params=rehearsal.params, state=state,
                    policy=False)
    text = plan_text(plan.steps)
    if text != rehearsal.plan_text:
        raise RehearsalRefused("The twin's plan differs from the real cluster's, so it would rehearse "
                               "something else: " + _first_difference(rehearsal.plan_text, text))
    run = create_run(plan, rehearsal.requested_by)
    rehearsal.run = run
    rehearsal.save(update_fields=["run"])
    audit.record(rehearsal.requested_by, "rehearsal.run", run, rehearsal=rehearsal.pk,
                 plan_sha256=rehearsal.plan_sha256)
    return run


def _first_difference(real, other):
    for a, b in zip(real.splitlines(), other.splitlines()):
        if a != b:
            return f"real: {a.strip()!r}, twin: {b.strip()!r}"
    return f"the real plan has {len(real.splitlines())} lines, the twin's {len(other.splitlines())}"


def _drive(rehearsal, run, lab):
    """Execute the twin run here, with the same engine, playing the person steps, within
    REHEARSAL_TIME_LIMIT (past it the run is cancelled as an operator would: its clean-up
    steps run). True when the limit passed."""
    from . import jobs, services

    late = threading.Event()

    def too_late():
        late.set()
        UpgradeRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    timer = threading.Timer(settings.REHEARSAL_TIME_LIMIT, too_late)
    timer.daemon = True
    timer.start()
    try:
        while not late.is_set():
            token = services.claim_run(run.pk)
            if token is None:
                break
            jobs.execute_claimed(UpgradeRun.objects.select_related("cluster").get(pk=run.pk), token)
            run.refresh_from_db()
            if run.status != RunStatus.WAITING:
                break
            step = run.steps.filter(status=StepStatus.WAITING).order_by("order").first()
            if step is None:
                break
            _play(rehearsal, run, step, lab)
    finally:
        timer.cancel()
    return late.is_set()


def _play(rehearsal, run, step, lab):
    """A step waiting for a person, done by the rehearsal: said in ``played`` and audited."""
    from .services import runs

    how = "approved by the rehearsal (the real run needs its approvers)"
    if step.action == StepKind.MANUAL:
        how = "confirmed by the rehearsal (nothing to do in the lab)"
        name, _, what = step.key.removeprefix("hosts.").rpartition(".")
        action = {"maintenance": "host-maintenance", "activate": "host-activate"}.get(what)
        level = re.fullmatch(r"Cluster (\S+): compatibility version (\d+\.\d+)", step.title)
        if step.key.startswith("hosts.") and action and name:
            lab.admin(action, host=name)
            how = f"done by the lab's web-admin action {action} on {name}"
        elif step.key == "cluster-version" and level:
            lab.admin("set-cluster-version", cluster=level[1], version=level[2])
            how = f"done by the lab's web-admin action set-cluster-version {level[2]} on {level[1]}"
    with transaction.atomic():
        runs._close_person_step(step, StepStatus.SUCCEEDED, note=how)
        UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None, error="")
        audit.record(None, "rehearsal.play", step, run=run.pk, rehearsal=rehearsal.pk, how=how)
    rehearsal.played = rehearsal.played + [{"order": step.order, "title": step.title, "how": how}]
    rehearsal.save(update_fields=["played"])


def failure_reason(run):
    step = run.steps.filter(status__in=(StepStatus.FAILED, StepStatus.REJECTED, StepStatus.INTERRUPTED,
                                        StepStatus.CANCELLED)).order_by("order").first()
    if step is not None:
        return f"step {step.order} ({step.title}) {step.status}: {step.error or run.error or 'no reason given'}"
    return f"the run {run.get_status_display()}: {run.error or 'no reason given'}"


# The result, beside the plan -----------------------------------------------------------

def result(rehearsal):
    """What the rehearsal page (and the CLI) shows: each step's outcome and its last lines,
    the packages before and after on the twin, the estimate."""
    steps = []
    if rehearsal.run_id:
        for step in RunStep.objects.filter(run_id=rehearsal.run_id).select_related("host").order_by("order"):
            lines = list(step.output.order_by("-seq").values_list("text", flat=True)[:5])[::-1]
            steps.append({"order": step.order, "title": step.title, "host": step.host.name if step.host else "",
                          "status": step.get_status_display(), "error": step.error, "note": step.note,
                          "output": lines})
    return {"steps": steps, "packages": twin.package_changes(rehearsal.twin_before, rehearsal.twin_after)
            if rehearsal.twin_before and rehearsal.twin_after else [],
            "estimate": estimate_text(rehearsal)}


def estimate_text(rehearsal):
    seconds = rehearsal.simulated_seconds
    if seconds is None:
        return ""
    minutes = int(round(seconds / 60))
    return (f"about {minutes} min (estimate: the twin's simulated time, {int(seconds)} s, from the lab's "
            "model of durations)")


# The approval policy ----------------------------------------------------------------------

def latest_success(cluster, sha256, hours=None):
    """The newest successful rehearsal of that plan on ``cluster`` (within ``hours``), or None."""
    found = Rehearsal.objects.filter(cluster=cluster, plan_sha256=sha256, status=RehearsalStatus.SUCCEEDED)
    if hours is not None:
        found = found.filter(finished_at__gte=timezone.now() - timedelta(hours=hours))
    return found.order_by("-finished_at").first()


def require_for_start(plan):
    """The policy's rehearsal requirement for ``plan`` (made with the policy): ValidationError
    unless a successful rehearsal of the same plan hash finished within its hours."""
    from .services.approvals import policy_for

    policy = policy_for(plan.cluster, plan.runbook.slug)
    hours = getattr(policy, "rehearsal_hours", None)
    if not hours:
        return None
    sha = plan_hash(plan_text(plan.steps))
    found = latest_success(plan.cluster, sha, hours)
    if found is None:
        raise ValidationError(
            f"Not started: the approval policy asks for a successful rehearsal of this exact plan (sha256 "
            f"{sha[:12]}) within {hours} h, and there is none. Rehearse it first; a changed parameter or "
            "cluster state makes a new plan.")
    return found


def for_run(run):
    """The rehearsal an approver of ``run`` sees: of the same plan on the same cluster, the
    newest successful one, else the newest; None when the plan was never rehearsed."""
    found = Rehearsal.objects.filter(cluster_id=run.cluster_id, plan_sha256=run_plan_hash(run))
    return (found.filter(status=RehearsalStatus.SUCCEEDED).order_by("-finished_at").first()
            or found.order_by("-created_at").first())
