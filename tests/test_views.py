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
    assert not AuditEvent.objects.exists()


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
