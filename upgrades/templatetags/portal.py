"""Small display filters for the pages (run.js formats live durations the same way)."""
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
