"""The audit trail: a hash chain the application only appends to, that
``manage.py audit_verify`` checks; the audit page, its filters and exports.

The chain tests run on whichever database the settings name: SQLite by
default, PostgreSQL with DATABASE_URL=postgres://... (docs/architecture.md).
"""
import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from tests.factories import grant, make_cluster, make_host, make_run
from upgrades import audit
from upgrades.models import AuditEvent, AuditHead

pytestmark = pytest.mark.django_db


def verify():
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def raw(sql, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("TABLE", AuditEvent._meta.db_table), params)


@pytest.fixture(autouse=True)
def anchor_file(settings, tmp_path):
    """Each test's own anchor file (the test database starts empty, the default file does not)."""
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit.anchor")
    return tmp_path / "audit.anchor"


@pytest.fixture
def chain(client, make_user, django_capture_on_commit_callbacks):
    """Ten or so events of every kind: logins, a failed one, run records with odd details
    (committed, so anchored: the test's transaction runs the commit hooks)."""
    with django_capture_on_commit_callbacks(execute=True):
        return _chain(client, make_user)


def _chain(client, make_user):
    operator = make_user("operator")
    client.login(username="operator", password="correct horse battery staple")
    client.login(username="operator", password="wrong")
    host = make_host()
    run = make_run(operator, host, ["echo one"])
    audit.record(operator, "run.start", run, params={"host": "he1", "ratio": 0.1, "n": 2**53 + 1},
                 note="ünïcödé ✓ \"quoted\"\nline", empty={}, nested=[{"b": 1, "a": [1.5, None, True]}])
    audit.record(None, "run.running", run, executor="x:1")
    audit.record(operator, "step.skip", run.steps.first(), run=run.pk, reason="because")
    audit.record(operator, "host.key_accept", host, fingerprint="SHA256:abc")
    return list(AuditEvent.objects.order_by("seq"))


def test_an_intact_chain_verifies(chain):
    assert len(chain) >= 6
    assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(chain, chain[1:]))
    assert verify().startswith(f"Audit chain intact: {len(chain)} event(s).\n")


def test_the_application_never_changes_or_removes_an_event(chain):
    event = chain[2]
    event.action = "something.else"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.all().delete()
    assert verify().startswith("Audit chain intact")


def test_a_row_edited_in_the_database_is_found(chain):
    target = chain[3]
    raw("UPDATE TABLE SET actor_name = %s WHERE seq = %s", "mallory", target.seq)
    with pytest.raises(CommandError, match=rf"audit event #{target.seq} was altered"):
        verify()


def test_edited_details_are_found_even_with_the_hash_recomputed_locally(chain, settings):
    """Recomputing the edited row's hash (even with the key) breaks the next link, and
    differs from the anchor."""
    target = chain[3]
    target.details = {**target.details, "params": {"host": "elsewhere"}}
    forged = audit.event_hash(target, target.prev_hash, audit.signing_key()[1])
    raw("UPDATE TABLE SET details = %s, hash = %s WHERE seq = %s", json.dumps(target.details), forged, target.seq)
    with pytest.raises(CommandError, match=rf"audit event #{target.seq} differs from the anchor file's record"):
        verify()
    settings.AUDIT_ANCHOR_FILE = ""
    with pytest.raises(CommandError, match=rf"audit event #{target.seq + 1} does not link to event #{target.seq}"):
        verify()


def test_a_row_deleted_in_the_database_is_found(chain):
    raw("DELETE FROM TABLE WHERE seq = %s", 4)
    with pytest.raises(CommandError, match=r"audit event #4 is missing \(deleted\): the chain breaks before event #5"):
        verify()


def test_the_last_rows_deleted_in_the_database_are_found(chain):
    last = chain[-1].seq
    raw("DELETE FROM TABLE WHERE seq >= %s", last - 1)
    with pytest.raises(CommandError, match=rf"audit event #{last - 1} to #{last} is missing"):
        verify()


def test_a_row_added_in_the_database_is_found(chain):
    raw("INSERT INTO TABLE (actor_name, action, target_type, target_id, target_repr, created_at, details, prev_hash,"
        " hash, key_id) VALUES ('mallory', 'run.start', '', '', '', %s, '{}', '', '', '')", timezone.now())
    with pytest.raises(CommandError, match=r"has no place in the chain"):
        verify()


def test_deleting_a_user_keeps_the_chain(chain, client, make_user, django_user_model):
    client.force_login(make_user("viewer", "leaver"))
    django_user_model.objects.filter(username="leaver").delete()
    assert AuditEvent.objects.filter(actor_name="leaver", actor__isnull=True).exists()
    assert verify().startswith("Audit chain intact")


def test_the_head_follows_the_chain(chain):
    head = AuditHead.objects.get()
    assert (head.seq, head.hash) == (chain[-1].seq, chain[-1].hash)


def test_secrets_never_reach_an_event(make_user):
    event = audit.record(None, "cluster.change", None, engine_password="hunter2", nested={"api_token": "t0k"})
    assert "hunter2" not in json.dumps(event.details) and "t0k" not in json.dumps(event.details)


# The audit page --------------------------------------------------------------

@pytest.fixture
def trail(django_user_model):
    """Events on two clusters by two people; an auditor of Alpha, a global auditor."""
    alpha, beta = make_cluster(name="Alpha"), make_cluster(name="Beta")
    alice = django_user_model.objects.create_user("alice", password="x")
    bob = django_user_model.objects.create_user("bob", password="x")
    run_a = make_run(alice, make_host(alpha, name="a1"), ["true"])
    run_b = make_run(bob, make_host(beta, name="b1"), ["true"])
    for n in range(60):
        audit.record(alice, "step.start", run_a.steps.first(), run=run_a.pk, n=n)
    audit.record(alice, "run.cancel", run_a, reason="the plan changed")
    audit.record(alice, "host.key_accept", make_host(alpha, name="=HYPERLINK(\"http://evil\")"))
    for n in range(5):
        audit.record(bob, "step.start", run_b.steps.first(), run=run_b.pk, n=n)
    audit.record(bob, "auth.login")
    local = grant(django_user_model.objects.create_user("local", password="x"), alpha, "auditor")
    everywhere = django_user_model.objects.create_user("everywhere", password="x")
    everywhere.groups.add(Group.objects.get_or_create(name="auditor")[0])
    return {"alpha": alpha, "beta": beta, "run_a": run_a, "run_b": run_b, "local": local, "everywhere": everywhere}


def rows_of(page):
    return page.context["page"].paginator.count


def test_an_auditor_of_one_cluster_reads_only_its_events(client, trail):
    client.force_login(trail["local"])
    page = client.get("/audit/")
    assert page.status_code == 200 and rows_of(page) == 62
    assert all(e.cluster_ref == trail["alpha"].pk for e in page.context["page"])
    assert "bob" not in page.content.decode()


def test_the_audit_page_filters_and_paginates(client, trail):
    client.force_login(trail["everywhere"])
    assert rows_of(client.get("/audit/")) == AuditEvent.objects.count()
    assert rows_of(client.get("/audit/", {"person": "bob"})) == 6
    assert rows_of(client.get("/audit/", {"cluster": trail["beta"].pk})) == 5
    assert rows_of(client.get("/audit/", {"action": "run.cancel"})) == 1
    assert rows_of(client.get("/audit/", {"action": "step."})) == 65
    assert rows_of(client.get("/audit/", {"run": trail["run_a"].pk, "person": "alice"})) == 61
    assert rows_of(client.get("/audit/", {"cluster": trail["alpha"].pk})) == 62
    today = timezone.localdate()
    assert rows_of(client.get("/audit/", {"since": today, "until": today})) == AuditEvent.objects.count()
    assert rows_of(client.get("/audit/", {"until": today - timedelta(days=1)})) == 0
    first = client.get("/audit/", {"person": "alice"})
    assert len(first.context["page"].object_list) == 50 and first.context["page"].has_next()
    second = client.get("/audit/", {"person": "alice", "page": 2})
    assert len(second.context["page"].object_list) == 12 and not second.context["page"].has_next()
    assert 'href="?person=alice&amp;page=2"' in first.content.decode()
    assert client.get("/audit/", {"run": "x"}).status_code == 400


def test_the_exports_stream_the_filtered_set(client, trail):
    client.force_login(trail["everywhere"])
    response = client.get("/audit/export.csv", {"person": "alice"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 62 and {r["actor"] for r in rows} == {"alice"}
    accepted = next(r for r in rows if r["action"] == "host.key_accept")
    assert accepted["target"] == "'=HYPERLINK(\"http://evil\")"  # not a formula in a spreadsheet
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    response = client.get("/audit/export.json", {"cluster": trail["beta"].pk})
    assert response.streaming
    events = json.loads(b"".join(response.streaming_content))
    assert len(events) == 5 and {e["run"] for e in events} == {trail["run_b"].pk}
    stored = {e.seq: e.hash for e in AuditEvent.objects.all()}
    assert all(stored[e["seq"]] == e["hash"] for e in events)


def test_the_local_auditor_cannot_export_another_clusters_events(client, trail):
    client.force_login(trail["local"])
    events = json.loads(b"".join(client.get("/audit/export.json", {"person": "bob"}).streaming_content))
    assert events == []


def test_the_run_history_filters(client, trail, django_user_model):
    from upgrades.models import RunStatus, UpgradeRun

    alpha_runs = [trail["run_a"]]
    UpgradeRun.objects.filter(pk=trail["run_a"].pk).update(status=RunStatus.CANCELLED)  # one active run a cluster
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        alpha_runs.append(make_run(trail["run_a"].requested_by, trail["run_a"].steps.first().host, ["true"],
                                   slug="maintenance-global"))
        UpgradeRun.objects.filter(pk=alpha_runs[-1].pk).update(status=status)
    UpgradeRun.objects.filter(pk=alpha_runs[2].pk).update(created_at=timezone.now() - timedelta(days=3))
    viewer = django_user_model.objects.create_user("watcher", password="x")
    viewer.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(viewer)

    def ids(**query):
        page = client.get("/history/", query)
        assert page.status_code == 200
        return {run.pk for run in page.context["page"]}

    everything = ids()
    assert everything == {r.pk for r in alpha_runs} | {trail["run_b"].pk}
    assert ids(cluster=trail["beta"].pk) == {trail["run_b"].pk}
    assert ids(runbook="maintenance-global") == {alpha_runs[1].pk, alpha_runs[2].pk}
    assert ids(status="succeeded") == {alpha_runs[1].pk}
    assert ids(person="bob") == {trail["run_b"].pk}
    assert ids(until=timezone.localdate() - timedelta(days=1)) == {alpha_runs[2].pk}
    assert alpha_runs[2].pk not in ids(since=timezone.localdate())
    assert client.get("/history/", {"status": "nonsense"}).status_code == 400
    # An operator of Beta only sees Beta's runs.
    client.force_login(grant(django_user_model.objects.create_user("beta-op", password="x"), trail["beta"],
                             "operator"))
    assert ids() == {trail["run_b"].pk}
