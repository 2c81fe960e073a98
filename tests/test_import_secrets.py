"""Imported engine passwords are stored encrypted, like the admin form's, and
written nowhere in plain text; a password file is read once (a small one-line
regular file, else refused with nothing changed) and its path is not kept."""
import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from upgrades import secrets, services
from upgrades.models import AuditEvent, Cluster, Host
from upgrades.remote.engine_api import EngineClient

pytestmark = pytest.mark.django_db

INVENTORY = {
    "engine": {"url": "https://127.0.0.1:8443/ovirt-engine/api", "username": "admin@internal",
               "password": "s3cret-of-the-engine"},
    "hosts": [{"name": "he1.lab.local", "address": "127.0.1.1", "port": 2201, "host_id": 1},
              {"name": "he2.lab.local", "address": "127.0.1.2", "port": 2202, "host_id": 2}],
}


def files_holding(folder, secret):
    """Every regular file under ``folder`` whose bytes contain ``secret``."""
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
                found.append(path)
    return found


def kept_anywhere(text):
    """Whether ``text`` is in any cluster column or audit event."""
    rows = list(Cluster.objects.values()) + list(AuditEvent.objects.values())
    return text in json.dumps(rows, default=str)


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def import_file(path, name):
    call_command("import_cluster", str(path), "--name", name, stdout=StringIO())
    return Cluster.objects.get(name=name)


def logs_in(cluster):
    with EngineClient.for_cluster(cluster, timeout=10) as client:
        return client.test_connection().product


def test_an_inline_password_is_stored_encrypted_and_written_nowhere(lab, tmp_path):
    password = lab.manifest["engine"]["password"]
    folder = tmp_path / "inventory"
    folder.mkdir()
    inventory = write(folder / "lab.json", lab.manifest)  # the lab's manifest, password inline

    cluster = import_file(inventory, "Imported")

    # Only the inventory the admin wrote holds it; nothing beside it, nothing in data/.
    assert files_holding(folder, password) == [inventory]
    assert files_holding(settings.DATA_DIR, password) == []
    assert password not in cluster.engine_password_encrypted
    assert secrets.decrypt(cluster.engine_password_encrypted) == password
    assert cluster.credentials_ref == "" and not kept_anywhere(password)
    assert "engine_password" in AuditEvent.objects.get(action="cluster.import").details["fields"]
    assert logs_in(cluster) == "oVirt Engine"


def test_a_password_file_is_read_once_and_its_path_not_kept(lab, tmp_path):
    password = lab.manifest["engine"]["password"]
    secret = tmp_path / "vault" / "engine.pw"
    secret.parent.mkdir()
    secret.write_text(password + "\n")
    engine = {key: value for key, value in lab.manifest["engine"].items() if key != "password"}
    inventory = write(tmp_path / "lab.json", dict(lab.manifest, engine=dict(engine, password_file=str(secret))))

    cluster = import_file(inventory, "Imported")
    secret.unlink()  # read once: the portal needs it no more

    assert secrets.decrypt(cluster.engine_password_encrypted) == password
    assert cluster.credentials_ref == ""
    assert not kept_anywhere(str(secret)) and not kept_anywhere(password)
    assert files_holding(tmp_path, password) == [] and files_holding(settings.DATA_DIR, password) == []
    assert logs_in(cluster) == "oVirt Engine"


def test_the_fixtures_password_file_is_stored_encrypted_too(lab_cluster, lab):
    """services.import_cluster(password_file=...), as tests/conftest.py calls it."""
    assert lab_cluster.credentials_ref == ""
    assert lab_cluster.engine_password() == lab.manifest["engine"]["password"]
    assert not kept_anywhere(str(Path(lab.state_dir) / "engine-password"))
    assert logs_in(lab_cluster) == "oVirt Engine"


def ten_megabytes(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * (10 * 1024 * 1024))
    return str(path)


def a_directory(tmp_path):
    (tmp_path / "secrets.d").mkdir()
    return str(tmp_path / "secrets.d")


def a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe")  # nobody writes it: reading would block for ever
    return str(tmp_path / "pipe")


def a_blank_file(tmp_path):
    (tmp_path / "blank").write_text("\n \n")
    return str(tmp_path / "blank")


@pytest.mark.parametrize("make_path, problem", [
    # Root reads it (many lines); anyone else may not.
    (lambda tmp_path: "/etc/shadow", "/etc/shadow: holds " if os.getuid() == 0 else "/etc/shadow: cannot be read"),
    (a_directory, "secrets.d: is a directory, not a regular file"),
    (ten_megabytes, "big: 10485760 bytes is too big for a password file (one line, at most 4096 bytes)"),
    (lambda tmp_path: "/dev/zero", "/dev/zero: is a character device, not a regular file"),
    (a_fifo, "pipe: is a FIFO, not a regular file"),
    (a_blank_file, "blank: is empty"),
    (lambda tmp_path: str(tmp_path / "absent"), "absent: no such file"),
], ids=["etc-shadow", "directory", "10-MB", "dev-zero", "fifo", "blank", "absent"])
def test_a_password_file_that_is_no_password_file_is_refused_and_changes_nothing(tmp_path, make_path, problem):
    existing = import_file(write(tmp_path / "first.json", INVENTORY), "Lab")
    before = list(Cluster.objects.values()), list(Host.objects.order_by("pk").values()), AuditEvent.objects.count()
    where = make_path(tmp_path)
    # A password inline too: the file the inventory names must still be a password file.
    engine = dict(INVENTORY["engine"], password_file=where, url="https://elsewhere.example.com/ovirt-engine/api")
    inventory = write(tmp_path / "inventory.json", dict(INVENTORY, engine=engine))

    for name in ("New", "Lab"):  # neither a new cluster nor a re-import
        with pytest.raises(CommandError) as raised:
            call_command("import_cluster", str(inventory), "--name", name)
        message = str(raised.value)
        assert f"engine.password_file: {where}" in message and problem in message, message
        assert "nothing was changed" in message and "root:" not in message
    with pytest.raises(ValidationError) as raised:  # the service's own password_file, as the fixtures pass it
        services.import_cluster(name="Lab", engine=None, hosts=INVENTORY["hosts"], password_file=where)
    [message] = raised.value.messages
    assert message.startswith(f"password_file: {where}: ") and problem in message, message

    assert (list(Cluster.objects.values()), list(Host.objects.order_by("pk").values()),
            AuditEvent.objects.count()) == before
    assert not Cluster.objects.filter(name="New").exists()
    existing.refresh_from_db()
    assert existing.engine_password() == "s3cret-of-the-engine" and existing.credentials_ref == ""
    assert sorted(files_holding(tmp_path, "s3cret-of-the-engine")) == [tmp_path / "first.json", inventory]


def test_a_reimport_without_a_password_keeps_the_stored_one(tmp_path):
    cluster = import_file(write(tmp_path / "inventory.json", INVENTORY), "Lab")
    assert cluster.engine_password() == "s3cret-of-the-engine"
    stored = cluster.engine_password_encrypted

    engine = {"url": "https://engine2.example.com/ovirt-engine/api", "username": "admin@internal"}
    cluster = import_file(write(tmp_path / "inventory.json", dict(INVENTORY, engine=engine)), "Lab")
    assert cluster.engine_url == engine["url"] and cluster.engine_password_encrypted == stored
    cluster = import_file(write(tmp_path / "inventory.json", {"hosts": INVENTORY["hosts"][:1]}), "Lab")
    assert cluster.engine_password_encrypted == stored and cluster.engine_password() == "s3cret-of-the-engine"
    reimports = AuditEvent.objects.filter(action="cluster.reimport").order_by("pk")
    assert [event.details["fields"] for event in reimports] == [["engine_url", "engine_username"], []]

    # One given again replaces it.
    engine["password"] = "a new one"
    cluster = import_file(write(tmp_path / "inventory.json", dict(INVENTORY, engine=engine)), "Lab")
    assert cluster.engine_password() == "a new one"
    assert files_holding(tmp_path, "a new one") == [tmp_path / "inventory.json"]
