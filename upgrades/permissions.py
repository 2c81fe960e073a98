"""Who may do what. First version: group membership; per-cluster roles come later."""
VIEWER, OPERATOR, APPROVER, ADMIN = "viewer", "operator", "approver", "admin"
ROLES = (VIEWER, OPERATOR, APPROVER, ADMIN)


def has_role(user, *roles):
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=roles).exists()


def can_operate(user):
    return has_role(user, OPERATOR, ADMIN)


def can_admin(user):
    return has_role(user, ADMIN)


def can_approve(user):
    """The role only; that the requester never approves their own run is checked with the run."""
    return has_role(user, APPROVER, ADMIN)
