"""Run events told to other tools over HTTP: which audit actions become which
webhook event, the deliveries made after commit, and the ``hooks`` queue's job.

Emission hangs on ``upgrades.audit.record``, the one place every run and step
transition already passes: ``emit`` maps the action and, after the change
commits, writes one ``WebhookDelivery`` per subscribed endpoint and queues it.
Nothing here runs inside the run's transaction beyond registering a callback,
and nothing is sent from the run's worker: the POST is a job on the ``hooks``
queue (its own worker), with short timeouts. A failed attempt is queued again
with back-off (``WEBHOOK_RETRY_DELAYS``) through RQ's scheduler
(``rqworker --with-scheduler``); the sweeper queues a due delivery whose job
was lost (Redis away) again. Claiming an attempt is a conditional update on
the attempt count, so a job queued twice sends once.
"""
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import django_rq
import redis
import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import secrets
from .models import RUN_TERMINAL, DeliveryStatus, RunStep, StepStatus, UpgradeRun, Webhook, WebhookDelivery, \
    WebhookEvent

log = logging.getLogger(__name__)

QUEUE = "hooks"
# Actions after which a run may have ended (its status, read after commit, says whether it did).
ENDING_ACTIONS = {"run.succeeded", "run.failed", "run.cancelled", "run.interrupted", "run.cancel", "run.abandon",
                  "run.reject", "step.reject", "approval.expired"}
USER_AGENT = "HE-Portal-Webhook/1"


def event_of(action, details):
    """The webhook event an audit action is, or None."""
    if action == "run.start":
        return WebhookEvent.RUN_STARTED
    if action == "run.waiting":
        return WebhookEvent.RUN_WAITING
    if action == "approval.request":
        return WebhookEvent.APPROVAL_REQUESTED
    if action == "step.finish" and details.get("status") == StepStatus.FAILED:
        return WebhookEvent.STEP_FAILED
    if action in ENDING_ACTIONS:
        return WebhookEvent.RUN_ENDED
    return None


def emit(audit_event, target):
    """Called by ``audit.record`` for every event: deliveries of a mapped one after commit."""
    event = event_of(audit_event.action, audit_event.details)
    if event is None or audit_event.run_ref is None:
        return
    step_id = target.pk if isinstance(target, RunStep) else None
    facts = {"event": str(event), "audit_seq": audit_event.seq, "occurred_at": audit_event.created_at.isoformat(),
             "actor": audit_event.actor_name, "run": audit_event.run_ref, "step": step_id,
             "details": audit_event.details}
    transaction.on_commit(lambda: _after_commit(facts))


def _after_commit(facts):
    """Never raises: a webhook problem is logged, the run goes on."""
    try:
        create_deliveries(facts)
    except Exception:
        log.exception("webhook deliveries of %s for run %s not made", facts["event"], facts["run"])


def subscribers(event):
    return [hook for hook in Webhook.objects.filter(active=True) if event in hook.events]


def create_deliveries(facts):
    hooks = subscribers(facts["event"])
    if not hooks:
        return []
    payload = build_payload(facts)
    if payload is None:
        return []
    now = timezone.now()
    deliveries = [WebhookDelivery.objects.create(webhook=hook, event=facts["event"], payload=payload,
                                                 next_attempt_at=now) for hook in hooks]
    for delivery in deliveries:
        enqueue(delivery)
    return deliveries


def build_payload(facts):
    """What the endpoint receives (docs/api.md, "Webhooks"); None when the event did not happen after all."""
    run = UpgradeRun.objects.select_related("cluster", "runbook", "requested_by").filter(pk=facts["run"]).first()
    if run is None:
        return None
    if facts["event"] == WebhookEvent.RUN_ENDED and run.status not in RUN_TERMINAL:
        return None  # e.g. a cancel that hands the run to a worker for its clean-up: it ends later
    payload = {
        "event": facts["event"], "id": facts["audit_seq"], "occurred_at": facts["occurred_at"],
        "actor": facts["actor"],
        "run": {"id": run.pk, "status": run.status, "runbook": run.runbook.slug,
                "cluster": {"id": run.cluster_id, "name": run.cluster.name},
                "requested_by": run.requested_by.username, "error": run.error,
                "url": f"{settings.PORTAL_URL}/runs/{run.pk}/"},
        "step": None,
    }
    step = None
    if facts["step"] is not None:
        step = RunStep.objects.filter(pk=facts["step"]).first()
    elif facts["event"] == WebhookEvent.RUN_WAITING:  # the step the person is asked to do
        step = run.steps.filter(status=StepStatus.WAITING).order_by("order").first()
    if step is not None:
        payload["step"] = {"id": step.pk, "order": step.order, "key": step.key, "title": step.title,
                           "status": step.status, "exit_code": step.exit_code, "error": step.error}
    if facts["event"] == WebhookEvent.APPROVAL_REQUESTED:
        details = facts["details"]
        payload["approval"] = {"approvers": details.get("approvers"), "expires_at": details.get("expires_at")}
    return payload


def enqueue(delivery, delay=None):
    """Queue the delivery's next attempt (after ``delay`` seconds); False when Redis is away
    (the sweeper queues it once due)."""
    attempt = delivery.attempts + 1
    try:
        queue = django_rq.get_queue(QUEUE)
        if delay:
            queue.enqueue_in(timedelta(seconds=delay), deliver, delivery.pk, attempt, job_timeout=120)
        else:
            queue.enqueue(deliver, delivery.pk, attempt, job_timeout=120)
    except (redis.RedisError, OSError) as exc:
        log.warning("webhook delivery %s not queued (the sweeper queues it): %s", delivery.pk, exc)
        return False
    return True


def body_of(payload):
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret, timestamp, body):
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` under the endpoint's secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def deliver(delivery_id, attempt):
    """The ``hooks`` queue's job: one attempt; the next one queued with back-off, or failed."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT * 2 + 60)
    if not WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING,
                                          attempts=attempt - 1).update(attempts=attempt, last_attempt_at=now,
                                                                       next_attempt_at=lease):
        return "not ours"  # sent, or queued twice and taken by the other job
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.webhook.active:
        code, error = post(delivery)
    else:
        code, error = None, "not sent: the endpoint was deactivated"
    delays = settings.WEBHOOK_RETRY_DELAYS
    fields = {"last_status_code": code, "last_error": error[:1000]}
    if not error:
        fields.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    elif attempt > len(delays) or not delivery.webhook.active:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=timezone.now() + timedelta(seconds=delays[attempt - 1]))
    WebhookDelivery.objects.filter(pk=delivery_id, attempts=attempt).update(**fields)
    if error and fields.get("status") is None:
        delivery.attempts = attempt
        enqueue(delivery, delay=delays[attempt - 1])
    return fields.get("status", "retry")


def post(delivery):
    """(status code or None, "" when delivered else what went wrong). Short timeouts, no redirects."""
    body = body_of(delivery.payload)
    timestamp = str(int(time.time()))
    try:
        secret = secrets.decrypt(delivery.webhook.secret)
    except secrets.SecretError as exc:
        return None, str(exc)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-HEPortal-Event": delivery.event, "X-HEPortal-Delivery": str(delivery.pk),
               "X-HEPortal-Timestamp": timestamp, "X-HEPortal-Signature": signature(secret, timestamp, body)}
    try:
        with requests.post(delivery.webhook.url, data=body, headers=headers, allow_redirects=False, stream=True,
                           timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_TIMEOUT)) as response:
            code = response.status_code
    except requests.Timeout:
        return None, f"no answer within {settings.WEBHOOK_TIMEOUT:g} s"
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= code < 300:
        return code, ""
    return code, f"HTTP {code}"


def requeue_due(now=None):
    """The sweeper's part: pending deliveries whose attempt is due for a while but was never
    taken (Redis away when queued, or lost on a restart) are queued again; returns how many."""
    now = now or timezone.now()
    due = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING,
                                         next_attempt_at__lt=now - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER))
    count = 0
    for delivery in due[:200]:
        # The next sweep looks again only after another REQUEUE_AFTER.
        WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(next_attempt_at=now)
        count += enqueue(delivery)
    return count
