"""Directory (LDAP) logins, and the roles the directory's groups give (docs/directory.md).

``DirectoryBackend`` is django-auth-ldap's backend with three rules of ours:

1. A local account (one without a ``DirectoryAccount``) is never looked up in
   the directory: its name logs in with its own password only, so a directory
   entry of the same name cannot take it over, and local accounts work while
   the directory is down (break-glass).
2. At each directory login the user's groups are read and LDAP_ROLE_MAP turns
   them into ``DirectoryRole`` rows, replacing the previous ones: a group the
   directory took away takes its role away at the next login. Roles given by
   hand (groups, ``RoleGrant``) are other rows and never touched here.
3. When the directory cannot be reached or refuses the portal's own bind, the
   login page says so (``LoginForm``) instead of "wrong password".
"""
import logging

import ldap
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_auth_ldap.backend import LDAPBackend, ldap_error

from . import audit, permissions
from .models import Cluster, DirectoryAccount, DirectoryRole

logger = logging.getLogger(__name__)

# python-ldap says the same for a server that is down and for a certificate it does not trust.
UNREACHABLE = ("The directory (LDAP) cannot be reached (it is down or unreachable, or its certificate is not "
               "trusted), so directory accounts cannot log in now. Try again later; local accounts still log in.")
DIRECTORY_FAILED = ("The directory (LDAP) refused the portal's search for your account, so directory accounts "
                    "cannot log in now (an administrator finds the reason in the portal's log); "
                    "local accounts still log in.")


def normalize_dn(dn):
    """One spelling per DN (case, spaces around separators), for comparing group names."""
    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn.strip().lower()))
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


def is_local_account(username):
    return get_user_model().objects.filter(
        username__iexact=username, directory_account__isnull=True).exists()


def mapped_roles(group_dns):
    """[(cluster name or None, role, group DN)] that LDAP_ROLE_MAP gives these groups."""
    held = {normalize_dn(dn) for dn in group_dns}
    return sorted({(cluster, role, normalize_dn(group)) for group, cluster, role in settings.LDAP_ROLE_MAP
                   if normalize_dn(group) in held}, key=lambda item: (item[0] or "", item[1], item[2]))


def describe(cluster_name, role):
    return f"{role} on {cluster_name or 'every cluster'}"


def sync_roles(user, dn, group_dns):
    """Replace the user's directory roles with those its groups map to now; audited when they change."""
    wanted = mapped_roles(group_dns)
    names = {cluster for cluster, _, _ in wanted if cluster}
    clusters = dict(Cluster.objects.filter(name__in=names).values_list("name", "pk"))
    for name in sorted(names - set(clusters)):
        logger.warning("LDAP_ROLE_MAP names cluster %r, which does not exist: its roles are not given", name)
    rows = {(clusters.get(cluster), role, group) for cluster, role, group in wanted
            if cluster is None or cluster in clusters}
    with transaction.atomic():
        DirectoryAccount.objects.update_or_create(user=user, defaults={"dn": dn, "synced_at": timezone.now()})
        before = set(DirectoryRole.objects.filter(user=user).values_list("cluster_id", "role", "group_dn"))
        if before != rows:
            DirectoryRole.objects.filter(user=user).delete()
            DirectoryRole.objects.bulk_create(DirectoryRole(user=user, cluster_id=cluster, role=role, group_dn=group)
                                              for cluster, role, group in rows)
            cluster_names = dict(Cluster.objects.filter(
                pk__in={c for c, _, _ in before | rows if c}).values_list("pk", "name"))

            def plain(items):
                return sorted({describe(cluster_names.get(cluster), role) for cluster, role, _ in items})

            given, taken = plain(rows), plain(before)
            audit.record(user, "directory.roles", user, given=[r for r in given if r not in taken],
                         taken=[r for r in taken if r not in given], groups=sorted(group for _, _, group in rows))
    permissions.forget(user)


class DirectoryBackend(LDAPBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or is_local_account(username):
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            sync_roles(user, ldap_user.dn, ldap_user.group_dns)
        return user

    # Permissions are the portal's roles (upgrades.permissions), not django-auth-ldap's group permissions.
    def get_group_permissions(self, user, obj=None):
        return set()


def _note_directory_error(sender, context, user, request, exception, **kwargs):
    """django-auth-ldap has logged the error (never a password); the login form tells the person."""
    if request is not None:
        request.directory_error = exception


ldap_error.connect(_note_directory_error, weak=False)


class LoginForm(AuthenticationForm):
    """The login page's form: says when the directory is down rather than "wrong password"."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            error = getattr(self.request, "directory_error", None)
            if isinstance(error, (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR)):
                raise ValidationError(UNREACHABLE, code="directory_unreachable") from None
            if error is not None:
                raise ValidationError(DIRECTORY_FAILED, code="directory_failed") from None
            raise
