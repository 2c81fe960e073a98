"""The rolling hosted-engine upgrade (`he-upgrade`) of a 3-host lab at speed 60.

A 4.5 lab a build behind (`--outdated`) gets its minor update: global maintenance,
engine backup and engine-setup in the engine VM, then every host through the engine's
maintenance, yum update, restarted daemons and the engine VM moved to an upgraded host.
The run executes in this process, as `manage.py runbook start --sync` does (the same
``jobs.advance_run`` a worker runs). Its wall time is split into:

- the lab's time: inside SSH commands (yum, engine-setup, the daemons' restarts, the
  ha.conf waits on the hosts, each vm-status read of a wait) and inside engine API
  requests — what the lab itself needed, at speed 60;
- waiting between re-reads: a wait step or an engine status wait sleeping until it
  reads the state again (its granularity, not work);
- the portal's overhead: everything else (steps claimed and recorded, output stored,
  audit and websocket events, the plan and its preflight, SSH channel set-up).

For comparison, the same waits polled at a fixed interval as ovirt-ansible does
(its `ovirt_host` waits re-read every 3 s, the hosted-engine checks retry every 10 s):
each wait ends on average half an interval after its condition held, plus one
interval when the first read comes too early; the added time is computed from the
waits this run saw, in simulated seconds and then at speed 60.

--smoke: one run (BENCH_RUNS runs otherwise, 3 by default).
"""
import atexit
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

from harness import BenchFailure, phase, report, run, size, start_redis  # also puts the repository on sys.path

SPEED = 60
FIXED_INTERVALS = (3, 10)  # simulated seconds: ovirt_host's poll, the HE checks' retry delay
RUNS = int(os.environ.get("BENCH_RUNS", size(3, 1)))  # one run varies by about a percentage point


def start_lab(workdir, n):
    """A 4.5 lab a build behind, with the first lab's client key (settings read it once)."""
    from lab.launcher import start_lab

    state = workdir / f"lab{n}"
    if n:
        (state / "keys").mkdir(parents=True)
        shutil.copy(workdir / "lab0" / "keys" / "client_ed25519", state / "keys" / "client_ed25519")
    return start_lab(state, hosts=3, speed=SPEED, engine_version="4.5", outdated=True, timeout=120)


def setup_django(workdir, ssh_key):
    """Django on a fresh SQLite and a Redis of the bench's own (as bench/harness.py)."""
    redis_server = start_redis(workdir)
    atexit.register(redis_server.terminate)
    os.environ["REDIS_URL"] = f"unix://{workdir / 'redis.sock'}?db=0"
    os.environ["CHANNELS_PREFIX"] = "bench-he-upgrade"
    os.environ["HEPORTAL_DATA_DIR"] = str(workdir)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "heportal.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    # The run itself is measured: an approver's sign-off is a person's time, not the portal's.
    os.environ["APPROVAL_REQUIRED_BY_DEFAULT"] = "false"
    os.environ["SSH_KEY_FILE"] = ssh_key
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)


class Timers:
    """Time spent, per thread-safe category, by wrapping the remote calls and sleeps."""

    def __init__(self):
        self.reset()
        self.lock = threading.Lock()
        self.local = threading.local()

    def reset(self):
        self.totals = {"ssh": 0.0, "engine": 0.0, "sleep": 0.0}
        self.waits = []  # (step key, seconds the wait step took) for the fixed-interval comparison

    def add(self, category, seconds):
        with self.lock:
            self.totals[category] += seconds

    def wrap(self, owner, name, category):
        original = getattr(owner, name)
        timers = self

        def timed(*args, **kwargs):
            if getattr(timers.local, "inside", False):  # nested (a wait's sleep inside a call)
                return original(*args, **kwargs)
            timers.local.inside = True
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.local.inside = False
                timers.add(category, time.perf_counter() - start)
        setattr(owner, name, timed)


def instrument(timers):
    """Wrap the remote calls and the sleeps between re-reads (once per process)."""
    from upgrades import engine
    from upgrades.remote import engine_api, ssh

    timers.wrap(ssh.SshSession, "run", "ssh")
    timers.wrap(engine_api.EngineClient, "_call", "engine")  # the log-in is inside the first call
    timers.wrap(engine_api.EngineClient, "close", "engine")  # the log-out: a request too
    # Sleeping between re-reads: the wait steps' Event.wait and the engine client's sleep.
    run_wait = engine.run_wait

    def timed_wait(step, run, pool, out, beat):
        start = time.perf_counter()
        stop_wait = beat.stop.wait

        class Beat:
            lost = beat.lost

            class stop:  # noqa: N801  (stands in for the Event)
                @staticmethod
                def is_set():
                    return beat.stop.is_set()

                @staticmethod
                def wait(seconds):
                    began = time.perf_counter()
                    try:
                        return stop_wait(seconds)
                    finally:
                        timers.add("sleep", time.perf_counter() - began)
        try:
            return run_wait(step, run, pool, out, Beat)
        finally:
            timers.waits.append((step.key, time.perf_counter() - start))
    engine.run_wait = timed_wait
    original_sleep = engine_api.time.sleep

    def client_sleep(seconds):
        began = time.perf_counter()
        try:
            original_sleep(seconds)
        finally:
            timers.add("sleep", time.perf_counter() - began)
    init = engine_api.EngineClient.__init__

    def init_with_timed_sleep(self, *args, **kwargs):
        kwargs.setdefault("sleep", client_sleep)
        init(self, *args, **kwargs)
    engine_api.EngineClient.__init__ = init_with_timed_sleep


def one_run(lab, n, user, timers):
    """Import the lab as a cluster, poll it, run the upgrade; the measurements."""
    from upgrades import jobs, services
    from upgrades.models import RunStatus
    from upgrades.poller import ClusterPoller

    password = Path(lab.manifest["ssh_key"]).parent.parent / "engine.password"
    password.write_text(lab.manifest["engine"]["password"])
    cluster = services.import_cluster(name=f"bench{n}", engine=lab.manifest["engine"],
                                      password_file=str(password), hosts=lab.manifest["hosts"],
                                      engine_vm=lab.manifest["engine_vm"], poll_interval=10 / SPEED)
    poller = ClusterPoller(cluster.pk)
    with phase("poll the lab", 120):
        for _ in range(3):  # the poller's work, done here: HA data and the release
            poller.poll()
    poller.close()
    cluster.refresh_from_db()
    if not cluster.detected_release:
        raise BenchFailure("the release was not detected")

    timers.reset()
    sim_before = lab.state()["now"]
    run = services.start_run(cluster=cluster, slug="he-upgrade", params={}, user=user,
                             acknowledge=True, queue=False)
    with phase(f"he-upgrade run {n + 1}", 600):
        started = time.perf_counter()
        jobs.advance_run(run.pk)
        wall = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != RunStatus.SUCCEEDED:
        raise BenchFailure(f"the run {run.status}: {run.error}; "
                           f"{[(s.key, s.status, s.error) for s in run.steps.exclude(status='succeeded')][:3]}")
    t = dict(timers.totals)
    overhead = wall - t["ssh"] - t["engine"] - t["sleep"]
    return {"wall": wall, "sim": lab.state()["now"] - sim_before, "steps": run.steps.count(),
            "overhead": overhead, "share": overhead / wall, "waits": list(timers.waits), **t}


def main():
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="bench-he-upgrade-"))
    timers = Timers()
    results = []
    for n in range(RUNS):
        with phase(f"start lab {n}", 180):
            lab = start_lab(workdir, n)
        try:
            if n == 0:
                with phase("migrate the database", 300):
                    setup_django(workdir, lab.manifest["ssh_key"])
                instrument(timers)
                from django.contrib.auth import get_user_model

                user = get_user_model().objects.create_user("bench", is_superuser=True)
            results.append(one_run(lab, n, user, timers))
            print(f"run {n + 1}: {results[-1]['wall']:.1f} s, overhead {100 * results[-1]['share']:.1f} %",
                  file=sys.stderr)
        finally:
            lab.stop()
    shares = sorted(r["share"] for r in results)
    r = sorted(results, key=lambda r: r["share"])[len(results) // 2]  # the median run
    lab_time = r["ssh"] + r["engine"]
    rows = [
        (f"run wall time ({r['steps']} steps, 3 hosts; the median of {RUNS} runs)",
         f"{r['wall']:.1f} s ({r['sim']:.0f} simulated s)", "—"),
        ("the lab's time: SSH commands + engine API requests",
         f"{lab_time:.1f} s ({r['ssh']:.1f} + {r['engine']:.1f})", "—"),
        ("waiting between re-reads (waits, engine status waits)", f"{r['sleep']:.1f} s", "—"),
        ("portal overhead (the rest)",
         f"{r['overhead']:.2f} s = {100 * r['share']:.1f} % of the run "
         f"({RUNS} runs: {', '.join(f'{100 * s:.1f}' for s in shares)} %)", "≤ 5 %"),
        ("portal overhead per step", f"{1000 * r['overhead'] / r['steps']:.1f} ms", "—"),
    ]
    wait_s = [seconds for _, seconds in r["waits"]]
    rows.append((f"wait steps ({len(wait_s)}): time each took",
                 f"p50 {statistics.median(wait_s):.2f} s, max {max(wait_s):.2f} s", "—"))
    for interval in FIXED_INTERVALS:
        # A loop that reads, then sleeps `interval`: on average half an interval late.
        added = len(wait_s) * interval / 2
        rows.append((f"fixed {interval} s (simulated) polling instead: expected extra time",
                     f"+{added:.0f} simulated s = +{added / SPEED:.1f} s at speed {SPEED} "
                     f"(+{100 * added / SPEED / r['wall']:.0f} %)", "—"))
    report("Hosted-engine upgrade, 3 hosts at speed 60", rows, NOTES)


NOTES = """
`bench/he_upgrade.py`: `he-upgrade` as a minor update of a 4.5 lab (`--outdated`, 3 hosts,
speed 60), executed in-process as `--sync` does, SQLite, Redis. The lab's time is measured
around every SSH command (each includes its channel set-up, about 50 ms, counted as the
lab's) and every engine API request (an engine step's log-in and log-out included);
sleeping between re-reads around the wait steps' and the engine client's sleeps. A wait
re-reads the HA state every max(0.5 s, the cluster's poll interval) (the cluster is polled every 10 simulated s, so
0.5 s here, 30 simulated s), an engine status wait every max(0.2 s, poll interval); the
fixed-interval rows add, per wait step, half an interval of lateness that a loop reading
every 3 s (ovirt_host) or 10 s (the HE role's retries) would have on average.
What limits it: the lab's own simulated durations (engine-setup about 100 s, yum, an HA
agent needs 60 s of history after a restart, migrations), then the 0.5 s floor of the
waits' re-read interval, which at speed 60 is 30 simulated seconds per re-read. The
portal's overhead is a fixed cost per step (see "Runbook engine, cost per step"), so at
speed 60 it weighs 60 times more against the run than on real hosts; about one point of
it is the publishing thread (about 6 websocket messages a step, each a few Redis round
trips in channels-redis) taking the interpreter's lock from the step's thread: with
publishing switched off the same run measured 4.4 %. Runs before 2026-12-06 measured
9.0 % (one run): the engine then read all of a run's steps before each step, gave each
step's output its own thread and database connection, and sent a home-page notice for
each step's end as well as its start.
"""

if __name__ == "__main__":
    run(main)
