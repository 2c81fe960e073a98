"""A person's steps through the API with real RQ workers and the shared lab: a manual
step confirmed, an approval step approved (and one rejected) with a second person's
token, followed by polling the run's status."""
import json
import time

import pytest
from django.test import Client

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.test_engine import polled  # noqa: F401  (the HA-polled shared lab)
from upgrades.api import auth
from upgrades.api.tokens import create_token
from upgrades.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class Api:
    def __init__(self, user):
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {create_token(user=user, name='steps')[1]}"}

    def get(self, path):
        return self.client.get("/api/v1/" + path, **self.headers)

    def post(self, path, body=None):
        return self.client.post("/api/v1/" + path, json.dumps(body or {}), content_type="application/json",
                                **self.headers)

    def wait(self, run_id, statuses, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"runs/{run_id}/").json()
            if run["status"] in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run['status']} after {timeout} s"
            time.sleep(0.2)


def start(api, cluster, slug):
    answer = api.post("runs/", {"cluster": cluster.pk, "runbook": slug, "params": {"host": "he2.lab.local"},
                                "acknowledge": True})
    assert answer.status_code == 201, answer.content
    return answer.json()["id"]


def step(run, key):
    return next(s for s in run["steps"] if s["key"] == key)


def test_a_manual_step_is_confirmed_through_the_api(rq_worker, polled, make_user):  # noqa: F811
    auth.clear_failures()
    olga, vera = Api(make_user("operator", "olga")), Api(make_user("viewer", "vera"))
    run_id = start(olga, polled, "test-manual")
    run = olga.wait(run_id, ["waiting", "failed"])
    waiting = step(run, "reinstall")
    assert waiting["status"] == "waiting" and "confirm" in run["actions"]
    assert "confirm" not in vera.get(f"runs/{run_id}/").json()["actions"]
    assert vera.post(f"runs/{run_id}/steps/{waiting['id']}/confirm/", {"comment": "x"}).status_code == 403
    confirmed = olga.post(f"runs/{run_id}/steps/{waiting['id']}/confirm/", {"comment": "reinstalled from PXE"})
    assert confirmed.status_code == 200
    run = olga.wait(run_id, ["succeeded", "failed"])
    assert run["status"] == "succeeded" and step(run, "reinstall")["note"] == "reinstalled from PXE"
    after = step(run, "after")
    lines = olga.get(f"runs/{run_id}/steps/{after['id']}/output/").json()["lines"]
    assert [line["text"] for line in lines] == ["after"]


def test_an_approval_step_is_decided_with_a_second_token(rq_worker, lab_cluster, make_user):
    auth.clear_failures()
    olga, anna = Api(make_user("admin", "olga")), Api(make_user("approver", "anna"))
    run_id = start(olga, lab_cluster, "test-approval")
    run = olga.wait(run_id, ["awaiting_approval", "failed"])
    sign_off = step(run, "sign-off")
    assert sign_off["status"] == "waiting"
    # Four eyes: the requester is an admin, and still may not decide.
    refused = olga.post(f"runs/{run_id}/steps/{sign_off['id']}/approve/", {"comment": "mine"})
    assert refused.status_code == 403 and "another approver must decide" in refused.json()["detail"]
    pending = anna.get("approvals/").json()
    assert [(p["run"]["id"], p["step"]) for p in pending] == [(run_id, sign_off["id"])]
    assert anna.post(f"runs/{run_id}/steps/{sign_off['id']}/approve/", {"comment": "ok"}).status_code == 200
    run = olga.wait(run_id, ["succeeded", "failed"])
    assert run["status"] == "succeeded"
    assert AuditEvent.objects.filter(action="step.approve", actor__username="anna").exists()

    second = start(olga, lab_cluster, "test-approval")
    sign_off = step(olga.wait(second, ["awaiting_approval", "failed"]), "sign-off")
    rejected = anna.post(f"runs/{second}/steps/{sign_off['id']}/reject/", {"comment": "not now"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "failed"
    assert step(rejected.json(), "after")["status"] == "pending"  # nothing after the rejection ran
