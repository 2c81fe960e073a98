"""The audit chain against whoever can write the database but holds neither the
audit key nor the anchor file: the attacks are made for real, in SQL on the
database, and ``manage.py audit_verify`` must name the event they touched.

Runs on whichever database the settings name (SQLite, or PostgreSQL with
DATABASE_URL), with real commits: the anchor is written only for what commits.
"""
import io
import json
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from tests.conftest import Processes, child_env
from upgrades import audit
from upgrades.models import AuditEvent, AuditHead

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def audit_files(settings, tmp_path):
    """This test's own audit key file and anchor file."""
    keys = tmp_path / "audit.keys"
    keys.write_text("11" * 32 + "\n")
    settings.AUDIT_KEYS_FILE, settings.AUDIT_KEYS = keys, ["11" * 32]
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit.anchor")
    return keys, tmp_path / "audit.anchor"


def verify():
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def sql(statement, *params):
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(statement.replace("TABLE", table).replace("HEAD", AuditHead._meta.db_table), params)
        return cursor.fetchall() if cursor.description else None


def record_events(count=8):
    for n in range(count):
        audit.record(None, "run.step", None, n=n, output=f"line {n}")


def rows():
    """Every event as the attacker reads it: plain columns."""
    return list(AuditEvent.objects.order_by("seq"))


def rechain_plain_from(events, start):
    """What a database writer without the key can do: recompute the published sha256
    chain from ``start`` on, write every hash back and move the head."""
    prev = events[start - 2].hash if start > 1 else ""
    for event in events[start - 1:]:
        event.prev_hash = prev
        event.hash = prev = audit.legacy_hash(event, prev)
        sql("UPDATE TABLE SET details = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            json.dumps(event.details), event.prev_hash, event.hash, event.seq)
    sql("UPDATE HEAD SET seq = %s, hash = %s", events[-1].seq, prev)


def test_an_untouched_chain_verifies_with_its_key_and_anchor(audit_files):
    record_events()
    events = rows()
    assert {e.key_id for e in events} == {audit.key_id("11" * 32)}
    lines = audit_files[1].read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [[str(e.seq), e.hash] for e in events]
    assert verify().startswith("Audit chain intact: 8 event(s).")


def test_an_event_rewritten_and_the_plain_chain_recomputed_is_found():
    record_events()
    events = rows()
    events[4].details = {**events[4].details, "output": "all good"}
    rechain_plain_from(events, 5)
    with pytest.raises(CommandError, match=r"audit event #5 was altered: its content does not match its signed hash"):
        verify()


def test_the_newest_events_deleted_and_the_head_moved_are_found():
    record_events()
    events = rows()
    sql("DELETE FROM TABLE WHERE seq >= %s", 6)
    sql("UPDATE HEAD SET seq = %s, hash = %s", 5, events[4].hash)
    with pytest.raises(CommandError, match=r"audit event #6 to #8 is missing \(deleted\): the anchor file records it"
                                           r" but the database's chain ends at event #5"):
        verify()


def test_an_event_rewritten_with_the_key_still_differs_from_the_anchor():
    """Who holds the key but not the anchor file: every hash re-signed, the anchor disagrees."""
    record_events()
    events = rows()
    key = audit.signing_key()[1]
    events[2].details = {**events[2].details, "output": "all good"}
    prev = events[1].hash
    for event in events[2:]:
        event.prev_hash, event.hash = prev, audit.event_hash(event, prev, key)
        prev = event.hash
        sql("UPDATE TABLE SET details = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            json.dumps(event.details), event.prev_hash, event.hash, event.seq)
    sql("UPDATE HEAD SET seq = %s, hash = %s", events[-1].seq, prev)
    with pytest.raises(CommandError, match=r"audit event #3 differs from the anchor file's record of it"):
        verify()


def test_a_removed_anchor_file_is_found(audit_files):
    record_events(3)
    audit_files[1].unlink()
    with pytest.raises(CommandError, match=r"records none of the 3 event\(s\)"):
        verify()


def test_after_a_key_rotation_old_and_new_events_verify(audit_files):
    record_events(3)
    out = io.StringIO()
    call_command("rotate_audit_key", stdout=out)
    keys = audit_files[0].read_text().split()
    assert len(keys) == 2 and keys[1] == "11" * 32 and keys[0] != keys[1]
    assert oct(audit_files[0].stat().st_mode & 0o777) == "0o600"
    record_events(2)
    events = rows()
    old, new = audit.key_id(keys[1]), audit.key_id(keys[0])
    assert [e.key_id for e in events] == [old] * 3 + [new] * 3
    rotation = events[3]
    assert (rotation.action, rotation.details) == ("audit.key_rotate", {"key": new, "previous": old})
    assert verify().startswith("Audit chain intact: 6 event(s).")
    # The old key dropped from the file: its events no longer verify, and it is said why.
    audit_files[0].write_text(keys[0] + "\n")
    from django.conf import settings

    settings.AUDIT_KEYS = [keys[0]]
    with pytest.raises(CommandError, match=rf"audit event #1 names audit key '{old}', which is not configured"):
        verify()


def test_events_chained_before_the_key_are_signed_by_the_migration(audit_files):
    """Events of the plain sha256 chain (before migration 0011) are signed and anchored,
    and the migration says so in an event of its own."""
    record_events(4)
    events = rows()
    prev = ""
    for event in events:  # as migration 0008 left them
        event.prev_hash, event.hash = prev, audit.legacy_hash(event, prev)
        prev = event.hash
        sql("UPDATE TABLE SET prev_hash = %s, hash = %s, key_id = '' WHERE seq = %s", event.prev_hash, event.hash,
            event.seq)
    sql("UPDATE HEAD SET seq = %s, hash = %s", 4, prev)
    audit_files[1].unlink()
    with pytest.raises(CommandError, match=r"audit event #1 names audit key '\(none\)'"):
        verify()

    migration = MigrationLoader(connection).get_migration("upgrades", "0011_s4")
    apps = MigrationLoader(connection).project_state(("upgrades", "0011_s4")).apps
    migration.operations[1].code(apps, connection.schema_editor())
    assert verify().startswith("Audit chain intact: 5 event(s).")
    last = rows()[-1]
    assert (last.action, last.details) == ("audit.rechain", {"events": 4, "old_chain": "intact"})
    assert len(audit_files[1].read_text().splitlines()) == 5


def test_several_processes_write_one_chain_and_one_anchor(audit_files, tmp_path):
    """Workers and the web process append at once: one chain, every line whole."""
    procs = Processes(tmp_path)
    env = {**child_env(), "HEPORTAL_AUDIT_KEYS_FILE": str(audit_files[0]),
           "HEPORTAL_AUDIT_ANCHOR_FILE": str(audit_files[1])}
    code = "from upgrades import audit\nfor n in range(150): audit.record(None, 'run.step', None, n=n)"
    started = [procs.start(f"writer{n}", [sys.executable, "manage.py", "shell", "-c", code], env=env)
               for n in range(3)]
    try:
        for proc in started:
            assert proc.wait(timeout=300) == 0, (tmp_path / "writer0.log").read_text()[-2000:]
    finally:
        procs.stop()
    assert verify().startswith("Audit chain intact: 450 event(s).")
    assert sorted(int(line.split()[0]) for line in audit_files[1].read_text().splitlines()) == list(range(1, 451))
