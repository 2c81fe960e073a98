"""The API's administration against the real parts: clusters added from the session's lab
engine (its CA trusted by fingerprint, its login tried), hosts and their keys read from
the lab's SSH servers, engine backups from files on disk, webhook endpoints with their
deliveries. Each success, and bad input answered per field with nothing changed."""
import hashlib
import json
import logging
from pathlib import Path

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

from tests.factories import grant, make_cluster, make_host, make_run
from tests.test_api import Api, api_as, no_failures_counted  # noqa: F401  (autouse: no failure counted before or after)
from upgrades import backups, onboarding, secrets, sshkey
from upgrades.remote import ssh
from upgrades.models import AuditEvent, Cluster, EngineBackup, Host, Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(make_user):
    return make_user("admin", "boss")


def described(api, *responses):
    """Each answer matches the description the portal serves (as tests/test_api_schema.py checks
    the answers that need no engine)."""
    openapi = OpenAPI.from_dict(json.loads(api.get("schema/", format="json").content))
    for response in responses:
        errors = list(openapi.iter_response_errors(DjangoOpenAPIRequest(response.wsgi_request),
                                                   DjangoOpenAPIResponse(response)))
        assert errors == [], (response.wsgi_request.path, [str(getattr(e, "__cause__", None) or e) for e in errors])


def snapshot():
    """What a refused call must leave as it was."""
    return (list(Cluster.objects.values()), list(Host.objects.values()), list(Webhook.objects.values()),
            AuditEvent.objects.count())


# Clusters ---------------------------------------------------------------------------------

def cluster_body(lab, **changes):
    engine = lab.manifest["engine"]
    ca = onboarding.parse_ca(Path(engine["ca_file"]).read_text())
    body = {"name": "Production", "engine_url": engine["url"], "username": engine.get("username", "admin@internal"),
            "password": engine["password"], "ca_fingerprint": ca.fingerprint, "poll_interval": 0.5}
    body.update(changes)
    return body


def test_a_global_admin_adds_a_cluster_in_the_pages_two_steps(lab, boss):
    api = api_as(boss)
    engine = lab.manifest["engine"]
    shown = api.post("clusters/ca/", {"engine_url": engine["url"]})
    assert shown.status_code == 200, shown.content
    ca = shown.json()
    assert ca["pem"] == Path(engine["ca_file"]).read_text() and ca["compare_with"] == onboarding.CA_ON_ENGINE
    assert not Cluster.objects.exists()

    made = api.post("clusters/", cluster_body(lab, ca_fingerprint=ca["fingerprint"].lower()))
    assert made.status_code == 201, made.content
    cluster = Cluster.objects.get(name="Production")
    assert made.json()["id"] == cluster.pk and made.json()["hosts"] == []
    assert cluster.engine_password() == engine["password"] and cluster.poll_interval == 0.5
    assert Path(cluster.engine_ca_file).read_text() == ca["pem"]
    event = AuditEvent.objects.get(action="cluster.add")
    assert event.actor == boss and engine["password"] not in json.dumps(event.details)
    assert engine["password"] not in made.content.decode()
    described(api, shown, made)


def test_adding_a_cluster_names_each_problem_and_stores_nothing(lab, boss, make_user):
    api = api_as(boss)
    before = snapshot()
    # No CA fingerprint confirmed: the CA is shown in the message, never trusted silently.
    unconfirmed = api.post("clusters/", cluster_body(lab, ca_fingerprint="AA:BB"))
    ca = onboarding.parse_ca(Path(lab.manifest["engine"]["ca_file"]).read_text())
    assert unconfirmed.status_code == 400 and list(unconfirmed.json()) == ["ca_fingerprint"]
    assert ca.fingerprint in unconfirmed.json()["ca_fingerprint"][0]
    wrong = api.post("clusters/", cluster_body(lab, password="not the password"))
    assert wrong.status_code == 400
    assert wrong.json() == {"password": ["The engine refused the login of admin@internal: the user name or the "
                                         "password is wrong."]}
    several = api.post("clusters/", cluster_body(lab, name="", poll_interval=-1, ca_fingerprint="x"))
    assert several.status_code == 400, several.content
    assert set(several.json()) == {"name", "poll_interval", "ca_fingerprint"}, several.json()
    assert several.json()["name"] == ["must be 1-100 characters"]
    assert api.post("clusters/", cluster_body(lab, engine_url="http://engine")).json() == {
        "engine_url": ["The engine URL must be https://ENGINE (the engine VM's name), e.g. https://engine.example.com"]}
    assert set(api.post("clusters/", {"ca_pem": "not a pem"}).json()) >= {"engine_url", "name", "password",
                                                                          "ca_fingerprint"}
    assert api.post("clusters/ca/", {"engine_url": "https://x.invalid", "ca_pem": "nope"}).json() == {
        "ca_pem": ["That is not a PEM certificate (-----BEGIN CERTIFICATE----- ...)."]}
    # Not a global admin: refused before anything is read.
    cluster_admin = api_as(grant(make_user(None, "ca"), make_cluster(name="Theirs"), "admin"))
    before = snapshot()
    refused = cluster_admin.post("clusters/", cluster_body(lab))
    assert refused.status_code == 403 and refused.json() == {"detail": "Only global admins can add clusters."}
    assert snapshot() == before


def test_an_admin_edits_a_cluster_the_password_stored_only_when_the_engine_takes_it(lab, lab_cluster, make_user):
    admin = grant(make_user(None, "ada"), lab_cluster, "admin")
    api = api_as(admin)
    password = lab.manifest["engine"]["password"]
    before = snapshot()
    refused = api.client.patch(f"/api/v1/clusters/{lab_cluster.pk}/", json.dumps(
        {"password": "rotated-but-wrong", "poll_interval": 2}), content_type="application/json", **api.headers)
    assert refused.status_code == 400 and list(refused.json()) == ["password"]
    assert refused.json()["password"][0].startswith("The new password was not stored: The engine refused")
    bad = api.client.patch(f"/api/v1/clusters/{lab_cluster.pk}/", json.dumps({"poll_interval": -1}),
                           content_type="application/json", **api.headers)
    assert bad.json() == {"poll_interval": ["must be a positive number of seconds"]}
    assert snapshot() == before
    done = api.client.patch(f"/api/v1/clusters/{lab_cluster.pk}/", json.dumps(
        {"password": password, "poll_interval": 2}), content_type="application/json", **api.headers)
    assert done.status_code == 200, done.content
    assert done.json()["changed"] == ["poll_interval", "engine_password"] and done.json()["poll_interval"] == 2
    event = AuditEvent.objects.get(action="cluster.update")
    assert event.actor == admin and password not in json.dumps(event.details)
    described(api, refused, bad, done)
    # A cluster admin neither adds nor removes clusters (as on the pages).
    assert api.post(f"clusters/{lab_cluster.pk}/remove/", {"confirm_name": "Lab"}).status_code == 403


def test_hosts_are_added_and_their_keys_pinned_only_as_reviewed(lab, boss):
    cluster = make_cluster(name="Fresh")
    api = api_as(boss)
    entry = next(h for h in lab.manifest["hosts"] if h["name"] == "he1.lab.local")
    before = snapshot()
    bad = api.post(f"clusters/{cluster.pk}/hosts/", {"hosts": [
        {"name": "he1.lab.local", "address": entry["address"], "ssh_user": "Root!"},
        {"name": "he2", "address": "x", "port": "twenty"}]})
    assert bad.status_code == 400 and bad.json() == {"hosts": {"1": {"port": ["A valid integer is required."]}}}
    bad = api.post(f"clusters/{cluster.pk}/hosts/", {"hosts": [
        {"name": "he1.lab.local", "address": entry["address"], "ssh_user": "Root!"}]})
    assert bad.json() == {"hosts[0].ssh_user": ["'Root!' is not a user name (lower case letters, digits, _ and -)."]}
    bad = api.post(f"clusters/{cluster.pk}/hosts/", {"hosts": [
        {"name": "he1.lab.local", "address": entry["address"], "port": 70000}]})
    assert bad.status_code == 400 and list(bad.json()) == ["hosts[0].port"], bad.json()
    assert api.post(f"clusters/{cluster.pk}/hosts/", {"hosts": []}).json() == {
        "hosts": {"non_field_errors": ["This list may not be empty."]}}
    assert snapshot() == before

    added = api.post(f"clusters/{cluster.pk}/hosts/", {"hosts": [
        {"name": "he1.lab.local", "address": entry["address"], "port": entry["port"]}]})
    assert added.status_code == 201, added.content
    host = Host.objects.get(cluster=cluster)
    assert [h["name"] for h in added.json()["hosts"]] == ["he1.lab.local"] and host.known_hosts == ""
    again = api.post(f"clusters/{cluster.pk}/hosts/", {"hosts": [{"name": "he1.lab.local", "address": "x"}]})
    assert again.json() == {"hosts": ["he1.lab.local: already in cluster Fresh"]}

    setup = api.get(f"clusters/{cluster.pk}/setup/")
    assert setup.json()["public_key"] == sshkey.public_line() and setup.json()["hosts"] == [
        {"id": host.pk, "name": "he1.lab.local", "command": sshkey.authorize_command("root"), "pinned": []}]
    reviewed = api.get(f"hosts/{host.pk}/host-key/")
    review = reviewed.json()
    assert review["pinned"] == [] and review["already_pinned"] is False and review["error"] == ""
    offered = review["offered"]
    assert offered["known_hosts_line"].startswith(ssh.known_hosts_name(host.address, host.ssh_port) + " "), review
    assert offered["fingerprint"] in {fp for _, fp in ssh.pinned_keys(offered["known_hosts_line"], host.address,
                                                                         host.ssh_port)}
    host.refresh_from_db()
    assert host.known_hosts == ""  # reading the key pins nothing
    wrong = api.post(f"hosts/{host.pk}/host-key/", {"known_hosts_line": "somewhere ssh-ed25519 AAAA"})
    assert wrong.status_code == 400 and list(wrong.json()) == ["known_hosts_line"]
    assert Host.objects.get(pk=host.pk).known_hosts == ""
    pinned = api.post(f"hosts/{host.pk}/host-key/", {"known_hosts_line": offered["known_hosts_line"]})
    assert pinned.status_code == 200 and pinned.json()["already_pinned"] is True
    assert Host.objects.get(pk=host.pk).known_hosts == offered["known_hosts_line"]
    assert api.get(f"clusters/{cluster.pk}/setup/").json()["hosts"][0]["pinned"] == [
        {"key_type": offered["known_hosts_line"].split()[1], "fingerprint": offered["fingerprint"]}]
    assert AuditEvent.objects.filter(action="host.key_accept", actor=boss).count() == 1

    removed = api.client.delete(f"/api/v1/hosts/{host.pk}/", **api.headers)
    assert removed.status_code == 204 and not Host.objects.filter(pk=host.pk).exists()
    assert AuditEvent.objects.filter(action="cluster.hosts_remove").count() == 1
    described(api, bad, added, again, setup, reviewed, wrong, pinned, removed)


def test_a_cluster_is_removed_softly_with_its_name_typed(boss, django_user_model):
    cluster = make_cluster(name="Old")
    host = make_host(cluster, name="he1.example.com", known_hosts="he1.example.com ssh-ed25519 AAAA")
    run = make_run(django_user_model.objects.create_user("requester"), host, ["echo"])
    api = api_as(boss)
    busy = api.post(f"clusters/{cluster.pk}/remove/", {"confirm_name": "Old"})
    assert busy.status_code == 400 and "has a run in progress" in busy.json()["non_field_errors"][0]
    run.status = "succeeded"
    run.save()
    before = snapshot()
    assert api.post(f"clusters/{cluster.pk}/remove/", {"confirm_name": "old"}).json() == {
        "confirm_name": ["Type the cluster's name, Old, to remove it."]}
    assert api.post(f"clusters/{cluster.pk}/remove/", {}).json() == {"confirm_name": ["This field is required."]}
    assert snapshot() == before
    done = api.post(f"clusters/{cluster.pk}/remove/", {"confirm_name": "Old"})
    assert done.status_code == 200, done.content
    cluster.refresh_from_db()
    assert cluster.removed_at is not None and cluster.name.startswith("Old (removed ")
    assert Host.objects.get(pk=host.pk).known_hosts == ""
    assert api.get(f"runs/{run.pk}/").status_code == 200  # its runs stay readable
    assert api.post(f"clusters/{cluster.pk}/remove/", {"confirm_name": cluster.name}).status_code == 404
    assert api.client.patch(f"/api/v1/clusters/{cluster.pk}/", "{}", content_type="application/json",
                            **api.headers).status_code == 404
    assert AuditEvent.objects.filter(action="cluster.remove", actor=boss).count() == 1


def test_a_connection_check_is_queued_for_a_worker_and_its_last_results_read(boss, make_user):
    cluster = make_cluster(name="Empty")
    api = api_as(boss)
    assert api.get(f"clusters/{cluster.pk}/check/").json() == {
        "detail": "Cluster Empty has had no connection check yet."}
    before = snapshot()
    refused = api.post(f"clusters/{cluster.pk}/check/")
    assert refused.status_code == 400 and refused.json() == {
        "non_field_errors": ["Cluster Empty has no hosts to check yet."]}
    assert snapshot() == before
    make_host(cluster, name="he1.example.com")
    queued = api.post(f"clusters/{cluster.pk}/check/")
    assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.content
    assert queued.json()["requested_by"] == "boss"
    assert api.get(f"clusters/{cluster.pk}/check/").json()["id"] == queued.json()["id"]
    assert AuditEvent.objects.filter(action="cluster.check", actor=boss).count() == 1
    viewer = api_as(grant(make_user(None, "vera"), cluster, "viewer"))
    assert viewer.post(f"clusters/{cluster.pk}/check/").status_code == 403
    described(api, refused, queued)


# Engine backups -----------------------------------------------------------------------------

def test_engine_backups_are_listed_to_the_cluster_and_downloaded_by_its_admins(make_user, django_user_model):
    cluster = make_cluster(name="Alpha")
    backup = EngineBackup.objects.create(cluster=cluster, file_name=f"cluster-{cluster.pk}/one.backup",
                                         source_path="/var/lib/ovirt-engine-backup/one.backup", size=6,
                                         sha256=hashlib.sha256(b"backup").hexdigest())
    path = backups.path_of(backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"backup")
    viewer = grant(make_user(None, "vera"), cluster, "viewer")
    admin = grant(make_user(None, "ada"), cluster, "admin")
    listed = api_as(viewer).get(f"clusters/{cluster.pk}/backups/")
    assert listed.status_code == 200 and [b["id"] for b in listed.json()] == [backup.pk]
    assert listed.json()[0]["sha256"] == backup.sha256 and listed.json()[0]["run"] is None
    assert api_as(viewer).get(f"clusters/{cluster.pk}/backups/{backup.pk}/").status_code == 403
    assert not AuditEvent.objects.filter(action="engine_backup.download").exists()
    got = api_as(admin).get(f"clusters/{cluster.pk}/backups/{backup.pk}/")
    assert got.status_code == 200 and b"".join(got) == b"backup"
    assert got["Content-Disposition"] == 'attachment; filename="one.backup"'
    assert AuditEvent.objects.get(action="engine_backup.download").actor == admin
    other = make_cluster(name="Beta")
    assert api_as(admin).get(f"clusters/{other.pk}/backups/{backup.pk}/").status_code == 403
    assert api_as(make_user("admin", "g")).get(f"clusters/{other.pk}/backups/{backup.pk}/").status_code == 404
    path.unlink()
    gone = api_as(admin).get(f"clusters/{cluster.pk}/backups/{backup.pk}/")
    assert gone.status_code == 404 and "is gone" in gone.json()["detail"]


# Webhooks ---------------------------------------------------------------------------------

def test_webhooks_are_managed_and_the_secret_is_shown_once_never_logged(boss, caplog):
    caplog.set_level(logging.DEBUG)
    api = api_as(boss)
    made = api.post("webhooks/", {"url": "https://hooks.example.com/he", "events": ["run.ended", "step.failed"]})
    assert made.status_code == 201 and made["Cache-Control"] == "no-store"
    secret = made.json()["secret"]
    assert len(secret) >= 32
    hook = Webhook.objects.get()
    assert secrets.decrypt(hook.secret) == secret and secret not in hook.secret
    typed = api.post("webhooks/", {"url": "http://127.0.0.1:9/x", "events": ["run.started"],
                                   "secret": "s" * 20})
    assert typed.json()["secret"] == "s" * 20
    listed = api.get("webhooks/")
    assert [w["url"] for w in listed.json()] == ["https://hooks.example.com/he", "http://127.0.0.1:9/x"]
    assert listed.json()[0]["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    shown = api.get(f"webhooks/{hook.pk}/").json()
    assert "secret" not in shown and shown["events"] == ["run.ended", "step.failed"]

    edited = api.client.patch(f"/api/v1/webhooks/{hook.pk}/", json.dumps({"active": False}),
                              content_type="application/json", **api.headers)
    assert edited.status_code == 200 and "secret" not in edited.json() and edited.json()["active"] is False
    hook.refresh_from_db()
    assert hook.url == "https://hooks.example.com/he" and secrets.decrypt(hook.secret) == secret
    replaced = api.client.patch(f"/api/v1/webhooks/{hook.pk}/", json.dumps({"secret": ""}),
                                content_type="application/json", **api.headers)
    new = replaced.json()["secret"]
    assert new != secret and secrets.decrypt(Webhook.objects.get(pk=hook.pk).secret) == new

    every_word = json.dumps(list(AuditEvent.objects.values("details")), default=str) + caplog.text
    for shown_once in (secret, new, "s" * 20):
        assert shown_once not in every_word
        assert shown_once not in json.dumps(api.get("webhooks/").json())
    assert AuditEvent.objects.filter(action__startswith="webhook.").count() == 4

    deleted = api.client.delete(f"/api/v1/webhooks/{hook.pk}/", **api.headers)
    assert deleted.status_code == 204 and not Webhook.objects.filter(pk=hook.pk).exists()
    assert api.get(f"webhooks/{hook.pk}/").status_code == 404


def test_webhook_bad_input_names_each_field_and_changes_nothing(boss, make_user):
    api = api_as(boss)
    hook = Webhook.objects.create(url="https://a.example.com/", events=["run.ended"], secret=secrets.encrypt("k" * 20))
    before = snapshot()
    bad = api.post("webhooks/", {"url": "ftp://x", "events": ["run.exploded"], "secret": "short"})
    assert bad.status_code == 400 and set(bad.json()) == {"url", "events", "secret"}, bad.json()
    assert bad.json()["events"] == ["Unknown event(s): run.exploded; choose among run.started, run.waiting, "
                                    "approval.requested, step.failed, run.ended."]
    assert api.post("webhooks/", {"url": "https://b.example.com/", "events": []}).json() == {
        "events": ["Choose at least one event."]}
    assert api.post("webhooks/", {"url": "https://b.example.com/", "events": "run.ended"}).json() == {
        "events": ['Expected a list of items but got type "str".']}
    patched = api.client.patch(f"/api/v1/webhooks/{hook.pk}/", json.dumps({"url": "nope", "secret": "short"}),
                               content_type="application/json", **api.headers)
    assert patched.status_code == 400 and set(patched.json()) == {"url", "secret"}
    assert snapshot() == before
    operator = api_as(make_user("operator", "olga"))  # its token audited before the snapshot
    before = snapshot()
    refused = operator.post("webhooks/", {"url": "https://b.example.com/", "events": ["run.ended"]})
    assert refused.status_code == 403 and snapshot() == before


def test_deliveries_are_listed_with_their_status_and_sent_again(boss):
    api = api_as(boss)
    hook = Webhook.objects.create(url="http://127.0.0.1:9/", events=["run.ended"], secret=secrets.encrypt("k" * 20))
    other = Webhook.objects.create(url="http://127.0.0.1:9/o", events=["run.ended"], secret="")
    failed = WebhookDelivery.objects.create(webhook=hook, event="run.ended", status="failed", attempts=5,
                                            last_error="connection refused", payload={"run": {"id": 7}})
    WebhookDelivery.objects.create(webhook=hook, event="run.ended", status="delivered", attempts=1,
                                   last_status_code=204, payload={"run": {"id": 8}})
    pending = WebhookDelivery.objects.create(webhook=hook, event="run.ended", payload={})
    WebhookDelivery.objects.create(webhook=other, event="run.ended", payload={})
    page = api.get(f"webhooks/{hook.pk}/deliveries/").json()
    assert [(d["id"], d["status"], d["run"]) for d in page["results"]] == [
        (pending.pk, "pending", None), (failed.pk + 1, "delivered", 8), (failed.pk, "failed", 7)]
    assert page["next_page"] is None and page["results"][2]["last_error"] == "connection refused"
    assert api.get("webhooks/").json()[0]["deliveries"] == {"pending": 1, "delivered": 1, "failed": 1}
    assert api.get(f"webhooks/{hook.pk}/deliveries/", page="0").json() == {"page": ["A page number from 1."]}
    busy = api.post(f"webhooks/{hook.pk}/deliveries/{pending.pk}/resend/")
    assert busy.status_code == 409 and "still being tried" in busy.json()["detail"]
    again = api.post(f"webhooks/{hook.pk}/deliveries/{failed.pk}/resend/")
    assert again.status_code == 200 and again.json()["status"] == "pending" and again.json()["attempts"] == 0
    assert api.post(f"webhooks/{other.pk}/deliveries/{failed.pk}/resend/").status_code == 404
    assert AuditEvent.objects.filter(action="webhook.redeliver").count() == 1
    assert Api().get("webhooks/").status_code == 401
