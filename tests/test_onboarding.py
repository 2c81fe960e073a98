"""Adding a cluster from the pages (upgrades/onboarding.py, upgrades/doctor.py), against labs:
a 4.5 lab that accepts the portal's key, the session's lab for hosts that do not, and
made-up CAs and keys for what must be refused. The browser drives the whole path in
tests/test_browser_onboarding.py; here each rule on its own, through the Django client.
"""
import base64
import datetime
import os
import shutil
import stat
import urllib.request
from pathlib import Path

import paramiko
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client

from tests.conftest import LAB_SPEED
from tests.factories import make_cluster, make_host, make_run
from upgrades import doctor, onboarding, services, sshkey
from upgrades.models import AuditEvent, Cluster, Host

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def lab45(lab, tmp_path_factory):
    """A 4.5 lab whose hosts accept the portal's key (settings.SSH_KEY_FILE, the session lab's)."""
    from lab.launcher import start_lab

    state = tmp_path_factory.mktemp("lab45")
    (state / "keys").mkdir(mode=0o700)
    shutil.copy(lab.manifest["ssh_key"], state / "keys" / "client_ed25519")
    with start_lab(state, hosts=2, speed=LAB_SPEED, engine_version="4.5") as running:
        yield running


@pytest.fixture
def global_admin(django_user_model):
    user = django_user_model.objects.create_user("boss", password="x")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def other_ca():
    """A CA that signed nothing the engine has."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone else's CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def add_form(lab, **changes):
    engine = lab.manifest["engine"]
    ca = onboarding.parse_ca(Path(engine["ca_file"]).read_text())
    form = {"step": "login", "engine_url": engine["url"], "ca_pem": ca.pem, "confirmed": ca.fingerprint,
            "name": "Production", "username": "admin@internal", "password": engine["password"],
            "poll_interval": "0.5"}
    form.update(changes)
    return form


def host_entry(lab, name):
    return next(h for h in lab.manifest["hosts"] if h["name"] == name)


def test_the_lab_engine_publishes_its_ca_as_ovirt_does(lab45):
    engine = lab45.manifest["engine"]
    url = onboarding.ca_url(engine["url"])
    # Read as the portal reads it: no TLS check, the fingerprint is what the admin compares.
    ca = onboarding.fetch_ca(engine["url"])
    assert ca.pem == Path(engine["ca_file"]).read_text()
    assert ca.fingerprint.count(":") == 31
    context = __import__("ssl").create_default_context(cafile=engine["ca_file"])
    with urllib.request.urlopen(url, context=context) as response:
        assert response.headers["Content-Type"].startswith("application/x-x509-ca-cert")
    bad = url.replace("ca-certificate", "nothing")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, context=context)
    assert refused.value.code == 400 and b"Resource 'nothing' is invalid" in refused.value.read()


def test_step_one_shows_the_fingerprint_of_the_ca_it_fetched(global_admin, lab45):
    page = global_admin.post("/clusters/add/", {"step": "ca", "engine_url": lab45.manifest["engine"]["url"]})
    ca = onboarding.parse_ca(Path(lab45.manifest["engine"]["ca_file"]).read_text())
    assert page.status_code == 200
    assert ca.fingerprint in page.content.decode()
    assert onboarding.CA_ON_ENGINE in page.content.decode()
    assert not Cluster.objects.exists()


def test_an_admin_adds_a_cluster_whose_password_is_stored_encrypted(global_admin, lab45):
    response = global_admin.post("/clusters/add/", add_form(lab45))
    cluster = Cluster.objects.get(name="Production")
    assert response.status_code == 302 and response["Location"] == f"/clusters/{cluster.pk}/hosts/add/"
    password = lab45.manifest["engine"]["password"]
    assert cluster.engine_password() == password and password not in cluster.engine_password_encrypted
    assert Path(cluster.engine_ca_file).read_text() == Path(lab45.manifest["engine"]["ca_file"]).read_text()
    assert cluster.poll_interval == 0.5
    event = AuditEvent.objects.get(action="cluster.add")
    assert password not in str(event.details) and event.details["ca_fingerprint"].count(":") == 31
    # 4.5: the hosted-engine hosts come from the API, to tick.
    page = global_admin.get(f"/clusters/{cluster.pk}/hosts/add/").content.decode()
    assert "he1.lab.local" in page and "he2.lab.local" in page and "HA active, score 3400" in page
    he1 = host_entry(lab45, "he1.lab.local")
    response = global_admin.post(f"/clusters/{cluster.pk}/hosts/add/", {
        "pick": ["he1.lab.local"], "address-he1.lab.local": he1["address"], "port-he1.lab.local": str(he1["port"]),
        "user-he1.lab.local": "root"})
    assert response.status_code == 302
    host = cluster.hosts.get()
    assert (host.name, host.address, host.ssh_port, host.known_hosts) == ("he1.lab.local", he1["address"],
                                                                         he1["port"], "")


def test_a_wrong_engine_password_is_said_and_nothing_is_stored(global_admin, lab45):
    page = global_admin.post("/clusters/add/", add_form(lab45, password="not the password"))
    assert page.status_code == 400
    assert "refused the login of admin@internal: the user name or the password is wrong" in page.content.decode()
    assert not Cluster.objects.exists() and not AuditEvent.objects.filter(action="cluster.add").exists()


def test_an_engine_ca_that_does_not_match_is_refused(global_admin, lab45):
    pasted = onboarding.parse_ca(other_ca())
    page = global_admin.post("/clusters/add/", {"step": "ca", "engine_url": lab45.manifest["engine"]["url"],
                                                "ca_pem": pasted.pem})
    assert pasted.fingerprint in page.content.decode()  # the pasted one is what is shown, and tried
    page = global_admin.post("/clusters/add/", add_form(lab45, ca_pem=pasted.pem, confirmed=pasted.fingerprint))
    assert page.status_code == 400
    assert "does not check out against this CA" in page.content.decode()
    assert not Cluster.objects.exists()


def test_the_fingerprint_must_be_confirmed_and_a_server_certificate_is_no_ca(global_admin, lab45):
    page = global_admin.post("/clusters/add/", add_form(lab45, confirmed=""))
    assert page.status_code == 400 and "tick the box" in page.content.decode()
    server_cert = (Path(lab45.manifest["engine"]["ca_file"]).parent / "engine-cert.pem").read_text()
    page = global_admin.post("/clusters/add/", add_form(lab45, ca_pem=server_cert))
    assert page.status_code == 400 and "is not a CA" in page.content.decode()
    assert not Cluster.objects.exists()


def test_hand_entry_shares_the_inventory_validation(global_admin, lab45):
    """The pages and `import_cluster` say the same thing about the same mistake."""
    cluster = services.add_cluster(user=global_admin.user, name="Hand", engine_url=lab45.manifest["engine"]["url"],
                                   username="admin@internal", password="x", ca_pem=other_ca())
    page = global_admin.post(f"/clusters/{cluster.pk}/hosts/add/", {"hand": "he1.example.com not_an_address!"})
    assert page.status_code == 400
    assert "hosts[0].address: not a host name or IP address" in page.content.decode()
    with pytest.raises(Exception) as imported:
        services.import_cluster(name="Hand", engine=None, hosts=[{"name": "he1.example.com",
                                                                  "address": "not_an_address!"}])
    assert "hosts[0].address: not a host name or IP address" in str(imported.value)
    assert not cluster.hosts.exists()
    # The engine would not answer with that CA: the page says so and offers hand entry.
    page = global_admin.get(f"/clusters/{cluster.pk}/hosts/add/").content.decode()
    assert "The engine did not list its hosts" in page and 'name="hand"' in page


def lab_host(cluster, lab, name, **fields):
    entry = host_entry(lab, name)
    values = {"address": entry["address"], "ssh_port": entry["port"], "known_hosts": entry["known_hosts"], **fields}
    return Host.objects.create(cluster=cluster, name=name, **values)


def outcomes(report):
    return {check["key"]: check["outcome"] for check in report.checks}


def test_the_doctor_passes_a_good_host(lab45):
    host = lab_host(make_cluster(name="Doc"), lab45, "he1.lab.local")
    report = doctor.check_host(host)
    got = outcomes(report)
    # The lab's clock runs 60 times faster than the portal's: a warning, said as such.
    assert got == {"tcp": "ok", "host_key": "ok", "auth": "ok", "root": "ok", "hosted_engine": "ok",
                   "release": "ok", "vm_status": "ok", "clock": "warn"}, report.checks
    release = next(c for c in report.checks if c["key"] == "release")["detail"]
    assert release.startswith("oVirt 4.5") and "ovirt-hosted-engine-ha" in release


def test_the_doctor_refuses_a_host_whose_key_changed(lab45):
    he1, he2 = host_entry(lab45, "he1.lab.local"), host_entry(lab45, "he2.lab.local")
    # he1's address with he2's key pinned: what a reinstalled (or impostor) host looks like.
    wrong = f"[{he1['address']}]:{he1['port']} " + he2["known_hosts"].split(" ", 1)[1]
    host = lab_host(make_cluster(name="Doc"), lab45, "he1.lab.local", known_hosts=wrong)
    report = doctor.check_host(host)
    key = next(c for c in report.checks if c["key"] == "host_key")
    assert key["outcome"] == "fail" and "HOST KEY CHANGED" in key["detail"]
    assert "ssh-keygen -lf" in key["fix"]
    assert outcomes(report)["auth"] == "skipped"  # never logged in to a host it does not trust
    host.refresh_from_db()
    assert host.known_hosts == wrong  # nothing accepted by the check


def test_the_doctor_never_accepts_an_unknown_key(lab45):
    host = lab_host(make_cluster(name="Doc"), lab45, "he1.lab.local", known_hosts="")
    report = doctor.check_host(host)
    key = next(c for c in report.checks if c["key"] == "host_key")
    key_type, data = host_entry(lab45, "he1.lab.local")["known_hosts"].split()[1:3]
    offered = paramiko.PKey.from_type_string(key_type, base64.b64decode(data))
    assert key["outcome"] == "fail" and offered.fingerprint in key["detail"]
    host.refresh_from_db()
    assert host.known_hosts == ""


def test_the_doctor_says_how_to_authorise_the_portals_key(lab, tmp_path):
    """The session lab's hosts accept the lab's key; the portal here has a key of its own."""
    from django.conf import settings

    own = sshkey.ensure_key(tmp_path / "ssh" / "id_ed25519")
    saved, settings.SSH_KEY_FILE = settings.SSH_KEY_FILE, str(own)
    try:
        host = lab_host(make_cluster(name="Doc"), lab, "he1.lab.local")
        report = doctor.check_host(host)
    finally:
        settings.SSH_KEY_FILE = saved
    auth = next(c for c in report.checks if c["key"] == "auth")
    assert auth["outcome"] == "fail" and "refused key login as 'root'" in auth["detail"]
    public = sshkey.public_line(own)
    assert public.split()[1] in auth["fix"] and "authorized_keys" in auth["fix"]
    assert outcomes(report)["root"] == "skipped"


def test_the_portal_key_is_made_once_and_private(tmp_path):
    path = sshkey.ensure_key(tmp_path / "data" / "ssh" / "id_ed25519")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    first = path.read_bytes()
    assert sshkey.ensure_key(path) == path and path.read_bytes() == first
    public = sshkey.public_line(path)
    assert public.startswith("ssh-ed25519 ") and Path(f"{path}.pub").read_text().split()[:2] == public.split()[:2]
    command = sshkey.authorize_command("root", public)
    assert command.startswith("install -d -m 700 /root/.ssh && echo 'ssh-ed25519 ")


def test_edit_rotates_the_password_only_when_the_engine_takes_it(global_admin, lab45):
    global_admin.post("/clusters/add/", add_form(lab45))
    cluster = Cluster.objects.get(name="Production")
    password = lab45.manifest["engine"]["password"]
    page = global_admin.post(f"/clusters/{cluster.pk}/edit/", {"password": "rotated-but-wrong", "poll_interval": "2"})
    assert page.status_code == 400 and "The new password was not stored" in page.content.decode()
    cluster.refresh_from_db()
    assert cluster.engine_password() == password and cluster.poll_interval == 0.5  # nothing changed
    page = global_admin.post(f"/clusters/{cluster.pk}/edit/", {"poll_interval": "-1"})
    assert page.status_code == 400 and "poll_interval: must be a positive number" in page.content.decode()
    response = global_admin.post(f"/clusters/{cluster.pk}/edit/", {"password": password, "poll_interval": "2"})
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.poll_interval == 2.0 and cluster.engine_password() == password
    event = AuditEvent.objects.get(action="cluster.update")
    assert event.details["fields"] == ["poll_interval", "engine_password"] and password not in str(event.details)


def test_a_removed_cluster_leaves_its_runs_and_audit_readable(global_admin, django_user_model):
    cluster = make_cluster(name="Old")
    host = make_host(cluster, name="he1.example.com", known_hosts="he1.example.com ssh-ed25519 AAAA")
    cluster.set_engine_password("secret")
    cluster.save()
    run = make_run(global_admin.user, host, ["echo done"])
    run.status = "succeeded"
    run.save()
    assert f'id="card-{cluster.pk}"' in global_admin.get("/").content.decode()
    page = global_admin.post(f"/clusters/{cluster.pk}/remove/", {"confirm_name": "old"})
    assert page.status_code == 400 and Cluster.objects.in_service().filter(pk=cluster.pk).exists()
    response = global_admin.post(f"/clusters/{cluster.pk}/remove/", {"confirm_name": "Old"})
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.removed_at and cluster.name.startswith("Old (removed ")
    assert cluster.engine_password() == "" and not cluster.hosts.exclude(known_hosts="").exists()
    home = global_admin.get("/").content.decode()
    assert f'id="card-{cluster.pk}"' not in home and "Cluster Old removed" in home
    assert global_admin.get(f"/runs/{run.pk}/").status_code == 200
    assert "Removed from the portal" in global_admin.get(f"/clusters/{cluster.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/"' in global_admin.get("/history/").content.decode()
    assert AuditEvent.objects.filter(action="cluster.remove", cluster_ref=cluster.pk).exists()
    assert global_admin.get(f"/clusters/{cluster.pk}/edit/").status_code == 404
    # Its name is free for the cluster that replaces it; the poller polls only clusters in service.
    assert not Cluster.objects.filter(name="Old").exists()
    assert list(Cluster.objects.in_service()) == []
    # Nothing can be planned or started on it, by the pages, the CLI or the API alike.
    with pytest.raises(ValidationError, match="was removed from the portal"):
        services.start_run(cluster=cluster, slug="diagnostic", params={}, user=global_admin.user)
    assert cluster.runs.count() == 1


def test_a_cluster_admin_edits_but_neither_adds_nor_removes(client, django_user_model):
    from tests.factories import grant

    cluster = make_cluster(name="Mine")
    user = grant(django_user_model.objects.create_user("mine", password="x"), cluster, "admin")
    client.force_login(user)
    assert client.get(f"/clusters/{cluster.pk}/edit/").status_code == 200
    assert client.post("/clusters/add/", {"step": "ca", "engine_url": "https://engine.example.com"}).status_code == 403
    assert client.post(f"/clusters/{cluster.pk}/remove/", {"confirm_name": "Mine"}).status_code == 403
    assert Cluster.objects.in_service().filter(pk=cluster.pk).exists()


@pytest.fixture(scope="module")
def lab35(lab, tmp_path_factory):
    from lab.launcher import start_lab

    with start_lab(tmp_path_factory.mktemp("lab35"), hosts=1, speed=LAB_SPEED, engine_version="3.5") as running:
        yield running


def test_a_35_engine_is_checked_with_basic_auth_and_its_hosts_entered_by_hand(global_admin, lab35):
    """ovirtsdk4 cannot log in to API v3: the v3 entry point says whether the password is right."""
    page = global_admin.post("/clusters/add/", add_form(lab35, password="not the password"))
    assert page.status_code == 400 and "the user name or the password is wrong" in page.content.decode()
    assert not Cluster.objects.exists()
    response = global_admin.post("/clusters/add/", add_form(lab35, name="Legacy"))
    cluster = Cluster.objects.get(name="Legacy")
    assert response.status_code == 302
    page = global_admin.get(f"/clusters/{cluster.pk}/hosts/add/").content.decode()
    assert "API v3 only" in page and 'name="hand"' in page and 'name="pick"' not in page


def test_removing_a_host_keeps_the_runs_it_was_in(global_admin):
    cluster = make_cluster(name="Two")
    gone, kept = make_host(cluster, name="he1.example.com"), make_host(cluster, name="he2.example.com")
    run = make_run(global_admin.user, gone, ["echo on he1"])
    page = global_admin.post(f"/clusters/{cluster.pk}/edit/", {"action": "remove-hosts", "host": [str(gone.pk)]})
    assert page.status_code == 400 and "has a run in progress" in page.content.decode()  # the run is pending
    run.status = "succeeded"
    run.save()
    response = global_admin.post(f"/clusters/{cluster.pk}/edit/", {"action": "remove-hosts", "host": [str(gone.pk)]})
    assert response.status_code == 302
    assert list(cluster.hosts.values_list("name", flat=True)) == [kept.name]
    step = run.steps.get()
    assert step.host is None and step.title == "Step 1"
    assert global_admin.get(f"/runs/{run.pk}/").status_code == 200
    event = AuditEvent.objects.get(action="cluster.hosts_remove")
    assert event.details == {"hosts": ["he1.example.com"], "steps_detached": 1}
