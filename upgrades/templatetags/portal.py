"""Small display filters for the pages (run.js formats live durations the same way)."""
from datetime import datetime

from django import template
from django.utils import timezone

from ..checks import describe_check
from ..models import StepKind, StepStatus

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
    if not isinstance(moment, datetime):
        return ""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


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
