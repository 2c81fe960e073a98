"""The slice end to end below the browser: real worker process, real Redis
channel layer, the real ASGI app with its websocket consumer."""
import asyncio
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from heportal.asgi import application
from tests.factories import make_host, make_run
from upgrades.models import RunStatus, StepOutput, UpgradeRun
from upgrades.services import enqueue_run

pytestmark = pytest.mark.django_db(transaction=True)


def session_headers(user):
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")]


async def open_or_closed(communicator, timeout=10):
    """(True, first message) for a socket that stays open; (False, close code)
    for a refused one. Every refusal is accepted and then closed with its code
    (docs/architecture.md, "Websocket refusals"), never an HTTP 403 at the
    handshake; every consumer that keeps a socket sends something at once."""
    accepted, code = await communicator.connect(timeout)
    assert accepted, f"refused at the handshake ({code}), not accepted and closed with a code"
    first = await communicator.receive_output(timeout)
    if first["type"] == "websocket.close":
        return False, first["code"]
    return True, first


async def collect(communicator, run_id, timeout=30):
    """Read events until the run ends; return {step: [seq, ...]} and texts."""
    seqs, texts = {}, []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = await communicator.receive_json_from(timeout=timeout)
        if event["type"] == "output.lines":
            for seq, _stream, text in event["lines"]:
                seqs.setdefault(event["step"], []).append(seq)
                texts.append(text)
        elif event["type"] == "run.status" and event["status"] in ("succeeded", "failed"):
            return seqs, texts, event["status"]
    raise AssertionError("run did not finish in time")


def wait_for_lines(step, count, timeout=60):
    deadline = time.monotonic() + timeout
    while StepOutput.objects.filter(step=step).count() < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines after {timeout} s"
        time.sleep(0.05)


def numbers(count):
    return " ".join(str(i) for i in range(1, count + 1))


def lab_host(cluster):
    return cluster.hosts.order_by("he_host_id").first()


def test_a_late_viewer_gets_every_line_once_in_order(rq_worker, lab_cluster, make_user):
    user = make_user("operator")
    run = make_run(user, lab_host(lab_cluster), [f"for i in {numbers(300)}; do echo line $i; sleep 0.5; done"])
    step = run.steps.get()
    enqueue_run(run)
    wait_for_lines(step, 40)  # the run is well under way

    headers = session_headers(user)

    async def watch():
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        try:
            return await collect(communicator, run.pk)
        finally:
            await communicator.disconnect()

    seqs, texts, status = asyncio.run(watch())
    assert status == "succeeded"
    assert seqs[step.pk] == list(range(1, 301))
    assert texts == [f"line {i}" for i in range(1, 301)]
    assert list(StepOutput.objects.filter(step=step).values_list("seq", flat=True)) == list(range(1, 301))


def test_a_reconnecting_viewer_gets_only_what_follows_its_cursor(rq_worker, lab_cluster, make_user):
    user = make_user("operator")
    run = make_run(user, lab_host(lab_cluster), [f"for i in {numbers(50)}; do echo n$i; done; cat /no/such/file; true"])
    enqueue_run(run)
    deadline = time.monotonic() + 60
    while UpgradeRun.objects.get(pk=run.pk).status != RunStatus.SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    step = run.steps.get()

    headers = session_headers(user)

    async def resume():
        communicator = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/?after={step.pk}:45", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        try:
            return await collect(communicator, run.pk, timeout=10)
        finally:
            await communicator.disconnect()

    seqs, texts, _ = asyncio.run(resume())
    assert seqs[step.pk] == [46, 47, 48, 49, 50, 51]
    assert texts == ["n46", "n47", "n48", "n49", "n50", "cat: /no/such/file: No such file or directory"]
    assert StepOutput.objects.get(step=step, seq=51).stream == "stderr"


def test_an_anonymous_websocket_is_refused(make_user):
    run = make_run(make_user("operator"), make_host(), ["true"])

    async def anonymous():
        communicator = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
        result = await open_or_closed(communicator)
        await communicator.disconnect()
        return result

    assert asyncio.run(anonymous()) == (False, 4401)


def test_a_failing_command_fails_the_step_and_the_run(rq_worker, lab_cluster, make_user):
    user = make_user("operator")
    run = make_run(user, lab_host(lab_cluster), ["echo before; no-such-command", "echo never"])
    enqueue_run(run)
    deadline = time.monotonic() + 60
    while UpgradeRun.objects.get(pk=run.pk).status not in (RunStatus.FAILED, RunStatus.SUCCEEDED):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first, second = run.steps.order_by("order")
    first.refresh_from_db()
    second.refresh_from_db()
    assert UpgradeRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert (first.status, first.exit_code) == ("failed", 127)
    assert list(first.output.values_list("stream", "text")) == [
        ("stdout", "before"), ("stderr", "bash: no-such-command: command not found")]
    assert second.status == "pending"


def test_a_dropped_connection_fails_the_step_and_keeps_the_output_so_far(rq_worker, fresh_lab_cluster, make_user):
    user = make_user("operator")
    host = fresh_lab_cluster.hosts.get(name="he2.lab.local")
    run = make_run(user, host, [f"for i in {numbers(600)}; do echo line $i; sleep 1; done"])
    enqueue_run(run)
    step = run.steps.get()
    wait_for_lines(step, 30)
    fresh_lab_cluster.lab.fault("kill-host", host="he2.lab.local")
    deadline = time.monotonic() + 60
    while UpgradeRun.objects.get(pk=run.pk).status not in (RunStatus.FAILED, RunStatus.SUCCEEDED):
        assert time.monotonic() < deadline, "the run did not end after its host died"
        time.sleep(0.1)
    step.refresh_from_db()
    assert UpgradeRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert step.status == "failed" and step.exit_code is None
    assert "he2.lab.local" in step.error
    texts = list(step.output.order_by("seq").values_list("text", flat=True))
    kept = [t for t in texts if t.startswith("line ")]
    assert len(kept) >= 30
    assert kept == [f"line {i}" for i in range(1, len(kept) + 1)]
    assert texts[-1] == step.error  # the reason is the last line of the log too
