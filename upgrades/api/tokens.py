"""Personal API tokens: one per script or tool, named, expiring, revocable.

Only a SHA-256 of the token is stored (a token is 256 random bits, so a
plain hash is enough; a slow hash would cost every API call): whoever reads
the database cannot call the API. The token itself is shown once, when made.
A token acts as its user, with that user's roles at the moment of the call.
"""
import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .. import audit
from ..permissions import is_global_admin

PREFIX = "hep_"
# last_used_at is written at most this often per token: not one write per call.
LAST_USED_EVERY = timedelta(minutes=1)
MAX_DAYS = 366
NAME_MAX = 100


def digest(raw):
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) |
                                                           models.Q(expires_at__gt=now))


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=NAME_MAX, help_text="What the token is for, e.g. the AWX job's name.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters after the prefix, to tell tokens apart on the page (not secret enough to matter).
    hint = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        app_label = "upgrades"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"API token {self.name!r} of {self.user.username} ({PREFIX}{self.hint}…)"

    @property
    def state(self):
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


def create_token(*, user, name, days=None):
    """(the token row, the token itself): the only time the token is seen.

    ``days``: it expires after so many days (1 to MAX_DAYS); None: never."""
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = ["Give the token a name: what it is for."]
    elif len(name) > NAME_MAX:
        errors["name"] = [f"At most {NAME_MAX} characters."]
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS):
        errors["expires_in_days"] = [f"A whole number of days from 1 to {MAX_DAYS}, or none for no expiry."]
    if errors:
        raise ValidationError(errors)
    raw = PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, token_hash=digest(raw), hint=raw[len(PREFIX):len(PREFIX) + 6],
            expires_at=timezone.now() + timedelta(days=days) if days else None)
        audit.record(user, "api_token.create", token, name=name,
                     expires_at=audit.format_time(token.expires_at) if token.expires_at else None)
    return token, raw


def revoke_token(*, token, user):
    """The owner revokes their own token; a global admin anyone's. Revoking twice changes nothing."""
    if token.user_id != user.pk and not is_global_admin(user):
        raise PermissionDenied("Only its owner or an admin can revoke a token.")
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=user)
        if changed:
            audit.record(user, "api_token.revoke", token, name=token.name, owner=token.user.username)
    token.refresh_from_db()
    return token


def user_of(raw):
    """The active user a presented token acts as, or None (unknown, revoked, expired, user inactive)."""
    if not raw.startswith(PREFIX) or len(raw) > 200:
        return None
    now = timezone.now()
    token = ApiToken.objects.usable(now).select_related("user").filter(token_hash=digest(raw)).first()
    if token is None or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
