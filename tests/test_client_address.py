"""The audit's client address (upgrades/client_address.py): X-Forwarded-For counts
only from a proxy in TRUSTED_PROXIES; logins, failed logins and actions record it,
the chain signs it, the audit page shows it."""
import hashlib
import hmac
import io

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import AsyncClient, Client
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.factories import make_host, make_run
from upgrades import audit
from upgrades.client_address import client_address
from upgrades.models import AuditEvent, RunStatus

pytestmark = pytest.mark.django_db

CLIENT = "198.51.100.4"
SPOOFED = "10.66.66.66"


@pytest.fixture(autouse=True)
def anchor_file(settings, tmp_path):
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit.anchor")


@pytest.mark.parametrize("trusted, remote, forwarded, expected", [
    ([], CLIENT, SPOOFED, CLIENT),  # no trusted proxy: the header is never read
    (["127.0.0.1"], CLIENT, SPOOFED, CLIENT),  # not from the proxy: a client's own header, ignored
    (["127.0.0.1"], "127.0.0.1", CLIENT, CLIENT),  # nginx on the same machine
    (["127.0.0.1"], "127.0.0.1", f"{SPOOFED}, {CLIENT}", CLIENT),  # the client's own entry is left of nginx's
    (["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", f"{SPOOFED}, {CLIENT}, 10.1.2.3", CLIENT),  # two proxies
    (["127.0.0.1"], "127.0.0.1", f"{SPOOFED}, not-an-address", "127.0.0.1"),  # nothing left of junk is believed
    (["127.0.0.1"], "127.0.0.1", "", "127.0.0.1"),
    (["::1"], "::1", "2001:DB8::7", "2001:db8::7"),
    ([], "::ffff:192.0.2.1", "", "192.0.2.1"),
])
def test_the_forwarded_address_counts_only_from_a_trusted_proxy(settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    assert client_address(remote, forwarded) == expected


def log_in(password, remote, forwarded=None, client=None):
    client = client or Client()
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    client.post(reverse("login"), {"username": "operator", "password": password},
                REMOTE_ADDR=remote, headers=headers)
    return client


def test_a_spoofed_forwarded_address_from_a_client_is_ignored(settings, make_user):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    make_user("operator")
    log_in(PASSWORD, CLIENT, forwarded=SPOOFED)
    log_in("wrong", CLIENT, forwarded=SPOOFED)
    events = {e.action: e.client_address for e in AuditEvent.objects.all()}
    assert events == {"auth.login": CLIENT, "auth.login_failed": CLIENT}


def test_the_forwarded_address_from_a_trusted_proxy_is_recorded_for_logins_and_actions(settings, make_user):
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]
    operator = make_user("operator")
    log_in("wrong", "127.0.0.1", forwarded=f"{SPOOFED}, {CLIENT}")
    client = log_in(PASSWORD, "127.0.0.1", forwarded=f"{SPOOFED}, {CLIENT}")
    run = make_run(operator, make_host(), ["true"])
    client.post(reverse("run-cancel", args=[run.pk]), {"reason": "not today"},
                REMOTE_ADDR="127.0.0.1", headers={"X-Forwarded-For": CLIENT})
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    recorded = {e.action: e.client_address for e in AuditEvent.objects.all()}
    assert recorded == {"auth.login_failed": CLIENT, "auth.login": CLIENT, "run.cancel": CLIENT}
    # What the system does by itself (workers, commands) has no client.
    assert audit.record(None, "run.running", run).client_address == ""


@pytest.mark.django_db(transaction=True)
def test_async_views_record_the_address_too(settings, make_user):
    """Under daphne (ASGI) the middleware runs as async code and the sync views in threads."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    make_user("operator")

    async def failed_login():
        await AsyncClient().post(reverse("login"), {"username": "operator", "password": "wrong"},
                                 headers={"X-Forwarded-For": CLIENT})  # from 127.0.0.1

    async_to_sync(failed_login)()
    assert AuditEvent.objects.get(action="auth.login_failed").client_address == CLIENT


def verify():
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_the_address_is_signed_and_events_without_one_hash_as_before(make_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # anchored, as when committed
        make_user("operator")
        log_in(PASSWORD, CLIENT)
        system = audit.record(None, "secrets.rotate", None, clusters=0)
    assert verify().startswith("Audit chain intact")
    # An event without an address hashes exactly as before the address was recorded (migration 0012).
    old_body = audit.canonical_json({
        "seq": system.seq, "created_at": audit.format_time(system.created_at), "actor_name": "system",
        "action": "secrets.rotate", "target_type": "", "target_id": "", "target_repr": "",
        "details": {"clusters": 0}, "cluster": None, "run": None})
    key = audit.keyring()[system.key_id]
    assert system.hash == hmac.new(key, f"{system.prev_hash}\n{system.key_id}\n{old_body}".encode(),
                                   hashlib.sha256).hexdigest()
    # Another address written into the database breaks the chain.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET client_address = %s WHERE action = %s",
                       [SPOOFED, "auth.login"])
    with pytest.raises(CommandError, match="was altered"):
        verify()


def test_the_audit_page_and_exports_show_the_address(make_user):
    make_user("auditor")
    client = Client()
    client.post(reverse("login"), {"username": "auditor", "password": PASSWORD}, REMOTE_ADDR=CLIENT)
    page = client.get(reverse("audit")).content.decode()
    assert f'<td class="client-address">{CLIENT}</td>' in page and "<th>From</th>" in page
    exported = b"".join(client.get(reverse("audit-export-csv")).streaming_content).decode()
    assert exported.splitlines()[0].startswith("seq,created_at,actor,client_address,")
    assert f",auditor,{CLIENT},auth.login," in exported
