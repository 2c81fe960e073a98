"""The team's pages: run history, pending approvals, the audit history and its exports.

Each lists only what the person's roles allow (``upgrades.permissions``),
filters with a plain GET form, and paginates on the server.
"""
import csv
import json
from datetime import datetime, time

from django import forms
from django.core.paginator import Paginator
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import audit, services
from .converters import MAX_ID
from .models import AuditEvent, RunStatus, UpgradeRun
from .permissions import APPROVE, AUDIT, VIEW, clusters_where, needs, sees_everything
from .services import approvals

PAGE_SIZE = 50


# Dates as the rest of the portal writes them (yyyy-mm-dd): a browser's own date
# picker shows the browser's locale (mm/dd/yyyy in en-US Chromium), so a text input.
ISO_DATE = {"format": "%Y-%m-%d", "attrs": {"placeholder": "yyyy-mm-dd", "pattern": r"\d{4}-\d{2}-\d{2}",
                                           "inputmode": "numeric", "size": 10, "title": "yyyy-mm-dd"}}


class RecordFilter(forms.Form):
    """Filters shared by the history and the audit page; every field optional."""

    cluster = forms.ModelChoiceField(queryset=None, required=False, empty_label="every cluster")
    person = forms.CharField(required=False, max_length=150)
    since = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.DateInput(**ISO_DATE))
    until = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.DateInput(**ISO_DATE))

    def __init__(self, data, clusters):
        super().__init__(data)
        self.fields["cluster"].queryset = clusters

    def day_bounds(self):
        tz = timezone.get_current_timezone()
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        return (datetime.combine(since, time.min, tz) if since else None,
                datetime.combine(until, time.max, tz) if until else None)


class HistoryFilter(RecordFilter):
    runbook = forms.SlugField(required=False, max_length=50)
    status = forms.ChoiceField(required=False, choices=[("", "any status")] + list(RunStatus.choices))


class AuditFilter(RecordFilter):
    action = forms.CharField(required=False, max_length=100, help_text="exact, or a prefix ending in a dot",
                             widget=forms.TextInput(attrs={"list": "audit-actions"}))
    run = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


def page_of(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def query_without_page(request):
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def history_runs(user, params):
    """(form, the runs ``user`` may see, filtered by ``params``): the history page's and the API's."""
    visible = clusters_where(user, VIEW)
    form = HistoryFilter(params, visible)
    runs = UpgradeRun.objects.filter(cluster__in=visible).select_related("cluster", "runbook", "requested_by")
    if form.is_valid():
        data = form.cleaned_data
        if data["cluster"]:
            runs = runs.filter(cluster=data["cluster"])
        if data["runbook"]:
            runs = runs.filter(runbook__slug=data["runbook"])
        if data["status"]:
            runs = runs.filter(status=data["status"])
        if data["person"]:
            runs = runs.filter(requested_by__username=data["person"])
        since, until = form.day_bounds()
        if since:
            runs = runs.filter(created_at__gte=since)
        if until:
            runs = runs.filter(created_at__lte=until)
    return form, runs.order_by("-created_at", "-id")


@require_GET
@needs(VIEW)
def run_history(request):
    """Every run the person may see, newest first, filtered."""
    form, runs = history_runs(request.user, request.GET)
    return render(request, "upgrades/history.html", {
        "form": form, "page": page_of(request, runs),
        "query": query_without_page(request)}, status=200 if form.is_valid() else 400)


@require_GET
@needs(APPROVE)
def pending_approvals(request):
    """What waits for this person's decision (expired requests are closed first)."""
    return render(request, "upgrades/approvals.html", {"pending": pending_requests(request.user)})


def pending_requests(user):
    """What waits for ``user``'s decision, expired requests closed first: the page's and the API's."""
    services.expire_approvals()
    return [{"run": run, "step": step, "needed": approvals.required(run, step),
             "given": run.approvals.filter(step=step, decision="approved").count(),
             "expires_at": approvals.request_expires_at(run, step), "rehearsal": rehearsal_for(run)}
            for run, step in approvals.pending_runs(user)]


def rehearsal_for(run):
    from .rehearsal import for_run

    return for_run(run)


@require_GET
@needs(VIEW)
def approvals_count(request):
    """The header's live count (base.html polls it)."""
    return JsonResponse({"pending": approvals.pending_count(request.user)})


def audited_events(request):
    """(form, the events the person may read, filtered)."""
    user = request.user
    auditable = clusters_where(user, AUDIT)
    events = AuditEvent.objects.all()
    if not sees_everything(user, AUDIT):
        events = events.filter(cluster_ref__in=list(auditable.values_list("pk", flat=True)))
    form = AuditFilter(request.GET, auditable)
    if form.is_valid():
        data = form.cleaned_data
        if data["cluster"]:
            events = events.filter(cluster_ref=data["cluster"].pk)
        if data["person"]:
            events = events.filter(actor_name=data["person"])
        if data["action"]:
            action = data["action"]
            events = events.filter(action__startswith=action) if action.endswith(".") else \
                events.filter(action=action)
        if data["run"]:
            events = events.filter(run_ref=data["run"])
        since, until = form.day_bounds()
        if since:
            events = events.filter(created_at__gte=since)
        if until:
            events = events.filter(created_at__lte=until)
    else:
        events = events.none()
    return form, events


@require_GET
@needs(AUDIT)
def audit_page(request):
    form, events = audited_events(request)
    actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
    return render(request, "upgrades/audit.html", {
        "form": form, "page": page_of(request, events.order_by("-seq", "-id")), "actions": list(actions),
        "query": query_without_page(request)}, status=200 if form.is_valid() else 400)


EXPORT_FIELDS = ("seq", "created_at", "actor", "client_address", "action", "target_type", "target_id", "target",
                 "cluster", "run", "details", "prev_hash", "hash")


def export_rows(events):
    for event in events.order_by("seq", "id").iterator(chunk_size=1000):
        yield {"seq": event.seq, "created_at": audit.format_time(event.created_at), "actor": event.actor_name,
               "client_address": event.client_address,
               "action": event.action, "target_type": event.target_type, "target_id": event.target_id,
               "target": event.target_repr, "cluster": event.cluster_ref, "run": event.run_ref,
               "details": event.details, "prev_hash": event.prev_hash, "hash": event.hash}


class Line:
    """csv.writer's file: hands back each written line."""

    def write(self, text):
        return text


def spreadsheet_safe(value):
    """A cell a spreadsheet would read as a formula is quoted."""
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else \
        "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@require_GET
@needs(AUDIT)
def audit_export_csv(request):
    return csv_export(audited_events(request)[1])


def csv_export(events):
    """The events as a CSV download, streamed (the page's export and the API's)."""
    writer = csv.writer(Line())

    def lines():
        yield writer.writerow(EXPORT_FIELDS)
        for row in export_rows(events):
            yield writer.writerow([spreadsheet_safe(row[name]) for name in EXPORT_FIELDS])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response


@require_GET
@needs(AUDIT)
def audit_export_json(request):
    return json_export(audited_events(request)[1])


def json_export(events):
    """The events as a JSON download, streamed (the page's export and the API's)."""

    def chunks():
        yield "["
        for n, row in enumerate(export_rows(events)):
            yield ("," if n else "") + "\n" + json.dumps(row, ensure_ascii=False)
        yield "\n]\n"

    response = StreamingHttpResponse(chunks(), content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="audit.json"'
    return response
