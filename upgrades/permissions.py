"""Who may do what: the one place for the rules.

Views (``needs``), websocket consumers, services (and so ``manage.py
runbook``) all ask here. A role is held on every cluster by membership of
the Django group of that name, or on one cluster by a ``RoleGrant`` row; a
directory login's groups give roles of either kind (``DirectoryRole``,
upgrades.directory); a superuser is an admin everywhere. Each role allows a set of permissions;
every role sees the clusters it is held on:

- viewer: see clusters, runs and logs;
- operator: start runs, confirm, pause, cancel, resume, retry, skip, press maintenance buttons;
- approver: approve or reject (never a request of their own: checked with the run);
- auditor: read the audit history;
- admin: all of the above, and host keys; a global admin also manages
  clusters, hosts, credentials, policies and users in the admin site.
"""
import functools
import inspect

from asgiref.sync import sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

VIEWER, OPERATOR, APPROVER, AUDITOR, ADMIN = "viewer", "operator", "approver", "auditor", "admin"
ROLES = (VIEWER, OPERATOR, APPROVER, AUDITOR, ADMIN)
VIEW, OPERATE, APPROVE, AUDIT, ADMINISTER = "view", "operate", "approve", "audit", "administer"
ALLOWS = {
    VIEWER: {VIEW},
    OPERATOR: {VIEW, OPERATE},
    APPROVER: {VIEW, APPROVE},
    AUDITOR: {VIEW, AUDIT},
    ADMIN: {VIEW, OPERATE, APPROVE, AUDIT, ADMINISTER},
}


CACHE = "_heportal_roles"


def _held(user):
    """(global roles, {cluster id: roles}), read once per user object: a request's
    user, a websocket's at connect, a job's. A page asks a dozen times (each button,
    the header's links); three queries answer all. ``forget`` drops it when a role of
    this user changes (signals, see apps.py)."""
    cached = getattr(user, CACHE, None)
    if cached is None:
        from .models import DirectoryRole, RoleGrant

        groups = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        grants = {}
        for cluster_id, role in RoleGrant.objects.filter(user=user).order_by().values_list("cluster_id", "role"):
            grants.setdefault(cluster_id, set()).add(role)
        # Roles the directory's groups give (upgrades.directory): no cluster is every cluster.
        for cluster_id, role in DirectoryRole.objects.filter(user=user).order_by().values_list("cluster_id", "role"):
            if cluster_id is None:
                groups.add(role)
            else:
                grants.setdefault(cluster_id, set()).add(role)
        cached = (groups, grants)
        setattr(user, CACHE, cached)
    return cached


def forget(user):
    if user is not None:
        user.__dict__.pop(CACHE, None)


def _active(user):
    return getattr(user, "is_authenticated", False) and user.is_active


def global_roles(user):
    """Roles held on every cluster."""
    if not _active(user):
        return set()
    if user.is_superuser:
        return set(ROLES)
    return set(_held(user)[0])


def roles(user, cluster=None):
    """Roles held on ``cluster`` (global ones included); on no cluster: the global ones."""
    held = global_roles(user)
    if cluster is not None and _active(user) and not user.is_superuser:
        held |= _held(user)[1].get(cluster.pk, set())
    return held


def _allows(held, perm):
    return any(perm in ALLOWS[role] for role in held)


def can(user, perm, cluster):
    """May ``user`` do ``perm`` on ``cluster``?"""
    return _allows(roles(user, cluster), perm)


def can_anywhere(user, perm):
    """On at least one cluster (or on every one)."""
    if _allows(global_roles(user), perm):
        return True
    if not _active(user):
        return False
    return any(_allows(held, perm) for held in _held(user)[1].values())


def has_any_role(user):
    return can_anywhere(user, VIEW)


def clusters_where(user, perm):
    """The clusters on which ``user`` may do ``perm``, as a queryset."""
    from .models import Cluster

    if _allows(global_roles(user), perm):
        return Cluster.objects.all()
    if not _active(user):
        return Cluster.objects.none()
    return Cluster.objects.filter(pk__in=[pk for pk, held in _held(user)[1].items() if _allows(held, perm)])


def is_global_admin(user):
    return ADMIN in global_roles(user)


def sees_everything(user, perm):
    """Held on every cluster, so also on records of no cluster (logins, role changes)."""
    return _allows(global_roles(user), perm)


# The services' checks: raise PermissionDenied with the reason.

def check(user, perm, cluster, what):
    if not can(user, perm, cluster):
        raise PermissionDenied(f"You may not {what} on cluster {cluster.name}.")


def check_global_admin(user, what):
    """Adding and removing clusters is for admins of every cluster (the admin group)."""
    if not is_global_admin(user):
        raise PermissionDenied(f"Only global admins can {what}.")


def can_operate(user, cluster):
    return can(user, OPERATE, cluster)


def can_approve(user, cluster):
    """The role only; that the requester never approves their own run is ``may_decide``."""
    return can(user, APPROVE, cluster)


def can_admin(user, cluster):
    return can(user, ADMINISTER, cluster)


def may_decide(user, run):
    """An approver on the run's cluster who did not request it: four eyes, admins included."""
    return can_approve(user, run.cluster) and user.pk != run.requested_by_id


# Views ------------------------------------------------------------------------

def no_role_page(request):
    return render(request, "upgrades/no_role.html", status=403)


REFUSAL = {
    VIEW: "You have no role on this cluster.",
    OPERATE: "Only operators can do this.",
    APPROVE: "Only approvers can approve or reject.",
    AUDIT: "Only auditors and admins can read the audit history.",
    ADMINISTER: "Only admins can do this.",
}


def _gate(request, perm, lookup, kwargs, message=None):
    """None when allowed, else the response (login, no-role page); raises PermissionDenied."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not has_any_role(user):
        return no_role_page(request)
    if callable(perm):
        perm = perm(**kwargs)
    if lookup is None:
        allowed = can_anywhere(user, perm)
    else:
        cluster = lookup(**kwargs)
        allowed = can(user, perm, cluster)
    if not allowed:
        raise PermissionDenied(message or REFUSAL[perm])
    return None


def needs(perm, lookup=None, message=None):
    """View decorator: ``perm`` (or ``perm(**url kwargs)``) on the cluster ``lookup(**url kwargs)`` returns
    (it raises Http404 for a missing object), or on any cluster without a lookup.
    Anonymous: the login page; no role at all: the page saying so."""

    def decorate(view):
        if inspect.iscoroutinefunction(view):
            @functools.wraps(view)
            async def guarded_async(request, *args, **kwargs):
                response = await sync_to_async(_gate)(request, perm, lookup, kwargs, message)
                return response if response is not None else await view(request, *args, **kwargs)
            guarded_async.permission = perm
            return guarded_async

        @functools.wraps(view)
        def guarded(request, *args, **kwargs):
            response = _gate(request, perm, lookup, kwargs, message)
            return response if response is not None else view(request, *args, **kwargs)
        guarded.permission = perm
        return guarded

    return decorate


class RoleBackend:
    """Django's admin asks for model permissions: a global admin has them all."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return is_global_admin(user_obj)

    def has_module_perms(self, user_obj, app_label):
        return is_global_admin(user_obj)
