"""A whole he-upgrade driven through the API only: real RQ workers, the HA poller,
a lab of its own over SSH, the lab's engine. The operator makes a token on the
tokens page, plans, starts; a second person approves with their own token; the
operator follows the output with the cursor until the run ends, and has every line
once, in order."""
import json
import time

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from tests.test_runbook_he_upgrade import polled_release
from upgrades.api import auth
from upgrades.models import ApprovalPolicy, StepOutput, UpgradeRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def token_from_the_page(user):
    """What a person does: sign in, make a token on the tokens page, copy it."""
    browser = Client()
    assert browser.login(username=user.username, password=PASSWORD)
    page = browser.post("/tokens/", {"name": f"{user.username}'s script", "expires_in_days": "1"})
    assert page.status_code == 200
    return page.context["created"]["raw"]


class Api:
    def __init__(self, token):
        self.client, self.headers = Client(), {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def get(self, path, **query):
        response = self.client.get("/api/v1/" + path, query, **self.headers)
        assert response.status_code == 200, (path, response.content[:500])
        return response.json()

    def post(self, path, body, expect=200):
        response = self.client.post("/api/v1/" + path, json.dumps(body), content_type="application/json",
                                    **self.headers)
        assert response.status_code == expect, (path, response.content[:1000])
        return response.json()


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_a_minor_he_upgrade_through_the_api_only(rq_worker, ha_poller, fresh_lab_cluster, make_user):
    auth.clear_failures()
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    ApprovalPolicy.objects.create(runbook="he-upgrade", before_start="always")
    olga = Api(token_from_the_page(make_user("operator", "olga")))
    anna = Api(token_from_the_page(make_user("approver", "anna")))
    polled_release(cluster)

    assert [c["name"] for c in olga.get("clusters/")] == [cluster.name]
    assert all(h["live"] for h in olga.get(f"clusters/{cluster.pk}/ha/")["hosts"])
    plan = olga.post(f"clusters/{cluster.pk}/runbooks/he-upgrade/plan/", {"params": {}})
    assert plan["startable"] and plan["approvals_required"] == 1
    assert [s["key"] for s in plan["steps"] if s["key"].endswith(".update")] == [
        "hosts.he2.lab.local.update", "hosts.he3.lab.local.update", "hosts.he1.lab.local.update"]
    assert not UpgradeRun.objects.exists()  # a plan starts nothing

    run = olga.post("runs/", {"cluster": cluster.pk, "runbook": "he-upgrade", "params": {}, "acknowledge": True},
                    expect=201)
    assert run["status"] == "awaiting_approval"
    assert [p["run"]["id"] for p in anna.get("approvals/")] == [run["id"]]
    anna.post(f"runs/{run['id']}/approve-run/", {"comment": "maintenance window, go"})

    got, after, deadline = [], "", time.monotonic() + 900
    while True:
        page = olga.get(f"runs/{run['id']}/output/", after=after)
        got += [(line["step"], line["seq"], line["text"]) for line in page["lines"]]
        after = page["after"]
        if page["ended"]:
            break
        assert time.monotonic() < deadline, f"run {page['status']} after 900 s"
        if not page["more"]:
            time.sleep(0.5)
    final = olga.get(f"runs/{run['id']}/")
    assert final["status"] == "succeeded", [(s["key"], s["status"], s["error"]) for s in final["steps"]
                                            if s["status"] != "succeeded"]
    # Every stored line once, in order: the cursor lost nothing and repeated nothing.
    stored = list(StepOutput.objects.filter(step__run_id=run["id"]).order_by("step__order", "seq")
                  .values_list("step_id", "seq", "text"))
    assert got == stored and len(got) > 100
    assert any("Execution of setup completed successfully" in text for _, _, text in got)
    state = lab.state()
    assert {h["packages"]["vdsm"] for h in state["hosts"].values()} == {"4.50.3.4-1"}
    assert state["global_maintenance"] is False
    auditor, history, page = Api(token_from_the_page(make_user("auditor", "aud"))), set(), 1
    while page:
        answer = auditor.get("audit/", run=run["id"], page=page)
        history |= {e["action"] for e in answer["results"]}
        page = answer["next_page"]
    assert {"run.start", "approval.request", "run.approve", "run.succeeded"} <= history
