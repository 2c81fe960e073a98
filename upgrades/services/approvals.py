"""Approval policies: which runs and steps need sign-off, by how many people,
for how long; who is asked (e-mail) and what waits for whom.

A run that needs approval before it starts is stored awaiting approval and
queued only once N distinct approvers agreed (``runs.approve_run``); a step
that needs it becomes an approval step in the plan, placed before it, and
the engine stops there (``runs.approve_step``). The requester never counts.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .. import events, permissions
from ..models import (DEFAULT_APPROVAL_MARKERS, ApprovalPolicy, RunStatus, RunStep, StepKind, StepStatus,
                      UpgradeRun)
from ..plan import PlannedStep
from ..timefmt import format_time

log = logging.getLogger(__name__)


def policy_for(cluster, slug):
    """The most specific policy row, else the default (None: nothing needs approval).

    The emergency lane (maintenance modes, the diagnostic) needs no approver unless
    a policy names its runbook: a policy for every runbook does not cover it, nor
    does the default.
    """
    emergency = _emergency(slug)
    rows = {(p.cluster_id, p.runbook): p for p in ApprovalPolicy.objects.filter(
        Q(cluster=cluster) | Q(cluster__isnull=True), runbook__in=(slug, ""))}
    keys = ((cluster.pk, slug), (None, slug)) if emergency else ((cluster.pk, slug), (cluster.pk, ""),
                                                                 (None, slug), (None, ""))
    for key in keys:
        if key in rows:
            return rows[key]
    if emergency or not settings.APPROVAL_REQUIRED_BY_DEFAULT:
        return None
    return ApprovalPolicy(before_start="changes", step_markers=DEFAULT_APPROVAL_MARKERS, approvers=1,
                          expiry_hours=settings.APPROVAL_DEFAULT_EXPIRY_HOURS)


def _emergency(slug):
    from ..runbooks import UnknownRunbook, get_runbook

    try:
        return get_runbook(slug).emergency
    except UnknownRunbook:
        return False


def apply_policy(plan):
    """Add the policy's approvals to a plan: ``plan.start_approvers`` (0: starts
    at once), approval steps before marked steps, N and expiry on every approval step."""
    policy = policy_for(plan.cluster, plan.runbook.slug)
    plan.start_approvers, plan.approval_expiry_hours = 0, 0
    if policy is None:
        return plan
    n, hours = max(policy.approvers, 1), policy.expiry_hours
    plan.approval_expiry_hours = hours
    if policy.before_start == "always" or policy.before_start == "changes" and plan.changes:
        plan.start_approvers = n  # the launch page says so
    markers = policy.markers()
    steps = []
    for step in plan.steps:
        marked = step.kind in (StepKind.SSH, StepKind.ENGINE) and any(m in step.command for m in markers)
        if marked and not (steps and steps[-1].kind == StepKind.APPROVAL):
            steps.append(PlannedStep(f"approve.{step.key}", f"Approval before: {step.title}", StepKind.APPROVAL,
                                     f"an approver signs off before: {step.command}",
                                     spec={"reason": f"the policy asks for it ({step.command})"}))
        steps.append(step)
    for step in steps:
        if step.kind == StepKind.APPROVAL:
            step.spec = {**step.spec, "approvers": n, "expiry_hours": hours}
    plan.steps = steps
    return plan


def step_expires_at(step):
    hours = (step.spec or {}).get("expiry_hours")
    if not hours or step.started_at is None:
        return None
    return step.started_at + timedelta(hours=hours)


def request_expires_at(run, step=None):
    return step_expires_at(step) if step is not None else run.approval_expires_at


def required(run, step=None):
    if step is not None:
        return max(int((step.spec or {}).get("approvers", 1)), 1)
    return max(run.approvals_required, 1)


def waiting_step(run):
    """The approval step the run waits on, or None (then it is the start request)."""
    return run.steps.filter(action=StepKind.APPROVAL, status=StepStatus.WAITING).order_by("order").first()


def pending_runs(user):
    """Runs awaiting an approval ``user`` may give and has not given yet."""
    runs = (UpgradeRun.objects.filter(status=RunStatus.AWAITING_APPROVAL,
                                      cluster__in=permissions.clusters_where(user, permissions.APPROVE))
            .exclude(requested_by=user).select_related("cluster", "runbook", "requested_by"))
    pending = []
    for run in runs:
        step = waiting_step(run)
        if not run.approvals.filter(step=step, user=user).exists():
            pending.append((run, step))
    return pending


def pending_count(user):
    if not (getattr(user, "is_authenticated", False) and permissions.can_anywhere(user, permissions.APPROVE)):
        return 0
    return len(pending_runs(user))


def approvers_of(run):
    """Who is mailed: active users with an address who may approve on the run's cluster,
    never the requester."""
    return [u for u in possible_approvers(run.cluster, run.requested_by_id) if u.email]


def possible_approvers(cluster, requester_id):
    """Active users who may approve on ``cluster``, but not the requester, by name."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).exclude(pk=requester_id).order_by("username")
    return [u for u in users if permissions.can_approve(u, cluster)]


def who_is_told(cluster, requester):
    """What the launch page says of a request: (mailed, not mailed) approvers."""
    users = possible_approvers(cluster, requester.pk)
    return [u for u in users if u.email], [u for u in users if not u.email]


def plan_text(run):
    lines = []
    for step in run.steps.select_related("host").order_by("order"):
        where = f" on {step.host.name}" if step.host else ""
        lines.append(f"  {step.order}. {step.title}{where} [{step.get_action_display()}]")
        if step.command:
            lines.append(f"       {step.command}")
    return "\n".join(lines)


def notify(run, step=None):
    """Mail the approvers: what waits, the run's plan, and a link. Failures are logged, not raised.
    Every approver's header count changes too (over its websocket)."""
    events.publish(events.APPROVALS_GROUP, events.approvals_event())
    recipients = [u.email for u in approvers_of(run)]
    if not recipients:
        return 0
    what = f"step {step.order} ({step.title})" if step is not None else "the start of the run"
    expires = request_expires_at(run, step)
    link = settings.PORTAL_URL + reverse("run-detail", kwargs={"run_id": run.pk})
    body = (f"{run.requested_by.username} asks for approval of {what}:\n"
            f"run #{run.pk}, {run.runbook.name} on cluster {run.cluster.name}.\n"
            f"Approvals needed: {required(run, step)} (the requester does not count).\n"
            + (f"Valid until: {format_time(expires)}.\n" if expires else "")
            + f"\nThe plan:\n{plan_text(run)}\n\nApprove or reject: {link}\n")
    try:
        return send_mail(f"[HE Portal] Approval needed: run #{run.pk} {run.runbook.name} on {run.cluster.name}",
                         body, None, recipients)
    except OSError as exc:  # SMTP unreachable: the page still shows the request
        log.warning("approval mail for run %s not sent: %s", run.pk, exc)
        return 0


def expired_requests(now=None):
    """(run, step or None) of requests past their expiry, still waiting."""
    now = now or timezone.now()
    found = [(run, None) for run in UpgradeRun.objects.filter(
        status=RunStatus.AWAITING_APPROVAL, approval_expires_at__lt=now, started_at__isnull=True)]
    for step in RunStep.objects.filter(action=StepKind.APPROVAL, status=StepStatus.WAITING).select_related("run"):
        expires = step_expires_at(step)
        if expires is not None and expires < now:
            found.append((step.run, step))
    return found
