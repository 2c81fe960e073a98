"""Directory logins against a real slapd (tests/slapd.py), through the real login page.

The portal is configured the way an admin does it, from the environment:
``heportal/settings.py`` is read again with the LDAP_* variables of the
test's directory, and its LDAP settings applied to this process.
"""
import json
import logging
import runpy
import socket
import subprocess
import sys
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from tests import slapd as directory_server
from tests.conftest import PASSWORD, ROOT, Processes, child_env, free_port
from tests.factories import grant, make_cluster
from upgrades import directory, permissions
from upgrades.models import AuditEvent, DirectoryAccount, DirectoryRole

pytestmark = pytest.mark.django_db(transaction=True)

ROLE_MAP = {
    # Spelled differently from the directory's DN on purpose: DNs compare by meaning.
    "CN=he-admins, ou=groups, dc=example, dc=org": "admin",
    directory_server.OPS_A_GROUP: [{"cluster": "Prod-A", "role": "operator"}],
    directory_server.AUDITORS_GROUP: {"cluster": "Prod-A", "role": "auditor"},
    "cn=nobody-is-here,ou=groups,dc=example,dc=org": "viewer",
}


def read_settings(monkeypatch, tmp_path, env):
    """heportal/settings.py as a process with ``env`` (and no other LDAP_*) reads it."""
    import os

    for name in list(os.environ):
        if name.startswith("LDAP_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HEPORTAL_DATA_DIR", str(tmp_path / "settings-data"))
    (tmp_path / "empty.env").write_text("")
    monkeypatch.setenv("HEPORTAL_CONFIG", str(tmp_path / "empty.env"))
    return runpy.run_path(str(ROOT / "heportal" / "settings.py"))


def use_settings(settings, values):
    for name, value in values.items():
        if name.startswith("AUTH_LDAP_") or name in ("AUTHENTICATION_BACKENDS", "LDAP_SERVER_URI", "LDAP_ROLE_MAP"):
            setattr(settings, name, value)


@pytest.fixture
def slapd(tmp_path):
    (tmp_path / "slapd").mkdir()
    server = directory_server.Slapd(tmp_path / "slapd")
    server.start().load()
    yield server
    server.stop()


@pytest.fixture
def portal(slapd, settings, monkeypatch, tmp_path):
    """The portal configured for ``slapd`` with ROLE_MAP; clusters Prod-A and Prod-B."""
    use_settings(settings, read_settings(monkeypatch, tmp_path, slapd.env(LDAP_ROLE_MAP=json.dumps(ROLE_MAP))))
    return make_cluster(name="Prod-A"), make_cluster(name="Prod-B")


def log_in(username, password, client=None):
    client = client or Client()
    response = client.post(reverse("login"), {"username": username, "password": password})
    return client, response


def logged_in(response):
    return response.status_code == 302 and response.url == reverse("home")


def test_a_directory_user_logs_in_and_gets_the_mapped_roles(portal, django_user_model):
    prod_a, prod_b = portal
    client, response = log_in("alice", directory_server.PASSWORDS["alice"])
    assert logged_in(response)
    alice = django_user_model.objects.get(username="alice")
    # An account of the directory's: no password of its own, its DN and details from the directory.
    assert not alice.has_usable_password()
    assert alice.directory_account.dn == f"uid=alice,{directory_server.USERS}"
    assert (alice.email, alice.first_name) == ("alice@example.org", "Alice")
    assert permissions.global_roles(alice) == {"admin"}
    assert client.get(reverse("cluster-detail", args=[prod_b.pk])).status_code == 200

    client, response = log_in("bob", directory_server.PASSWORDS["bob"])
    assert logged_in(response)
    bob = django_user_model.objects.get(username="bob")
    assert permissions.global_roles(bob) == set()
    assert permissions.roles(bob, prod_a) == {"operator", "auditor"}
    assert permissions.roles(bob, prod_b) == set()
    assert client.get(reverse("cluster-detail", args=[prod_a.pk])).status_code == 200
    assert client.get(reverse("cluster-detail", args=[prod_b.pk])).status_code == 403
    assert client.get(reverse("audit")).status_code == 200  # auditor on Prod-A

    # In the directory, in no mapped group: logged in, and told there is no role yet.
    client, response = log_in("dave", directory_server.PASSWORDS["dave"])
    assert logged_in(response)
    assert b"You have no role yet" in client.get(reverse("home")).content
    given = AuditEvent.objects.filter(action="directory.roles", actor_name="bob").get()
    assert given.details["given"] == ["auditor on Prod-A", "operator on Prod-A"]


def test_a_group_removed_in_the_directory_takes_its_role_away_at_the_next_login(portal, slapd, django_user_model):
    prod_a, prod_b = portal
    assert logged_in(log_in("bob", directory_server.PASSWORDS["bob"])[1])
    bob = django_user_model.objects.get(username="bob")
    # Roles given by hand: a grant on Prod-B and the global approver group.
    grant(bob, prod_b, "viewer")
    from django.contrib.auth.models import Group
    bob.groups.add(Group.objects.get_or_create(name="approver")[0])

    slapd.remove_member(directory_server.OPS_A_GROUP, "bob")
    client, response = log_in("bob", directory_server.PASSWORDS["bob"])
    assert logged_in(response)
    bob = django_user_model.objects.get(username="bob")
    assert permissions.roles(bob, prod_a) == {"auditor", "approver"}  # operator is gone
    assert permissions.roles(bob, prod_b) == {"viewer", "approver"}  # the hand-given roles stay
    assert not permissions.can_operate(bob, prod_a)
    taken = AuditEvent.objects.filter(action="directory.roles", actor_name="bob").order_by("seq").last()
    assert taken.details["taken"] == ["operator on Prod-A"] and taken.details["given"] == []
    assert list(DirectoryRole.objects.filter(user=bob).values_list("role", flat=True)) == ["auditor"]


def test_a_wrong_password_is_refused(portal, django_user_model):
    client, response = log_in("alice", "not alice's password")
    assert response.status_code == 200
    assert b"Your username and password didn" in response.content
    assert "_auth_user_id" not in client.session
    assert not django_user_model.objects.filter(username="alice").exists()
    assert AuditEvent.objects.filter(action="auth.login_failed", details__username="alice").exists()


def test_a_local_account_is_never_taken_over_by_a_directory_entry_of_its_name(portal, django_user_model):
    local = django_user_model.objects.create_user("carol", password=PASSWORD)
    # The directory's carol, with the directory's password: not this account.
    client, response = log_in("carol", directory_server.PASSWORDS["carol"])
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert not DirectoryAccount.objects.filter(user=local).exists()
    client, response = log_in("Carol", directory_server.PASSWORDS["carol"])  # nor in another case
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    client, response = log_in("carol", PASSWORD)
    assert logged_in(response) and int(client.session["_auth_user_id"]) == local.pk


def test_with_the_directory_down_break_glass_accounts_log_in_and_directory_users_are_told(
        portal, slapd, make_user, django_user_model):
    make_user("admin", "breakglass")
    assert logged_in(log_in("alice", directory_server.PASSWORDS["alice"])[1])
    slapd.stop()
    client, response = log_in("breakglass", PASSWORD)
    assert logged_in(response)
    assert client.get(reverse("home")).status_code == 200
    client, response = log_in("alice", directory_server.PASSWORDS["alice"])
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert escape(directory.UNREACHABLE).encode() in response.content
    assert b"didn" not in response.content  # not "wrong password": that would not be true


def test_the_bind_password_never_reaches_a_page_or_a_log(slapd, settings, monkeypatch, tmp_path, caplog):
    """Every path a login takes, the failing ones included: a good login, a wrong password,
    a wrong bind password (given through LDAP_BIND_PASSWORD_FILE), the directory down."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django_auth_ldap").setLevel(logging.DEBUG)
    make_cluster(name="Prod-A")
    pages = []
    use_settings(settings, read_settings(monkeypatch, tmp_path, slapd.env(LDAP_ROLE_MAP=json.dumps(ROLE_MAP))))
    for user, password in (("alice", directory_server.PASSWORDS["alice"]), ("alice", "wrong")):
        client, response = log_in(user, password)
        pages += [response.content, client.get(reverse("home")).content, client.get(reverse("audit")).content]

    wrong_bind = "wrong-bind-Pa55-0d1e2f"
    secret_file = tmp_path / "bind.password"
    secret_file.write_text(wrong_bind + "\n")
    env = slapd.env(LDAP_ROLE_MAP=json.dumps(ROLE_MAP), LDAP_BIND_PASSWORD_FILE=str(secret_file))
    env["LDAP_BIND_PASSWORD"] = ""
    values = read_settings(monkeypatch, tmp_path, env)
    assert values["AUTH_LDAP_BIND_PASSWORD"] == wrong_bind
    use_settings(settings, values)
    _, response = log_in("bob", directory_server.PASSWORDS["bob"])
    assert escape(directory.DIRECTORY_FAILED).encode() in response.content  # the portal's bind was refused
    pages.append(response.content)

    slapd.stop()
    _, response = log_in("bob", directory_server.PASSWORDS["bob"])
    pages.append(response.content)
    assert escape(directory.UNREACHABLE).encode() in response.content

    assert "django_auth_ldap" in caplog.text  # the directory's errors were logged...
    records = caplog.text + "".join(json.dumps(e.details) for e in AuditEvent.objects.all())
    for secret in (directory_server.BIND_PASSWORD, wrong_bind, directory_server.PASSWORDS["alice"]):
        assert secret not in records  # ...without a password
        assert not any(secret.encode() in page for page in pages)


def test_without_a_server_only_local_accounts_log_in(monkeypatch, tmp_path):
    values = read_settings(monkeypatch, tmp_path, {"LDAP_ROLE_MAP": json.dumps(ROLE_MAP)})
    assert "upgrades.directory.DirectoryBackend" not in values["AUTHENTICATION_BACKENDS"]
    assert not any(name.startswith("AUTH_LDAP_") for name in values)


def test_the_role_map_knows_the_portals_roles(monkeypatch, tmp_path):
    values = read_settings(monkeypatch, tmp_path, {})
    assert values["DIRECTORY_ROLES"] == permissions.ROLES


SERVER = {"LDAP_SERVER_URI": "ldap://127.0.0.1:1/", "LDAP_USER_SEARCH_BASE": directory_server.USERS,
          "LDAP_GROUP_SEARCH_BASE": directory_server.GROUPS}


@pytest.mark.parametrize("env, message", [
    ({"LDAP_ROLE_MAP": '{"cn=x,dc=example,dc=org": "root"}'}, "'root' is not a role"),
    ({"LDAP_ROLE_MAP": '{"cn=x,dc=example,dc=org": {"cluster": "A"}}'}, "give a role, or"),
    ({"LDAP_ROLE_MAP": '["admin"]'}, "must be an object"),
    ({"LDAP_ROLE_MAP": "{not json"}, "is not JSON"),
    ({**SERVER, "LDAP_GROUP_TYPE": "groupOfPeople"}, "LDAP_GROUP_TYPE='groupOfPeople': use one of groupOfNames"),
    ({**SERVER, "LDAP_GROUP_SEARCH_BASE": ""}, "LDAP_GROUP_SEARCH_BASE is needed too"),
    ({"TRUSTED_PROXIES": "127.0.0.1,nginx.example.org"}, "TRUSTED_PROXIES: 'nginx.example.org' is not an address"),
])
def test_a_bad_setting_stops_the_portal_with_a_clear_message(monkeypatch, tmp_path, env, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        read_settings(monkeypatch, tmp_path, env)


@pytest.fixture
def tls_slapd(tmp_path):
    (tmp_path / "tls-slapd").mkdir()
    server = directory_server.Slapd(tmp_path / "tls-slapd", tls=True)
    server.start().load()
    yield server
    server.stop()


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_the_directorys_certificate_is_checked_against_the_configured_ca(
        tls_slapd, settings, monkeypatch, tmp_path, transport):
    make_cluster(name="Prod-A")
    other_ca, _, _ = directory_server.make_ca(tmp_path, "another-ca")
    tls = {"LDAP_SERVER_URI": tls_slapd.ldaps_uri} if transport == "ldaps" else {"LDAP_START_TLS": "true"}
    for ca, works in ((other_ca, False), (tls_slapd.ca_file, True)):
        env = tls_slapd.env(LDAP_ROLE_MAP=json.dumps(ROLE_MAP), LDAP_CA_FILE=str(ca), **tls)
        use_settings(settings, read_settings(monkeypatch, tmp_path, env))
        client, response = log_in("alice", directory_server.PASSWORDS["alice"])
        assert logged_in(response) is works, (ca, response.content.decode()[-600:])
        if not works:
            assert escape(directory.UNREACHABLE).encode() in response.content  # said, not "wrong password"


@pytest.mark.browser
@pytest.mark.slow
def test_in_a_browser_through_daphne_a_directory_login_works_and_its_address_is_recorded(slapd, tmp_path, monkeypatch):
    """The whole way: daphne started with the LDAP_* environment an admin writes, Chromium on the
    real login page, the audit page showing the address a trusted proxy forwarded."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    make_cluster(name="Prod-A")
    env = {**child_env(), **slapd.env(LDAP_ROLE_MAP=json.dumps(ROLE_MAP)), "TRUSTED_PROXIES": "127.0.0.1"}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    procs, port = Processes(tmp_path), free_port()
    procs.start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                           "heportal.asgi:application"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            procs.check_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "daphne did not start listening in 30 s"
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread (test_browser.py)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            # As nginx on this machine would forward it: the browser's address appended last.
            page = browser.new_context(extra_http_headers={"X-Forwarded-For": "203.0.113.50"}).new_page()
            page.goto(base + "/login/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "not alice's password")
            page.click("button[type=submit]")
            expect(page.locator(".message.error")).to_contain_text("didn't match")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", directory_server.PASSWORDS["alice"])
            page.click("button[type=submit]")
            expect(page).to_have_url(base + "/")
            expect(page.get_by_text("Prod-A").first).to_be_visible()  # a global admin sees every cluster
            page.goto(base + "/audit/?action=auth.")
            rows = page.locator("table.audit tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text("auth.login")
            for n in (0, 1):
                expect(rows.nth(n).locator("td.client-address")).to_have_text("203.0.113.50")
            browser.close()
    finally:
        procs.stop()
    assert directory_server.BIND_PASSWORD not in (tmp_path / "daphne.log").read_text()
