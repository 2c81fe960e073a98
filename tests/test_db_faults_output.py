"""A database that goes away while a step prints: no line lost, no number reused, the
step's end recorded with the command's real exit status, and no step left running in
a stopped run.

The worker (and poller) of these tests run on a database of the test's own, a
PostgreSQL server (tests/faults.PrivatePostgres) or a SQLite file, with a Redis of
their own: stopping or locking that database stalls no other test. Both kinds run in
either half of the CI. The lab's hosts run the commands in real bash; the test reads
back what they printed from the database and compares.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, Processes, RedisServer, child_env, wait_until
from tests.faults import PrivatePostgres, SqliteLock

LINES = 3000
# Numbered lines, a short pause every 10 (the lab's sleep is scaled: `sleep 3` is 0.05 s).
PRINTS = f"for i in $(seq 1 {LINES}); do echo line $i; [ $((i % 10)) = 0 ] && sleep 3; done; echo done"
PRINTED = [f"line {i}" for i in range(1, LINES + 1)] + ["done"]
PRINTED_SHORT = PRINTED[:200] + ["done"]

START = """
import json, os
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from upgrades import services
from upgrades.models import Cluster
from tests.factories import make_run
m = json.loads(os.environ["LAB_MANIFEST"])
cluster = Cluster.objects.filter(name="Lab").first() or services.import_cluster(
    name="Lab", engine=m["engine"], password_file=os.environ["LAB_PASSWORD_FILE"], engine_vm=m.get("engine_vm"),
    hosts=m["hosts"], poll_interval=1)
user, _ = get_user_model().objects.get_or_create(username="operator")
user.groups.add(Group.objects.get_or_create(name="operator")[0])
host = cluster.hosts.order_by("he_host_id").first()
run = make_run(user, host, json.loads(os.environ["COMMANDS"]))
services.enqueue_run(run)
print(json.dumps(run.pk))
"""

STATE = """
import json, os
from upgrades.models import UpgradeRun
run = UpgradeRun.objects.get(pk=int(os.environ["RUN"]))
lines = os.environ.get("LINES") == "1"
print(json.dumps({"status": run.status, "error": run.error, "executor": run.executor, "steps": [
    {"pk": s.pk, "status": s.status, "exit_code": s.exit_code, "error": s.error, "count": s.output.count(),
     **({"lines": list(s.output.order_by("seq").values_list("seq", "text"))} if lines else {})}
    for s in run.steps.order_by("order")]}))
"""

ACT = """
import json, os
from django.contrib.auth import get_user_model
from upgrades import services
from upgrades.models import RunStep
user = get_user_model().objects.get(username="operator")
step = RunStep.objects.select_related("run").get(pk=int(os.environ["STEP"]))
getattr(services, os.environ["ACTION"])(step=step, user=user)
print(json.dumps(True))
"""


class Portal:
    """A worker (and, when asked, the HA poller with its sweeper) on a database of the
    test's own; ``shell`` runs a script against that database in a child process."""

    def __init__(self, folder, lab, database_url, **env):
        self.folder, self.lab = Path(folder), lab
        (self.folder / "redis").mkdir(parents=True)
        self.redis = RedisServer(self.folder / "redis").start()
        password = self.folder / "engine-password"
        password.write_text(lab.manifest["engine"]["password"])
        self.env = {**child_env(), "DATABASE_URL": database_url, "REDIS_URL": self.redis.url,
                    "CHANNELS_PREFIX": "db-faults", "LAB_MANIFEST": json.dumps(lab.manifest),
                    "LAB_PASSWORD_FILE": str(password), **env}
        self.procs = Processes(self.folder)

    def migrate(self):
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=self.env,
                       check=True)
        return self

    def start_worker(self):
        self.procs.start("rqworker", [sys.executable, "manage.py", "rqworker", "default"], env=self.env)
        return self

    def start_poller(self):
        self.procs.start("ha_poller", [sys.executable, "manage.py", "ha_poller"], env=self.env)

    def shell(self, code, check=True, **env):
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, capture_output=True,
                              text=True, env={**self.env, **env}, timeout=120)
        if done.returncode:
            if check:
                raise AssertionError(f"the script failed: {done.stderr[-2000:]}")
            return None
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start_run(self, *commands):
        return self.shell(START, COMMANDS=json.dumps(list(commands)))

    def state(self, run_id, lines=False):
        """The run as stored; None while the database does not answer."""
        return self.shell(STATE, check=False, RUN=str(run_id), LINES="1" if lines else "0")

    def act(self, action, step_pk):
        return self.shell(ACT, ACTION=action, STEP=str(step_pk))

    def stored_lines(self, run_id, step=0):
        return self.state(run_id, lines=True)["steps"][step]["lines"]

    def close(self):
        self.procs.stop()
        self.redis.stop()


@pytest.fixture
def folder():
    # Short: the private Redis listens on a unix socket (at most 107 characters).
    path = Path(tempfile.mkdtemp(prefix="dbf-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def postgres(folder):
    server = PrivatePostgres(folder / "pg").init().start().create_database()
    yield server
    server.destroy()


def ended(portal, run_id):
    state = portal.state(run_id)
    return state if state and state["status"] not in ("pending", "running") else None


def printed_so_far(portal, run_id, count):
    state = portal.state(run_id)
    return state and state["steps"][0]["count"] >= count


def assert_every_line_once(lines, expected):
    seqs, texts = [seq for seq, _ in lines], [text for _, text in lines]
    assert seqs == list(range(1, len(lines) + 1)), "sequence numbers with gaps or reused"
    stored = set(texts)
    missing = [t for t in expected if t not in stored]
    assert texts == expected, f"{len(missing)} lines missing (first: {missing[:3]}), {len(texts)} stored"


@pytest.mark.parametrize("down_seconds", [3.0, 0.25])
def test_postgresql_stopped_while_a_step_prints_loses_no_line_and_the_step_and_run_succeed(
        lab, folder, postgres, down_seconds):
    portal = Portal(folder, lab, postgres.url).migrate().start_worker()
    try:
        run_id = portal.start_run(PRINTS)
        wait_until(lambda: printed_so_far(portal, run_id, 300), 120, "the step printing")
        postgres.restart(down_seconds)  # pg_ctl -m fast: every connection is ended
        state = wait_until(lambda: ended(portal, run_id), 240, "the run's end")
        step = state["steps"][0]
        assert (state["status"], state["error"]) == ("succeeded", ""), state
        assert (step["status"], step["exit_code"], step["error"]) == ("succeeded", 0, ""), step
        assert_every_line_once(portal.stored_lines(run_id), PRINTED)
    finally:
        portal.close()


def test_sqlite_locked_by_another_process_for_40_s_loses_no_line_and_the_step_and_run_succeed(lab, folder):
    """The command ends while the database is locked: its end waits for it. Past 2,000
    characters the kept lines go to a file (OUTPUT_UNSTORED_CHARS), read back in order.
    The HA poller's sweeper runs meanwhile: the heartbeats the lock held back are not
    taken for a lost worker."""
    path = folder / "portal.sqlite3"
    portal = Portal(folder, lab, f"sqlite:///{path}", OUTPUT_UNSTORED_CHARS="2000").migrate().start_worker()
    try:
        run_id = portal.start_run(PRINTS)
        portal.start_poller()  # its sweeper must not take the heartbeat the lock refused for a lost worker
        wait_until(lambda: printed_so_far(portal, run_id, 300), 120, "the step printing")
        with SqliteLock(path, 40) as lock:
            lock.wait()
        state = wait_until(lambda: ended(portal, run_id), 240, "the run's end")
        step = state["steps"][0]
        assert (state["status"], state["error"]) == ("succeeded", ""), state
        assert (step["status"], step["exit_code"], step["error"]) == ("succeeded", 0, ""), step
        assert_every_line_once(portal.stored_lines(run_id), PRINTED)
        assert "kept in a temporary file" in (folder / "rqworker.log").read_text()
        portal.procs.check_alive()  # the poller swept all along
    finally:
        portal.close()


def test_lines_kept_past_the_memory_bound_come_back_from_the_file_in_order():
    from upgrades.output import _Unstored

    kept = _Unstored(limit=100)
    rows = [(7, seq, "stdout", f"line {seq}") for seq in range(1, 201)]
    for start in range(0, 200, 30):
        kept.add(rows[start:start + 30])
    assert len(kept) == 200 and kept.chars <= 100 and kept._file is not None
    back = []
    while head := kept.head():
        back.extend(head[:7])
        kept.drop(7)  # stored a few at a time, as the flusher does when a try fails half-way
    assert back == rows and len(kept) == 0 and kept._file is None


def test_a_step_end_the_database_refused_longer_than_the_worker_waits_is_interrupted_and_retried(lab, folder):
    """SQLite locked from before the command ends, past DB_WAIT_SECONDS (2 s here) and
    SQLite's own 30 s wait: the worker gives up on the step's end, then releases the
    run once the lock is gone. The step is not left running in the stopped run: it is
    interrupted, saying why, and a retry runs it to success."""
    path = folder / "portal.sqlite3"
    portal = Portal(folder, lab, f"sqlite:///{path}", DB_WAIT_SECONDS="2").migrate().start_worker()
    try:
        # 200 lines, then 20 s (the lab's sleep is scaled) before the command ends. Locked
        # from then on for 70 s: the step's end (2 s, then one try of SQLite's 30 s) is
        # refused, the run's release (its next 30 s) is not, however late this lock comes
        # within 12 s.
        run_id = portal.start_run("for i in $(seq 1 200); do echo line $i; done; sleep 1200; echo done")
        wait_until(lambda: printed_so_far(portal, run_id, 200), 120, "the step printing")
        with SqliteLock(path, 70) as lock:
            lock.wait()
        state = wait_until(lambda: ended(portal, run_id), 240, "the run's end")
        step = state["steps"][0]
        assert state["status"] == "failed" and state["executor"] == "", state
        assert step["status"] == "interrupted", step
        assert step["error"].startswith("its end could not be recorded"), step
        lines = portal.stored_lines(run_id)
        assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1))
        assert [text for _, text in lines] == PRINTED_SHORT[:len(lines)] and len(lines) >= 200
        assert "not written: the database refused it for 2 s" in (folder / "rqworker.log").read_text()

        portal.act("retry_step", step["pk"])
        state = wait_until(lambda: ended(portal, run_id), 240, "the retried run's end")
        step = state["steps"][0]
        assert state["status"] == "succeeded", state
        assert (step["status"], step["exit_code"]) == ("succeeded", 0), step
        lines = portal.stored_lines(run_id)
        assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1))
        texts = [text for _, text in lines]
        assert texts[-len(PRINTED_SHORT) - 1:] == ["--- retried by operator ---"] + PRINTED_SHORT
    finally:
        portal.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["retry_step", "skip_step", "mark_step_done", "resume_run", "sweep"])
def test_a_step_left_running_in_a_stopped_run_by_an_earlier_version_is_repaired(make_user, action):
    """The state the issue found (run failed, its step running for ever, 409 on every
    action): the sweeper marks the step interrupted, and so does any action on it."""
    from tests.factories import make_host, make_run
    from upgrades import services, sweeper
    from upgrades.models import RunStatus, RunStep, StepStatus, UpgradeRun

    user = make_user("operator")
    run = make_run(user, make_host(), ["echo one", "echo two"])
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, executor="", error=(
        "internal error: django.db.utils.OperationalError: terminating connection due to administrator command"))
    RunStep.objects.filter(run=run, order=1).update(status=StepStatus.SUCCEEDED)
    step = RunStep.objects.get(run=run, order=2)
    RunStep.objects.filter(pk=step.pk).update(status=StepStatus.RUNNING)
    run.refresh_from_db()
    if action == "sweep":
        sweeper.sweep()
    elif action == "resume_run":
        services.resume_run(run=run, user=user)
    elif action == "retry_step":
        services.retry_step(step=step, user=user)
    else:
        getattr(services, action)(step=step, user=user, reason="checked on the host")
    step.refresh_from_db()
    assert step.status == {"sweep": StepStatus.INTERRUPTED, "retry_step": StepStatus.PENDING,
                           "resume_run": StepStatus.PENDING, "skip_step": StepStatus.SKIPPED,
                           "mark_step_done": StepStatus.SUCCEEDED}[action]
    if action == "sweep":
        assert step.error == "its end was never recorded: no worker executes the run"
        services.retry_step(step=step, user=user)  # and the operator goes on from there
        assert RunStep.objects.get(pk=step.pk).status == StepStatus.PENDING
