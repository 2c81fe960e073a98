"""Views are glue: look up with permission, call a service, render or redirect.

Pages read the HA poller's last result and never talk to a host. The
cluster and run pages re-fetch their live fragments (``cluster_live``,
``run_live``) when their websocket says something changed, so buttons and
interlocks follow the state; each fragment is one partial template, used by
the page and by the refresh alike.
"""
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, Q, prefetch_related_objects
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import (backups, charts, checks as preflight_checks, downloads, engine_view, leftbehind, packages,
               plan as planning, services, state as cluster_state)
from .cards import cluster_summary, full_score, home_grid, render_card
from .forms import ActionForm
from .models import (RUN_ACTIVE, RUN_ADVANCING, STEP_DONE, AuditEvent, Cluster, EngineBackup, Host, RunStatus,
                     RunStep, StepKind, StepStatus, UpgradeRun)
from .permissions import (ADMINISTER, OPERATE, VIEW, can_admin, can_approve, can_operate, clusters_where,
                          may_decide, needs)
from .runbooks import OUT_OF_SCOPE, UnknownRunbook, all_runbooks, get_runbook


def get_or_404(queryset, pk, what):
    """The object, or a 404 whose page says what was missing."""
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"There is no {what} #{pk}.")
    return found


# Which cluster a URL's object belongs to, for ``needs`` (a missing object is a 404).

def cluster_of_cluster(cluster_id, **kwargs):
    return get_or_404(Cluster.objects.all(), cluster_id, "cluster")


def cluster_of_host(host_id, **kwargs):
    return get_or_404(Host.objects.select_related("cluster"), host_id, "host").cluster


def cluster_of_run(run_id, **kwargs):
    return get_or_404(UpgradeRun.objects.select_related("cluster"), run_id, "run").cluster


def cluster_of_step(run_id, step_id, **kwargs):
    step = RunStep.objects.select_related("run__cluster").filter(pk=step_id, run_id=run_id).first()
    if step is None:
        raise Http404(f"Run #{run_id} has no step #{step_id}.")
    return step.run.cluster


def queue_warning(request, run, saved="is saved"):
    """Say so when the run should be on the queue and enqueueing failed (Redis away).

    A run awaiting approval (or a person) is not queued yet: nothing to say."""
    if run.status in RUN_ADVANCING and run.queued_at is None:
        messages.warning(request, f"The job queue is unreachable right now. Run #{run.pk} {saved} and "
                                  "starts as soon as the queue answers again.")


def recent_runs(user):
    return (UpgradeRun.objects.filter(cluster__in=clusters_where(user, VIEW))
            .select_related("cluster", "runbook", "requested_by")[:20])


@needs(VIEW)
def home(request):
    visible = clusters_where(request.user, VIEW).in_service()
    return render(request, "upgrades/home.html", {
        "grid": home_grid(visible, request.GET), "runs": recent_runs(request.user),
        "can_operate": clusters_where(request.user, OPERATE).exists()})


@require_GET
@needs(VIEW)
def home_runs(request):
    """The home page's recent runs, re-fetched by home.js when a run starts or its status changes."""
    return render(request, "upgrades/partials/recent_runs.html", {"runs": recent_runs(request.user)})


@require_GET
@needs(VIEW)
def home_cards(request):
    """The page of cards, re-fetched by home.js when its websocket (re)connects: what
    changed before it joined is not missed."""
    return render(request, "upgrades/partials/cluster_grid.html",
                  {"grid": home_grid(clusters_where(request.user, VIEW).in_service(), request.GET)})


@require_GET
@needs(VIEW, cluster_of_cluster)
def cluster_card(request, cluster_id):
    """One cluster's card, re-fetched by home.js when the cluster or its run changes."""
    card = render_card(Cluster.objects.filter(pk=cluster_id))
    if card is None:
        raise Http404(f"There is no cluster #{cluster_id}.")
    return HttpResponse(card[1])


# The cluster page ------------------------------------------------------------

# Checks that block every changing runbook alike: shown once above the table,
# not next to each button.
CLUSTER_WIDE_CHECKS = ("ha-fresh", "no-other-active-run", "no-other-emergency-run", "engine-reachable")


@dataclass
class Button:
    """A maintenance button: disabled when its plan has an inhibitor."""

    slug: str
    label: str
    host: object  # a Host, or None for the cluster's buttons
    disabled: bool
    reason: str  # the button's own inhibitors; cluster-wide ones are shown once
    dom_id: str
    remedy: dict | None = None  # a runbook that clears the inhibitor (checks.Result.remedy)


def maintenance_buttons(cluster, hosts, ha):
    """The cluster's and each host's maintenance buttons, and the cluster-wide
    blockers, from the poller's last state (plans only: no remote call)."""
    wide = []

    def button(slug, label, host=None):
        params = {"host": host.name} if host else {}
        dom_id = f"{slug}-{host.pk if host else 'cluster'}"
        try:
            plan = services.plan_run(cluster=cluster, slug=slug, params=params, state=ha, policy=False)
        except ValidationError as exc:
            return Button(slug, label, host, True, " ".join(exc.messages), dom_id)
        # The HA state unknown blocks each button that needs it (local maintenance): said once too.
        shared = [(c.check, c.message) for c in plan.inhibitors
                  if c.check in CLUSTER_WIDE_CHECKS or c.message.startswith("The cluster's HA state is unknown")]
        wide.extend(item for item in shared if item not in wide)
        # A host's check says "the HA state is unknown" too when ha-fresh does: say it once.
        own = []
        for check in plan.inhibitors:
            if check.message not in own + [m for _, m in shared]:
                own.append(check.message)
        remedy = next((c.remedy for c in plan.inhibitors if c.remedy), None)
        return Button(slug, label, host, bool(plan.inhibitors), " ".join(own), dom_id, remedy)

    cluster_buttons = [button("maintenance-global", "Global maintenance"),
                       button("maintenance-none", "No maintenance")]
    for host in hosts:
        host.buttons = [button("maintenance-local", "Local maintenance", host),
                        button("maintenance-none", "No maintenance", host)]
    return cluster_buttons, wide


def cluster_context(request, cluster):
    # Read once here: every maintenance button's plan reads them again (hosts in
    # the model's order: HE host id, name).
    prefetch_related_objects([cluster], "hosts", Prefetch(
        "runs", UpgradeRun.objects.filter(status__in=RUN_ACTIVE).select_related("runbook"), to_attr="active_runs"))
    hosts = list(cluster.hosts.all())
    # A removed cluster's page stays for its runs' sake, without buttons.
    in_service = cluster.removed_at is None
    operator = can_operate(request.user, cluster) and in_service
    context = {"cluster": cluster, "hosts": hosts, "can_operate": operator,
               "can_admin": can_admin(request.user, cluster) and in_service,
               # The procedure holding the cluster, and the emergency lane's run (both may be active).
               "active_run": preflight_checks.active_run(cluster, emergency=False),
               "emergency_run": preflight_checks.active_run(cluster, emergency=True),
               "full_score": full_score(cluster), **cluster_summary(cluster, hosts),
               "engine": engine_view.for_page(cluster, hosts),
               "engine_every": engine_view.engine_poll_seconds(cluster.poll_interval),
               "left_behind": leftbehind.for_cluster(cluster)}
    if operator:
        ha = cluster_state.from_poll(cluster, hosts)
        context["cluster_buttons"], wide = maintenance_buttons(cluster, hosts, ha)
        buttons = context["cluster_buttons"] + [b for host in hosts for b in host.buttons]
        context["all_blocked"] = all(b.disabled for b in buttons)
        # The active run is linked on its own line; its check says the same.
        context["blockers"] = [message for name, message in wide
                               if not (name == "no-other-active-run" and context["active_run"])
                               and not (name == "no-other-emergency-run" and context["emergency_run"])]
    return context


@needs(VIEW, cluster_of_cluster)
def cluster_detail(request, cluster_id):
    cluster = get_or_404(Cluster.objects.all(), cluster_id, "cluster")
    return render(request, "upgrades/cluster_detail.html",
                  {**cluster_context(request, cluster), "runbooks": all_runbooks(), "out_of_scope": OUT_OF_SCOPE,
                   "time_zone": settings.TIME_ZONE, "engine_backups": cluster.engine_backups.all()[:50],
                   "pending_updates": packages.summary(cluster),
                   "packages_poll_minutes": f"{settings.PACKAGES_POLL_SECONDS / 60:g}"})


@require_GET
@needs(VIEW, cluster_of_cluster)
def cluster_live(request, cluster_id):
    """The page's live part, re-fetched by cluster.js on each HA change."""
    cluster = get_or_404(Cluster.objects.all(), cluster_id, "cluster")
    return render(request, "upgrades/partials/cluster_live.html", cluster_context(request, cluster))


@require_GET
@needs(VIEW, cluster_of_cluster)
def cluster_scores(request, cluster_id):
    """Each host's score history over the last hour, day or week, downsampled, with
    the run steps of that time as marks (the cluster page's charts)."""
    cluster = get_or_404(Cluster.objects.all(), cluster_id, "cluster")
    range_name = request.GET.get("range", "hour")
    if range_name not in charts.RANGES:
        return JsonResponse({"error": f"range must be one of {', '.join(charts.RANGES)}"}, status=400)
    hosts = list(cluster.hosts.order_by("he_host_id", "name"))
    data = charts.score_history(cluster, hosts, range_name)
    data["full_score"] = full_score(cluster)
    return JsonResponse(data)


@require_POST
@needs(OPERATE, cluster_of_host, "Only operators can start runs.")
def start_diagnostic(request, host_id):
    host = get_object_or_404(Host.objects.select_related("cluster"), pk=host_id)
    try:
        run = services.start_run(cluster=host.cluster, slug="diagnostic", params={"host": host.name},
                                 user=request.user)
    except (PermissionDenied, services.RunConflict, services.Blocked) as exc:
        messages.error(request, str(exc))
        return redirect("cluster-detail", cluster_id=host.cluster_id)
    queue_warning(request, run)
    return redirect("run-detail", run_id=run.pk)


# Launching a runbook: parameters, the plan, confirmation ----------------------

def get_runbook_or_404(slug):
    try:
        return get_runbook(slug)
    except UnknownRunbook as exc:
        raise Http404(f"There is no runbook {slug!r}.") from exc


def given_params(runbook, data):
    """The runbook's parameters found in ``data``; None when the form should
    start empty (nothing given and something required)."""
    given = {p.name: data.get(p.name) for p in runbook.params if p.name in data}
    if given or not any(p.required for p in runbook.params):
        return given
    return None


def pinned_params(runbook, cluster, plan):
    """The values the confirmation posts: what the plan shows, with the host
    the plan picked when none was given, so the run is the plan confirmed."""
    values = {}
    for param in runbook.params:
        value = plan.params.get(param.name)
        if param.kind == "bool":
            value = "on" if value else None
        if value not in (None, ""):
            values[param.name] = str(value)
    if runbook.default_host and "host" not in values:
        hosts = {h.name: h for h in cluster.hosts.all()}
        values["host"] = planning.default_host(runbook.default_host, hosts, plan.state)
    return values


def launch_page(request, cluster, runbook, data, *, error="", status=200, reason=""):
    form = planning.param_form(runbook, cluster, data=data)
    plan, problem = None, ""
    if data is not None and form.is_valid():
        try:
            plan = services.plan_run(cluster=cluster, slug=runbook.slug, params=data)
        except ValidationError as exc:
            problem = " ".join(exc.messages)
    asks = plan is not None and (plan.start_approvers or any(step.kind == StepKind.APPROVAL for step in plan.steps))
    mailed, unmailed = services.approvals.who_is_told(cluster, request.user) if asks else ([], [])
    return render(request, "upgrades/launch.html", {
        "cluster": cluster, "runbook": runbook, "form": form, "plan": plan, "problem": problem, "error": error,
        "pinned": pinned_params(runbook, cluster, plan) if plan else {},
        "asks_approval": asks, "mailed": mailed, "unmailed": unmailed,
        # An emergency action that changes the cluster is recorded with its reason (required
        # when it pauses a procedure: the pauses-procedure warning says which).
        "takes_reason": plan is not None and runbook.emergency and plan.changes,
        "pauses": plan is not None and any(c.check == "pauses-procedure" and c.level != "ok" for c in plan.checks),
        "reason": reason,
        "can_operate": can_operate(request.user, cluster)}, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
@needs(VIEW, cluster_of_cluster)
def launch_runbook(request, cluster_id, slug):
    """GET: the parameters and, once they are valid, the plan to confirm. POST: start it."""
    cluster = get_or_404(Cluster.objects.all(), cluster_id, "cluster")
    runbook = get_runbook_or_404(slug)
    if request.method != "POST":
        return launch_page(request, cluster, runbook, given_params(runbook, request.GET))
    data = given_params(runbook, request.POST) or {}
    reason = request.POST.get("reason", "")[:2000]
    try:
        run = services.start_run(cluster=cluster, slug=runbook.slug, params=data, user=request.user,
                                 acknowledge=request.POST.get("acknowledge") == "on", reason=reason)
    except PermissionDenied as exc:
        return launch_page(request, cluster, runbook, data, error=str(exc), status=403, reason=reason)
    except ValidationError as exc:
        return launch_page(request, cluster, runbook, data, error=" ".join(exc.messages), status=400, reason=reason)
    except (services.Blocked, services.RunConflict) as exc:
        return launch_page(request, cluster, runbook, data, error=str(exc), status=409, reason=reason)
    queue_warning(request, run)
    return redirect("run-detail", run_id=run.pk)


# The run page ------------------------------------------------------------------

STOPPED = (RunStatus.PAUSED, RunStatus.FAILED, RunStatus.INTERRUPTED)
BROKEN = (StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.CANCELLED)


def run_actions(user, run, step):
    """Which buttons to show for ``step`` (the first one not done) and the run.

    Only a guide for the page: the services decide, and refuse with the
    reason when the run changed meanwhile.
    """
    actions = set()
    if can_operate(user, run.cluster):
        if run.status in (RunStatus.PENDING, RunStatus.RUNNING) and not (run.pause_requested or
                                                                         run.cancel_requested):
            actions.add("pause")
        if run.status in RUN_ACTIVE and not run.cancel_requested:
            actions.add("cancel")
        if run.status in services.ABANDONABLE:
            actions.add("abandon")
        if step is not None and step.action == StepKind.MANUAL and step.status == StepStatus.WAITING:
            actions.add("confirm")
        if run.status in STOPPED and step is not None:
            if step.status in BROKEN:
                actions.add("retry")
            if step.status in BROKEN + (StepStatus.PENDING,):
                actions.add("skip")
            if step.status == StepStatus.INTERRUPTED:
                actions.add("mark-done")
        cut_off_change = step is not None and step.status == StepStatus.INTERRUPTED and step.changes \
            and step.action != StepKind.WAIT
        # A run its start preflight stopped may be resumed: no step has run, so
        # the engine checks the preflight again first.
        if run.status in STOPPED and not cut_off_change and (
                step is None or step.status in (StepStatus.PENDING, StepStatus.INTERRUPTED)):
            actions.add("resume")
    if step is not None and step.action == StepKind.APPROVAL and step.status == StepStatus.WAITING \
            and may_decide(user, run) and not run.approvals.filter(step=step, user=user).exists():
        actions.update(("approve", "reject"))
    if run.status == RunStatus.AWAITING_APPROVAL and run.started_at is None and may_decide(user, run) \
            and (step is None or step.status == StepStatus.PENDING) \
            and not run.approvals.filter(step=None, user=user).exists():
        actions.update(("approve-run", "reject-run"))
    return actions


def host_said(step, limit=10):
    """The last lines the host wrote to stderr for the step's latest attempt
    (else its last output lines): the host's own words for a failure."""
    restart = (step.output.filter(stream="system", text__startswith="--- ").order_by("-seq")
               .values_list("seq", flat=True).first() or 0)
    lines = step.output.filter(seq__gt=restart).order_by("-seq")
    said = list(lines.filter(stream="stderr").values_list("text", flat=True)[:limit]) or \
        list(lines.filter(stream="stdout").values_list("text", flat=True)[:limit])
    return list(reversed(said))


EVENT_TEXT = {
    "run.start": "started the run",
    "run.running": "a worker took the run",
    "run.handover": "its worker was stopping: handed the run over to another worker, from the next step",
    "run.preflight": "checked the preflight on the state read then",
    "run.pause_request": "asked to pause after the current step",
    "run.pause": "paused the run",
    "run.cancel_request": "asked to cancel the run",
    "run.cancel": "cancelled the run",
    "run.abandon": "abandoned the run",
    "run.resume": "resumed the run",
    "run.hold": "paused the run by an emergency action",
    "step.start": "started step {step}",
    "step.finish": "step {step} ended",
    "step.wait": "step {step} waits for a person",
    "step.confirm": "confirmed step {step}",
    "step.approve": "approved step {step}",
    "step.reject": "rejected step {step}",
    "step.retry": "retried step {step}",
    "step.skip": "skipped step {step}",
    "step.mark_done": "marked step {step} done",
}


def describe_event(event):
    """(what, details) of an audit event, for people."""
    action, details = event.action, event.details or {}
    what = EVENT_TEXT.get(action)
    if what is None and action.startswith("run."):
        what = f"the run is now {action.removeprefix('run.').replace('_', ' ')}"
    what = (what or action).replace("{step}", event.target_repr)
    extra = []
    if action == "run.start" and details.get("params"):
        extra.append(", ".join(f"{k}={v}" for k, v in details["params"].items()))
    if action == "step.start" and details.get("host"):
        extra.append(f"on {details['host']}")
    if action == "step.finish":
        extra.append(str(details.get("status", "")) + (f", exit code {details['exit_code']}"
                                                       if details.get("exit_code") is not None else ""))
    if action == "run.preflight":
        levels = [r.get("level") for r in details.get("results", [])]
        extra.append(", ".join(f"{levels.count(level)} {level}" for level in ("ok", "warning", "inhibitor")
                               if level in levels))
    for key in ("comment", "reason", "error"):
        if details.get(key):
            extra.append(f"{key}: {details[key]}")
    if details.get("acknowledged"):
        extra.append("acknowledged: " + " ".join(details["acknowledged"]))
    if details.get("acknowledged_hold"):
        extra.append("knowing why it was paused: " + details["acknowledged_hold"])
    if details.get("effect"):
        extra.append(f"it {details['effect']}")
    return what, "; ".join(e for e in extra if e)


def run_history(run):
    """Who did what, when: the run's audit events and its steps', oldest first."""
    events = AuditEvent.objects.filter(Q(target_type="UpgradeRun", target_id=str(run.pk)) | Q(details__run=run.pk))
    return [(event, *describe_event(event)) for event in events.order_by("created_at", "id")]


# Lines each step's terminal keeps (xterm.js scrollback): bounded memory
# however long the log; the full log is a download.
TERMINAL_SCROLLBACK = 5000


def run_context(request, run, typed=None):
    steps = list(run.steps.select_related("host").order_by("order"))
    current = next((s for s in steps if s.status not in STEP_DONE), None)
    failed = current is not None and current.status in BROKEN + (StepStatus.REJECTED,)
    return {
        "run": run, "steps": steps, "current": current,
        "progress": {"done": sum(s.status in STEP_DONE for s in steps), "total": len(steps)},
        "scrollback": TERMINAL_SCROLLBACK,
        "actions": run_actions(request.user, run, current),
        # The always steps a cancel or an abandon runs first; the one running while the run ends.
        "cleanup": services.cleanup_steps(run) if run.status in RUN_ACTIVE + services.ABANDONABLE else [],
        "cleaning_up": run.cancel_requested and run.is_active and any(
            s.status == StepStatus.RUNNING and (s.spec or {}).get("always") for s in steps),
        "stopping": run.cancel_requested and run.is_active and any(
            s.status == StepStatus.RUNNING and not (s.spec or {}).get("always") for s in steps),
        "failed_step": current if failed else None,
        "host_said": host_said(current) if failed and current.action == StepKind.SSH else [],
        "is_requester": request.user.pk == run.requested_by_id,
        "can_approve": can_approve(request.user, run.cluster),
        "history": run_history(run),
        "decisions": run.approvals.select_related("user", "step").order_by("created_at", "id"),
        "start_request": start_request(run),
        "typed": typed or {},
        "left_behind": leftbehind.left_behind(run),
        "can_operate": can_operate(request.user, run.cluster),
        "versions": packages.versions(run),
        # What an approver weighs: the rehearsal of this very plan, if any (upgrades.rehearsal).
        "rehearsal": _rehearsal_of(run),
    }


def _rehearsal_of(run):
    from .rehearsal import for_run

    return for_run(run) if run.status == RunStatus.AWAITING_APPROVAL else None


def get_run_or_404(run_id):
    return get_or_404(UpgradeRun.objects.select_related("cluster", "runbook", "requested_by"), run_id, "run")


def start_request(run):
    """The run's request to start, while it waits: how many approvals it has, needs, until when."""
    if run.status != RunStatus.AWAITING_APPROVAL or run.started_at is not None or not run.approvals_required:
        return None
    given = run.approvals.filter(step=None, decision="approved").count()
    return {"given": given, "needed": run.approvals_required, "expires_at": run.approval_expires_at}


@needs(VIEW, cluster_of_run)
def run_detail(request, run_id):
    run = get_run_or_404(run_id)
    return render(request, "upgrades/run_detail.html", run_context(request, run))


@require_GET
@needs(VIEW, cluster_of_run)
def run_live(request, run_id):
    """The run's actions, preflight and history, re-fetched by run.js on each status change."""
    run = get_run_or_404(run_id)
    return render(request, "upgrades/partials/run_live.html", run_context(request, run))


def refused(request, run, exc, typed):
    """An action that did not happen: the run page again, with why and what was typed."""
    if isinstance(exc, ValidationError):
        status, message = 400, " ".join(exc.messages)
    else:
        status, message = (403 if isinstance(exc, PermissionDenied) else 409), str(exc)
    messages.error(request, message)
    run.refresh_from_db()
    return render(request, "upgrades/run_detail.html", run_context(request, run, typed), status=status)


def typed_text(request, action):
    """What came with the action (kept for the page if it is refused), and
    a ValidationError when it is too long."""
    typed = {"action": action, "comment": request.POST.get("comment", ""), "reason": request.POST.get("reason", "")}
    form = ActionForm(request.POST)
    if not form.is_valid():
        return typed, ValidationError([f"The {name} is too long: {error}" for name, errors in form.errors.items()
                                       for error in errors])
    return {**typed, **form.cleaned_data}, None


# action: (service, the text fields it takes, what the operator reads after it)
RUN_ACTIONS = {
    "pause": (services.pause_run, (), lambda run: f"Run #{run.pk} pauses after the current step."
              if run.pause_requested else f"Run #{run.pk} paused."),
    "cancel": (services.cancel_run, ("reason",), lambda run: (
        f"Run #{run.pk}: the current command is being stopped, then the run is cancelled" +
        (" after its clean-up steps." if services.cleanup_steps(run) else ".") if run.executor else
        f"Run #{run.pk} is being cancelled: its clean-up steps run first.")
        if run.cancel_requested else f"Run #{run.pk} cancelled."),
    "resume": (services.resume_run, (), lambda run: f"Run #{run.pk} resumed."),
    "abandon": (services.abandon_run, ("reason",), lambda run: f"Run #{run.pk} abandoned: its clean-up steps run, "
                "then it ends cancelled." if run.cancel_requested else f"Run #{run.pk} abandoned: cancelled."),
    "approve-run": (services.approve_run, ("comment",), lambda run: f"Run #{run.pk}: your approval is recorded" + (
        "; the run starts." if run.status != RunStatus.AWAITING_APPROVAL else "; it waits for more approvers.")),
    "reject-run": (services.reject_run, ("comment",), lambda run: f"Run #{run.pk} rejected: nothing runs."),
}
STEP_ACTIONS = {
    "retry": (services.retry_step, (), "Step {order} ({title}) runs again."),
    "skip": (services.skip_step, ("reason",), "Step {order} ({title}) skipped."),
    "mark-done": (services.mark_step_done, ("reason",), "Step {order} ({title}) marked done."),
    "confirm": (services.confirm_step, ("comment",), "Step {order} ({title}) confirmed; the run goes on."),
    "approve": (services.approve_step, ("comment",), "Step {order} ({title}) approved; the run goes on."),
    "reject": (services.reject_step, ("comment",), "Step {order} ({title}) rejected: the run ends here."),
}
ACTION_ERRORS = (PermissionDenied, ValidationError, services.Refused, services.RunConflict)


@require_POST
@needs(VIEW, cluster_of_run)  # the service checks the action's own role, and says so on the run page
def run_action(request, run_id, action):
    """Pause, cancel or resume a run."""
    run = get_run_or_404(run_id)
    service, fields, done = RUN_ACTIONS[action]
    typed, invalid = typed_text(request, action)
    try:
        if invalid:
            raise invalid
        # Resuming a run an emergency action paused: the operator ticked that they read why.
        extra = {"acknowledge": request.POST.get("acknowledge_hold") == "on"} if action == "resume" else {}
        run = service(run=run, user=request.user, **{name: typed[name] for name in fields}, **extra)
    except ACTION_ERRORS as exc:
        return refused(request, run, exc, typed)
    messages.success(request, done(run))
    if action == "approve-run":
        queue_warning(request, run, "is approved")
    return redirect("run-detail", run_id=run.pk)


@require_POST
@needs(VIEW, cluster_of_run)  # the service checks the action's own role, and says so on the run page
def step_action(request, run_id, step_id, action):
    """Retry, skip, mark done, confirm, approve or reject a step."""
    run = get_run_or_404(run_id)
    step = run.steps.filter(pk=step_id).first()
    if step is None:
        raise Http404(f"Run #{run.pk} has no step #{step_id}.")
    service, fields, done = STEP_ACTIONS[action]
    typed, invalid = typed_text(request, action)
    try:
        if invalid:
            raise invalid
        extra = {"acknowledge": request.POST.get("acknowledge_hold") == "on"} if action == "retry" else {}
        service(step=step, user=request.user, **{name: typed[name] for name in fields}, **extra)
    except ACTION_ERRORS as exc:
        return refused(request, run, exc, typed)
    messages.success(request, done.format(order=step.order, title=step.title))
    return redirect("run-detail", run_id=run.pk)


@require_GET
@needs(VIEW, cluster_of_step)
async def step_log(request, run_id, step_id):
    """One step's full log as a file, streamed: the page itself keeps only the tail."""
    step = await RunStep.objects.filter(pk=step_id, run_id=run_id).afirst()
    if step is None:
        raise Http404(f"Run #{run_id} has no step #{step_id}.")
    return downloads.log_response(downloads.step_lines(step.pk), f"run-{run_id}-step-{step.order}.log")


@require_GET
@needs(VIEW, cluster_of_run)
async def run_log(request, run_id):
    """Every step's full log in one file, each step headed with what ran where."""
    run = await (UpgradeRun.objects.select_related("cluster", "runbook", "requested_by")
                 .filter(pk=run_id).afirst())
    if run is None:
        raise Http404(f"There is no run #{run_id}.")
    steps = [step async for step in run.steps.select_related("host").order_by("order")]
    return downloads.log_response(downloads.run_lines(run, steps), f"run-{run_id}.log")


@require_GET
@needs(ADMINISTER, cluster_of_cluster, "Only admins can download engine backups.")
async def engine_backup(request, cluster_id, backup_id):
    """An engine backup kept by the portal, streamed from its file; audited."""
    backup = await EngineBackup.objects.filter(pk=backup_id, cluster_id=cluster_id).afirst()
    if backup is None:
        raise Http404(f"Cluster #{cluster_id} has no engine backup #{backup_id}.")
    path = await sync_to_async(backups.open_download)(request.user, backup)
    return downloads.file_response(path, path.name)


@needs(ADMINISTER, cluster_of_host, "Only admins can review host keys.")
def host_key(request, host_id):
    """Admins only: show the key the host offers now; POST pins the reviewed line."""
    host = get_or_404(Host.objects.select_related("cluster"), host_id, "host")
    if request.method == "POST":
        try:
            services.accept_host_key(host=host, known_hosts_line=request.POST.get("known_hosts_line", ""),
                                     user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("host-key", host_id=host.pk)
        messages.success(request, f"Host key of {host.name} accepted.")
        return redirect("cluster-detail", cluster_id=host.cluster_id)
    return render(request, "upgrades/host_key.html", {"host": host, **services.review_host_key(host)})
