"""A worker asked to stop (SIGTERM) hands its run over after the current step,
instead of holding the stop for the whole run; another worker goes on from the
next step. Real ``manage.py rqworker`` processes, real SSH to the lab.

The workers here use a Redis of their own: the session's workers (``rq_worker``)
must not take the run or the job queued at the hand-over.
"""
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis
from rq import Queue

from tests.conftest import ROOT, RedisServer, child_env, die_with_parent, wait_until
from tests.factories import make_run
from upgrades import jobs, services
from upgrades import state as cluster_state
from upgrades.models import AuditEvent, RunStatus, StepStatus
from upgrades.remote.ssh import SshPool
from upgrades.runbooks import register
from upgrades.runbooks.base import Check, Param, Runbook, Ssh, Wait

WAIT_LONG = register(Runbook(
    slug="test-handover-wait", name="Test: a long wait", description="Waits up to 10 min for global maintenance.",
    params=(Param("host", "Host", kind="host"),),
    steps=(Ssh("before", "Before", "echo before"),
           Wait("gm", "Wait for global maintenance", Check("global-maintenance", {"on": True}), timeout=600),
           Ssh("after", "After", "echo after")),
))

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TICKS = "for i in $(seq 1 {n}); do echo tick $i; sleep 30; done"  # 0.5 s a tick at the lab's speed


@pytest.fixture
def private_redis():
    folder = Path(tempfile.mkdtemp(prefix="hp-ho-"))  # short: a unix socket's path is limited
    server = RedisServer(folder).start()
    yield server
    server.stop()


class Workers:
    """``manage.py rqworker default`` processes on ``redis_url``, their logs in ``folder``."""

    def __init__(self, redis_url, folder):
        self.env = {**child_env(), "REDIS_URL": redis_url}
        self.folder, self.procs = folder, {}

    def start(self, name):
        log = open(self.folder / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen([sys.executable, "manage.py", "rqworker", "default"], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)
        return self.procs[name]

    def log(self, name):
        return (self.folder / f"{name}.log").read_text()

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def workers(private_redis, tmp_path):
    running = Workers(private_redis.url, tmp_path)
    yield running
    running.stop_all()


def lab_read(lab, host, command):
    client = lab.connect(host)
    try:
        return client.exec_command(command)[1].read().decode()
    finally:
        client.close()


def executor_pid(event):
    return int(event.details["executor"].split(":")[1])


def test_sigterm_hands_the_run_over_after_the_current_step_and_another_worker_finishes_it(
        lab, lab_cluster, make_user, private_redis, workers):
    operator = make_user("operator")
    host = lab_cluster.hosts.order_by("he_host_id").first()
    marker = f"/tmp/handover-{uuid.uuid4().hex[:8]}"
    run = make_run(operator, host, [f"echo one >> {marker}; " + TICKS.format(n=8),
                                    f"echo two >> {marker}", f"echo three >> {marker}"])
    first, second, third = run.steps.order_by("order")
    worker_a = workers.start("worker-a")
    Queue("default", connection=redis.Redis.from_url(private_redis.url)).enqueue(jobs.advance_run, run.pk)
    wait_until(lambda: first.output.filter(text="tick 2").exists(), 90, "the first step under way on worker A")

    worker_a.send_signal(signal.SIGTERM)
    worker_a.wait(timeout=120)
    # Worker A has exited with the run not done: it waited for its step, not for the run.
    run.refresh_from_db()
    first.refresh_from_db()
    second.refresh_from_db()
    assert worker_a.returncode == 0, workers.log("worker-a")[-3000:]
    assert first.status == StepStatus.SUCCEEDED and first.output.filter(text="tick 8").exists()
    assert (second.status, third.status) == (StepStatus.PENDING, StepStatus.PENDING)
    assert (run.status, run.executor) == (RunStatus.RUNNING, ""), run.error
    assert run.queued_at is not None  # queued again, for whichever worker comes next
    handover = AuditEvent.objects.get(action="run.handover", target_id=str(run.pk))
    assert handover.details["next_step"] == "2. Step 2"
    assert "asked to stop (SIGTERM)" in handover.details["reason"]
    assert "is handed over to another worker after the current step" in workers.log("worker-a")

    workers.start("worker-b")
    wait_until(lambda: run.refresh_from_db() or run.status not in (RunStatus.RUNNING, RunStatus.PENDING), 120,
               "worker B finishing the run")
    assert run.status == RunStatus.SUCCEEDED, run.error
    # Each step ran once: the first on worker A, the others on worker B.
    assert lab_read(lab, "he1", f"cat {marker}").split() == ["one", "two", "three"]
    taken = list(AuditEvent.objects.filter(action="run.running", target_id=str(run.pk)).order_by("pk"))
    assert len(taken) == 2 and taken[0].details["executor"] == handover.details["executor"]
    assert executor_pid(taken[0]) != executor_pid(taken[1])
    assert [s.output.filter(stream="stdout").count() for s in run.steps.order_by("order")] == [8, 0, 0]


def test_a_second_sigterm_stops_the_worker_at_once_and_the_run_is_interrupted(
        lab, lab_cluster, make_user, private_redis, workers):
    operator = make_user("operator")
    run = make_run(operator, lab_cluster.hosts.order_by("he_host_id").first(), [TICKS.format(n=600), "echo after"])
    first = run.steps.order_by("order").first()
    worker = workers.start("worker")
    Queue("default", connection=redis.Redis.from_url(private_redis.url)).enqueue(jobs.advance_run, run.pk)
    wait_until(lambda: first.output.filter(text="tick 2").exists(), 90, "the step under way")
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "is handed over to another worker" in workers.log("worker"), 30, "the hand-over asked")
    time.sleep(1.5)  # RQ ignores a second signal within 1 s of the first (a pool's duplicate)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    run.refresh_from_db()
    first.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED and "was killed by SIGKILL" in run.error, run.error
    assert first.status == StepStatus.INTERRUPTED
    assert not AuditEvent.objects.filter(action="run.handover").exists()


def test_a_long_wait_is_a_safe_point_it_starts_again_on_the_next_worker(fresh_lab_cluster, make_user, private_redis,
                                                                       workers):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab  # a lab of its own: it goes to global maintenance
    operator = make_user("operator")
    with SshPool() as pool:
        state = cluster_state.read(cluster, pool)
    run = services.start_run(cluster=cluster, slug=WAIT_LONG.slug, params={"host": "he1.lab.local"}, user=operator,
                             acknowledge=True, state=state, queue=False)
    before, wait, after = run.steps.order_by("order")
    worker_a = workers.start("worker-a")
    Queue("default", connection=redis.Redis.from_url(private_redis.url)).enqueue(jobs.advance_run, run.pk)
    wait_until(lambda: wait.output.filter(text__startswith="seen: ").exists(), 90, "the wait under way on worker A")

    worker_a.send_signal(signal.SIGTERM)
    worker_a.wait(timeout=60)  # not the wait's 10 minutes
    wait.refresh_from_db()
    run.refresh_from_db()
    assert wait.status == StepStatus.PENDING, (wait.status, wait.error)
    assert wait.output.filter(text="--- its worker is stopping: the wait starts again on another worker ---").exists()
    assert (run.status, run.executor) == (RunStatus.RUNNING, "")
    assert AuditEvent.objects.filter(action="run.handover", details__next_step="2. Wait for global maintenance")

    client = lab.connect("he1")
    try:
        assert client.exec_command("hosted-engine --set-maintenance --mode=global")[1].channel.recv_exit_status() == 0
    finally:
        client.close()
    workers.start("worker-b")
    wait_until(lambda: run.refresh_from_db() or run.status not in (RunStatus.RUNNING, RunStatus.PENDING), 120,
               "worker B finishing the run")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert list(before.output.values_list("text", flat=True)) == ["before"]  # not run again
    assert wait.output.filter(text__startswith="waiting until ").count() == 2
    assert list(after.output.values_list("text", flat=True)) == ["after"]
