"""Webhook endpoints: registered, changed, removed and re-sent by global admins, each audited.

The secret is stored encrypted (upgrades.secrets) and shown once, when made;
the audit records that it changed, never its value.
"""
import secrets as token_source

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from .. import audit, permissions, secrets, webhooks
from ..models import DeliveryStatus, Webhook, WebhookEvent

EVENTS = [value for value, _ in WebhookEvent.choices]


def new_secret():
    return token_source.token_urlsafe(32)


def check(*, url, events, secret=None):
    """The cleaned (url, events, secret) or ValidationError naming each field's problem."""
    problems = {}
    url = (url or "").strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
        if len(url) > 500:
            raise ValidationError("")
    except ValidationError:
        problems["url"] = ["Enter the endpoint's full http:// or https:// URL (at most 500 characters)."]
    events = list(dict.fromkeys(events or []))
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        problems["events"] = [f"Unknown event(s): {', '.join(map(str, unknown))}; choose among {', '.join(EVENTS)}."]
    elif not events:
        problems["events"] = ["Choose at least one event."]
    if secret is not None and secret and len(secret) < 16:
        problems["secret"] = ["A secret has at least 16 characters (or leave it empty to have one made)."]
    if problems:
        raise ValidationError(problems)
    return url, events, secret


def create_webhook(*, user, url, events, secret=""):
    """(webhook, its secret in clear: shown once)."""
    permissions.check_global_admin(user, "register webhooks")
    url, events, secret = check(url=url, events=events, secret=secret)
    secret = secret or new_secret()
    with transaction.atomic():
        hook = Webhook.objects.create(url=url, events=events, secret=secrets.encrypt(secret), created_by=user)
        audit.record(user, "webhook.create", hook, url=url, events=events)
    return hook, secret


def update_webhook(*, user, webhook, url, events, active, new_secret_value=None):
    """``new_secret_value``: None keeps the secret; returns the new secret in clear or None."""
    permissions.check_global_admin(user, "change webhooks")
    url, events, secret = check(url=url, events=events, secret=new_secret_value)
    if new_secret_value is not None:
        secret = secret or new_secret()
    with transaction.atomic():
        webhook.url, webhook.events, webhook.active = url, events, bool(active)
        if secret:
            webhook.secret = secrets.encrypt(secret)
        webhook.save()
        audit.record(user, "webhook.update", webhook, url=url, events=events, active=webhook.active,
                     signing_key_replaced=bool(secret))
    return secret or None


def delete_webhook(*, user, webhook):
    permissions.check_global_admin(user, "remove webhooks")
    with transaction.atomic():
        audit.record(user, "webhook.delete", webhook, url=webhook.url, deliveries=webhook.deliveries.count())
        webhook.delete()


def redeliver(*, user, delivery):
    """Send a delivered or failed delivery again, from its first attempt."""
    permissions.check_global_admin(user, "send webhook deliveries again")
    if delivery.status == DeliveryStatus.PENDING:
        raise ValidationError("This delivery is still being tried; it can be sent again once delivered or failed.")
    with transaction.atomic():
        delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.PENDING, 0, timezone.now()
        delivery.last_error = ""
        delivery.save(update_fields=["status", "attempts", "next_attempt_at", "last_error"])
        audit.record(user, "webhook.redeliver", delivery.webhook, delivery=delivery.pk, event=delivery.event)
        transaction.on_commit(lambda: webhooks.enqueue(delivery))
