"""docs/api.md's examples, each run as written (curl in bash, Python with requests)
against a live portal: daphne, real RQ workers, the shared lab over SSH."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until
from upgrades.api import auth
from upgrades.api.tokens import create_token
from upgrades import backups, onboarding, secrets, services
from upgrades.models import RUN_TERMINAL, ApprovalPolicy, AuditEvent, Cluster, EngineBackup, UpgradeRun, Webhook
from upgrades.remote import ssh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```(sh|python)\n(.*?)```", re.S)


def examples():
    return {name: (kind, code) for name, kind, code in EXAMPLE.findall(DOC.read_text())}


def test_the_doc_has_its_examples():
    assert set(examples()) == {"curl-me", "curl-clusters", "curl-plan", "curl-start", "curl-bad-input",
                               "python-follow", "python-approve", "python-verify-webhook",
                               "python-websocket", "curl-add-cluster", "python-host-keys", "curl-backups",
                               "python-webhooks"}


def run_example(name, env, cwd=None):
    kind, code = examples()[name]
    command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
                          cwd=cwd)
    assert done.returncode == 0, (name, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def json_docs(text):
    """The JSON documents curl printed one after another."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return docs


def ended(run_id):
    return UpgradeRun.objects.get(pk=run_id).status in RUN_TERMINAL


def test_every_example_works_against_a_live_portal(live_portal, lab_cluster, make_user):
    auth.clear_failures()
    operator, approver = make_user("operator", "olga"), make_user("approver", "anna")
    env = {"PORTAL": live_portal, "TOKEN": create_token(user=operator, name="docs")[1],
           "APPROVER_TOKEN": create_token(user=approver, name="docs")[1], "CLUSTER": str(lab_cluster.pk)}

    assert json.loads(run_example("curl-me", env)) == {"username": "olga", "global_roles": ["operator"],
                                                       "auth": "token"}
    clusters, ha = json_docs(run_example("curl-clusters", env))
    assert [c["name"] for c in clusters] == ["Lab"] and len(ha["hosts"]) == 3
    plan = json.loads(run_example("curl-plan", env))
    assert plan["runbook"] == "diagnostic" and plan["steps"] and not UpgradeRun.objects.exists()

    started = json.loads(run_example("curl-start", env))
    assert started["status"] in ("pending", "running") and started["requested_by"] == "olga"
    wait_until(lambda: ended(started["id"]), 120, "the curl-started diagnostic to end")
    assert UpgradeRun.objects.get(pk=started["id"]).status == "succeeded"

    before = UpgradeRun.objects.count()
    bad = run_example("curl-bad-input", env)
    assert json.loads(bad) == {"params": {"host": [
        "Select a valid choice. nowhere is not one of the available choices."]}}
    assert UpgradeRun.objects.count() == before

    followed = run_example("python-follow", env)
    run = UpgradeRun.objects.order_by("-pk").first()
    assert followed.rstrip().endswith(f"run {run.pk} succeeded"), followed[-500:]
    assert len(followed.splitlines()) > 10

    ApprovalPolicy.objects.create(runbook="diagnostic", before_start="always")
    from upgrades import services

    gated = services.start_run(cluster=lab_cluster, slug="diagnostic", params={"host": "he1.lab.local"},
                               user=operator)
    assert gated.status == "awaiting_approval"
    approved = run_example("python-approve", env)
    assert f"approved: {gated.pk}" in approved and "asked by olga" in approved
    wait_until(lambda: ended(gated.pk), 120, "the approved diagnostic to end")
    gated.refresh_from_db()
    assert gated.status == "succeeded" and gated.approvals.get().user == approver


def test_the_websocket_example_follows_a_run_to_its_end_with_every_line_once(live_portal, lab_cluster, make_user):
    from upgrades import services
    from upgrades.models import StepOutput

    auth.clear_failures()
    operator = make_user("operator", "olga")
    run = services.start_run(cluster=lab_cluster, slug="diagnostic", params={"host": "he1.lab.local"},
                             user=operator)
    env = {"PORTAL": live_portal, "TOKEN": create_token(user=operator, name="docs")[1], "RUN": str(run.pk)}
    followed = run_example("python-websocket", env)
    texts = StepOutput.objects.filter(step__run=run).order_by("step__order", "seq").values_list("text", flat=True)
    assert len(texts) > 10
    assert followed == "".join(f"{text}\n" for text in texts) + f"run {run.pk} succeeded\n", followed[-500:]


def test_the_admin_examples_work_against_a_live_portal(live_portal, lab, make_user, tmp_path):
    """Adding a cluster from the lab's engine, pinning only the host key whose fingerprint is
    known, downloading a backup checked by its sha256, managing a webhook endpoint."""
    auth.clear_failures()
    boss = make_user("admin", "boss")
    engine = lab.manifest["engine"]
    ca = onboarding.parse_ca(Path(engine["ca_file"]).read_text())
    env = {"PORTAL": live_portal, "TOKEN": create_token(user=boss, name="docs")[1], "ENGINE_URL": engine["url"],
           "ENGINE_PASSWORD": engine["password"], "CA_FINGERPRINT": ca.fingerprint}

    shown, added = run_example("curl-add-cluster", env).split("\n", 1)
    cluster = Cluster.objects.get(name="Production")
    assert shown == ca.fingerprint
    assert json.loads(added) == {"id": cluster.pk, "name": "Production", "engine_url": cluster.engine_url}
    assert cluster.engine_password() == engine["password"] and AuditEvent.objects.filter(action="cluster.add").exists()

    entries = {h["name"]: h for h in lab.manifest["hosts"]}
    services.add_hosts(user=boss, cluster=cluster, hosts=[
        {"name": name, "address": entries[name]["address"], "port": entries[name]["port"]}
        for name in ("he1.lab.local", "he2.lab.local")])
    he1 = entries["he1.lab.local"]
    known = tmp_path / "fingerprints"
    known.write_text(f"he1.lab.local {ssh.fetch_host_key(he1['address'], he1['port']).fingerprint}\n"
                     "he2.lab.local SHA256:not-its-key\n")
    printed = run_example("python-host-keys", {**env, "CLUSTER": str(cluster.pk), "KNOWN_FINGERPRINTS": str(known)})
    assert "he1.lab.local pinned SHA256:" in printed and "he2.lab.local NOT pinned: offers SHA256:" in printed
    pinned = {h.name: h.known_hosts for h in cluster.hosts.all()}
    assert pinned["he1.lab.local"] and pinned["he2.lab.local"] == ""

    data = b"an engine backup\n" * 1000
    backup = EngineBackup.objects.create(cluster=cluster, file_name=f"cluster-{cluster.pk}/docs.backup",
                                         source_path="/var/lib/ovirt-engine-backup/docs.backup", size=len(data),
                                         sha256=hashlib.sha256(data).hexdigest())
    backups.path_of(backup).parent.mkdir(parents=True, exist_ok=True)
    backups.path_of(backup).write_bytes(data)
    checked = run_example("curl-backups", {**env, "CLUSTER": str(cluster.pk)}, cwd=tmp_path)
    assert checked.strip() == "engine.backup: OK" and (tmp_path / "engine.backup").read_bytes() == data
    assert AuditEvent.objects.get(action="engine_backup.download").actor == boss

    printed = run_example("python-webhooks", {**env, "RECEIVER_URL": "http://127.0.0.1:9/hook"})
    hook = Webhook.objects.get()
    secret = printed.split("secret, shown once: ", 1)[1].split()[0]
    assert secrets.decrypt(hook.secret) == secret and hook.active
    assert "400 ['events', 'url']" in printed and Webhook.objects.count() == 1

