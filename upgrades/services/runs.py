"""Runs: every state change of a run and its steps goes through here, audited.

Lifecycle (the run row is the truth): pending -> [awaiting approval] ->
running <-> waiting for a person -> succeeded | failed | cancelled |
interrupted, and paused. A job advances a run (``upgrades.jobs``) until it
ends or waits for a person; a person's action queues the next advance.
"""
import logging
import os
import socket
import uuid
from datetime import timedelta

import django_rq
import redis
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import audit, checks, dbwait, events, ha, plan as planning, state as cluster_state
from ..models import (RUN_ACTIVE, RUN_ADVANCING, RUN_TERMINAL, STEP_DONE, Approval, ApprovalDecision, Runbook,
                      RunStatus, RunStep, StepKind, StepStatus, UpgradeRun)
from ..output import insert_rows
from .. import permissions
from . import approvals
from ..runbooks import get_runbook
from ..timefmt import format_time

log = logging.getLogger(__name__)

JOB_TIMEOUT = 24 * 3600  # a rolling upgrade of many hosts; the run's own steps have timeouts
# A stopped run an operator may give up on (``abandon_run``): its clean-up runs first.
ABANDONABLE = (RunStatus.FAILED, RunStatus.INTERRUPTED)


class RunConflict(Exception):
    """The cluster already has an active run: only one at a time (a database constraint)."""


class Refused(Exception):
    """The action does not apply to the run or step as it is now (the message says why)."""


class Blocked(Exception):
    """A preflight inhibitor blocks the start, or warnings were not acknowledged."""

    def __init__(self, message, plan):
        super().__init__(message)
        self.plan = plan


# Starting ----------------------------------------------------------------

def plan_run(*, cluster, slug, params, state=None, policy=True):
    """Validate the parameters and expand the runbook: the dry run an operator sees.

    ``state`` defaults to the poller's last result (no remote call, so pages
    may call this). ``policy=False``: without the approval policy's steps (a
    button that only shows the interlocks). Raises ValidationError with the
    form's messages.
    """
    if cluster.removed_at is not None:
        raise ValidationError(f"Cluster {cluster.name} was removed from the portal: nothing runs on it.")
    runbook = get_runbook(slug)
    form = planning.param_form(runbook, cluster, data=params)
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    state = state or cluster_state.from_poll(cluster)
    try:
        plan = planning.make_plan(runbook, cluster, form.cleaned_data, state)
    except planning.PlanError as exc:
        raise ValidationError(str(exc)) from None
    return approvals.apply_policy(plan) if policy else plan


def start_run(*, cluster, slug, params, user, acknowledge=False, state=None, queue=True, reason=""):
    """Plan, check and store a run, then queue it once the transaction commits.

    Nothing is saved when a parameter is invalid, an inhibitor blocks, or
    warnings were not acknowledged. If the queue (Redis) is unreachable the
    run stays pending with ``queued_at`` unset, and the sweeper queues it as
    soon as Redis answers again. ``queue=False``: the caller executes it
    itself (``manage.py runbook start --sync``).

    An emergency-lane run (a maintenance mode, the diagnostic) starts whatever
    procedure is active; one that changes the cluster pauses that procedure
    (``hold_procedure``) and needs a ``reason`` then. The reason is audited.
    """
    if not permissions.can_operate(user, cluster):
        raise PermissionDenied("Only operators can start runs.")
    plan = plan_run(cluster=cluster, slug=slug, params=params, state=state)
    reason = (reason or "").strip()
    if plan.runbook.emergency and plan.changes and not reason \
            and checks.active_run(cluster, emergency=False) is not None:
        raise ValidationError("Say why: this pauses the active procedure, and its operator reads your reason "
                              "before resuming it.")
    if plan.inhibitors:
        raise Blocked(" ".join(c.message for c in plan.inhibitors) + " Nothing was started.", plan)
    if plan.warnings and not acknowledge:
        raise Blocked("Not started: acknowledge the warnings first: " +
                      " ".join(c.message for c in plan.warnings), plan)
    from ..rehearsal import require_for_start
    require_for_start(plan)  # the approval policy may ask for a rehearsal of this very plan
    try:
        with transaction.atomic():
            run = create_run(plan, user)
            audit.record(user, "run.start", run, runbook=slug, params=run.params,
                         acknowledged=[c.message for c in plan.warnings],
                         **({"reason": reason} if reason else {}), **({"emergency": True} if run.emergency else {}))
            if run.emergency and plan.changes:
                hold_procedure(run, user, reason)
            _cluster_changed(run)
            events.publish(events.run_group(run.pk), events.run_event(run))  # the home page's recent runs
            if run.status == RunStatus.AWAITING_APPROVAL:
                audit.record(user, "approval.request", run, run=run.pk, approvers=run.approvals_required,
                             expires_at=audit.format_time(run.approval_expires_at))
                transaction.on_commit(lambda: approvals.notify(run))
            elif queue:
                transaction.on_commit(lambda: enqueue_run(run))
    except IntegrityError:
        lane = bool(plan.runbook.emergency)
        if not UpgradeRun.objects.filter(cluster=cluster, status__in=RUN_ACTIVE, emergency=lane).exists():
            raise
        raise RunConflict(active_run_message(cluster, emergency=lane)) from None
    return run


def hold_procedure(run, user, reason):
    """The emergency action ``run`` pauses the cluster's active procedure, and says why on it.

    A procedure a worker executes pauses after its current step; one with no
    executor (queued, paused) at once; one waiting for a person or an approval
    pauses when that is given. Until an operator resumes it acknowledging
    ``hold_reason``, it does not go on: a later step of its own (say "leave
    global maintenance") cannot silently undo the admin's decision.
    """
    procedure = (UpgradeRun.objects.select_for_update()
                 .filter(cluster=run.cluster_id, status__in=RUN_ACTIVE, emergency=False).first())
    if procedure is None:
        return None
    when = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S %Z")
    text = (f"{user.username} started {run.runbook.name} (run #{run.pk}) at {when}: "
            + (reason or "no reason given"))
    updates = {"hold_reason": (procedure.hold_reason + "\n" if procedure.hold_reason else "") + text}
    if procedure.status == RunStatus.RUNNING and procedure.executor:
        updates["pause_requested"], effect = True, "pauses after its current step"
    elif procedure.status in RUN_ADVANCING:
        updates["status"], effect = RunStatus.PAUSED, "paused at once (no step was running)"
    elif procedure.status == RunStatus.PAUSED:
        effect = "stays paused"
    else:
        effect = "pauses once the person or approver it waits for has acted"
    UpgradeRun.objects.filter(pk=procedure.pk).update(**updates)
    procedure.refresh_from_db()
    audit.record(user, "run.hold", procedure, reason=reason, by_run=run.pk, effect=effect)
    events.publish(events.run_group(procedure.pk), events.run_event(procedure))
    return procedure


def create_run(plan, user):
    """Store the plan's concrete steps; nothing runs yet."""
    spec = plan.runbook
    runbook, _ = Runbook.objects.get_or_create(slug=spec.slug, defaults={"name": spec.name,
                                                                        "description": spec.description})
    start_approvers = getattr(plan, "start_approvers", 0)
    approval = {"status": RunStatus.AWAITING_APPROVAL, "approvals_required": start_approvers,
                "approval_expires_at": timezone.now() + timedelta(hours=plan.approval_expiry_hours)} \
        if start_approvers else {}
    run = UpgradeRun.objects.create(
        **approval, emergency=bool(spec.emergency),
        cluster=plan.cluster, runbook=runbook, requested_by=user, params=_jsonable(plan.params),
        preflight={"checks": plan.check_specs, "plan": [c.to_dict() for c in plan.checks],
                   "state": plan.state.describe(), "notes": plan.notes})
    RunStep.objects.bulk_create([
        RunStep(run=run, order=n, key=step.key, host=step.host, title=step.title, action=step.kind,
                command=step.command, spec=step.spec, changes=step.changes, rerun_safe=step.rerun_safe)
        for n, step in enumerate(plan.steps, start=1)])
    return run


def _jsonable(params):
    return {k: v for k, v in params.items() if v not in (None, "")}


def active_run_message(cluster, emergency=None):
    """What the second operator reads when a cluster is busy."""
    return (checks.active_run_message(cluster, emergency=emergency)
            or f"Cluster {cluster.name} just got another run.") + " Nothing was started."


def enqueue_run(run):
    """Queue a job to advance ``run``; False (and logged) when Redis is unreachable.

    Each job gets its own id, kept on the run with the time, so the sweeper
    can tell a lost job (Redis restarted, or was away) from a queued one.
    """
    from ..jobs import advance_run

    job_id = f"run-{run.pk}-{uuid.uuid4().hex[:12]}"
    # The emergency lane has a queue and a worker of its own: a procedure's long step
    # in the default queue never holds up global maintenance.
    queue = "emergency" if run.emergency else "default"
    try:
        django_rq.get_queue(queue).enqueue(advance_run, run.pk, job_id=job_id, job_timeout=JOB_TIMEOUT)
    except (redis.RedisError, OSError) as exc:
        log.warning("run %s not queued (the sweeper queues it when Redis is back): %s", run.pk, exc)
        return False
    run.job_id, run.queued_at = job_id, timezone.now()
    UpgradeRun.objects.filter(pk=run.pk).update(job_id=run.job_id, queued_at=run.queued_at)
    return True


# The executing worker ----------------------------------------------------

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


def cancel_requested(run_id):
    return UpgradeRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def record_start_preflight(run, results):
    run.preflight = {**run.preflight, "start": results}
    UpgradeRun.objects.filter(pk=run.pk).update(preflight=run.preflight)
    if results:
        audit.record(None, "run.preflight", run, results=results)


def record_snapshot(run):
    """The cluster as it is before the run's first step: what its end is compared with
    when it does not succeed (upgrades.leftbehind)."""
    from ..leftbehind import take_snapshot

    run.snapshot = take_snapshot(run.cluster)
    UpgradeRun.objects.filter(pk=run.pk).update(snapshot=run.snapshot)
def record_packages_before(run, data):
    """Pending updates and installed versions as read when the run started."""
    run.preflight = {**run.preflight, "packages": {"read_at": audit.format_time(timezone.now()), **data}}
    UpgradeRun.objects.filter(pk=run.pk).update(preflight=run.preflight)


def release_run(run, token, status, *, error=""):
    """The executing worker ends its turn with ``status``; False if the run was no longer its own.
    A database that is away is waited for (``dbwait``). A step still running (its end
    could not be recorded) is interrupted: a stopped run never shows a running step."""
    def write():
        now = timezone.now()
        finished = now if status in RUN_TERMINAL else None
        with transaction.atomic():
            if not UpgradeRun.objects.filter(pk=run.pk, executor=token).update(
                    status=status, finished_at=finished, executor="", heartbeat_at=None, error=error,
                    pause_requested=False, cancel_requested=False):
                return False
            if status == RunStatus.CANCELLED:
                _cancel_open_steps(run)
            steps = interrupt_cut_off_steps(run, "its end could not be recorded" + (f": {error}" if error else ""))
            run.refresh_from_db()
            audit.record(None, f"run.{status}", run, **({"error": error} if error else {}),
                         **({"interrupted": [f"{s.order}. {s.title}" for s in steps]} if steps else {}))
            events.publish(events.run_group(run.pk), events.run_event(run))
            if status in RUN_TERMINAL or run.hold_reason:  # the cluster page says why it paused
                _cluster_changed(run)
        return True

    return dbwait.until_written(f"run {run.pk}'s release", write)


def interrupt_cut_off_steps(run, reason):
    """Steps left running in a run no worker executes (its worker was lost, or their end
    could not be recorded) become interrupted, with ``reason``: retry, skip, mark done and
    resume apply to them. Call inside a transaction; returns them."""
    steps = list(run.steps.filter(status=StepStatus.RUNNING))
    for step in steps:
        step.status, step.error, step.finished_at = StepStatus.INTERRUPTED, reason, timezone.now()
        step.save(update_fields=["status", "error", "finished_at"])
        events.publish(events.run_group(run.pk), events.step_event(step))
    return steps


def repair_cut_off_steps(run_id, reason="its end was never recorded"):
    """A run found with a step running and no executor (left so by a worker that could not
    record the step's end): the step is interrupted and audited. False if the run is
    executed again meanwhile, or has no such step."""
    with transaction.atomic():
        run = UpgradeRun.objects.select_for_update().get(pk=run_id)
        return not run.executor and bool(_repair_in(run, reason))


def _repair_in(run, reason="its end was never recorded"):
    steps = interrupt_cut_off_steps(run, reason)
    for step in steps:
        audit.record(None, "step.interrupted", step, run=run.pk, reason=reason)
    return steps


def _cluster_changed(run):
    """The cluster page's buttons depend on its active run: tell it when one starts or ends."""
    events.publish(events.cluster_group(run.cluster_id), ha.cluster_payload(run.cluster))


def interrupt_run(run, *, executor, reason):
    """Mark a run whose worker was lost as interrupted, and the step it was
    running too (its output is kept). Conditional on the same executor, so a
    worker that is alive after all loses nothing it has written."""
    with transaction.atomic():
        if not UpgradeRun.objects.filter(pk=run.pk, executor=executor, status=RunStatus.RUNNING).update(
                status=RunStatus.INTERRUPTED, finished_at=timezone.now(), executor="", heartbeat_at=None,
                error=reason):
            return False
        steps = interrupt_cut_off_steps(run, reason)
        run.refresh_from_db()
        audit.record(None, "run.interrupted", run, reason=reason, executor=executor,
                     steps=[f"{s.order}. {s.title}" for s in steps])
        events.publish(events.run_group(run.pk), events.run_event(run))
        _cluster_changed(run)
    return True


def hand_over_run(run, token, *, reason):
    """The worker executing the run is stopping (SIGTERM) and has finished its current
    step: the run goes back to the queue, still running, with no executor, for another
    worker to go on from its next step (a finished step never runs again; claim_run takes
    it as any queued run). Conditional on ``token``, like ``release_run``; False if the run
    was no longer ours. If Redis is away the sweeper queues it once Redis answers."""
    def write():
        with transaction.atomic():
            if not UpgradeRun.objects.filter(pk=run.pk, executor=token, status=RunStatus.RUNNING).update(
                    executor="", heartbeat_at=None, queued_at=None):
                return False
            run.refresh_from_db()
            following = run.steps.exclude(status__in=STEP_DONE).order_by("order").first()
            audit.record(None, "run.handover", run, executor=token, reason=reason,
                         next_step=f"{following.order}. {following.title}" if following else "")
            events.publish(events.run_group(run.pk), events.run_event(run))
            transaction.on_commit(lambda: enqueue_run(run))
        return True

    return dbwait.until_written(f"run {run.pk}'s hand-over", write)


def start_step(step):
    """Pending -> running; False when it is not pending any more (skipped meanwhile)."""
    now = timezone.now()
    with transaction.atomic():  # the change and its audit event: both or neither
        if not RunStep.objects.filter(pk=step.pk, status=StepStatus.PENDING).update(
                status=StepStatus.RUNNING, started_at=now, finished_at=None, exit_code=None, error=""):
            return False
        step.status, step.started_at = StepStatus.RUNNING, now
        audit.record(None, "step.start", step, run=step.run_id, host=step.host.name if step.host else "",
                     command=step.command)
    events.publish(events.run_group(step.run_id), events.step_event(step, lines=0))
    return True


def finish_step(step, *, status, exit_code=None, error="", lines=None):
    """Record how the step ended; ``lines`` is its last output line (for viewers to check).
    A database that is away is waited for (``dbwait``): the step never stays running."""
    step.status, step.exit_code, step.error, step.finished_at = status, exit_code, error, timezone.now()

    def write():
        with transaction.atomic():
            # A try whose commit was stored before the connection died: done, not twice.
            if not (RunStep.objects.filter(pk=step.pk).exclude(status=status, finished_at=step.finished_at)
                    .update(status=status, exit_code=exit_code, error=error, finished_at=step.finished_at)):
                return
            audit.record(None, "step.finish", step, run=step.run_id, status=status, exit_code=exit_code,
                         error=error)

    dbwait.until_written(f"step {step.pk}'s end", write)
    events.publish(events.run_group(step.run_id), events.step_event(step, lines=lines))
    return status == StepStatus.SUCCEEDED


def wait_for_person(step):
    """A manual or approval step now waits; the run is released waiting by the engine."""
    RunStep.objects.filter(pk=step.pk, status=StepStatus.PENDING).update(
        status=StepStatus.WAITING, started_at=timezone.now())
    step.refresh_from_db()
    audit.record(None, "step.wait", step, run=step.run_id, kind=step.action)
    if step.action == StepKind.APPROVAL:
        audit.record(None, "approval.request", step, run=step.run_id, approvers=approvals.required(step.run, step))
        approvals.notify(step.run, step)
    events.publish(events.run_group(step.run_id), events.step_event(step, lines=0))


# People's actions ----------------------------------------------------------

def _operator(user, run, what):
    if not permissions.can_operate(user, run.cluster):
        raise PermissionDenied(f"Only operators can {what}.")


def _step_locked(step):
    """The step and its run, locked for this transaction. A step left running in a run no
    worker executes is interrupted first (``interrupt_cut_off_steps``)."""
    run = UpgradeRun.objects.select_for_update().get(pk=step.run_id)
    if not run.executor:
        _repair_in(run)
    return RunStep.objects.select_for_update().get(pk=step.pk), run


def _continue(run, user, action, target, acknowledge_hold=None, **details):
    """Hand the run back to a worker: running with no executor, queued after commit.

    A run an emergency action paused (``hold_reason``) goes on only when an operator
    resumes or retries it acknowledging why (``acknowledge_hold``); an approval or a
    confirmation given meanwhile leaves it paused.
    """
    if run.hold_reason and acknowledge_hold is not None:
        if not acknowledge_hold:
            raise Refused(f"Run #{run.pk} was paused by an emergency action: {run.hold_reason} — "
                          "acknowledge it to go on.")
        details = {**details, "acknowledged_hold": run.hold_reason}
    elif run.hold_reason:
        with transaction.atomic():
            UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED, finished_at=None, error="",
                                                        pause_requested=False)
        run.refresh_from_db()
        audit.record(user, action, target, run=run.pk, held=run.hold_reason, **details)
        events.publish(events.run_group(run.pk), events.run_event(run))
        _cluster_changed(run)
        return
    try:
        with transaction.atomic():
            UpgradeRun.objects.filter(pk=run.pk).update(
                status=RunStatus.RUNNING, finished_at=None, error="", pause_requested=False, hold_reason="")
    except IntegrityError:
        raise RunConflict(checks.active_run_message(run.cluster, exclude=run.pk, emergency=run.emergency)
                          + " This run stays as it is.") from None
    run.refresh_from_db()
    audit.record(user, action, target, run=run.pk, **details)
    events.publish(events.run_group(run.pk), events.run_event(run))
    transaction.on_commit(lambda: enqueue_run(run))


def confirm_step(*, step, user, comment=""):
    """A person says the manual step is done; the run goes on."""
    _operator(user, step.run, "confirm manual steps")
    with transaction.atomic():
        step, run = _step_locked(step)
        if step.action != StepKind.MANUAL or step.status != StepStatus.WAITING:
            raise Refused(f"Step {step.order} is not waiting for a confirmation.")
        _close_person_step(step, StepStatus.SUCCEEDED, note=comment)
        _continue(run, user, "step.confirm", step, comment=comment)
    return step


def approve_step(*, step, user, comment=""):
    """An approver who is not the requester signs off; with the N-th distinct approval the run goes on."""
    return _decide(step.run, step, user, ApprovalDecision.APPROVED, comment)


def reject_step(*, step, user, comment=""):
    """A rejection ends the run: nothing after the approval runs."""
    return _decide(step.run, step, user, ApprovalDecision.REJECTED, comment)


def approve_run(*, run, user, comment=""):
    """Approve a run's start: with the N-th distinct approval it is queued."""
    _decide(run, None, user, ApprovalDecision.APPROVED, comment)
    run.refresh_from_db()
    return run


def reject_run(*, run, user, comment=""):
    """Reject a run's start: it is cancelled before any step ran."""
    _decide(run, None, user, ApprovalDecision.REJECTED, comment)
    run.refresh_from_db()
    return run


def _decide(run, step, user, decision, comment):
    """Check the approver and the request, record the decision, and act on it.

    ``step`` None: the request to start the run. The requester never decides,
    whatever their role; a person counts once; an expired request is closed
    (the run runs nothing) and the decision refused. A decision carries a comment.
    """
    if not permissions.can_approve(user, run.cluster):
        raise PermissionDenied("Only approvers can approve or reject.")
    if user.pk == run.requested_by_id:
        raise PermissionDenied(f"You requested run #{run.pk}: another approver must decide (four eyes).")
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError("Say why: an approval or a rejection carries a comment.")
    expired = False
    with transaction.atomic():
        run = UpgradeRun.objects.select_for_update().get(pk=run.pk)
        if step is not None:
            step = RunStep.objects.select_for_update().get(pk=step.pk)
            if step.action != StepKind.APPROVAL or step.status != StepStatus.WAITING:
                raise Refused(f"Step {step.order} is not waiting for an approval.")
        elif run.status != RunStatus.AWAITING_APPROVAL or approvals.waiting_step(run) is not None \
                or run.started_at is not None:
            raise Refused(f"Run #{run.pk} is not waiting for an approval to start.")
        expires = approvals.request_expires_at(run, step)
        if expires is not None and expires < timezone.now():
            _expire(run, step)
            expired = True
        elif Approval.objects.filter(run=run, step=step, user=user).exists():
            raise Refused(f"You already decided on this request of run #{run.pk}.")
        else:
            Approval.objects.create(run=run, step=step, user=user, decision=decision, comment=comment)
            _act_on_decision(run, step, user, decision, comment)
    if expired:
        raise Refused(f"The approval request of run #{run.pk} expired at {format_time(expires)}: "
                      "nothing runs; start a new run.")
    return step if step is not None else run


def _act_on_decision(run, step, user, decision, comment):
    target = step if step is not None else run
    prefix = "step" if step is not None else "run"
    if decision == ApprovalDecision.REJECTED:
        error = f"Rejected by {user.username}" + (f": {comment}" if comment else ".")
        if step is not None:
            _close_person_step(step, StepStatus.REJECTED, note=comment, error=f"rejected by {user.username}")
            if cleanup_steps(run):
                _end_through_worker(run, user, f"{prefix}.reject", target, error=error, comment=comment)
                return
            status = RunStatus.FAILED
        else:
            _cancel_open_steps(run)
            status = RunStatus.CANCELLED
        UpgradeRun.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now(), error=error)
        run.refresh_from_db()
        audit.record(user, f"{prefix}.reject", target, run=run.pk, comment=comment)
        events.publish(events.run_group(run.pk), events.run_event(run))
        _cluster_changed(run)
        return
    given = run.approvals.filter(step=step, decision=ApprovalDecision.APPROVED).values("user").distinct().count()
    needed = approvals.required(run, step)
    if given < needed:
        audit.record(user, f"{prefix}.approve", target, run=run.pk, comment=comment, approvals=given, needed=needed)
        events.publish(events.run_group(run.pk), events.run_event(run))
        return
    if step is not None:
        _close_person_step(step, StepStatus.SUCCEEDED, note=comment)
        _continue(run, user, "step.approve", step, comment=comment, approvals=given, needed=needed)
    else:
        _continue(run, user, "run.approve", run, comment=comment, approvals=given, needed=needed)


def _expire(run, step):
    """A request past its time: closed, and the run runs nothing more."""
    error = "The approval request expired."
    if step is not None:
        _close_person_step(step, StepStatus.REJECTED, note="", error="approval request expired")
        if cleanup_steps(run):
            _end_through_worker(run, None, "approval.expired", step, error=error)
            return
        status = RunStatus.FAILED
    else:
        _cancel_open_steps(run)
        status = RunStatus.CANCELLED
    UpgradeRun.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now(), error=error)
    run.refresh_from_db()
    audit.record(None, "approval.expired", step if step is not None else run, run=run.pk)
    events.publish(events.run_group(run.pk), events.run_event(run))
    _cluster_changed(run)


def expire_approvals(now=None):
    """Close every request past its expiry (the sweeper and the approvals page call this)."""
    count = 0
    for run, step in approvals.expired_requests(now):
        with transaction.atomic():
            locked = UpgradeRun.objects.select_for_update().get(pk=run.pk)
            if locked.status != RunStatus.AWAITING_APPROVAL:
                continue
            if step is not None:
                step = RunStep.objects.get(pk=step.pk)
                if step.status != StepStatus.WAITING:
                    continue
            _expire(locked, step)
            count += 1
    return count


def _close_person_step(step, status, *, note, error=""):
    step.status, step.note, step.error, step.finished_at = status, note, error, timezone.now()
    step.save(update_fields=["status", "note", "error", "finished_at"])
    events.publish(events.run_group(step.run_id), events.step_event(step, lines=0))


def pause_run(*, run, user):
    """Pause after the current step (at once when nothing executes)."""
    _operator(user, run, "pause runs")
    with transaction.atomic():
        run = UpgradeRun.objects.select_for_update().get(pk=run.pk)
        if run.cancel_requested and run.status == RunStatus.RUNNING:
            raise Refused(f"Run #{run.pk} is being cancelled: its clean-up steps run, then it ends.")
        if run.status == RunStatus.RUNNING and run.executor:
            UpgradeRun.objects.filter(pk=run.pk).update(pause_requested=True)
            audit.record(user, "run.pause_request", run)
        elif run.status in (RunStatus.PENDING, RunStatus.RUNNING):
            UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED)
            audit.record(user, "run.pause", run)
        else:
            raise Refused(f"Run #{run.pk} is {run.get_status_display().lower()}: only a running run can be paused.")
        run.refresh_from_db()
        events.publish(events.run_group(run.pk), events.run_event(run))
    return run


def cancel_run(*, run, user, reason=""):
    """No further step runs; an executing command is stopped (the worker sees the request within 1 s).

    A run that has done something and has ``always`` steps left (a runbook's
    ``finally``) is never ended here: paused, waiting for a person or for a
    mid-run approval, it goes to a worker that runs those steps and ends it
    cancelled (``engine.advance`` on ``cancel_requested``).
    """
    _operator(user, run, "cancel runs")
    with transaction.atomic():
        run = UpgradeRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in RUN_ACTIVE:
            raise Refused(f"Run #{run.pk} is {run.get_status_display().lower()}: there is nothing to cancel." +
                          (" Abandon it to run its clean-up steps." if run.status in ABANDONABLE else ""))
        if run.cancel_requested and run.status == RunStatus.RUNNING:
            return run  # already being cancelled
        if run.executor:
            UpgradeRun.objects.filter(pk=run.pk).update(cancel_requested=True)
            audit.record(user, "run.cancel_request", run, reason=reason)
        elif cleanup_steps(run):
            _close_waiting_steps(run, user, reason)
            _end_through_worker(run, user, "run.cancel_request", run, error=f"Cancelled by {user.username}",
                                reason=reason)
        else:
            UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED, finished_at=timezone.now(),
                                                        error=f"Cancelled by {user.username}")
            _cancel_open_steps(run)
            audit.record(user, "run.cancel", run, reason=reason)
            _cluster_changed(run)
        run.refresh_from_db()
        events.publish(events.run_group(run.pk), events.run_event(run))
    return run


def abandon_run(*, run, user, reason=""):
    """Give up on a stopped run (failed or interrupted): its ``always`` steps left run
    on a worker, then it ends cancelled; without any, it ends cancelled at once."""
    _operator(user, run, "abandon runs")
    with transaction.atomic():
        run = UpgradeRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in ABANDONABLE:
            raise Refused(f"Run #{run.pk} is {run.get_status_display().lower()}: only a failed or interrupted run "
                          "can be abandoned" + (" (cancel it instead)." if run.status in RUN_ACTIVE else "."))
        error = f"Abandoned by {user.username}" + (f": {reason}" if reason else "")
        if cleanup_steps(run):
            _end_through_worker(run, user, "run.abandon", run, error=error, reason=reason)
        else:
            UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED, finished_at=timezone.now(),
                                                        error=error)
            _cancel_open_steps(run)
            audit.record(user, "run.abandon", run, reason=reason, cleanup=[])
            _cluster_changed(run)
        run.refresh_from_db()
        events.publish(events.run_group(run.pk), events.run_event(run))
    return run


def cleanup_steps(run):
    """The run's ``always`` steps still to run (pending, or cut off by a lost worker), in
    order; none when no step ever started: a run that did nothing needs no clean-up."""
    if not run.steps.exclude(started_at=None).exists():
        return []
    return [s for s in run.steps.filter(status__in=(StepStatus.PENDING, StepStatus.INTERRUPTED)).order_by("order")
            if (s.spec or {}).get("always")]


def _end_through_worker(run, user, action, target, *, error, **details):
    """End a run that no worker executes by handing it to one, cancel requested:
    ``engine.advance`` runs its ``always`` steps, then ends it (cancelled; failed when
    an approval was rejected or expired). Queued after commit; if Redis is away,
    ``queued_at`` stays unset and the sweeper queues it once Redis answers."""
    steps = cleanup_steps(run)
    try:
        with transaction.atomic():
            UpgradeRun.objects.filter(pk=run.pk).update(
                status=RunStatus.RUNNING, finished_at=None, error=error, cancel_requested=True,
                pause_requested=False, queued_at=None)
    except IntegrityError:
        raise RunConflict(checks.active_run_message(run.cluster, exclude=run.pk) +
                          " This run stays as it is: abandon it once that run has ended.") from None
    for step in steps:
        if step.status == StepStatus.INTERRUPTED:
            last = step.output.order_by("-seq").values_list("seq", flat=True).first() or 0
            insert_rows([(step.pk, last + 1, "system", "--- cut off earlier: runs again as the run ends ---")])
            step.status, step.exit_code, step.error = StepStatus.PENDING, None, ""
            step.save(update_fields=["status", "exit_code", "error"])
            events.publish(events.run_group(run.pk), events.step_event(step))
    run.refresh_from_db()
    audit.record(user, action, target, run=run.pk, **details,
                 cleanup=[f"{s.order}. {s.title}" for s in steps])
    events.publish(events.run_group(run.pk), events.run_event(run))
    _cluster_changed(run)
    transaction.on_commit(lambda: enqueue_run(run))


def _close_waiting_steps(run, user, reason):
    """The manual or approval step the run waits on is closed as cancelled: nobody
    confirms or approves it any more."""
    for step in run.steps.filter(status=StepStatus.WAITING):
        _close_person_step(step, StepStatus.CANCELLED, note=reason, error=f"cancelled by {user.username}")


def _cancel_open_steps(run):
    for step in run.steps.filter(status__in=(StepStatus.PENDING, StepStatus.WAITING)):
        step.status = StepStatus.CANCELLED
        step.save(update_fields=["status"])
        events.publish(events.run_group(run.pk), events.step_event(step, lines=0))


def resume_run(*, run, user, acknowledge=False):
    """Go on from where the run stopped; a finished step never runs twice.

    After an interruption a read-only or wait step simply runs again; a step
    that changes the system and was cut off must be retried, marked done or
    skipped first (with a reason). A run an emergency action paused is resumed
    only with ``acknowledge`` (the operator read why).
    """
    _operator(user, run, "resume runs")
    with transaction.atomic():
        run = UpgradeRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in (RunStatus.PAUSED, RunStatus.FAILED, RunStatus.INTERRUPTED):
            raise Refused(f"Run #{run.pk} is {run.get_status_display().lower()}: only a paused, failed or "
                          "interrupted run can be resumed.")
        if run.hold_reason and not acknowledge:
            raise Refused(f"Run #{run.pk} was paused by an emergency action: {run.hold_reason} — "
                          "acknowledge it to go on.")
        if not run.executor:
            _repair_in(run)
        blocking = next((s for s in run.steps.order_by("order") if s.status not in STEP_DONE), None)
        if blocking is not None and blocking.status == StepStatus.REJECTED:
            raise Refused(f"Step {blocking.order} was rejected: start a new run.")
        if blocking is not None and blocking.status in (StepStatus.FAILED, StepStatus.CANCELLED):
            raise Refused(f"Step {blocking.order} ({blocking.title}) {blocking.get_status_display().lower()}: "
                          "retry it, or skip it with a reason, first.")
        if blocking is not None and blocking.status == StepStatus.INTERRUPTED:
            if blocking.changes and blocking.action != StepKind.WAIT:
                raise Refused(f"Step {blocking.order} ({blocking.title}) changes the system and was cut off: "
                              "check the host, then retry it, or mark it done or skip it with a reason.")
            _reset_step(blocking, user, "runs again on resume (read-only or a wait)")
        _continue(run, user, "run.resume", run, acknowledge_hold=bool(acknowledge))
    return run


def retry_step(*, step, user, acknowledge=False):
    """Run a failed, cancelled or interrupted step again; its earlier output stays, followed by the new."""
    _operator(user, step.run, "retry steps")
    with transaction.atomic():
        step, run = _step_locked(step)
        if run.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.PAUSED):
            raise Refused(f"Run #{run.pk} is {run.get_status_display().lower()}: a step is retried once the run "
                          "has stopped.")
        if step.status not in (StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.CANCELLED):
            raise Refused(f"Step {step.order} is {step.get_status_display().lower()}: only a failed, cancelled or "
                          "interrupted step can be retried.")
        if run.hold_reason and not acknowledge:
            raise Refused(f"Run #{run.pk} was paused by an emergency action: {run.hold_reason} — "
                          "acknowledge it to go on.")
        _reset_step(step, user, "retried")
        _continue(run, user, "step.retry", step, acknowledge_hold=bool(acknowledge))
    return step


def _reset_step(step, user, why):
    last = step.output.order_by("-seq").values_list("seq", flat=True).first() or 0
    insert_rows([(step.pk, last + 1, "system", f"--- {why} by {user.username} ---")])
    step.status, step.exit_code, step.error = StepStatus.PENDING, None, ""
    step.save(update_fields=["status", "exit_code", "error"])
    events.publish(events.run_group(step.run_id), events.step_event(step))


def skip_step(*, step, user, reason):
    """A failed, interrupted or pending step is passed over, with a written reason."""
    _operator(user, step.run, "skip steps")
    reason = _reason(reason, "skipped")
    with transaction.atomic():
        step, run = _step_locked(step)
        stopped = run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.PAUSED)
        if not (step.status == StepStatus.PENDING and run.status in RUN_ACTIVE + (RunStatus.FAILED,
                                                                                 RunStatus.INTERRUPTED)
                or step.status in (StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.CANCELLED) and stopped):
            raise Refused(f"Step {step.order} is {step.get_status_display().lower()}: only a pending step, or a "
                          "failed or interrupted one of a stopped run, can be skipped.")
        _close_person_step(step, StepStatus.SKIPPED, note=reason)
        audit.record(user, "step.skip", step, run=run.pk, reason=reason)
    return step


def mark_step_done(*, step, user, reason):
    """An interrupted step that changes the system was finished by hand: say so, with a reason."""
    _operator(user, step.run, "mark steps done")
    reason = _reason(reason, "marked done")
    with transaction.atomic():
        step, run = _step_locked(step)
        if step.status != StepStatus.INTERRUPTED:
            raise Refused(f"Step {step.order} is {step.get_status_display().lower()}: only an interrupted step "
                          "can be marked done.")
        _close_person_step(step, StepStatus.SUCCEEDED, note=f"marked done: {reason}")
        audit.record(user, "step.mark_done", step, run=run.pk, reason=reason)
    return step


def _reason(text, what):
    text = (text or "").strip()
    if not text:
        raise ValidationError(f"Say why the step is {what}.")
    return text
