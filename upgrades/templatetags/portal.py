"""Small display filters for the pages (run.js formats live durations the same way)."""
from datetime import datetime

from django import template
from django.utils import timezone

from ..checks import describe_check
from ..models import StepKind, StepStatus
from ..timefmt import format_time

register = template.Library()


def format_seconds(seconds):
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@register.filter
def duration(step):
    """How long the step ran (or has been running, or waiting); "" before it starts."""
    if step.started_at is None or step.status == StepStatus.PENDING:
        return ""
    return format_seconds(max(0.0, ((step.finished_at or timezone.now()) - step.started_at).total_seconds()))


@register.filter
def step_kind(kind):
    """"ssh" -> "command", as the run's records name the kinds."""
    try:
        label = StepKind(kind).label
    except ValueError:
        return kind
    return label[:1].lower() + label[1:]  # "Wait" (Django's default label) -> "wait"


@register.filter
def guards(spec):
    """A step's guards as sentences: the checks run again right before it."""
    described = []
    for guard in (spec or {}).get("guards") or []:
        try:
            described.append(describe_check(guard["name"], guard.get("args") or {}))
        except (KeyError, IndexError):  # a check this version does not know: say its name
            described.append(guard.get("name", "?"))
    return described


@register.filter
def when(moment):
    """Every time on the pages in one format: 24-hour, in the server's zone, the
    zone shown ("2026-03-05 10:15:42 UTC"), as the downloaded logs write it."""
    return format_time(moment)


@register.filter
def parse_iso(text):
    """An ISO 8601 time stored as text in JSON (a run's snapshot) -> datetime, or None."""
    from django.utils.dateparse import parse_datetime

    try:
        return parse_datetime(text or "")
    except ValueError:
        return None


@register.filter
def age(moment):
    """How long ago, for "last update" ("8 s ago"); pages refresh it each second."""
    if not isinstance(moment, datetime):
        return "never"
    return format_age((timezone.now() - moment).total_seconds())


def format_age(seconds):
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min ago"
    return f"{seconds // 86400} d ago"


# Score penalties of ovirt-hosted-engine-ha (agent.conf [score]), by how much
# they lower the score: the network one is int((1 - passed/5) * 1600), where
# float rounding makes one failed gateway check of five cost 319.
PENALTIES = {
    319: "network test: 1 of 5 gateway checks failed", 320: "network test: 1 of 5 gateway checks failed",
    640: "network test: 2 of 5 gateway checks failed", 960: "network test: 3 of 5 gateway checks failed",
    1280: "network test: 4 of 5 gateway checks failed", 1600: "gateway unreachable (network test)",
    600: "management bridge down", 400: "free memory below the engine VM's",
    1000: "CPU load, or configuration not on shared storage",
    50: "1 engine start retry", 100: "2 engine start retries", 150: "3 engine start retries",
}
ZERO_STATES = {
    "LocalMaintenance": "local maintenance", "LocalMaintenanceMigrateVm": "local maintenance",
    "EngineUnexpectedlyDown": "the engine VM died here (0 for about 10 min)",
    "ReinitializeFSM": "agent reinitialising", "AgentStopped": "agent stopped",
}


@register.filter
def score_reason(host, full=3400):
    """Why a host's score is below a healthy one's, as far as the score and state tell."""
    if not host.ha_live:
        return "stale data: its agent has not updated the shared metadata"
    if host.local_maintenance:
        return "local maintenance"
    if host.ha_state in ZERO_STATES:
        return ZERO_STATES[host.ha_state]
    if host.ha_score is None or host.ha_score >= full:
        return ""
    if host.ha_score == 0:
        return "0: more than 3 engine start retries, or every penalty at once"
    lost = full - host.ha_score
    return f"−{lost}: " + PENALTIES.get(lost, "penalties (gateway, bridge, CPU load, memory, retries)")


@register.filter
def short_release(text):
    """"oVirt 4.3 (ovirt-hosted-engine-ha 2.3.6, ...)" -> "oVirt 4.3"; the packages go in a title."""
    return (text or "").split(" (", 1)[0]
