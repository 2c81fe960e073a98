"""docs/api.md's examples, each run as written (curl in bash, Python with requests)
against a live portal: daphne, real RQ workers, the shared lab over SSH."""
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
from upgrades.models import RUN_TERMINAL, ApprovalPolicy, UpgradeRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```(sh|python)\n(.*?)```", re.S)


def examples():
    return {name: (kind, code) for name, kind, code in EXAMPLE.findall(DOC.read_text())}


def test_the_doc_has_its_examples():
    assert set(examples()) == {"curl-me", "curl-clusters", "curl-plan", "curl-start", "curl-bad-input",
                               "python-follow", "python-approve", "python-verify-webhook",
                               "python-websocket"}


def run_example(name, env):
    kind, code = examples()[name]
    command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
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
