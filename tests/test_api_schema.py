"""The served OpenAPI description against the real answers.

A scenario calls every API route (answers that succeed and answers that refuse);
openapi-core validates each request and each response (status, media type,
body against its schema) with the description the portal serves. A route missing
from the description, or one the scenario did not call, fails the test.
"""
import json

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import get_resolver
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.factories import make_polled_cluster
from tests.test_roles import named_routes
from tests.conftest import free_port
from tests.test_onboarding import other_ca
from upgrades import backups, services
from upgrades.api import auth
from upgrades.api.tokens import create_token
from upgrades.models import ApprovalPolicy, EngineBackup, WebhookDelivery
from upgrades.output import insert_rows

pytestmark = pytest.mark.django_db
STEPS = {"host": "he2.lab.local", "sim_seconds": 0, "marker": "/tmp/steps"}


class Recorder:
    def __init__(self, token):
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        self.calls = []

    def __call__(self, method, path, body=None, **query):
        url = "/api/v1/" + path
        if method == "get":
            response = self.client.get(url, query, **self.headers)
        elif method == "delete":
            response = self.client.delete(url, **self.headers)
        else:
            response = getattr(self.client, method)(url, json.dumps(body or {}), content_type="application/json",
                                                    **self.headers)
        self.calls.append(response)
        return response


def administration(ada, olga, cluster):
    """The admins' routes (tests/test_api_admin.py drives them against the lab): each answer
    that needs no engine; returns the engine backup's bytes the download must give."""
    ca = other_ca()
    ada("post", "clusters/ca/", {"engine_url": "https://engine.example.com", "ca_pem": ca})
    ada("post", "clusters/ca/", {"engine_url": "ftp://engine"})
    ada("post", "clusters/", {"name": "", "engine_url": "https://engine.example.com", "password": "x",
                              "ca_pem": ca, "ca_fingerprint": "AA"})
    olga("post", "clusters/", {})  # 403
    ada("patch", f"clusters/{cluster.pk}/", {"poll_interval": 7})
    ada("patch", f"clusters/{cluster.pk}/", {"poll_interval": 0})
    ada("post", f"clusters/{cluster.pk}/remove/", {"confirm_name": "not it"})
    added = ada("post", f"clusters/{cluster.pk}/hosts/", {"hosts": [
        {"name": "he9.lab.local", "address": "127.0.0.1", "port": free_port()}]})
    assert added.status_code == 201, added.content
    host = cluster.hosts.get(name="he9.lab.local")
    ada("get", f"hosts/{host.pk}/host-key/")  # nothing listens: the error said
    ada("post", f"hosts/{host.pk}/host-key/", {"known_hosts_line": "nope"})
    ada("delete", f"hosts/{host.pk}/")  # 400: a run is active on the cluster
    ada("get", f"clusters/{cluster.pk}/setup/")
    ada("get", f"clusters/{cluster.pk}/check/")  # 404: none yet
    ada("post", f"clusters/{cluster.pk}/check/")
    ada("get", f"clusters/{cluster.pk}/check/")
    backup = EngineBackup.objects.create(cluster=cluster, file_name=f"cluster-{cluster.pk}/s.backup",
                                         source_path="/var/lib/ovirt-engine-backup/s.backup", size=4, sha256="0" * 64)
    backups.path_of(backup).parent.mkdir(parents=True, exist_ok=True)
    backups.path_of(backup).write_bytes(b"kept")
    olga("get", f"clusters/{cluster.pk}/backups/")
    olga("get", f"clusters/{cluster.pk}/backups/{backup.pk}/")  # 403: admins only
    ada("get", f"clusters/{cluster.pk}/backups/{backup.pk}/")
    made = ada("post", "webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["run.ended"]}).json()
    ada("post", "webhooks/", {"url": "nope", "events": []})
    ada("get", "webhooks/")
    ada("get", f"webhooks/{made['id']}/")
    ada("patch", f"webhooks/{made['id']}/", {"active": False})
    ada("patch", f"webhooks/{made['id']}/", {"secret": ""})
    ada("patch", f"webhooks/{made['id']}/", {"events": ["no"]})
    delivery = WebhookDelivery.objects.create(webhook_id=made["id"], event="run.ended", status="failed",
                                              payload={"run": {"id": 1}})
    ada("get", f"webhooks/{made['id']}/deliveries/")
    ada("post", f"webhooks/{made['id']}/deliveries/{delivery.pk}/resend/")
    ada("post", f"webhooks/{made['id']}/deliveries/{delivery.pk}/resend/")  # 409: pending again
    olga("get", "webhooks/")  # 403
    ada("delete", f"webhooks/{made['id']}/")
    return b"kept"


def test_every_answer_matches_the_served_description(make_user):
    auth.clear_failures()
    cluster = make_polled_cluster(("he1.lab.local", "he2.lab.local", "he3.lab.local"))
    ApprovalPolicy.objects.create(runbook="test-approval", before_start="always")
    operator, approver = make_user("operator", "olga"), make_user("admin", "ada")
    auditor = make_user("auditor", "aud")
    olga, ada = Recorder(create_token(user=operator, name="o")[1]), Recorder(create_token(user=approver, name="a")[1])
    aud = Recorder(create_token(user=auditor, name="u")[1])
    schema = olga("get", "schema/", format="json")
    assert schema.status_code == 200
    spec = json.loads(schema.content)
    openapi = OpenAPI.from_dict(spec)

    host = cluster.hosts.first()
    olga("get", "me/")
    olga("get", "clusters/")
    olga("get", f"clusters/{cluster.pk}/")
    olga("get", "clusters/999999/")
    olga("get", f"clusters/{cluster.pk}/ha/")
    olga("get", f"clusters/{cluster.pk}/scores/", range="hour")
    olga("get", f"clusters/{cluster.pk}/scores/", range="year")
    olga("get", f"hosts/{host.pk}/")
    olga("get", "runbooks/")
    olga("get", "runbooks/test-steps/")
    olga("post", f"clusters/{cluster.pk}/runbooks/test-steps/plan/", {"params": STEPS})
    olga("post", f"clusters/{cluster.pk}/runbooks/test-steps/plan/", {"params": {"host": "nope"}})
    started = olga("post", "runs/", {"cluster": cluster.pk, "runbook": "test-approval",
                                     "params": {"host": "he2.lab.local"}, "acknowledge": True})
    assert started.status_code == 201, started.content
    gated = started.json()["id"]
    olga("post", "runs/", {"cluster": "x"})
    ada("get", "approvals/")
    olga("post", f"runs/{gated}/approve-run/", {"comment": "mine"})  # 403: four eyes
    ada("post", f"runs/{gated}/reject-run/", {"comment": "no"})
    ada("post", f"runs/{gated}/approve-run/", {"comment": "late"})  # 409: decided
    run = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, acknowledge=True)
    steps = list(run.steps.order_by("order"))
    insert_rows([(steps[0].pk, n, "stdout", f"line {n}") for n in range(1, 4)])
    olga("get", "runs/")
    olga("get", "runs/", status="nope")
    olga("get", f"runs/{run.pk}/")
    olga("get", f"runs/{run.pk}/output/", after=f"{steps[0].pk}:1")
    olga("get", f"runs/{run.pk}/steps/{steps[0].pk}/output/", after=0)
    olga("get", f"runs/{run.pk}/log/")
    olga("post", f"runs/{run.pk}/pause/")
    olga("post", f"runs/{run.pk}/steps/{steps[0].pk}/skip/", {"reason": "by hand"})
    olga("post", f"runs/{run.pk}/steps/{steps[1].pk}/mark-done/", {"reason": "x"})  # 409: not interrupted
    olga("post", f"runs/{run.pk}/steps/{steps[1].pk}/retry/")  # 409: nothing to retry
    olga("post", f"runs/{run.pk}/steps/{steps[1].pk}/confirm/", {"comment": "x"})  # 409: not manual
    ada("post", f"runs/{run.pk}/steps/{steps[1].pk}/approve/", {"comment": "x"})  # 409: not an approval
    ada("post", f"runs/{run.pk}/steps/{steps[1].pk}/reject/", {"comment": "x"})
    olga("post", f"runs/{run.pk}/resume/")
    olga("post", f"runs/{run.pk}/cancel/", {"reason": "enough"})
    olga("post", f"runs/{run.pk}/abandon/", {"reason": "x"})  # 409: cancelled already
    aud("get", "audit/", action="run.")
    aud("get", "audit/", since="never")
    aud("get", "audit/export.csv", action="run.")
    aud("get", "audit/export.json", run=run.pk)
    olga("get", "audit/export.json")  # 403: an operator only
    made = olga("post", "tokens/", {"name": "more"})
    olga("get", "tokens/")
    olga("post", f"tokens/{made.json()['details']['id']}/revoke/")
    olga("post", "tokens/", {"name": ""})
    backup_file = administration(ada, olga, cluster)

    problems, logged, exported = [], b"", {}
    for response in olga.calls + ada.calls + aud.calls:
        request = response.wsgi_request
        if getattr(response, "streaming", False):  # the log: validate what it streamed
            body = b"".join(response)
            if request.path.endswith("/log/"):
                logged = body
            elif "/backups/" in request.path:
                assert body == backup_file
            else:
                exported[request.path.rsplit(".", 1)[1]] = body
            response = HttpResponse(body, status=response.status_code, content_type=response["Content-Type"])
        if request.path.endswith("/schema/"):
            continue
        errors = list(openapi.iter_response_errors(DjangoOpenAPIRequest(request), DjangoOpenAPIResponse(response)))
        if errors:
            problems.append((request.method, request.get_full_path(), response.status_code,
                             [str(getattr(e, "__cause__", None) or e)[:400] for e in errors]))
    assert problems == [], "\n".join(map(str, problems))
    statuses = {r.status_code for r in olga.calls + ada.calls + aud.calls}
    assert {200, 201, 202, 204, 400, 403, 404, 409} <= statuses
    assert "line 3" in logged.decode()
    assert exported["csv"].decode().splitlines()[0].startswith("seq,created_at,actor,client_address,action")
    assert {row["action"] for row in json.loads(exported["json"])} >= {"run.start", "run.pause", "run.cancel"}

    # Every API route is described, and the scenario called each.
    described = {path.removeprefix("/api/v1/") for path in spec["paths"]}
    routes = {route.removeprefix("api/v1/") for name, route, _ in named_routes(get_resolver().url_patterns)
              if route.startswith("api/v1/")}
    as_openapi = {r.replace("<id:", "{").replace("<slug:", "{").replace(">", "}") for r in routes}
    assert as_openapi - {"schema/"} == described
    called = set()
    for response in olga.calls + ada.calls + aud.calls:
        match = response.wsgi_request.resolver_match
        called.add(match.route.removeprefix("api/v1/").replace("<id:", "{").replace("<slug:", "{").replace(">", "}"))
    assert as_openapi - called == set()
