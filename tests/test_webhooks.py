"""Webhooks with real parts: real runs on the shared lab, the real ``hooks`` RQ worker (with
RQ's scheduler, as deployed), and receivers that are plain http.server endpoints on loopback
ports, which check each signature as a client would (docs/api.md, "Webhooks")."""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.conftest import Processes, child_env
from tests.test_api_docs import examples
from tests.test_engine import polled, start, steps_of  # noqa: F401  (polled: a fixture)
from tests.test_resilience import wait_for_status
from upgrades import secrets, services, webhooks
from upgrades.models import AuditEvent, RunStatus, Webhook, WebhookDelivery
from upgrades.services import webhooks as webhook_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ANSWER_TIMEOUT = 10  # the worker's WEBHOOK_TIMEOUT below
# docs/api.md's receiver-side check, run as written.
_namespace = {}
exec(examples()["python-verify-webhook"][1], _namespace)
DOC_VERIFY = _namespace["verify"]
EVERY = ["run.started", "run.waiting", "approval.requested", "step.failed", "run.ended"]


@pytest.fixture(scope="module")
def hooks_worker(rq_worker, tmp_path_factory):
    """The deliveries' worker as deployed (`rqworker hooks --with-scheduler`), with short
    retries so a failing endpoint runs out of attempts within the test."""
    procs = Processes(tmp_path_factory.mktemp("hooks-worker"))
    env = child_env()
    env.update(WEBHOOK_TIMEOUT=str(ANSWER_TIMEOUT), WEBHOOK_CONNECT_TIMEOUT="2",
               WEBHOOK_RETRY_DELAYS="0.2,0.2,0.2,0.2")
    procs.start("rqworker-hooks", [sys.executable, "manage.py", "rqworker", "hooks", "--with-scheduler"], env=env)
    yield procs
    procs.stop()


class Receiver:
    """An endpoint on a free loopback port. ``mode``: "ok" answers 204, "error" 500, "hold"
    keeps each request open until ``release`` (then answers 204). Each request's signature is
    checked against ``secret`` the way docs/api.md shows."""

    def __init__(self):
        self.received, self.bad, self.held = [], [], 0
        self.mode, self.secret = "ok", None
        self.released = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.record(self.headers, body)
                if receiver.mode == "hold":
                    with receiver.lock:
                        receiver.held += 1
                    receiver.released.wait(60)
                    with receiver.lock:
                        receiver.held -= 1
                code = 500 if receiver.mode == "error" else 204
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the portal gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, headers, body):
        entry = {"event": headers["X-HEPortal-Event"], "delivery": int(headers["X-HEPortal-Delivery"]),
                 "body": json.loads(body)}
        with self.lock:
            (self.received if DOC_VERIFY(self.secret, headers, body) else self.bad).append(entry)

    def events(self):
        with self.lock:
            return [entry["event"] for entry in self.received]

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(user, events, mode="ok"):
        receiver = Receiver()
        receiver.mode = mode
        hook, receiver.secret = webhook_service.create_webhook(user=user, url=receiver.url, events=events)
        receiver.hook = hook
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def settled(hook, count, timeout=60):
    """Wait until ``hook`` has ``count`` deliveries, none pending; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        deliveries = list(WebhookDelivery.objects.filter(webhook=hook).order_by("id"))
        if len(deliveries) >= count and all(d.status != "pending" for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, [(d.event, d.status, d.attempts, d.last_error) for d in deliveries]
        time.sleep(0.2)


def test_each_event_of_a_real_run_arrives_once_signed(hooks_worker, lab_cluster, make_user, receivers):
    admin = make_user("admin", "hookadmin")
    every = receivers(admin, EVERY)
    ended = receivers(admin, ["run.ended"])
    run = start(lab_cluster, "test-approval", make_user("operator"), host="he1.lab.local")
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 60)
    services.approve_step(step=steps_of(run)["sign-off"], user=make_user("approver"), comment="ok")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert run.status == RunStatus.SUCCEEDED

    deliveries = settled(every.hook, 3)
    assert [(d.event, d.status, d.attempts, d.last_status_code) for d in deliveries] == [
        ("run.started", "delivered", 1, 204), ("approval.requested", "delivered", 1, 204),
        ("run.ended", "delivered", 1, 204)]
    assert settled(ended.hook, 1)[0].event == "run.ended"
    time.sleep(1)  # nothing more arrives (a second copy would have by now)
    assert every.events() == ["run.started", "approval.requested", "run.ended"]
    assert ended.events() == ["run.ended"]
    assert every.bad == [] and ended.bad == []
    last = every.received[-1]["body"]
    assert last["event"] == "run.ended" and last["run"]["id"] == run.pk and last["run"]["status"] == "succeeded"
    assert last["run"]["runbook"] == "test-approval" and last["run"]["cluster"]["name"] == lab_cluster.name
    approval = every.received[1]["body"]
    assert approval["step"]["key"] == "sign-off" and approval["approval"]["approvers"] == 1
    assert {e["delivery"] for e in every.received} == {d.pk for d in deliveries}
    # The secret is stored encrypted, never in clear.
    assert every.secret not in Webhook.objects.get(pk=every.hook.pk).secret
    assert secrets.decrypt(Webhook.objects.get(pk=every.hook.pk).secret) == every.secret


def test_a_failed_step_and_a_wait_for_a_person_are_told(hooks_worker, lab, lab_cluster, polled, make_user,  # noqa: F811
                                                         receivers):
    operator = make_user("operator")
    every = receivers(make_user("admin", "hookadmin"), EVERY)
    lab.fault("fail-next-command", host="he2.lab.local", pattern="retry-me")
    run = start(lab_cluster, "test-failing", operator, host="he2.lab.local")
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 60)
    assert run.status == RunStatus.FAILED
    deliveries = settled(every.hook, 3)
    assert [d.event for d in deliveries] == ["run.started", "step.failed", "run.ended"]
    failed = next(e["body"] for e in every.received if e["event"] == "step.failed")
    assert (failed["step"]["key"], failed["step"]["status"], failed["step"]["exit_code"]) == ("flaky", "failed", 1)

    manual = start(lab_cluster, "test-manual", operator, host="he2.lab.local")
    wait_for_status(manual, [RunStatus.WAITING, RunStatus.FAILED], 60)
    services.confirm_step(step=steps_of(manual)["reinstall"], user=operator)
    wait_for_status(manual, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    deliveries = settled(every.hook, 6)
    assert [d.event for d in deliveries[3:]] == ["run.started", "run.waiting", "run.ended"]
    waiting = next(e["body"] for e in every.received if e["event"] == "run.waiting")
    assert (waiting["run"]["status"], waiting["step"]["key"], waiting["step"]["status"]) == (
        "waiting", "reinstall", "waiting")
    assert every.bad == []


def test_a_hanging_or_failing_endpoint_never_holds_up_a_run(hooks_worker, lab_cluster, make_user, receivers):
    admin = make_user("admin", "hookadmin")
    hanging = receivers(admin, ["approval.requested"], mode="hold")
    failing = receivers(admin, EVERY, mode="error")
    run = start(lab_cluster, "test-approval", make_user("operator"), host="he1.lab.local")
    deadline = time.monotonic() + 30
    while hanging.held == 0:  # the endpoint holds the approval.requested delivery's request open
        assert time.monotonic() < deadline, "the hanging endpoint was never called"
        time.sleep(0.05)
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 60)
    services.approve_step(step=steps_of(run)["sign-off"], user=make_user("approver"), comment="ok")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    # The run ended, successfully, while the endpoint still held its approval request's delivery open.
    assert run.status == RunStatus.SUCCEEDED
    stuck = WebhookDelivery.objects.get(webhook=hanging.hook)
    assert (stuck.status, stuck.attempts) == ("pending", 1) and hanging.held == 1

    # No answer within the timeout: the attempt fails and the next one, answered, delivers.
    hanging.mode = "ok"  # from now on answered at once; the held request stays held
    delivered = settled(hanging.hook, 1, timeout=ANSWER_TIMEOUT + 30)[0]
    assert (delivered.status, delivered.attempts, delivered.last_status_code) == ("delivered", 2, 204)

    # HTTP 500 every time: each delivery is tried 5 times, then failed.
    failed = settled(failing.hook, 3)
    assert [(d.event, d.status, d.attempts, d.last_status_code, d.last_error) for d in failed] == [
        (event, "failed", 5, 500, "HTTP 500") for event in ("run.started", "approval.requested", "run.ended")]
    assert sorted(failing.events()) == sorted(["run.started"] * 5 + ["approval.requested"] * 5 + ["run.ended"] * 5)
    assert len({e["delivery"] for e in failing.received}) == 3 and failing.bad == []

    # Sent again from the page: the endpoint answers now.
    failing.mode = "ok"
    client = Client()
    client.force_login(admin)  # the admin group: a global admin
    response = client.post(f"/webhooks/{failing.hook.pk}/deliveries/{failed[0].pk}/resend/")
    assert response.status_code == 302
    again = settled(failing.hook, 3)[0]
    assert (again.status, again.attempts, again.last_status_code) == ("delivered", 1, 204)
    assert AuditEvent.objects.filter(action="webhook.redeliver", actor=admin).exists()
    page = client.get(f"/webhooks/{failing.hook.pk}/").content.decode()
    assert page.count('class="delivery"') == 3 and "delivered" in page and "HTTP 500" in page


def test_bad_input_on_the_pages_is_named_and_saves_nothing(make_user):
    admin = make_user("admin", "global")  # the admin group: a global admin
    client = Client()
    client.force_login(admin)
    audited = AuditEvent.objects.count()
    for form, problem in [
        ({"url": "not a url", "events": ["run.ended"]}, "Enter the endpoint&#x27;s full http:// or https:// URL"),
        ({"url": "ftp://example.com/x", "events": ["run.ended"]}, "full http:// or https:// URL"),
        ({"url": "https://example.com/hook"}, "Choose at least one event."),
        ({"url": "https://example.com/hook", "events": ["run.exploded"]}, "Unknown event(s): run.exploded"),
        ({"url": "https://example.com/hook", "events": ["run.ended"], "secret": "short"}, "at least 16 characters"),
    ]:
        response = client.post("/webhooks/", form)
        assert response.status_code == 400, form
        assert problem in response.content.decode(), form
    assert not Webhook.objects.exists() and AuditEvent.objects.count() == audited

    response = client.post("/webhooks/", {"url": "https://example.com/hook", "events": ["run.ended", "step.failed"]})
    assert response.status_code == 200
    hook = Webhook.objects.get()
    secret = secrets.decrypt(hook.secret)
    assert secret in response.content.decode() and response["Cache-Control"] == "no-store"
    assert secret not in client.get(f"/webhooks/{hook.pk}/").content.decode()  # shown once
    event = AuditEvent.objects.get(action="webhook.create")
    assert secret not in json.dumps(event.details) and event.details["events"] == ["run.ended", "step.failed"]

    response = client.post(f"/webhooks/{hook.pk}/", {"url": "https://example.com/other", "events": []})
    assert response.status_code == 400 and "Choose at least one event." in response.content.decode()
    hook.refresh_from_db()
    assert (hook.url, hook.events) == ("https://example.com/hook", ["run.ended", "step.failed"])

    response = client.post(f"/webhooks/{hook.pk}/", {"url": "https://example.com/other", "events": ["run.ended"],
                                                      "active": "1"})
    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.url, hook.events, secrets.decrypt(hook.secret)) == ("https://example.com/other", ["run.ended"], secret)
    response = client.post(f"/webhooks/{hook.pk}/", {"url": hook.url, "events": ["run.ended"], "active": "1",
                                                      "replace_secret": "1", "secret": "a-new-secret-of-enough-length"})
    assert response.status_code == 200 and "a-new-secret-of-enough-length" in response.content.decode()
    hook.refresh_from_db()
    assert secrets.decrypt(hook.secret) == "a-new-secret-of-enough-length"
    assert AuditEvent.objects.get(action="webhook.update", details__signing_key_replaced=True)

    response = client.post(f"/webhooks/{hook.pk}/delete/")
    assert response.status_code == 302 and not Webhook.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.delete").exists()


def test_signature_is_the_documented_hmac():
    body = webhooks.body_of({"event": "run.ended", "id": 7})
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature("s3cret", "1700000000", body) == "sha256=" + expected
    now = str(int(time.time()))
    headers = {"X-HEPortal-Timestamp": now, "X-HEPortal-Signature": webhooks.signature("s3cret", now, body)}
    assert DOC_VERIFY("s3cret", headers, body)
    assert not DOC_VERIFY("other", headers, body) and not DOC_VERIFY("s3cret", headers, body + b" ")
    old = {**headers, "X-HEPortal-Timestamp": "1700000000",
           "X-HEPortal-Signature": webhooks.signature("s3cret", "1700000000", body)}
    assert not DOC_VERIFY("s3cret", old, body)  # a replayed old request


def test_a_delivery_never_queued_is_queued_by_the_sweeper(hooks_worker, lab_cluster, make_user, receivers):
    """Redis away when the run event happened: the delivery is in the database only, and
    the sweeper's pass queues it once its attempt is overdue."""
    from datetime import timedelta

    from django.utils import timezone

    from upgrades import sweeper

    every = receivers(make_user("admin", "hookadmin"), ["run.ended"])
    run = start(lab_cluster, "test-wait", make_user("operator"), host="he1.lab.local")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    settled(every.hook, 1)
    lost = WebhookDelivery.objects.create(webhook=every.hook, event="run.ended", payload={"event": "run.ended"},
                                          next_attempt_at=timezone.now() - timedelta(minutes=5))
    time.sleep(1)
    assert WebhookDelivery.objects.get(pk=lost.pk).status == "pending"  # nothing queued it
    sweeper.sweep()
    assert [(d.pk, d.status, d.attempts) for d in settled(every.hook, 2)][-1] == (lost.pk, "delivered", 1)


def test_a_deactivated_endpoint_is_sent_nothing(hooks_worker, make_user, receivers):
    from django.utils import timezone

    off = receivers(make_user("admin", "hookadmin"), ["run.ended"])
    Webhook.objects.filter(pk=off.hook.pk).update(active=False)
    delivery = WebhookDelivery.objects.create(webhook=off.hook, event="run.ended", payload={"event": "run.ended"},
                                              next_attempt_at=timezone.now())
    assert webhooks.enqueue(delivery)
    settled_delivery = settled(off.hook, 1)[0]
    assert (settled_delivery.status, settled_delivery.last_error) == (
        "failed", "not sent: the endpoint was deactivated")
    assert off.events() == [] and webhooks.subscribers("run.ended") == []
