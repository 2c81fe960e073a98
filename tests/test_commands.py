import json
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from upgrades.models import AuditEvent, Cluster, Host

pytestmark = pytest.mark.django_db

INVENTORY = {
    "engine": {"url": "https://127.0.0.1:8443/ovirt-engine/api", "username": "admin@internal",
               "password": "s3cret", "ca_file": "/tmp/ca.pem"},
    "hosts": [
        {"name": "he1.lab.local", "address": "127.0.1.1", "port": 2201, "host_id": 1, "os": "el7",
         "ssh_user": "root", "known_hosts": "[127.0.1.1]:2201 ssh-ed25519 AAAAC3Nza"},
        {"name": "he2.lab.local", "address": "127.0.1.2", "port": 2202, "host_id": 2, "os": "el7",
         "ssh_user": "root", "known_hosts": "[127.0.1.2]:2202 ssh-ed25519 AAAAC3Nzb"},
    ],
}


def test_import_cluster_creates_cluster_hosts_and_keeps_the_password_out_of_the_db(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(INVENTORY))
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    cluster = Cluster.objects.get(name="Lab")
    assert cluster.engine_url == INVENTORY["engine"]["url"]
    assert "s3cret" not in cluster.credentials_ref
    secret = cluster.credentials_ref.removeprefix("file:")
    assert open(secret).read() == "s3cret"
    assert stat.S_IMODE((tmp_path / "manifest.engine-password").stat().st_mode) == 0o600
    he2 = Host.objects.get(name="he2.lab.local")
    assert (he2.address, he2.ssh_port, he2.he_host_id) == ("127.0.1.2", 2202, 2)
    assert he2.known_hosts.startswith("[127.0.1.2]:2202 ssh-ed25519")
    assert AuditEvent.objects.filter(action="cluster.import").count() == 1


def test_reimport_updates_the_same_rows(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(INVENTORY))
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    INVENTORY_2 = json.loads(json.dumps(INVENTORY))
    INVENTORY_2["hosts"][0]["port"] = 2299
    path.write_text(json.dumps(INVENTORY_2))
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    assert Host.objects.count() == 2
    assert Host.objects.get(name="he1.lab.local").ssh_port == 2299


def test_import_cluster_refuses_a_bad_file_and_changes_nothing(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="not a readable inventory"):
        call_command("import_cluster", str(path))
    assert not Cluster.objects.exists()


def test_demo_users_prints_each_password_once():
    first, second = StringIO(), StringIO()
    call_command("demo_users", stdout=first)
    call_command("demo_users", stdout=second)
    assert first.getvalue().count("password:") == 3
    assert "password:" not in second.getvalue()
    from django.contrib.auth import get_user_model
    operator = get_user_model().objects.get(username="operator")
    assert list(operator.groups.values_list("name", flat=True)) == ["operator"]
    password = [l.split("password: ")[1] for l in first.getvalue().splitlines() if l.strip().startswith("operator")][0]
    assert operator.check_password(password)
