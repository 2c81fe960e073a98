"""Long-lived processes under real faults: PostgreSQL stopped for 10 s under the
HA poller (and its sweeper), both RQ workers and daphne; the work horse killed
by SIGTERM or SIGKILL; Redis stopped just as a job ends.

The outage test runs its processes on a PostgreSQL server and a Redis of its
own (tests/faults.py), so stopping them touches no other test; its data is
written by ``manage.py shell`` in that environment, the same code a person
would run, and read back through a database alias.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from tests.conftest import PASSWORD, ROOT, Processes, RedisServer, free_port, wait_until
from tests.faults import PrivatePostgres
from tests.factories import make_run
from tests.test_live_output import lab_host, numbers, wait_for_lines
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.models import Cluster, RunStatus, UpgradeRun
from upgrades.services import enqueue_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TICKS = "for i in $(seq 1 {n}); do echo tick $i; sleep 30; done"  # 0.5 s a tick at the lab's speed


def manage_shell(env, code):
    """Run ``code`` in ``manage.py shell`` with ``env``; its last output line, as JSON."""
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


SETUP = """
import json, os
from django.contrib.auth.models import Group, User
from django.test import Client
from upgrades import services
data = json.loads(os.environ["TEST_LAB"])
user = User.objects.create_user("operator", password=data["password"])
user.groups.add(Group.objects.get_or_create(name="operator")[0])
cluster = services.import_cluster(name="Lab", engine=data["engine"], password_file=data["password_file"],
                                  engine_vm=data.get("engine_vm"), hosts=data["hosts"],
                                  poll_interval=data["poll_interval"])
client = Client()
client.force_login(user)
print(json.dumps({"cluster": cluster.pk, "session": client.cookies["sessionid"].value}))
"""

NEW_RUN = """
import json, os
from datetime import timedelta
from django.contrib.auth.models import User
from django.db import connections
from django.utils import timezone
from tests.factories import make_run
from upgrades.models import Cluster, RunStatus, UpgradeRun
from upgrades.services import enqueue_run
spec = json.loads(os.environ["TEST_RUN"])
host = Cluster.objects.get(name="Lab").hosts.order_by("he_host_id", "name").first()
run = make_run(User.objects.get(username="operator"), host, spec["commands"])
if spec.get("emergency"):  # the emergency lane: its own queue and worker
    UpgradeRun.objects.filter(pk=run.pk).update(emergency=True)
    run.emergency = True
if spec.get("expired_approval"):
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL,
                                                approval_expires_at=timezone.now() - timedelta(seconds=1))
else:
    enqueue_run(run)
print(json.dumps(run.pk))
"""


def get(url, session=None):
    """(status, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session}"} if session else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return None, str(exc)


class PrivatePortal:
    """The portal's data on a PostgreSQL server and a Redis of the test's own: ``env`` for
    its processes, ``new_run`` to start one as a person would, ``run_row`` to read one."""

    def __init__(self, pg, redis_server, alias, lab, folder, blocker):
        self.pg, self.redis_server, self.alias, self.blocker = pg, redis_server, alias, blocker
        self.env = pg.env(REDIS_URL=redis_server.url, CHANNELS_PREFIX="heportal-dbfaults")
        password_file = folder / "engine-password"
        password_file.write_text(lab.manifest["engine"]["password"])
        self.ids = manage_shell({**self.env, "TEST_LAB": json.dumps({
            "engine": lab.manifest["engine"], "engine_vm": lab.manifest.get("engine_vm"),
            "hosts": lab.manifest["hosts"], "password_file": str(password_file),
            "poll_interval": 10 / lab.speed, "password": PASSWORD})}, SETUP)

    def new_run(self, commands, **extra):
        return manage_shell({**self.env, "TEST_RUN": json.dumps({"commands": commands, **extra})}, NEW_RUN)

    def read(self, query):
        with self.blocker.unblock():
            connections[self.alias].close()  # the server may have restarted since the last read
            return query()

    def run_row(self, pk):
        return self.read(lambda: UpgradeRun.objects.using(self.alias).get(pk=pk))

    def polled_at(self):
        return self.read(lambda: Cluster.objects.using(self.alias).get(pk=self.ids["cluster"]).polled_at)


@pytest.fixture
def private_portal(lab, tmp_path, django_db_blocker):
    folder = Path(tempfile.mkdtemp(prefix="hp-dbf-"))  # short: a unix socket's path is limited
    redis_server = RedisServer(folder / "redis")
    (folder / "redis").mkdir()
    redis_server.start()
    pg = PrivatePostgres(folder / "pg").init().start().create_database().migrate()
    with django_db_blocker.unblock():
        alias = pg.alias(f"private-{pg.port}")  # Django keeps a dropped alias's connection object
    try:
        yield PrivatePortal(pg, redis_server, alias, lab, tmp_path, django_db_blocker)
    finally:
        with django_db_blocker.unblock():
            pg.drop_alias(alias)
        pg.destroy()
        redis_server.stop()


def test_a_ten_second_database_outage_is_ridden_out_by_poller_sweeper_workers_and_web(private_portal, tmp_path):
    portal_db = private_portal
    pg, env, ids = portal_db.pg, portal_db.env, portal_db.ids
    new_run, run_row, polled_at = portal_db.new_run, portal_db.run_row, portal_db.polled_at
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    procs = Processes(tmp_path)
    port = free_port()
    portal = f"http://127.0.0.1:{port}"
    try:
        poller = procs.start("ha_poller", [sys.executable, "manage.py", "ha_poller"], env=env)
        worker = procs.start("rqworker", [sys.executable, "manage.py", "rqworker", "default"], env=env)
        procs.start("rqworker-emergency", [sys.executable, "manage.py", "rqworker", "emergency"], env=env)
        procs.start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "heportal.asgi:application"], env=env)
        wait_until(lambda: get(portal + "/", ids["session"])[0] == 200, 60, "the home page served")
        wait_until(polled_at, 60, "a first HA poll")

        pg.stop()
        down_at = time.monotonic()
        # During the outage a page says so (503), not a traceback; asked several times.
        during = [get(portal + "/", ids["session"]) for _ in range(3)]
        time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        procs.check_alive()  # on the code before, ha_poller had exited by now
        pg.start()
        back_at = timezone.now()

        for status, body in during:
            assert status == 503 and "Database unavailable" in body, (status, body[:300])
        # The poller lives and HA state is read again.
        wait_until(lambda: (polled_at() or back_at) > back_at, 60, "an HA poll after the outage")
        assert poller.poll() is None
        assert wait_until(lambda: get(portal + "/", ids["session"])[0] == 200, 60, "pages again after the outage")
        # Both workers execute a new run.
        done = [new_run(["echo after the outage"]), new_run(["echo emergency lane"], emergency=True)]
        for pk in done:
            wait_until(lambda: run_row(pk).status in ("succeeded", "failed"), 60, "the new run to end")
            assert run_row(pk).status == RunStatus.SUCCEEDED, run_row(pk).error
        # The sweeper closes an approval request past its expiry ...
        expired = new_run(["echo never"], expired_approval=True)
        wait_until(lambda: run_row(expired).status != RunStatus.AWAITING_APPROVAL, 60, "the request to expire")
        assert (run_row(expired).status, run_row(expired).error) == ("cancelled", "The approval request expired.")
        # ... and marks the run of a worker killed outright (parent and horse) interrupted.
        lost = new_run([TICKS.format(n=300), "echo never"])
        executor = wait_until(lambda: run_row(lost).executor, 60, "the long run to be claimed")
        os.kill(worker.pid, signal.SIGKILL)
        os.kill(int(executor.split(":")[1]), signal.SIGKILL)
        worker.wait(10)
        procs.procs = [(name, proc) for name, proc in procs.procs if proc is not worker]
        wait_until(lambda: run_row(lost).status != RunStatus.RUNNING, 90, "the sweeper to find the lost run")
        assert run_row(lost).status == RunStatus.INTERRUPTED and "no heartbeat since" in run_row(lost).error
        procs.check_alive()
    finally:
        procs.stop()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("ha_poller", "daphne")}
    # Each process said it once, and said when it was back.
    for name, text in logs.items():
        assert text.count("database unavailable") == 1, (name, text[-3000:])
        assert "database back after" in text, (name, text[-3000:])
    for name in ("rqworker", "rqworker-emergency"):
        text = (tmp_path / f"{name}.log").read_text()
        assert "unhandled exception, quitting" not in text, (name, text[-3000:])
    for error in ("OperationalError", "InterfaceError"):
        assert error not in logs["ha_poller"], logs["ha_poller"][-3000:]
    assert "Internal Server Error" not in logs["daphne"], logs["daphne"][-3000:]


def _horse_of(run):
    run.refresh_from_db()
    return int(run.executor.split(":")[1])  # host:pid:token; the pid is the work horse's


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_worker_marks_the_run_of_a_killed_work_horse_interrupted_at_once(rq_worker, lab_cluster, make_user,
                                                                            sig):
    # No ha_poller here: the sweeper cannot be the one that marks the run.
    operator = make_user("operator")
    run = make_run(operator, lab_host(lab_cluster), [TICKS.format(n=30), "echo after"])
    first, second = run.steps.order_by("order")
    enqueue_run(run)
    wait_for_lines(first, 3)
    os.kill(_horse_of(run), sig)
    wait_for_status(run, [RunStatus.INTERRUPTED, RunStatus.FAILED, RunStatus.SUCCEEDED], 60)
    first.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED, run.error
    assert f"was killed by {sig.name}" in run.error
    assert (first.status, first.error) == ("interrupted", run.error)
    rq_worker.check_alive()
    # The run resumes: the cut-off read-only step runs again, then the next.
    services.resume_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED], 120)
    second.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert list(second.output.values_list("text", flat=True)) == ["after"]


def test_the_worker_rides_out_redis_stopping_as_a_job_ends(rq_worker, lab_cluster, make_user, redis_server):
    operator = make_user("operator")
    run = make_run(operator, lab_host(lab_cluster), [TICKS.format(n=6)])
    step = run.steps.get()
    enqueue_run(run)
    wait_for_lines(step, 1)
    redis_server.stop()
    try:
        # The job ends (the run row says so) while Redis is away; its worker must stay.
        wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED], 60)
        # Redis stays away until the parent has met it there (the horse may retry its own
        # last writes for a while first): the old parent quit right then.
        log_file = rq_worker.log_dir / "rqworker.log"
        wait_until(lambda: "Redis unavailable" in log_file.read_text() or rq_worker.check_alive(), 60,
                   "the worker's parent meeting Redis stopped")
        time.sleep(2)
        rq_worker.check_alive()
    finally:
        redis_server.start()
    assert run.status == RunStatus.SUCCEEDED, run.error
    rq_worker.check_alive()
    again = make_run(operator, lab_host(lab_cluster), ["echo again"])
    enqueue_run(again)
    wait_for_status(again, [RunStatus.SUCCEEDED, RunStatus.FAILED], 90)
    assert again.status == RunStatus.SUCCEEDED, again.error
    log = (rq_worker.log_dir / "rqworker.log").read_text()
    assert "Redis is back" in log, log[-3000:]


def test_a_run_executing_through_a_25_second_outage_is_not_taken_for_lost(private_portal, tmp_path):
    """No heartbeat can be written while the database is away: the sweeper must not read
    the stale heartbeat of a live worker, once the database is back, as a lost one."""
    procs = Processes(tmp_path)
    try:
        procs.start("ha_poller", [sys.executable, "manage.py", "ha_poller"], env=private_portal.env)
        procs.start("rqworker", [sys.executable, "manage.py", "rqworker", "default"], env=private_portal.env)
        run = private_portal.new_run(["sleep 4800"])  # 80 s at the lab's speed, no output meanwhile
        wait_until(lambda: private_portal.run_row(run).executor, 60, "the run to be claimed")
        private_portal.pg.stop()
        time.sleep(25)  # past the sweeper's LOST_AFTER (20 s)
        procs.check_alive()
        private_portal.pg.start()
        wait_until(lambda: private_portal.run_row(run).status != RunStatus.RUNNING, 150, "the run to end")
        # How the step's end is recorded after an outage is another guarantee (the
        # output and the step's result); here: the sweeper did not take the live run.
        row = private_portal.run_row(run)
        assert row.status != RunStatus.INTERRUPTED and "no heartbeat since" not in row.error, row.error
        procs.check_alive()
    finally:
        procs.stop()
