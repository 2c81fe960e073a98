import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from upgrades.models import AuditEvent, Cluster, Host

pytestmark = pytest.mark.django_db

KEY_1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMAhUha8bWX/1ZimRB1LkmQSu80hv70DQypsZIDlTmZm"
KEY_2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2Zca2sm0+4xYlrx6HoK5P4DGfQVGR2xl3g2WGngMCJ"
INVENTORY = {
    "engine": {"url": "https://127.0.0.1:8443/ovirt-engine/api", "username": "admin@internal",
               "password": "s3cret", "ca_file": "/tmp/ca.pem"},
    "hosts": [
        {"name": "he1.lab.local", "address": "127.0.1.1", "port": 2201, "host_id": 1, "os": "el7",
         "ssh_user": "root", "known_hosts": f"[127.0.1.1]:2201 {KEY_1}"},
        {"name": "he2.lab.local", "address": "127.0.1.2", "port": 2202, "host_id": 2, "os": "el7",
         "ssh_user": "root", "known_hosts": f"[127.0.1.2]:2202 {KEY_2}"},
    ],
}


def test_import_cluster_creates_cluster_hosts_and_stores_the_password_encrypted(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(INVENTORY))
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    cluster = Cluster.objects.get(name="Lab")
    assert cluster.engine_url == INVENTORY["engine"]["url"]
    assert cluster.credentials_ref == "" and "s3cret" not in cluster.engine_password_encrypted
    assert cluster.engine_password() == "s3cret"
    assert sorted(tmp_path.iterdir()) == [path]  # nothing written beside the inventory
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
    INVENTORY_2["hosts"][0]["known_hosts"] = f"[127.0.1.1]:2299 {KEY_1}"
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
    # Each has an address, so approval requests reach the approver (make demo writes them to data/mail/).
    assert operator.email == "operator@heportal.example" and "approver@heportal.example" in first.getvalue()
    password = [l.split("password: ")[1] for l in first.getvalue().splitlines() if l.strip().startswith("operator")][0]
    assert operator.check_password(password)


def write_inventory(tmp_path, data):
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(data))
    return path


def with_changes(**changes):
    """INVENTORY with dotted-path changes, e.g. hosts__1__port=5; None deletes."""
    data = json.loads(json.dumps(INVENTORY))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        key = int(key) if key.isdigit() else key
        if value is None:
            del target[key]
        else:
            target[key] = value
    return data


@pytest.mark.parametrize("changes, problem", [
    ({"hosts": "abc"}, "hosts: must be a list of hosts"),
    ({"hosts__1__address": None}, "hosts[1].address: missing"),
    ({"engine": "str"}, "engine: must be an object"),
    ({"hosts__0__port": "abc"}, "hosts[0].port: must be an integer 1-65535"),
    ({"hosts__0__port": 99999999}, "hosts[0].port: must be an integer 1-65535"),
    ({"hosts__1__host_id": -1}, "hosts[1].host_id: must be a positive integer"),
    ({"engine__url": "not a url"}, "engine.url: not an https/http URL"),
    ({"hosts__1__known_hosts": "garbage"}, "hosts[1].known_hosts: known_hosts line 1 is not a host key line"),
    ({"hosts__1__known_hosts": "[127.0.1.2]:2202 ssh-ed25519 AAAA!!notbase64"},
     "hosts[1].known_hosts: known_hosts line 1 is not a host key line"),
    ({"hosts__1__known_hosts": f"[127.0.1.9]:2202 {KEY_2}"}, "hosts[1].known_hosts: has no key for [127.0.1.2]:2202"),
    ({"hosts__1__name": "he1.lab.local"}, "hosts[1].name: same as hosts[0]"),
    ({"hosts__1__address": "127.0.1.2; rm -rf /"}, "hosts[1].address: must not contain spaces"),
    ({"hosts__0": "he1"}, "hosts[0]: must be an object"),
    ({"hosts": None}, "hosts: missing"),
])
def test_import_cluster_names_the_problem_with_its_path_and_writes_nothing(tmp_path, changes, problem):
    path = write_inventory(tmp_path, with_changes(**changes))
    with pytest.raises(CommandError) as raised:
        call_command("import_cluster", str(path), "--name", "Lab")
    assert problem in str(raised.value)
    assert "nothing was changed" in str(raised.value)
    assert not Cluster.objects.exists() and not Host.objects.exists()
    assert sorted(tmp_path.iterdir()) == [path]  # the secret is not written anywhere either
    assert "s3cret" not in str(raised.value)


def test_every_problem_is_listed_at_once_and_an_existing_cluster_is_untouched(tmp_path):
    path = write_inventory(tmp_path, INVENTORY)
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    before = list(Host.objects.order_by("pk").values()), list(Cluster.objects.values())
    path = write_inventory(tmp_path, with_changes(engine__url="not a url", hosts__0__port=0,
                                                  hosts__1__address=None, hosts__1__known_hosts="garbage"))
    with pytest.raises(CommandError) as raised:
        call_command("import_cluster", str(path), "--name", "Lab", "--poll-interval", "nan")
    message = str(raised.value)
    assert "5 problem(s)" in message
    for problem in ("engine.url:", "hosts[0].port:", "hosts[1].address: missing", "hosts[1].known_hosts:",
                    "poll_interval: must be a positive number"):
        assert problem in message
    assert (list(Host.objects.order_by("pk").values()), list(Cluster.objects.values())) == before


def test_reimport_without_an_engine_block_keeps_the_engine_and_unmentioned_host_fields(tmp_path):
    path = write_inventory(tmp_path, INVENTORY)
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    first = Cluster.objects.get()
    # A hosts-only file: one host moved to another port, no engine, no os.
    moved = {"name": "he1.lab.local", "address": "127.0.1.1", "port": 2210,
             "known_hosts": f"[127.0.1.1]:2210 {KEY_1}"}
    path = write_inventory(tmp_path, {"hosts": [moved]})
    call_command("import_cluster", str(path), "--name", "Lab", stdout=StringIO())
    cluster = Cluster.objects.get()
    assert (cluster.engine_url, cluster.engine_username, cluster.engine_ca_file, cluster.credentials_ref,
            cluster.engine_password_encrypted) == (first.engine_url, first.engine_username, first.engine_ca_file,
                                                   first.credentials_ref, first.engine_password_encrypted)
    assert cluster.engine_password() == "s3cret"
    he1, he2 = Host.objects.order_by("name")
    assert (he1.ssh_port, he1.os_release, he1.he_host_id, he1.ssh_user) == (2210, "el7", 1, "root")
    assert he1.known_hosts == f"[127.0.1.1]:2210 {KEY_1}"
    assert (he2.ssh_port, he2.address) == (2202, "127.0.1.2")  # not in the file: as it was
    event = AuditEvent.objects.filter(action="cluster.reimport").get()
    assert event.details["hosts"] == ["he1.lab.local"] and event.details["fields"] == []


def test_import_cluster_service_refuses_bad_data_from_code_too(tmp_path):
    from django.core.exceptions import ValidationError

    from upgrades import services

    with pytest.raises(ValidationError) as raised:
        services.import_cluster(name="", engine={"url": "ftp://x"}, password_file=None,
                                hosts=[{"name": "a", "address": "bad address", "port": True}])
    assert raised.value.messages == [
        "name: must be 1-100 characters", "engine.url: not an https/http URL, e.g. https://engine.example.com/ovirt-engine/api",
        "hosts[0].address: must not contain spaces", "hosts[0].port: must be an integer 1-65535"]
    assert not Cluster.objects.exists()
