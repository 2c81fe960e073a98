"""The API's views: glue like the pages' (upgrades/views.py), over the same services.

Each view looks its object up with the one permission check
(``upgrades.permissions``), calls one service and answers JSON. The
services decide and audit; their refusals become 4xx answers here
(``exception_handler``): ValidationError 400 naming each field,
PermissionDenied 403, a refused action or a conflict 409.
"""
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers as drf, status
from rest_framework import exceptions as drf_errors
from rest_framework.exceptions import NotAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler as drf_exception_handler

from .. import charts, downloads, ha, services
from ..cards import full_score
from ..consumers import parse_cursors
from ..models import RUN_TERMINAL, STEP_DONE, Cluster, Host, StepOutput, UpgradeRun
from ..output import last_seq
from ..permissions import APPROVE, AUDIT, REFUSAL, VIEW, can, can_anywhere, clusters_where
from ..runbooks import UnknownRunbook, all_runbooks, get_runbook
from ..services.runs import _jsonable as jsonable  # the params as a run stores them
from ..views import RUN_ACTIONS, STEP_ACTIONS, run_actions
from ..views_records import audited_events, csv_export, history_runs, json_export, pending_requests
from . import serializers as s

OUTPUT_LIMIT = 1000  # lines per answer; ``more`` says to ask again at once
PAGE_SIZE = 100
FIELD_ERRORS = OpenApiResponse(OpenApiTypes.OBJECT, description=(
    "Bad input, nothing changed: each field's problems, {field: [message, ...]} (a runbook's parameters "
    "under params: {params: {name: [...]}}), problems of no one field under non_field_errors; a body "
    "that is not JSON: {detail: ...}."))
ERRORS = {400: FIELD_ERRORS, 401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer}
ACTION_ERRORS = {**ERRORS, 409: s.ErrorSerializer}


def validation_body(exc):
    """A Django ValidationError as {field: [messages]}; errors of no field under non_field_errors."""
    if hasattr(exc, "error_dict"):
        return {("non_field_errors" if name == "__all__" else name): list(messages)
                for name, messages in exc.message_dict.items()}
    return {"non_field_errors": list(exc.messages)}


def exception_handler(exc, context):
    """DRF's handler, plus the services' refusals (REST_FRAMEWORK["EXCEPTION_HANDLER"])."""
    if isinstance(exc, ValidationError):
        return Response(validation_body(exc), status=400)
    if isinstance(exc, services.Blocked):
        return Response({"detail": str(exc), "checks": [c.to_dict() for c in exc.plan.checks]}, status=409)
    if isinstance(exc, (services.Refused, services.RunConflict)):
        return Response({"detail": str(exc)}, status=409)
    return drf_exception_handler(exc, context)


# Lookups: the object, or 404; then the one permission check -------------------------

def allow(request, perm, cluster=None):
    """``perm`` on ``cluster`` (or on any cluster), else 403 with the pages' reason."""
    user = request.user
    if not user.is_authenticated:
        raise NotAuthenticated()
    allowed = can(user, perm, cluster) if cluster is not None else can_anywhere(user, perm)
    if not allowed:
        raise PermissionDenied(REFUSAL[perm])


def found(queryset, pk, what):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404(f"There is no {what} #{pk}.")
    return obj


def cluster_for(request, cluster_id, perm=VIEW):
    cluster = found(Cluster.objects.all(), cluster_id, "cluster")
    allow(request, perm, cluster)
    return cluster


def run_for(request, run_id):
    run = found(UpgradeRun.objects.select_related("cluster", "runbook", "requested_by"), run_id, "run")
    allow(request, VIEW, run.cluster)
    return run


def step_for(run, step_id):
    step = run.steps.select_related("host").filter(pk=step_id).first()
    if step is None:
        raise Http404(f"Run #{run.pk} has no step #{step_id}.")
    return step


def runbook_or_404(slug):
    try:
        return get_runbook(slug)
    except UnknownRunbook:
        raise Http404(f"There is no runbook {slug!r}.") from None


def paginate(request, queryset):
    """(rows, next page number or None): ``?page=`` from 1."""
    raw = request.query_params.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 10**9:
        raise ValidationError({"page": ["A page number from 1."]})
    page = int(raw)
    rows = list(queryset[(page - 1) * PAGE_SIZE:page * PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], (page + 1 if len(rows) > PAGE_SIZE else None)


def page_schema(name, item):
    return inline_serializer(name, {"results": item(many=True), "next_page": drf.IntegerField(allow_null=True)})


PAGE_PARAM = OpenApiParameter("page", int, description="Page number, from 1 (100 per page).")


# Clusters and hosts -------------------------------------------------------------

class ClusterList(APIView):
    @extend_schema(responses={200: s.ClusterSerializer(many=True), **ERRORS})
    def get(self, request):
        """The clusters you hold a role on."""
        allow(request, VIEW)
        return Response(s.ClusterSerializer(clusters_where(request.user, VIEW).order_by("name"), many=True).data)


class ClusterDetail(APIView):
    @extend_schema(responses={200: s.ClusterDetailSerializer, **ERRORS})
    def get(self, request, cluster_id):
        """A cluster with its hosts."""
        return Response(s.ClusterDetailSerializer(cluster_for(request, cluster_id)).data)


class HostDetail(APIView):
    @extend_schema(responses={200: s.HostSerializer, **ERRORS})
    def get(self, request, host_id):
        host = found(Host.objects.select_related("cluster"), host_id, "host")
        allow(request, VIEW, host.cluster)
        return Response(s.HostSerializer(host).data)


class ClusterHa(APIView):
    @extend_schema(responses={200: s.HaStateSerializer, **ERRORS})
    def get(self, request, cluster_id):
        """The live HA state the poller last read (what the cluster page and its websocket show)."""
        payload = dict(ha.cluster_payload(cluster_for(request, cluster_id)))
        payload.pop("type")
        return Response(payload)


class ClusterScores(APIView):
    @extend_schema(parameters=[OpenApiParameter("range", str, enum=list(charts.RANGES), default="hour")],
                   responses={200: s.ScoresSerializer, **ERRORS})
    def get(self, request, cluster_id):
        """Each host's HA score history, downsampled (the cluster page's charts)."""
        cluster = cluster_for(request, cluster_id)
        range_name = request.query_params.get("range", "hour")
        if range_name not in charts.RANGES:
            raise ValidationError({"range": [f"One of {', '.join(charts.RANGES)}."]})
        data = charts.score_history(cluster, list(cluster.hosts.order_by("he_host_id", "name")), range_name)
        return Response({**data, "full_score": full_score(cluster)})


# Runbooks and plans ---------------------------------------------------------------

class RunbookList(APIView):
    @extend_schema(responses={200: s.RunbookSerializer(many=True), **ERRORS})
    def get(self, request):
        """Every runbook and its parameters."""
        allow(request, VIEW)
        return Response(s.RunbookSerializer(all_runbooks(), many=True).data)


class RunbookDetail(APIView):
    @extend_schema(responses={200: s.RunbookSerializer, **ERRORS})
    def get(self, request, slug):
        allow(request, VIEW)
        return Response(s.RunbookSerializer(runbook_or_404(slug)).data)


def checked_params(runbook, params):
    """The request's parameters, refusing names the runbook does not have (each named)."""
    unknown = sorted(set(params) - {p.name for p in runbook.params})
    if unknown:
        raise drf_errors.ValidationError({"params": {name: ["This runbook has no such parameter."]
                                                     for name in unknown}})
    return params


def params_refused(exc):
    """The plan's refusal as a 400: its form's field errors under ``params``."""
    body = validation_body(exc)
    fields = {k: v for k, v in body.items() if k != "non_field_errors"}
    out = {}
    if fields:
        out["params"] = fields
    if "non_field_errors" in body:
        out["non_field_errors"] = body["non_field_errors"]
    return Response(out, status=400)


def plan_body(plan):
    return s.PlanSerializer({
        "cluster": plan.cluster, "runbook": plan.runbook, "params": jsonable(plan.params), "steps": plan.steps,
        "checks": [c.to_dict() for c in plan.checks], "notes": plan.notes,
        "startable": not plan.inhibitors, "needs_acknowledge": bool(plan.warnings),
        "approvals_required": getattr(plan, "start_approvers", 0)}).data


class PlanView(APIView):
    @extend_schema(request=s.PlanInput, responses={200: s.PlanSerializer, **ERRORS})
    def post(self, request, cluster_id, slug):
        """The plan of a runbook on a cluster with these parameters: its steps and preflight.
        Nothing is started (a POST only because parameters are a body)."""
        cluster = cluster_for(request, cluster_id)
        runbook = runbook_or_404(slug)
        data = s.PlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        params = checked_params(runbook, data.validated_data["params"])
        try:
            plan = services.plan_run(cluster=cluster, slug=runbook.slug, params=params)
        except ValidationError as exc:
            return params_refused(exc)
        return Response(plan_body(plan))


# Runs ---------------------------------------------------------------------------------

def run_body(run):
    return s.RunSerializer(run).data


def run_detail_body(request, run):
    steps = list(run.steps.select_related("host").order_by("order"))
    for step in steps:
        step.last_seq = last_seq(step.pk)  # one index lookup each: a step may have a million lines
    current = next((st for st in steps if st.status not in STEP_DONE), None)
    return {**run_body(run), "steps": s.StepSerializer(steps, many=True).data,
            "actions": sorted(run_actions(request.user, run, current)), "preflight": run.preflight or {}}


RUN_FILTERS = [OpenApiParameter(name, str, description=what) for name, what in (
    ("cluster", "cluster id"), ("runbook", "runbook slug"), ("status", "run status"),
    ("person", "who requested it (username)"), ("since", "yyyy-mm-dd"), ("until", "yyyy-mm-dd"))] + [PAGE_PARAM]


class RunList(APIView):
    @extend_schema(operation_id="runs_list", parameters=RUN_FILTERS,
                   responses={200: page_schema("RunPage", s.RunSerializer), **ERRORS})
    def get(self, request):
        """The runs you may see, newest first, with the history page's filters."""
        allow(request, VIEW)
        form, runs = history_runs(request.user, request.query_params)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        rows, next_page = paginate(request, runs)
        return Response({"results": [run_body(run) for run in rows], "next_page": next_page})

    @extend_schema(request=s.StartInput, responses={201: s.RunDetailSerializer, **ACTION_ERRORS})
    def post(self, request):
        """Start a runbook: planned and checked again, then queued (or awaiting approval)."""
        data = s.StartInput(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        cluster = Cluster.objects.filter(pk=data["cluster"]).first()
        if cluster is None:
            raise ValidationError({"cluster": [f"There is no cluster #{data['cluster']}."]})
        allow(request, VIEW, cluster)
        try:
            runbook = get_runbook(data["runbook"])
        except UnknownRunbook:
            raise ValidationError({"runbook": [f"There is no runbook {data['runbook']!r}."]}) from None
        params = checked_params(runbook, data["params"])
        try:
            run = services.start_run(cluster=cluster, slug=runbook.slug, params=params, user=request.user,
                                     acknowledge=data["acknowledge"], reason=data["reason"])
        except ValidationError as exc:
            return params_refused(exc)
        run = run_for(request, run.pk)
        return Response(run_detail_body(request, run), status=status.HTTP_201_CREATED)


class RunDetail(APIView):
    @extend_schema(responses={200: s.RunDetailSerializer, **ERRORS})
    def get(self, request, run_id):
        """A run's status, steps (each with its last output line) and what you may do now."""
        return Response(run_detail_body(request, run_for(request, run_id)))


def lines_after(step_id, after, limit):
    return list(StepOutput.objects.filter(step_id=step_id, seq__gt=after).order_by("seq")
                .values_list("seq", "stream", "text")[:limit])


class RunOutput(APIView):
    @extend_schema(parameters=[OpenApiParameter(
        "after", str, description="Per step, the last line you have: <step id>:<seq>,… (the websocket's "
                                  "cursor; the answer's ``after`` is the next one). Missing: from the start.")],
        responses={200: s.RunOutputSerializer, **ERRORS})
    def get(self, request, run_id):
        """Every step's output lines after the cursor, in step order; at most 1000 per answer.
        Lossless: a line stored later has a higher seq than any given before."""
        run = run_for(request, run_id)
        ended = run.status in RUN_TERMINAL  # read before the lines: a line after this read is still sent
        cursors = parse_cursors("after=" + request.query_params.get("after", ""))
        steps = list(run.steps.order_by("order").values_list("pk", flat=True))
        lines, more = [], False
        for step_id in steps:
            after = cursors.get(step_id, 0)
            room = OUTPUT_LIMIT - len(lines)
            rows = lines_after(step_id, after, room + 1) if room >= 0 else []
            if len(rows) > room:
                more, rows = True, rows[:room]
            lines.extend({"step": step_id, "seq": seq, "stream": stream, "text": text} for seq, stream, text in rows)
            cursors[step_id] = rows[-1][0] if rows else after
            if more:
                break
        cursor = ",".join(f"{step_id}:{cursors.get(step_id, 0)}" for step_id in steps)
        return Response({"lines": lines, "after": cursor, "more": more, "status": run.status,
                         "ended": ended and not more})


class StepOutputView(APIView):
    @extend_schema(parameters=[OpenApiParameter("after", int, description="The last seq you have (0: none).")],
                   responses={200: s.StepOutputSerializer, **ERRORS})
    def get(self, request, run_id, step_id):
        """One step's output lines after ``seq``; at most 1000 per answer."""
        step = step_for(run_for(request, run_id), step_id)
        raw = request.query_params.get("after", "0")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise ValidationError({"after": ["A line number (seq), 0 or more."]})
        rows = lines_after(step.pk, int(raw), OUTPUT_LIMIT + 1)
        more = len(rows) > OUTPUT_LIMIT
        rows = rows[:OUTPUT_LIMIT]
        return Response({"lines": [{"step": step.pk, "seq": q, "stream": st, "text": t} for q, st, t in rows],
                         "after": rows[-1][0] if rows else int(raw), "more": more, "status": step.status})


class RunLog(APIView):
    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR, **ERRORS})
    def get(self, request, run_id):
        """The whole log as one text stream (the run page's download)."""
        run = run_for(request, run_id)
        steps = list(run.steps.select_related("host").order_by("order"))
        return downloads.log_response(downloads.run_lines(run, steps), f"run-{run.pk}.log")


def action_input(request):
    data = s.ActionInput(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def act(service, fields, **kwargs):
    """Call the action's service; its "say why" (a ValidationError of no field) names the one
    text field the action takes."""
    try:
        return service(**kwargs)
    except ValidationError as exc:
        if not hasattr(exc, "error_dict") and len(fields) == 1:
            raise ValidationError({fields[0]: exc.messages}) from None
        raise


class RunAction(APIView):
    action = None  # set per route: a key of upgrades.views.RUN_ACTIONS

    @extend_schema(request=s.ActionInput, responses={200: s.RunDetailSerializer, **ACTION_ERRORS})
    def post(self, request, run_id):
        run = run_for(request, run_id)
        service, fields, _ = RUN_ACTIONS[self.action]
        typed = action_input(request)
        extra = {"acknowledge": typed["acknowledge"]} if self.action == "resume" else {}
        act(service, fields, run=run, user=request.user, **{name: typed[name] for name in fields}, **extra)
        return Response(run_detail_body(request, run_for(request, run_id)))


class StepAction(APIView):
    action = None  # a key of upgrades.views.STEP_ACTIONS

    @extend_schema(request=s.ActionInput, responses={200: s.RunDetailSerializer, **ACTION_ERRORS})
    def post(self, request, run_id, step_id):
        run = run_for(request, run_id)
        step = step_for(run, step_id)
        service, fields, _ = STEP_ACTIONS[self.action]
        typed = action_input(request)
        extra = {"acknowledge": typed["acknowledge"]} if self.action == "retry" else {}
        act(service, fields, step=step, user=request.user, **{name: typed[name] for name in fields}, **extra)
        return Response(run_detail_body(request, run_for(request, run_id)))


# Approvals and the audit history ---------------------------------------------------------

class ApprovalList(APIView):
    @extend_schema(responses={200: s.ApprovalRequestSerializer(many=True), **ERRORS})
    def get(self, request):
        """What waits for your decision (expired requests closed first). Decide with the run's
        approve-run / reject-run, or the step's approve / reject."""
        allow(request, APPROVE)
        return Response([{**pending, "run": run_body(pending["run"]),
                          "step": pending["step"].pk if pending["step"] else None}
                         for pending in pending_requests(request.user)])


AUDIT_FILTERS = [OpenApiParameter(name, str, description=what) for name, what in (
    ("cluster", "cluster id"), ("person", "username"), ("action", "exact, or a prefix ending in a dot"),
    ("run", "run id"), ("since", "yyyy-mm-dd"), ("until", "yyyy-mm-dd"))] + [PAGE_PARAM]


class AuditList(APIView):
    @extend_schema(parameters=AUDIT_FILTERS,
                   responses={200: page_schema("AuditPage", s.AuditEventSerializer), **ERRORS})
    def get(self, request):
        """The audit history you may read, newest first, with the audit page's filters."""
        allow(request, AUDIT)
        form, events = audited_events(request._request)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        rows, next_page = paginate(request, events.order_by("-created_at", "-id"))
        return Response({"results": s.AuditEventSerializer(rows, many=True).data, "next_page": next_page})


EXPORT_ROWS = inline_serializer("AuditExportRow", {
    "seq": drf.IntegerField(allow_null=True), "created_at": drf.CharField(), "actor": drf.CharField(),
    "action": drf.CharField(), "target_type": drf.CharField(), "target_id": drf.CharField(),
    "target": drf.CharField(), "cluster": drf.IntegerField(allow_null=True), "run": drf.IntegerField(allow_null=True),
    "details": drf.DictField(), "prev_hash": drf.CharField(), "hash": drf.CharField()}, many=True)


class AuditExport(APIView):
    """The audit history you may read, with the audit page's filters, as its export files."""
    export = None  # "csv" or "json", set per route

    @extend_schema(parameters=AUDIT_FILTERS[:-1], responses={
        (200, "text/csv"): OpenApiTypes.BINARY, (200, "application/json"): EXPORT_ROWS, **ERRORS})
    def get(self, request):
        allow(request, AUDIT)
        form, events = audited_events(request._request)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        return csv_export(events) if self.export == "csv" else json_export(events)


class Me(APIView):
    @extend_schema(responses={200: inline_serializer("Me", {
        "username": drf.CharField(), "global_roles": drf.ListField(child=drf.CharField()),
        "auth": drf.CharField()}), **ERRORS})
    def get(self, request):
        """Who the token (or session) acts as."""
        from ..permissions import global_roles

        if not request.user.is_authenticated:
            raise NotAuthenticated()
        return Response({"username": request.user.username, "global_roles": sorted(global_roles(request.user)),
                         "auth": "token" if request.auth == "token" else "session"})


class Schema(SpectacularAPIView):
    """The OpenAPI description (YAML, or JSON with ?format=json); a refusal is JSON like every
    other answer of the API, not rendered by the YAML renderer negotiated for the schema."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response
