"""The one way to record an audit event, and the chain that makes the trail tamper-evident.

Each event carries the hash of the previous one: sha256 over the previous
hash and a canonical form of the event (sorted-key JSON, the time written
out to the microsecond in UTC), so the same row hashes alike on SQLite and
PostgreSQL. ``manage.py audit_verify`` walks the chain (``verify``) and
names the first event that was changed, removed or added behind the
application's back.
"""
import hashlib
import json
import re
from datetime import timezone as dt_timezone

from django.db import transaction
from django.utils import timezone

from .models import AuditEvent, AuditHead

HEAD_ID = 1
# Keys whose values are never written into an event, whatever the caller passes.
SECRET_KEY_PATTERN = re.compile(r"password|passwd|secret|token|private_key", re.IGNORECASE)


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _scrub(value):
    """JSON-native details without secrets (a key naming one gets "[redacted]")."""
    if isinstance(value, dict):
        return {str(k): "[redacted]" if SECRET_KEY_PATTERN.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def format_time(moment):
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event, prev_hash):
    """The hash of ``event`` (a row, or a historical model's row in a migration) after ``prev_hash``.

    Not the actor's id: deleting a user sets it to NULL (the name stays, and is hashed)."""
    body = canonical_json({
        "seq": event.seq, "created_at": format_time(event.created_at),
        "actor_name": event.actor_name, "action": event.action, "target_type": event.target_type,
        "target_id": event.target_id, "target_repr": event.target_repr, "details": event.details,
        "cluster": event.cluster_ref, "run": event.run_ref})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _refs(target, details):
    """The cluster and run an event belongs to, for the audit page's filters."""
    name = type(target).__name__
    cluster = run = None
    if name == "Cluster":
        cluster = target.pk
    elif name == "Host":
        cluster = target.cluster_id
    elif name == "UpgradeRun":
        cluster, run = target.cluster_id, target.pk
    elif name in ("RunStep", "Approval"):
        run = target.run_id
        if type(target).run.is_cached(target):  # a worker's steps come with their run: no query
            cluster = target.run.cluster_id
    elif hasattr(target, "cluster_id"):
        cluster = target.cluster_id
    if run is None and isinstance(details.get("run"), int):
        run = details["run"]
    if run is not None and cluster is None:
        from .models import UpgradeRun

        cluster = UpgradeRun.objects.filter(pk=run).values_list("cluster_id", flat=True).first()
    return cluster, run


def record(actor, action, target=None, **details):
    """Append an audit event; ``actor`` is a user or None for the system."""
    details = json.loads(canonical_json(_scrub(details)))
    cluster, run = _refs(target, details) if target is not None else (None, details.get("run"))
    # Inside a caller's transaction (the change it records) no savepoint: the two stand
    # or fall together, and a step's path saves two statements.
    with transaction.atomic(savepoint=False):
        head = AuditHead.objects.select_for_update().filter(pk=HEAD_ID).first()
        if head is None:
            head, _ = AuditHead.objects.get_or_create(pk=HEAD_ID)
            head = AuditHead.objects.select_for_update().get(pk=HEAD_ID)
        event = AuditEvent(
            actor=actor if getattr(actor, "pk", None) else None,
            actor_name=getattr(actor, "username", None) or "system",
            action=action,
            target_type=type(target).__name__ if target is not None else "",
            target_id=str(getattr(target, "pk", "") or ""),
            target_repr=str(target)[:300] if target is not None else "",
            created_at=timezone.now(), details=details,
            cluster_ref=cluster, run_ref=run if isinstance(run, int) else None,
            seq=head.seq + 1, prev_hash=head.hash)
        event.hash = event_hash(event, head.hash)
        event.save()
        AuditHead.objects.filter(pk=HEAD_ID).update(seq=event.seq, hash=event.hash)
    return event


def verify(events=None, head=None):
    """Walk the chain; (number of events checked, None) or (n, the first problem found).

    ``events`` defaults to every event in order; reads in chunks so a long
    trail does not fill memory.
    """
    if events is None:
        events = AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)
    if head is None:
        head = AuditHead.objects.filter(pk=HEAD_ID).first()
    prev_hash, expected, count = "", 1, 0
    for event in events:
        if event.seq is None:
            return count, f"audit event id {event.pk} has no place in the chain (added outside the application)"
        if event.seq != expected:
            missing = f"#{expected}" if event.seq == expected + 1 else f"#{expected} to #{event.seq - 1}"
            return count, f"audit event {missing} is missing (deleted): the chain breaks before event #{event.seq}"
        if event.prev_hash != prev_hash:
            return count, f"audit event #{event.seq} does not link to event #{event.seq - 1} (its previous hash differs)"
        if event_hash(event, prev_hash) != event.hash:
            return count, f"audit event #{event.seq} was altered: its content does not match its hash"
        prev_hash, expected, count = event.hash, expected + 1, count + 1
    last = head.seq if head else 0
    if last > count:
        missing = f"#{last}" if last == count + 1 else f"#{count + 1} to #{last}"
        return count, f"audit event {missing} is missing (deleted): the chain ends early at event #{count}"
    if head and head.hash != prev_hash:
        return count, f"the chain's last event #{count} does not match the recorded head"
    return count, None
