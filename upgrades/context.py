"""What the header shows: the links a person's roles open, and the pending approvals count."""
from . import permissions
from .services import approvals


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not permissions.has_any_role(user):
        return {}
    may_approve = permissions.can_anywhere(user, permissions.APPROVE)
    return {"nav": {"approve": may_approve, "audit": permissions.can_anywhere(user, permissions.AUDIT),
                    "admin": permissions.is_global_admin(user)},
            "pending_approvals": approvals.pending_count(user) if may_approve else 0}
