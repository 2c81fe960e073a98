"""The live path under real faults: idle sockets, a Redis restart, a killed
worker, Redis down at start, and simultaneous starts on one cluster."""
import asyncio
import json
import os
import signal
import threading
import time

import aiohttp
import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import wait_until
from tests.factories import make_run
from tests.test_live_output import lab_host, numbers, wait_for_lines
from tests.viewers import RunViewer, session_cookie
from upgrades import events
from upgrades.ha import cluster_payload
from upgrades.models import AuditEvent, RunStatus, StepOutput, UpgradeRun
from upgrades.services import enqueue_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class in_background(threading.Thread):
    """Runs ``fn(*args)`` in a thread; ``join()`` re-raises what it raised."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.error = fn, args, None
        self.start()

    def run(self):
        try:
            self.fn(*self.args)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout=None):
        super().join(timeout)
        if self.error is not None:
            raise self.error


def wait_for_status(run, statuses, timeout):
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, (
            f"run still {run.status} after {timeout} s (executor {run.executor!r}, heartbeat {run.heartbeat_at}, "
            f"job {run.job_id} queued {run.queued_at}); steps: "
            f"{list(run.steps.values_list('order', 'status', 'exit_code', 'error'))}")
        time.sleep(0.2)


def test_idle_run_and_cluster_websockets_stay_open_and_daphne_logs_no_error(live_portal, lab_cluster, make_user):
    user = make_user("operator")
    run = make_run(user, lab_host(lab_cluster), ["true"])  # never queued: its socket stays idle
    cookie = session_cookie(user)
    ws_base = live_portal.replace("http://", "ws://")
    headers = {"Cookie": f"sessionid={cookie}", "Origin": live_portal}
    log_before = live_portal.log.read_text()
    ha_update = cluster_payload(lab_cluster)

    async def idle_then_ping():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{ws_base}/ws/runs/{run.pk}/", headers=headers, heartbeat=None) as run_ws, \
                    session.ws_connect(f"{ws_base}/ws/clusters/{lab_cluster.pk}/", headers=headers,
                                       heartbeat=None) as cluster_ws:
                for ws in (run_ws, cluster_ws):  # the snapshot each page gets on connect
                    while True:
                        msg = await ws.receive(timeout=10)
                        assert msg.type == aiohttp.WSMsgType.TEXT
                        if json.loads(msg.data)["type"] in ("run.status", "ha.update"):
                            break
                await asyncio.sleep(30)  # the idle spell: six of redis-py's default timeouts
                assert not run_ws.closed and not cluster_ws.closed, (run_ws.close_code, cluster_ws.close_code)
                # Still subscribed, not just open: a message published now arrives.
                await asyncio.to_thread(events.send_now, events.run_group(run.pk),
                                        {"type": "run.status", "run": run.pk, "status": "pending"})
                await asyncio.to_thread(events.send_now, events.cluster_group(lab_cluster.pk), ha_update)
                run_msg = await run_ws.receive(timeout=10)
                cluster_msg = await cluster_ws.receive(timeout=10)
                return json.loads(run_msg.data), json.loads(cluster_msg.data)

    run_event, cluster_event = asyncio.run(idle_then_ping())
    assert run_event == {"type": "run.status", "run": run.pk, "status": "pending"}
    assert cluster_event["type"] == "ha.update" and cluster_event["cluster"] == lab_cluster.pk
    new_log = live_portal.log.read_text()[len(log_before):]
    assert "Exception inside application" not in new_log
    assert "Timeout" not in new_log


def test_a_redis_restart_mid_run_loses_no_line_and_keeps_the_exit_status(live_portal, lab_cluster, make_user,
                                                                        redis_server):
    user = make_user("operator")
    # 40 lines, one every 12 simulated seconds (0.2 s at the lab's speed).
    run = make_run(user, lab_host(lab_cluster), [f"for i in {numbers(40)}; do echo line $i; sleep 12; done"])
    step = run.steps.get()
    viewer = RunViewer(live_portal, run.pk, session_cookie(user))
    watching = in_background(viewer.follow_until_done, 120)
    enqueue_run(run)
    wait_for_lines(step, 10)
    # From this thread: the server dies with the thread that started it.
    redis_server.restart(down_seconds=2.0)
    stored_at_restart = StepOutput.objects.filter(step=step).count()
    watching.join()
    assert stored_at_restart < 40, "the restart came too late to test anything"
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 30)
    step.refresh_from_db()
    assert (run.status, step.status, step.exit_code, step.error) == ("succeeded", "succeeded", 0, "")
    stored = list(step.output.order_by("seq").values_list("seq", "text"))
    assert stored == [(i, f"line {i}") for i in range(1, 41)]
    # Every line once, in order, although the socket broke with Redis.
    assert viewer.status == "succeeded"
    assert viewer.lines[step.pk] == stored


def test_a_killed_worker_is_found_within_30_s_and_the_run_marked_interrupted(rq_worker, ha_poller, lab_cluster,
                                                                            make_user):
    user = make_user("operator")
    run = make_run(user, lab_host(lab_cluster), [f"for i in {numbers(300)}; do echo tick $i; sleep 30; done",
                                                 "echo never"])
    first, second = run.steps.order_by("order")
    enqueue_run(run)
    wait_for_lines(first, 5)
    run.refresh_from_db()
    pid = int(run.executor.split(":")[1])  # host:pid:token of the process executing the run
    # The worker's parent would mark the run at once (tests/test_db_faults_processes.py); stopped,
    # it stands for a machine gone with both, which only the sweeper can tell.
    parent = dict(rq_worker.procs)["rqworker"]
    os.kill(parent.pid, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for_status(run, [RunStatus.INTERRUPTED, RunStatus.FAILED, RunStatus.SUCCEEDED], 40)
    finally:
        os.kill(parent.pid, signal.SIGCONT)
    assert run.status == RunStatus.INTERRUPTED
    assert time.monotonic() - killed_at <= 30
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "interrupted" and "no heartbeat since" in first.error
    assert second.status == "pending"
    kept = list(first.output.order_by("seq").values_list("text", flat=True))
    assert len(kept) >= 5 and kept == [f"tick {i}" for i in range(1, len(kept) + 1)]
    event = AuditEvent.objects.get(action="run.interrupted", target_id=str(run.pk))
    assert event.details["steps"] == [f"1. {first.title}"]
    assert run.executor == "" and run.finished_at is not None


def test_a_run_started_while_redis_is_down_is_kept_and_starts_when_redis_is_back(rq_worker, ha_poller, lab_cluster,
                                                                                make_user, redis_server):
    client = Client()
    client.force_login(make_user("operator"))
    host = lab_host(lab_cluster)
    redis_server.stop()
    response = client.post(reverse("start-diagnostic", args=[host.pk]), follow=True)
    assert response.status_code == 200
    assert b"The job queue is unreachable right now." in response.content
    run = UpgradeRun.objects.get()
    assert (run.status, run.queued_at) == (RunStatus.PENDING, None)
    assert AuditEvent.objects.filter(action="run.start", target_id=str(run.pk)).exists()
    redis_server.start()
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert run.status == RunStatus.SUCCEEDED
    assert run.queued_at is not None


def test_four_simultaneous_starts_on_one_cluster_make_one_run(lab_cluster, make_user, redis_server, settings,
                                                              monkeypatch):
    # Jobs go to a queue no worker listens on, so the winner stays active while the others try.
    monkeypatch.setitem(settings.RQ_QUEUES, "emergency",  # the diagnostic's lane
                        {**settings.RQ_QUEUES["emergency"], "URL": redis_server.url.replace("db=0", "db=1")})
    users = [make_user("operator", f"operator{n}") for n in range(4)]
    hosts = list(lab_cluster.hosts.order_by("he_host_id"))
    clients = []
    for user in users:
        client = Client()
        client.force_login(user)
        clients.append(client)
    barrier = threading.Barrier(len(clients))
    responses = [None] * len(clients)

    def post(n):
        barrier.wait()
        # Two of them on the same host, the others on other hosts of the cluster.
        responses[n] = clients[n].post(reverse("start-diagnostic", args=[hosts[min(n, 2)].pk]))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    run = UpgradeRun.objects.get()  # exactly one
    locations = sorted(r["Location"] for r in responses)
    cluster_url = reverse("cluster-detail", args=[lab_cluster.pk])
    assert locations == sorted([reverse("run-detail", args=[run.pk])] + [cluster_url] * 3)
    loser = next(n for n, r in enumerate(responses) if r["Location"] == cluster_url)
    page = clients[loser].get(cluster_url).content.decode()
    assert (f"Cluster Lab already has an emergency-lane run: #{run.pk} Diagnostic (pending). One maintenance "
            "action or diagnostic at a time. Nothing was started.") in page
    assert AuditEvent.objects.filter(action="run.start").count() == 1


def test_the_workers_are_counted_again_after_redis_comes_back_empty(rq_worker, redis_server):
    """RQ registers a worker only at birth; the metric and Worker.count read that registration."""
    import django_rq
    from rq import Worker

    queues = [django_rq.get_queue(name) for name in ("default", "emergency")]

    def counts():
        return [Worker.count(queue.connection, queue=queue) for queue in queues]

    deadline = time.monotonic() + 30
    while counts() != [1, 1]:
        assert time.monotonic() < deadline, f"the session's workers were never both registered: {counts()}"
        time.sleep(0.2)
    redis_server.restart(down_seconds=1.0)
    assert counts() == [0, 0], "the restarted Redis kept its data: nothing tested"
    deadline = time.monotonic() + 30
    while counts() != [1, 1]:
        assert time.monotonic() < deadline, f"workers registered after the restart: {counts()}"
        time.sleep(0.2)
    worker = Worker.all(connection=queues[0].connection, queue=queues[0])[0]
    assert worker.birth_date is not None and worker.get_state() in ("idle", "busy")


def test_an_idle_worker_is_back_within_seconds_after_each_of_several_redis_restarts(rq_worker, redis_server):
    """RQ's wait between Redis tries doubles up to 60 s and, while the worker stays idle,
    never starts again from 1 s: the fifth outage left it away for half a minute, not
    registered and not taking runs. ``Worker.max_connection_wait_time`` caps it."""
    import django_rq
    from rq import Worker

    queue = django_rq.get_queue("default")
    back_after = []
    for _ in range(6):
        redis_server.restart(down_seconds=0.5)
        started = time.monotonic()
        while Worker.count(queue.connection, queue=queue) != 1:
            assert time.monotonic() - started < 8, f"not back 8 s after restart {len(back_after) + 1}: {back_after}"
            time.sleep(0.1)
        back_after.append(round(time.monotonic() - started, 1))
    assert max(back_after) <= 2 + 1.5, back_after


def test_a_redis_outage_is_said_once_in_the_workers_log_and_its_end_once(rq_worker, redis_server):
    """RQ logs every failed try, from its listening loop and its pubsub thread: tried every
    2 s, that was a line a second per worker for as long as Redis is away. Now one a minute."""
    import django_rq
    from rq import Worker

    queue = django_rq.get_queue("default")
    log_file = rq_worker.log_dir / "rqworker.log"

    def said(text):
        return log_file.read_text(errors="replace").count(text)

    # Not still coming back from an earlier test's outage.
    wait_until(lambda: Worker.count(queue.connection, queue=queue) == 1, 30, "the worker registered")
    time.sleep(1)
    tries, backs = said("could not connect to Redis instance"), said("Redis is back")
    redis_server.restart(down_seconds=7.0)  # eight tries or more from the two, each 2 s apart
    wait_until(lambda: said("Redis is back") > backs, 10, "the worker saying Redis is back")
    time.sleep(2.5)  # a try after it (a connection from before the outage) would be said by now
    assert said("could not connect to Redis instance") - tries == 1
    assert said("Redis is back") - backs == 1
