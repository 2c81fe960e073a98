import subprocess
import sys

import pytest
from django.urls import reverse

from tests.conftest import ROOT
from tests.factories import make_host
from upgrades.models import AuditEvent, UpgradeRun


def test_it_redirects_anonymous_page_requests_to_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_refuses_a_diagnostic_from_a_viewer(client, make_user):
    host = make_host()
    client.force_login(make_user("viewer"))
    response = client.post(reverse("start-diagnostic", args=[host.pk]), follow=True)
    assert b"Only operators can start runs." in response.content
    assert not UpgradeRun.objects.exists()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["auth.login"]


@pytest.mark.django_db
def test_it_rejects_get_on_the_start_url(client, make_user):
    host = make_host()
    client.force_login(make_user("operator"))
    assert client.get(reverse("start-diagnostic", args=[host.pk])).status_code == 405
    assert not UpgradeRun.objects.exists()


@pytest.mark.django_db
def test_it_creates_the_four_role_groups():
    from django.contrib.auth.models import Group
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "approver", "admin"}


@pytest.mark.django_db
def test_audit_events_are_append_only(make_user):
    from django.core.exceptions import PermissionDenied
    from upgrades import audit

    event = audit.record(make_user("operator"), "test.action", details_key="x")
    event.action = "changed"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    assert AuditEvent.objects.get().action == "test.action"


def test_check_deploy_passes_with_production_like_settings(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin", "HEPORTAL_DATA_DIR": str(tmp_path), "DEBUG": "false",
        "SECRET_KEY": "x7#Kq9!vLm2@Rt5$Wz8^Np4&Bc6*Hd3(Fg1)Js0_Ty-Ue=Io+Pa[Sl]Dk;Zx", "ALLOWED_HOSTS": "portal.example.com",
        "SECURE_SSL_REDIRECT": "true", "SECURE_HSTS_SECONDS": "31536000", "BEHIND_TLS_PROXY": "true",
    }
    proc = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_check_deploy_fails_in_debug(tmp_path):
    # The check above could pass vacuously; this proves it can fail.
    env = {"PATH": "/usr/bin:/bin", "HEPORTAL_DATA_DIR": str(tmp_path), "DEBUG": "true"}
    proc = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "DEBUG" in proc.stderr + proc.stdout


@pytest.mark.django_db
def test_logins_and_failed_logins_are_audited(client, make_user):
    from tests.conftest import PASSWORD

    make_user("operator")
    client.post(reverse("login"), {"username": "operator", "password": "wrong"})
    client.post(reverse("login"), {"username": "operator", "password": PASSWORD})
    client.post(reverse("logout"))
    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor_name", "details"))
    assert events == [("auth.login_failed", "system", {"username": "operator"}),
                      ("auth.login", "operator", {}), ("auth.logout", "operator", {})]


@pytest.mark.django_db
def test_admin_edits_are_audited_and_host_keys_cannot_be_pinned_there(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(root)
    host = make_host(known_hosts="[127.0.0.1]:22 ssh-ed25519 AAAApinned")
    url = reverse("admin:upgrades_host_change", args=[host.pk])
    page = client.get(url)
    assert b'name="known_hosts"' not in page.content  # shown read-only, not editable
    form = {"cluster": host.cluster_id, "name": host.name, "address": "127.0.0.9", "ssh_port": 2222,
            "ssh_user": "root", "he_host_id": "", "os_release": "", "known_hosts": "[x]:1 ssh-rsa AAAAevil"}
    assert client.post(url, form).status_code == 302
    host.refresh_from_db()
    assert (host.address, host.ssh_port) == ("127.0.0.9", 2222)
    assert host.known_hosts == "[127.0.0.1]:22 ssh-ed25519 AAAApinned"
    event = AuditEvent.objects.get(action="admin.host.change")
    assert event.actor_name == "root" and set(event.details["fields"]) == {"address", "ssh_port"}


@pytest.mark.django_db
def test_run_records_are_read_only_in_the_admin(client, django_user_model, make_user):
    from tests.factories import make_run

    root = django_user_model.objects.create_superuser("root", password="x")
    run = make_run(make_user("operator"), make_host(), ["true"])
    client.force_login(root)
    assert client.get(reverse("admin:upgrades_upgraderun_change", args=[run.pk])).status_code == 200
    assert client.post(reverse("admin:upgrades_upgraderun_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    assert UpgradeRun.objects.filter(pk=run.pk).exists()
