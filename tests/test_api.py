"""The REST API without a lab: tokens (page and API), Bearer authentication and its
failure limit, sessions with CSRF, bad input answered per field and changing nothing,
plans, starts, approvals with a second token, output with cursors, the audit history.
Real Redis (the failure counts), the real database; runs stay queued (no worker)."""
import json

import pytest
from django.test import Client
from django.utils import timezone

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.factories import grant, make_polled_cluster
from upgrades import services
from upgrades.api import auth, views as api_views
from upgrades.api.tokens import ApiToken, create_token, digest, revoke_token
from upgrades.models import ApprovalPolicy, AuditEvent, RunStatus, StepOutput, UpgradeRun
from upgrades.output import insert_rows

pytestmark = pytest.mark.django_db
HOSTS = ("he1.lab.local", "he2.lab.local", "he3.lab.local")
STEPS = {"host": "he2.lab.local", "sim_seconds": 0, "marker": "/tmp/steps"}


@pytest.fixture(autouse=True)
def no_failures_counted():
    auth.clear_failures()
    yield
    auth.clear_failures()


@pytest.fixture
def cluster():
    return make_polled_cluster(HOSTS)


class Api:
    """A client calling as ``token`` (or with none)."""

    def __init__(self, token=None, address="127.0.0.1"):
        self.client = Client(REMOTE_ADDR=address)
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def get(self, path, **query):
        return self.client.get("/api/v1/" + path, query, **self.headers)

    def post(self, path, body=None):
        return self.client.post("/api/v1/" + path, json.dumps(body or {}), content_type="application/json",
                                **self.headers)


def api_as(user, name="script"):
    return Api(create_token(user=user, name=name)[1])


# Tokens -------------------------------------------------------------------------------

def test_the_page_shows_a_new_token_once_and_keeps_only_its_hash(client, make_user):
    user = make_user("viewer", "vera")
    client.force_login(user)
    page = client.post("/tokens/", {"name": "AWX nightly", "expires_in_days": "30"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    raw = page.context["created"]["raw"]
    assert raw.startswith("hep_") and raw in page.content.decode()
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.token_hash) == (user, "AWX nightly", digest(raw))
    # No column holds the token itself.
    assert raw not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert 29 <= (token.expires_at - timezone.now()).days <= 30
    again = client.get("/tokens/").content.decode()
    assert raw not in again and "AWX nightly" in again and f"hep_{token.hint}" in again
    assert Api(raw).get("me/").json() == {"username": "vera", "global_roles": ["viewer"], "auth": "token"}
    assert AuditEvent.objects.filter(action="api_token.create", actor=user).count() == 1


def test_the_page_refuses_a_token_without_a_name_or_with_bad_days(client, make_user):
    client.force_login(make_user("viewer"))
    page = client.post("/tokens/", {"name": "  ", "expires_in_days": "0"})
    assert page.status_code == 400
    assert set(page.context["errors"]) == {"name", "expires_in_days"}
    assert client.post("/tokens/", {"name": "x", "expires_in_days": "soon"}).status_code == 400
    assert not ApiToken.objects.exists()


def test_the_owner_revokes_on_the_page_another_person_cannot_an_admin_can(client, make_user):
    owner, other = make_user("operator", "olga"), make_user("operator", "otto")
    admin = make_user("admin", "ada")
    token, raw = create_token(user=owner, name="nightly-ci-sync")
    client.force_login(other)
    assert "nightly-ci-sync" not in client.get("/tokens/").content.decode()
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 404
    assert Api(raw).get("me/").status_code == 200
    client.force_login(admin)
    assert "olga" in client.get("/tokens/").content.decode()  # an admin sees everyone's
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.state == "revoked" and token.revoked_by == admin
    assert Api(raw).get("me/").status_code == 401
    event = AuditEvent.objects.get(action="api_token.revoke")
    assert (event.actor, event.details["owner"]) == (admin, "olga")


def test_tokens_through_the_api_and_revoking_ones_own(make_user):
    user = make_user("operator")
    first = api_as(user, "bootstrap")
    made = first.post("tokens/", {"name": "second", "expires_in_days": 7})
    assert made.status_code == 201
    second = Api(made.json()["token"])
    assert [t["name"] for t in second.get("tokens/").json()] == ["second", "bootstrap"]
    assert "token" not in second.get("tokens/").json()[0]
    bad = first.post("tokens/", {"name": "", "expires_in_days": 9999})
    assert bad.status_code == 400 and set(bad.json()) == {"name", "expires_in_days"}
    revoked = second.post(f"tokens/{made.json()['details']['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert second.get("me/").status_code == 401 and first.get("me/").status_code == 200


# Authentication -----------------------------------------------------------------------

def test_a_token_acts_as_its_user_with_that_users_roles_now(cluster, make_user):
    user = make_user(None, "tina")
    grant(user, cluster, "viewer")
    api = api_as(user)
    assert api.get(f"clusters/{cluster.pk}/").json()["hosts"][1]["name"] == "he2.lab.local"
    refused = api.post("runs/", {"cluster": cluster.pk, "runbook": "test-steps", "params": STEPS})
    assert refused.status_code == 403 and refused.json() == {"detail": "Only operators can start runs."}
    grant(user, cluster, "operator")  # a role given later counts at once
    started = api.post("runs/", {"cluster": cluster.pk, "runbook": "test-steps", "params": STEPS,
                                 "acknowledge": True})
    assert started.status_code == 201, started.json()
    assert UpgradeRun.objects.get().requested_by == user
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.parametrize("case", ["none", "garbage", "expired", "revoked", "inactive user", "two words"])
def test_a_call_without_a_usable_token_is_a_401(cluster, make_user, case):
    user = make_user("admin")
    token, raw = create_token(user=user, name="t", days=1)
    header = {"none": None, "garbage": "hep_" + "x" * 43, "expired": raw, "revoked": raw,
              "inactive user": raw, "two words": raw + " again"}[case]
    if case == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    if case == "revoked":
        revoke_token(token=token, user=user)
    if case == "inactive user":
        user.is_active = False
        user.save()
    response = Api(header).get("clusters/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "detail" in response.json() and cluster.name not in response.content.decode()


def test_failed_token_authentications_are_limited_per_address(settings, make_user):
    settings.API_AUTH_FAILURE_LIMIT = 3
    raw = create_token(user=make_user("viewer"), name="good")[1]
    for _ in range(3):
        assert Api("hep_guess", address="10.0.0.7").get("me/").status_code == 401
    # Past the limit even the right token is refused from that address: guessing gains nothing.
    limited = Api(raw, address="10.0.0.7").get("me/")
    assert limited.status_code == 429 and int(limited["Retry-After"]) == settings.API_AUTH_FAILURE_WINDOW
    assert Api(raw, address="10.0.0.8").get("me/").status_code == 200
    auth.clear_failures("10.0.0.7")
    assert Api(raw, address="10.0.0.7").get("me/").status_code == 200


def test_a_session_works_for_the_browser_and_csrf_is_enforced(cluster, make_user):
    user = make_user("operator")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/v1/clusters/").json()[0]["name"] == "Lab"
    body = json.dumps({"cluster": cluster.pk, "runbook": "test-steps", "params": STEPS, "acknowledge": True})
    refused = browser.post("/api/v1/runs/", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not UpgradeRun.objects.exists()
    browser.get("/tokens/")  # sets the CSRF cookie, as any page does
    token = browser.cookies["csrftoken"].value
    started = browser.post("/api/v1/runs/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert started.status_code == 201
    assert Api().get("clusters/").status_code == 401  # and without either: nothing


# Bad input -------------------------------------------------------------------------------

def test_bad_input_names_each_field_and_changes_nothing(cluster, make_user):
    api = api_as(make_user("operator"))
    before = (UpgradeRun.objects.count(), AuditEvent.objects.count())
    cases = [
        ({"cluster": "one", "runbook": "no such!", "params": [], "acknowledge": "maybe"},
         {"cluster", "runbook", "params", "acknowledge"}),
        ({"cluster": cluster.pk, "runbook": "nope"}, {"runbook"}),
        ({"cluster": cluster.pk, "runbook": "test-steps", "params": {**STEPS, "colour": "red"}}, {"params"}),
        ({"cluster": cluster.pk, "runbook": "test-steps", "params": {**STEPS, "host": "he9", "marker": "rel/x"}},
         {"params"}),
        ({"cluster": cluster.pk, "runbook": "test-steps", "params": STEPS, "reason": "x" * 2001}, {"reason"}),
    ]
    for body, fields in cases:
        response = api.post("runs/", body)
        assert response.status_code == 400, (body, response.json())
        assert set(response.json()) == fields, response.json()
    assert set(api.post("runs/", cases[3][0]).json()["params"]) == {"host", "marker"}
    assert api.post("runs/", cases[2][0]).json()["params"] == {"colour": ["This runbook has no such parameter."]}
    not_json = api.client.post("/api/v1/runs/", "{", content_type="application/json", **api.headers)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]
    assert api.get("runs/", status="exploded").status_code == 400
    assert api.get(f"clusters/{cluster.pk}/scores/", range="year").json() == {"range": ["One of hour, day, week."]}
    assert api.post("runs/", {"cluster": 99999, "runbook": "test-steps", "params": STEPS}).json() == {
        "cluster": ["There is no cluster #99999."]}
    assert (UpgradeRun.objects.count(), AuditEvent.objects.count()) == before


def test_a_plan_starts_nothing(cluster, make_user):
    api = api_as(make_user("viewer"))
    before = AuditEvent.objects.count()
    plan = api.post(f"clusters/{cluster.pk}/runbooks/test-steps/plan/", {"params": STEPS})
    assert plan.status_code == 200, plan.json()
    body = plan.json()
    assert [step["key"] for step in body["steps"]] == ["one", "two", "three"]
    assert body["steps"][0]["host"] == "he2.lab.local" and body["startable"] is True
    assert {c["check"] for c in body["checks"]} >= {"ha-fresh", "no-other-active-run"}
    assert not UpgradeRun.objects.exists() and AuditEvent.objects.count() == before
    bad = api.post(f"clusters/{cluster.pk}/runbooks/test-steps/plan/", {"params": {"host": "nowhere"}})
    assert bad.status_code == 400 and "host" in bad.json()["params"]
    assert api.post(f"clusters/{cluster.pk}/runbooks/nope/plan/", {}).status_code == 404


# Runs, approvals, actions -------------------------------------------------------------------

def test_a_start_approved_with_a_second_token_and_the_four_eyes_rule(cluster, make_user):
    ApprovalPolicy.objects.create(runbook="test-steps", before_start="always")
    operator = make_user("operator", "olga")
    approver = make_user("approver", "anna")
    olga, anna = api_as(operator), api_as(approver)
    started = olga.post("runs/", {"cluster": cluster.pk, "runbook": "test-steps", "params": STEPS,
                                  "acknowledge": True})
    assert started.status_code == 201
    run = started.json()
    assert run["status"] == "awaiting_approval" and run["approvals_required"] == 1
    # The requester may not approve their own run, whatever their role.
    assert olga.post(f"runs/{run['id']}/approve-run/", {"comment": "mine"}).status_code == 403
    pending = anna.get("approvals/").json()
    assert [(p["run"]["id"], p["step"], p["needed"], p["given"]) for p in pending] == [(run["id"], None, 1, 0)]
    assert "approve-run" in anna.get(f"runs/{run['id']}/").json()["actions"]
    no_comment = anna.post(f"runs/{run['id']}/approve-run/", {})
    assert no_comment.status_code == 400 and list(no_comment.json()) == ["comment"]
    approved = anna.post(f"runs/{run['id']}/approve-run/", {"comment": "looks right"})
    assert approved.status_code == 200 and approved.json()["status"] in ("pending", "running")
    assert anna.get("approvals/").json() == []
    again = anna.post(f"runs/{run['id']}/approve-run/", {"comment": "twice"})
    assert again.status_code == 409 and "not waiting for an approval" in again.json()["detail"]
    assert AuditEvent.objects.filter(actor=approver, run_ref=run["id"]).exists()


def test_a_rejection_with_a_comment_ends_the_run(cluster, make_user):
    ApprovalPolicy.objects.create(runbook="test-steps", before_start="always")
    olga, anna = api_as(make_user("operator", "olga")), api_as(make_user("approver", "anna"))
    run = olga.post("runs/", {"cluster": cluster.pk, "runbook": "test-steps", "params": STEPS,
                              "acknowledge": True}).json()
    rejected = anna.post(f"runs/{run['id']}/reject-run/", {"comment": "not tonight"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "cancelled"
    assert UpgradeRun.objects.get().approvals.get().comment == "not tonight"


def test_run_actions_go_through_the_services(cluster, make_user):
    operator, viewer = make_user("operator", "olga"), make_user("viewer", "vera")
    run = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, acknowledge=True)
    olga, vera = api_as(operator), api_as(viewer)
    refused = vera.post(f"runs/{run.pk}/cancel/", {"reason": "no"})
    assert refused.status_code == 403 and refused.json()["detail"].startswith("Only operators can")
    run.refresh_from_db()
    assert not run.cancel_requested and run.status == RunStatus.PENDING
    paused = olga.post(f"runs/{run.pk}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    step = run.steps.order_by("order").first()
    skip = olga.post(f"runs/{run.pk}/steps/{step.pk}/skip/", {})
    assert skip.status_code == 400 and list(skip.json()) == ["reason"]
    assert olga.post(f"runs/{run.pk}/steps/{step.pk}/skip/", {"reason": "done by hand"}).status_code == 200
    step.refresh_from_db()
    assert step.status == "skipped"
    cancelled = olga.post(f"runs/{run.pk}/cancel/", {"reason": "enough"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert olga.post(f"runs/{run.pk}/resume/").status_code == 409
    assert olga.post(f"runs/{run.pk}/steps/999999/skip/", {"reason": "x"}).status_code == 404
    actions = set(AuditEvent.objects.filter(run_ref=run.pk).values_list("action", flat=True))
    assert {"run.pause", "step.skip", "run.cancel"} <= actions


def test_output_follows_with_the_cursor_losslessly(cluster, make_user, monkeypatch):
    operator = make_user("operator")
    run = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, acknowledge=True)
    one, two, _ = run.steps.order_by("order")
    insert_rows([(one.pk, n, "stdout", f"one {n}") for n in range(1, 6)] +
                [(two.pk, n, "stderr", f"two {n}") for n in range(1, 4)])
    monkeypatch.setattr(api_views, "OUTPUT_LIMIT", 3)
    api = api_as(operator)
    seen, after = [], ""
    for _ in range(10):
        page = api.get(f"runs/{run.pk}/output/", after=after).json()
        seen += [(line["step"], line["seq"], line["text"]) for line in page["lines"]]
        after = page["after"]
        if not page["more"]:
            break
    assert [text for _, _, text in seen] == [f"one {n}" for n in range(1, 6)] + [f"two {n}" for n in range(1, 4)]
    assert page["ended"] is False
    insert_rows([(one.pk, 6, "system", "one 6"), (two.pk, 4, "stdout", "two 4")])  # later lines, both steps
    page = api.get(f"runs/{run.pk}/output/", after=after).json()
    assert [line["text"] for line in page["lines"]] == ["one 6", "two 4"]
    # One step with the page's own cursor, as a number.
    step_page = api.get(f"runs/{run.pk}/steps/{one.pk}/output/", after=4).json()
    assert [line["seq"] for line in step_page["lines"]] == [5, 6] and step_page["after"] == 6
    assert api.get(f"runs/{run.pk}/steps/{one.pk}/output/", after="x").json() == {
        "after": ["A line number (seq), 0 or more."]}
    detail = api.get(f"runs/{run.pk}/").json()
    assert [step["last_seq"] for step in detail["steps"]] == [6, 4, 0]
    log = b"".join(api.get(f"runs/{run.pk}/log/")).decode()
    assert "one 6" in log and "two 4" in log
    assert StepOutput.objects.count() == 10


def test_the_audit_history_with_the_pages_filters(cluster, make_user):
    operator, auditor = make_user("operator"), make_user("auditor")
    run = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, acknowledge=True)
    services.pause_run(run=run, user=operator)
    api = api_as(auditor)
    found = api.get("audit/", action="run.", run=run.pk).json()
    assert [event["action"] for event in found["results"]] == ["run.pause", "run.start"]
    assert found["next_page"] is None and found["results"][1]["actor"] == "operator"
    assert api.get("audit/", since="yesterday").json() == {"since": ["Enter a valid date."]}
    assert api_as(operator, "other").get("audit/").status_code == 403


def test_clusters_hosts_ha_and_scores_read(cluster, make_user):
    other = make_polled_cluster(("x1",), name="Other")
    user = make_user(None, "vic")
    grant(user, cluster, "viewer")
    api = api_as(user)
    assert [c["name"] for c in api.get("clusters/").json()] == ["Lab"]
    assert api.get(f"clusters/{other.pk}/").status_code == 403
    host = cluster.hosts.get(name="he1.lab.local")
    assert api.get(f"hosts/{host.pk}/").json()["engine_vm_here"] is True
    ha = api.get(f"clusters/{cluster.pk}/ha/").json()
    assert [(h["name"], h["score"], h["live"]) for h in ha["hosts"]][0] == ("he1.lab.local", 3400, True)
    scores = api.get(f"clusters/{cluster.pk}/scores/", range="day").json()
    assert scores["range"] == "day" and len(scores["hosts"]) == 3
    books = {b["slug"]: b for b in api.get("runbooks/").json()}
    assert {p["name"] for p in books["test-steps"]["params"]} == {"host", "sim_seconds", "marker"}
    assert api.get("runbooks/nope/").status_code == 404


def test_no_secret_reaches_an_answer(cluster, make_user):
    cluster.set_engine_password("s3cret-engine-pw")
    cluster.credentials_ref = "file:/etc/heportal/engine-pw"
    cluster.save()
    api = api_as(make_user("admin"))
    answers = api.get(f"clusters/{cluster.pk}/").content + api.get("clusters/").content
    for secret in (b"s3cret-engine-pw", cluster.engine_password_encrypted.encode(), b"/etc/heportal/engine-pw"):
        assert secret not in answers


def test_a_user_in_no_group_gets_403_not_data(make_user, cluster):
    api = api_as(make_user(None, "nobody"))
    assert api.get("clusters/").status_code == 403
    assert api.get("me/").json()["global_roles"] == []


# The run's websocket with a token ----------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_run_websocket_takes_a_token_with_the_pages_cursors(make_user, settings):
    import asyncio

    from channels.testing import WebsocketCommunicator

    from heportal.asgi import application
    from tests.test_live_output import open_or_closed

    settings.API_AUTH_FAILURE_LIMIT = 2
    cluster = make_polled_cluster(HOSTS)
    operator = make_user("operator", "olga")
    outsider = make_user(None, "otto")
    grant(outsider, make_polled_cluster(("x1",), name="Other"), "admin")
    run = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, acknowledge=True)
    one = run.steps.order_by("order").first()
    insert_rows([(one.pk, n, "stdout", f"line {n}") for n in range(1, 6)])
    good, other = create_token(user=operator, name="ws")[1], create_token(user=outsider, name="ws")[1]
    revoked_row, revoked = create_token(user=operator, name="old")
    revoke_token(token=revoked_row, user=operator)

    async def connect(token, address="10.1.1.1", after=""):
        # No Origin header, as a script sends none: the token is the credential.
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?after={after}",
                                             headers=[(b"authorization", f"Bearer {token}".encode())])
        communicator.scope["client"] = (address, 5555)
        is_open, first = await open_or_closed(communicator)
        events = [first] if is_open else []
        while is_open and events[-1]["type"] != "run.status":  # the backlog ends with the run's status
            events.append(await communicator.receive_json_from(timeout=10))
        await communicator.disconnect()
        return (is_open, first if not is_open else events)

    is_open, events = asyncio.run(connect(good, after=f"{one.pk}:2"))
    assert is_open
    lines = [line for e in events if e["type"] == "output.lines" for line in e["lines"]]
    assert [seq for seq, _, _ in lines] == [3, 4, 5]  # after the cursor, each once
    assert asyncio.run(connect(other)) == (False, 4403)  # a role elsewhere only
    assert asyncio.run(connect(revoked)) == (False, 4401)
    assert asyncio.run(connect("hep_wrong")) == (False, 4401)
    assert asyncio.run(connect(good)) == (False, 4429)  # two failures from 10.1.1.1: limited
    assert asyncio.run(connect(good, address="10.1.1.2"))[0] is True


def test_behind_the_proxy_the_limit_counts_the_address_the_proxy_saw(settings, make_user):
    settings.API_AUTH_FAILURE_LIMIT = 1
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    raw = create_token(user=make_user("viewer"), name="good")[1]

    def call(token, forwarded):
        return Client(REMOTE_ADDR="127.0.0.1").get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}",
                                                   HTTP_X_FORWARDED_FOR=forwarded)

    # The client wrote the first entry itself; the proxy appended the address it saw.
    assert call("hep_guess", "1.2.3.4, 203.0.113.9").status_code == 401
    assert call(raw, "9.9.9.9, 203.0.113.9").status_code == 429  # a forged first entry changes nothing
    assert call(raw, "1.2.3.4, 203.0.113.10").status_code == 200  # another client behind the proxy


def test_a_method_the_schema_does_not_take_is_refused_in_json(make_user):
    """The schema is YAML by default; its refusals are JSON like the rest of the API."""
    client = Client()
    client.force_login(make_user("viewer"))
    response = client.post("/api/v1/schema/")
    assert response.status_code == 405
    assert json.loads(response.content)["detail"] == 'Method "POST" not allowed.'
    assert client.get("/api/v1/schema/").content.startswith(b"openapi:")
