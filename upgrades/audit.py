"""The one way to record an audit event, and the chain that makes the trail tamper-evident.

Each event carries the hash of the previous one and its own: an HMAC-SHA256,
under an audit key kept outside the database (settings.AUDIT_KEYS), of the
previous hash, the key's id and a canonical form of the event (sorted-key
JSON, the time written out to the microsecond in UTC), so the same row hashes
alike on SQLite and PostgreSQL. Every committed event's (seq, hash, time) is
also appended to the anchor file (settings.AUDIT_ANCHOR_FILE), outside the
database. ``manage.py audit_verify`` walks the chain (``verify``) and names
the first event that was changed, removed or added behind the application's
back: without the key a database writer cannot re-sign an edited event, and
without the anchor file cannot hide a deleted tail.
"""
import hashlib
import hmac
import json
import logging
import os
import re
from datetime import timezone as dt_timezone
from functools import lru_cache, partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import client_address as client_addresses
from . import webhooks
from .models import AuditEvent, AuditHead

logger = logging.getLogger(__name__)

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


def _body(event):
    """The canonical form of ``event`` (a row, or a historical model's row in a migration).

    Not the actor's id: deleting a user sets it to NULL (the name stays, and is hashed).
    The client's address only when there is one: events recorded before it was
    (migration 0012) and the system's own hash as they always did."""
    body = {
        "seq": event.seq, "created_at": format_time(event.created_at),
        "actor_name": event.actor_name, "action": event.action, "target_type": event.target_type,
        "target_id": event.target_id, "target_repr": event.target_repr, "details": event.details,
        "cluster": event.cluster_ref, "run": event.run_ref}
    if getattr(event, "client_address", ""):
        body["client_address"] = event.client_address
    return canonical_json(body)


def key_id(key):
    """A key's public name, stored on each event it signs (a hash: it reveals nothing of the key)."""
    return hashlib.sha256(b"heportal audit key\n" + key.encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def _keyring(keys):
    return {key_id(k): k.encode() for k in keys}


def keyring():
    """{key id: key} for every configured audit key; the first in the settings signs."""
    return _keyring(tuple(settings.AUDIT_KEYS))


def signing_key():
    if not settings.AUDIT_KEYS:
        raise RuntimeError("no audit key is configured (settings.AUDIT_KEYS)")
    key = settings.AUDIT_KEYS[0]
    return key_id(key), key.encode()


def event_hash(event, prev_hash, key):
    """HMAC-SHA256 of ``event`` after ``prev_hash`` under ``key`` (bytes); ``event.key_id`` names it."""
    message = f"{prev_hash}\n{event.key_id}\n{_body(event)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def legacy_hash(event, prev_hash):
    """The plain sha256 chain of events before migration 0011 (no key: anyone could recompute it)."""
    return hashlib.sha256(f"{prev_hash}\n{_body(event)}".encode()).hexdigest()


# The anchor: outside the database ------------------------------------------------

_anchor_failing = False


def anchor_line(event):
    return f"{event.seq} {event.hash} {format_time(event.created_at)}\n"


def append_anchor(line):
    """Append one head to the anchor file (one O_APPEND write: lines of several
    processes never interleave) and, if asked, to syslog. A failure is logged
    once and when it clears; the event itself is already committed."""
    global _anchor_failing
    path = settings.AUDIT_ANCHOR_FILE
    try:
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                if settings.AUDIT_ANCHOR_FSYNC:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if settings.AUDIT_ANCHOR_SYSLOG:
            import syslog

            syslog.syslog(syslog.LOG_INFO, f"heportal audit head {line.strip()}")
    except OSError as exc:
        if not _anchor_failing:
            logger.error("audit anchor %s cannot be written (%s): events are recorded, unanchored", path, exc)
        _anchor_failing = True
        return
    if _anchor_failing:
        logger.warning("audit anchor %s is written again", path)
        _anchor_failing = False


def read_anchor(path):
    """{seq: hash} from the anchor file, or raise ValueError naming a line that is not one."""
    anchored = {}
    with open(path, encoding="ascii", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if len(parts) != 3 or not parts[0].isdigit() or len(parts[1]) != 64:
                raise ValueError(f"line {number} of the anchor file {path} is not an anchor entry")
            seq = int(parts[0])
            if anchored.get(seq, parts[1]) != parts[1]:
                raise ValueError(f"the anchor file {path} holds two hashes for event #{seq}")
            anchored[seq] = parts[1]
    return anchored


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


def record(actor, action, target=None, *, client_address=None, **details):
    """Append an audit event; ``actor`` is a user or None for the system. The
    client's address is the current request's (upgrades.client_address), unless given."""
    if client_address is None:
        client_address = client_addresses.current.get()
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
            client_address=client_address or "", seq=head.seq + 1, prev_hash=head.hash)
        event.key_id, key = signing_key()
        event.hash = event_hash(event, head.hash, key)
        event.save()
        AuditHead.objects.filter(pk=HEAD_ID).update(seq=event.seq, hash=event.hash)
        # Only what commits is anchored: a rolled-back event's number is used again.
        transaction.on_commit(partial(append_anchor, anchor_line(event)))
        webhooks.emit(event, target)  # run events: deliveries made and queued after commit
    return event


def verify(events=None, head=None, anchor_file=None):
    """Walk the chain; (number of events checked, None) or (n, the first problem found).

    ``events`` defaults to every event in order; reads in chunks so a long
    trail does not fill memory. Each event's hash is checked under the key it
    names, and against the anchor file's entry for it; an anchor entry beyond
    the database's last event is a deleted tail.
    """
    if events is None:
        events = AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)
    if head is None:
        head = AuditHead.objects.filter(pk=HEAD_ID).first()
    anchor_file = settings.AUDIT_ANCHOR_FILE if anchor_file is None else anchor_file
    anchored = {}
    if anchor_file:
        try:
            anchored = read_anchor(anchor_file)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            return 0, str(exc)
    entries = len(anchored)
    keys = keyring()
    prev_hash, expected, count = "", 1, 0
    for event in events:
        if event.seq is None:
            return count, f"audit event id {event.pk} has no place in the chain (added outside the application)"
        if event.seq != expected:
            missing = f"#{expected}" if event.seq == expected + 1 else f"#{expected} to #{event.seq - 1}"
            return count, f"audit event {missing} is missing (deleted): the chain breaks before event #{event.seq}"
        if event.prev_hash != prev_hash:
            return count, f"audit event #{event.seq} does not link to event #{event.seq - 1} (its previous hash differs)"
        key = keys.get(event.key_id)
        if key is None:
            return count, (f"audit event #{event.seq} names audit key {event.key_id or '(none)'!r}, which is not"
                           " configured: it was not signed by this portal, or its key was removed")
        if not hmac.compare_digest(event_hash(event, prev_hash, key), event.hash):
            return count, f"audit event #{event.seq} was altered: its content does not match its signed hash"
        if anchored.pop(event.seq, event.hash) != event.hash:
            return count, (f"audit event #{event.seq} differs from the anchor file's record of it: it was"
                           " rewritten and signed again in the database")
        prev_hash, expected, count = event.hash, expected + 1, count + 1
    if anchored:
        first, last = min(anchored), max(anchored)
        missing = f"#{first}" if first == last else f"#{first} to #{last}"
        return count, (f"audit event {missing} is missing (deleted): the anchor file records it but the"
                       f" database's chain ends at event #{count}")
    if anchor_file and count and not entries:
        return count, (f"the anchor file {anchor_file} records none of the {count} event(s): it was removed or"
                       " replaced, or AUDIT_ANCHOR_FILE names another file")
    last = head.seq if head else 0
    if last > count:
        missing = f"#{last}" if last == count + 1 else f"#{count + 1} to #{last}"
        return count, f"audit event {missing} is missing (deleted): the chain ends early at event #{count}"
    if head and head.hash != prev_hash:
        return count, f"the chain's last event #{count} does not match the recorded head"
    return count, None
