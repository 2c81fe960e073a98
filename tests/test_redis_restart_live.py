"""Redis restarted under long-lived processes: the real `manage.py ha_poller`
(publisher and sweeper) and daphne, with pages' websockets open.

The Redis here listens on TCP, as in production: over a unix socket redis-py
notices a pooled connection Redis closed before using it; over TCP
(maintenance notifications "auto") it does not, and the first command after
the restart failed (a message dropped, a websocket handshake answered 500).
"""
import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import aiohttp
import pytest
from django.utils import timezone

from tests.test_browser import browser  # noqa: F401  (the fixture: Chromium, once per module)
from tests.conftest import ROOT, Processes, RedisServer, child_env, die_with_parent, free_port, wait_until
from tests.factories import make_run
from tests.test_engine import wait_for_polled
from tests.viewers import session_cookie
from upgrades.models import Host, RunStatus, UpgradeRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# How often a page asks whether what it shows is current: static/js/fragments.js.
CHECK_SECONDS = int(re.search(r"CHECK_MS = (\d+);", (ROOT / "static/js/fragments.js").read_text())[1]) / 1000
MARGIN = 10.0  # a loaded machine: the check's answer is a couple of queries and one message


class TcpRedis(RedisServer):
    """A Redis of the test's own on a TCP port, to restart for real."""

    def __init__(self, folder):
        super().__init__(folder)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent)
        wait_until(lambda: self._answers(), 10, "redis-server listening")
        return self

    def _answers(self):
        assert self.proc.poll() is None, f"redis-server exited with {self.proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False


class Stack:
    """daphne and the HA poller, both on ``redis``; ``url`` is daphne's."""

    def __init__(self, redis, procs, url):
        self.redis, self.procs, self.url = redis, procs, url

    def log(self, name):
        return (self.procs.log_dir / f"{name}.log").read_text()


@pytest.fixture
def stack(lab, tmp_path):
    redis = TcpRedis(tmp_path).start()
    procs = Processes(tmp_path)
    env = {**child_env(), "REDIS_URL": redis.url}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    procs.start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                           "heportal.asgi:application"], env=env)
    procs.start("ha_poller", [sys.executable, "manage.py", "ha_poller"], env=env)

    def listening():
        procs.check_alive()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_until(listening, 30, "daphne listening")
    yield Stack(redis, procs, f"http://127.0.0.1:{port}")
    procs.stop()
    redis.stop()


class PageSocket:
    """A page's websocket, in a thread of its own, as static/js does it: it reconnects
    0.5 s after a close, sends {"type": "check"} every CHECK_SECONDS, and keeps every
    message (``messages``) and every failed handshake (``refused``)."""

    def __init__(self, base_url, path, user):
        self.url = base_url.replace("http://", "ws://") + path
        self.headers = {"Cookie": f"sessionid={session_cookie(user)}", "Origin": base_url}
        self.messages, self.refused, self.connects = [], [], 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self):
        async with aiohttp.ClientSession() as session:
            while not self.stopping.is_set():
                try:
                    async with session.ws_connect(self.url, headers=self.headers, heartbeat=None) as ws:
                        self.connects += 1
                        checking = asyncio.ensure_future(self._check(ws))
                        try:
                            async for msg in ws:
                                self.messages.append(json.loads(msg.data))
                        finally:
                            checking.cancel()
                except aiohttp.WSServerHandshakeError as exc:
                    self.refused.append(exc.status)
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)

    async def _check(self, ws):
        while not self.stopping.is_set():
            await asyncio.sleep(CHECK_SECONDS)
            await ws.send_json({"type": "check"})
        await ws.close()

    def last(self, kind):
        return next((m for m in reversed(self.messages) if m["type"] == kind), None)

    def close(self):
        self.stopping.set()
        self.thread.join(CHECK_SECONDS + 5)


def he2_local(event):
    return event and next(h["local_maintenance"] for h in event["hosts"] if h["name"] == "he2.lab.local")


def set_he2_local(lab, cluster, on):
    """he2 to local maintenance (or out of it) through hosted-engine on the host; returns
    once the poller has stored it."""
    client = lab.connect("he2.lab.local")
    try:
        mode = "local" if on else "none"
        assert client.exec_command(f"hosted-engine --set-maintenance --mode={mode}")[1].channel.recv_exit_status() == 0
    finally:
        client.close()
    wait_until(lambda: Host.objects.get(cluster=cluster, name="he2.lab.local").local_maintenance == on, 60,
               f"the poller stored he2's local maintenance {on}")


def test_ha_changes_reach_an_open_cluster_page_after_each_redis_restart(stack, lab, lab_cluster, make_user):
    wait_for_polled(lab_cluster)
    set_he2_local(lab, lab_cluster, False)  # the shared lab may come from a test that left it on
    # Two pages: daphne's one blocking read, broken by the restart, closes one socket at
    # most; the other stays open, and Redis came back without its groups.
    user = make_user("viewer")
    pages = [PageSocket(stack.url, f"/ws/clusters/{lab_cluster.pk}/", user) for _ in range(2)]
    try:
        for page in pages:
            wait_until(lambda: he2_local(page.last("ha.update")) is False, 30, "the page's first HA state")
        for restart, on in enumerate([True, False, True], start=1):
            stack.redis.restart(down_seconds=1.0)
            time.sleep(3)  # the pages are open (again) and current before the change
            set_he2_local(lab, lab_cluster, on)
            for n, page in enumerate(pages, start=1):
                wait_until(lambda: he2_local(page.last("ha.update")) is on, CHECK_SECONDS + MARGIN,
                           f"restart {restart}: he2's local maintenance {on} on open page {n}; it got "
                           f"{[he2_local(m) for m in page.messages if m['type'] == 'ha.update']}, "
                           f"{page.connects} connects, handshakes refused {page.refused}")
    finally:
        for page in pages:
            page.close()
        set_he2_local(lab, lab_cluster, False)
    assert "Traceback" not in stack.log("ha_poller")


def stale_run(user, cluster):
    """A run whose worker is gone without a word: running, its heartbeat still fresh; the
    sweeper (in the poller) marks it interrupted once ``lose_worker`` ages the heartbeat."""
    run = make_run(user, cluster.hosts.order_by("he_host_id").first(), ["sleep 600"])
    now = timezone.now()
    run.steps.update(status="running", started_at=now)
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, executor="gone:1:token", heartbeat_at=now,
                                                started_at=now)
    return run


def lose_worker(run):
    UpgradeRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    wait_until(lambda: UpgradeRun.objects.get(pk=run.pk).status == RunStatus.INTERRUPTED, 30,
               "the sweeper marks the run interrupted")


def test_websocket_handshakes_right_after_a_redis_restart_all_succeed(stack, lab_cluster, make_user):
    n = 8
    headers = {"Cookie": f"sessionid={session_cookie(make_user('viewer'))}", "Origin": stack.url}
    url = stack.url.replace("http://", "ws://") + f"/ws/clusters/{lab_cluster.pk}/"

    async def open_one(session):
        """The handshake's status (101 when accepted) and the first message's type."""
        try:
            ws = await session.ws_connect(url, headers=headers, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, None
        msg = await ws.receive(timeout=30)
        return 101, json.loads(msg.data)["type"] if msg.type == aiohttp.WSMsgType.TEXT else msg.type, ws

    async def scenario():
        async with aiohttp.ClientSession() as session:
            # N handshakes at once: daphne's pool holds N connections, all of them closed by the restart.
            before = await asyncio.gather(*(open_one(session) for _ in range(n)))
            await asyncio.to_thread(stack.redis.restart, 1.0)
            after = await asyncio.gather(*(open_one(session) for _ in range(n)))
            for result in before + after:
                if len(result) == 3:
                    await result[2].close()
            return [r[:2] for r in before], [r[:2] for r in after]

    before, after = asyncio.run(scenario())
    assert before == [(101, "ha.update")] * n
    assert after == [(101, "ha.update")] * n


def test_a_run_page_misses_no_sweeper_interrupted_after_a_redis_restart(stack, lab_cluster, make_user):
    user = make_user("operator")
    wait_for_polled(lab_cluster)  # the poller has published: its connection exists before the restart
    run = stale_run(user, lab_cluster)
    page = PageSocket(stack.url, f"/ws/runs/{run.pk}/", user)
    try:
        wait_until(lambda: (page.last("run.status") or {}).get("status") == "running", 30, "the page's run status")
        stack.redis.restart(down_seconds=1.0)
        time.sleep(3)  # the page is open (again) and current before the change
        lose_worker(run)
        wait_until(lambda: (page.last("run.status") or {}).get("status") == "interrupted", CHECK_SECONDS + MARGIN,
                   f"the run's interruption on the open page; it got {[m['type'] for m in page.messages]}")
        step = run.steps.get()
        assert (page.last("step.status") or {}).get("status") == "interrupted"
        assert page.last("step.status")["step"] == step.pk
    finally:
        page.close()


PUBLISHER = """
import sys
from upgrades import events
for line in sys.stdin:  # one message per line, sent by this process's one sender
    events.send_now("restart-test", {"type": "test.message", "n": int(line)})
"""


def test_messages_published_while_redis_is_down_arrive_in_order_when_it_is_back(redis_server, tmp_path):
    """A long-lived publisher process; the listener joins while the publisher is frozen
    (SIGSTOP), so that nothing it holds can be sent before anyone listens."""
    import os
    import signal

    from channels.layers import get_channel_layer

    log = tmp_path / "publisher.log"
    with open(log, "wb") as out:
        publisher = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", PUBLISHER], cwd=ROOT,
                                     env=child_env(), stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
    try:
        redis_server.stop()
        publisher.stdin.write(b"1\n2\n")
        publisher.stdin.flush()
        wait_until(lambda: "Redis unreachable" in log.read_text() or "not published" in log.read_text(), 30,
                   f"the publisher tried and failed: {log.read_text()[-2000:]}")
        time.sleep(1.5)  # a retry or two meanwhile
        publisher.send_signal(signal.SIGSTOP)
        redis_server.start()

        async def listen():
            layer = get_channel_layer()
            channel = await layer.new_channel()
            await layer.group_add("restart-test", channel)
            os.kill(publisher.pid, signal.SIGCONT)
            got = [await layer.receive(channel), await layer.receive(channel)]
            await asyncio.to_thread(lambda: (publisher.stdin.write(b"3\n"), publisher.stdin.flush()))
            got.append(await layer.receive(channel))
            return [m["n"] for m in got]

        try:
            assert asyncio.run(asyncio.wait_for(listen(), 30)) == [1, 2, 3]
        except TimeoutError:
            pytest.fail(f"messages lost; the publisher said: {log.read_text()[-2000:]}")
        text = log.read_text()
        assert text.count("Redis unreachable") == 1, text  # once for the outage, not once per retry
        assert text.count("Redis answers again") == 1, text
    finally:
        os.kill(publisher.pid, signal.SIGCONT)
        publisher.kill()
        publisher.wait(10)


# The check itself, in process (the channel layer on this test process's Redis): a change
# saved and never published reaches the page at its next check; a current page gets nothing.

def communicator_for(path, user):
    """A page's socket to the ASGI application in this process (call it outside the event loop)."""
    from channels.testing import WebsocketCommunicator

    from heportal.asgi import application
    from tests.test_live_output import session_headers

    return WebsocketCommunicator(application, path, headers=session_headers(user))


async def check(communicator):
    await communicator.send_json_to({"type": "check"})


def test_a_check_sends_the_cluster_state_only_when_it_differs(make_user):
    from tests.factories import make_polled_cluster

    cluster = make_polled_cluster()
    user = make_user("viewer")

    page = communicator_for(f"/ws/clusters/{cluster.pk}/", user)

    async def scenario():
        assert (await page.connect())[0]
        first = await page.receive_json_from(timeout=10)
        await check(page)
        assert await page.receive_nothing(timeout=1)
        await page.send_json_to(["not", "a", "check"])  # ignored
        await asyncio.to_thread(lambda: Host.objects.filter(cluster=cluster, name="he2.lab.local").update(
            local_maintenance=True, ha_state="LocalMaintenance", ha_score=0))
        await check(page)
        second = await page.receive_json_from(timeout=10)
        await check(page)
        assert await page.receive_nothing(timeout=1)
        await page.disconnect()
        return first, second

    first, second = asyncio.run(scenario())
    assert (he2_local(first), he2_local(second)) == (False, True)
    assert first["version"] != second["version"]


def test_a_check_sends_a_run_page_the_statuses_and_lines_it_missed(make_user, lab_cluster):
    from upgrades.models import StepOutput

    user = make_user("operator")
    run = make_run(user, lab_cluster.hosts.order_by("he_host_id").first(), ["echo one"])
    step = run.steps.get()

    def progress():  # saved, never published: as if every message were lost
        StepOutput.objects.create(step=step, seq=1, text="one")
        run.steps.update(status="running")
        UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)

    page = communicator_for(f"/ws/runs/{run.pk}/", user)

    async def scenario():
        assert (await page.connect())[0]
        backlog = [await page.receive_json_from(timeout=10) for _ in range(2)]
        await check(page)
        assert await page.receive_nothing(timeout=1)
        await asyncio.to_thread(progress)
        await check(page)
        missed = [await page.receive_json_from(timeout=10) for _ in range(3)]
        await check(page)
        assert await page.receive_nothing(timeout=1)
        await page.disconnect()
        return backlog, missed

    backlog, missed = asyncio.run(scenario())
    assert [(m["type"], m["status"]) for m in backlog] == [("step.status", "pending"), ("run.status", "pending")]
    assert missed[0] == {"type": "output.lines", "step": step.pk, "lines": [[1, "stdout", "one"]]}
    assert [(m["type"], m["status"]) for m in missed[1:]] == [("step.status", "running"), ("run.status", "running")]


def test_a_check_names_the_home_card_that_changed(make_user, monkeypatch):
    from tests.factories import make_polled_cluster
    from upgrades import homefeed

    monkeypatch.setattr(homefeed, "REFRESH_SECONDS", 0)  # else at the first check 4 s after the map's read

    cluster, other = make_polled_cluster(), make_polled_cluster(name="Other")
    user = make_user("viewer")

    page = communicator_for("/ws/home/", user)

    async def scenario():
        assert (await page.connect())[0]
        assert (await page.receive_json_from(timeout=10))["type"] == "home.ready"
        await check(page)
        assert await page.receive_nothing(timeout=1)
        await asyncio.to_thread(lambda: Host.objects.filter(cluster=other).update(ha_score=1800))
        await check(page)
        changed = await page.receive_json_from(timeout=10)
        await check(page)
        assert await page.receive_nothing(timeout=1)
        await page.disconnect()
        return changed

    assert asyncio.run(scenario()) == {"type": "home.changed", "cluster": other.pk, "run": None, "runs": False}
    assert cluster.pk != other.pk


# Last in the module: Playwright keeps an event loop running in this thread from here on.
def test_open_pages_in_a_browser_follow_after_a_redis_restart_and_after_losing_their_group(
        stack, lab, lab_cluster, browser, make_user, settings):
    """The pages' own code (static/js) in Chromium: the cluster and run pages after a
    restart; then a run page whose group Redis forgot while its socket stayed open (what a
    restart does to a socket that outlives it), which only the page's check repairs."""
    import redis
    from playwright.sync_api import expect

    from tests.test_browser import log_in

    wait_for_polled(lab_cluster)
    set_he2_local(lab, lab_cluster, False)
    operator = make_user("operator")
    run = stale_run(operator, lab_cluster)
    timeout = (CHECK_SECONDS + MARGIN) * 1000
    context = browser.new_context()
    try:
        cluster_page = context.new_page()
        log_in(cluster_page, stack.url, "operator")
        cluster_page.goto(f"{stack.url}/clusters/{lab_cluster.pk}/")
        he2 = cluster_page.locator("#ha-hosts tbody tr", has_text="he2.lab.local").locator(".ha-local")
        expect(he2).to_have_text("no", timeout=30_000)
        run_page = context.new_page()
        run_page.goto(f"{stack.url}/runs/{run.pk}/")
        expect(run_page.locator("#run-status")).to_have_text("running", timeout=30_000)
        stack.redis.restart(down_seconds=1.0)
        time.sleep(3)  # the pages are open (again) and current before the changes
        set_he2_local(lab, lab_cluster, True)
        lose_worker(run)
        expect(run_page.locator("#run-status")).to_have_text("interrupted", timeout=timeout)
        expect(he2).to_have_text("yes", timeout=timeout)

        second = stale_run(operator, lab_cluster)
        run_page.goto(f"{stack.url}/runs/{second.pk}/")
        group = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:group:run-{second.pk}"
        client = redis.Redis.from_url(stack.redis.url)
        wait_until(lambda: client.exists(group), 30, "the run page's socket joined its group")
        assert client.delete(group) == 1
        lose_worker(second)
        expect(run_page.locator("#run-status"), "the check joins again").to_have_text("interrupted", timeout=timeout)
    finally:
        context.close()
        set_he2_local(lab, lab_cluster, False)
