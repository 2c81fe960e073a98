"""The one way to record an audit event."""
from .models import AuditEvent


def record(actor, action, target=None, **details):
    """Append an audit event; ``actor`` is a user or None for the system."""
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "username", None) or "system",
        action=action,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "pk", "") or ""),
        target_repr=str(target)[:300] if target is not None else "",
        details=details,
    )
