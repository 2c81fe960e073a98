"""Memory of the long-lived processes (bench, not a test): a web process with 200
viewers, a worker after 1,000 steps, a poller after 24 h of simulated polling.

Each process's resident memory (RSS, /proc) is read while it works, and judged
after a warm-up (the first imports, caches and pools filled), since what matters
for a process that lives for months is whether it keeps growing:

- poller: one `ha_poller` against its own lab at a high `--speed`, its clusters
  polled every POLL_INTERVAL s instead of 10 s. 24 h at the default 10 s interval
  is 8,640 polls of a cluster: the bench counts polls (a trigger on each update
  of a cluster's `polled_at`) until 8,640 are done, spread over POLL_CLUSTERS clusters, with
  the pending-updates polls (every 30 min) and the engine polls (every 6 HA
  polls) scaled by the same factor. The lab's clock runs 24 h meanwhile.
- web: one daphne; ROUNDS rounds of VIEWERS websocket viewers on a run's page,
  each following a run that prints OUTPUT_LINES lines in batches to its end (every
  viewer must get every line), then leaving. The bound is on the RSS after the
  viewers left, last round against the first.
- worker: one `rqworker` executing RUNS runs of STEPS steps (`seq 50` each, over
  SSH to the lab). RQ forks a work horse per job (a run): the parent's RSS is
  read as the steps end, and each horse's peak.

A bound exceeded at the full size is exit status 1; --smoke runs tiny and only
checks that every part works.
"""
import asyncio
import json
import os
import shutil
import statistics
import threading
import time

from harness import SMOKE, Bench, BenchFailure, follow_run, phase, report, rss_mib, run, size, tree_rss

PARTS = os.environ.get("BENCH_PARTS", "poller,web,worker").split(",")  # measure only some
# Poller: 24 h at the default 10 s interval = 8,640 polls.
DEFAULT_INTERVAL = 10.0
POLLS = size(8_640, 40)
POLL_CLUSTERS = size(8, 2)
POLL_INTERVAL = 0.2  # the poller's floor
SCALE = DEFAULT_INTERVAL / POLL_INTERVAL  # simulated seconds per real second, for the portal's timers
# Web: rounds of viewers following a run's output.
VIEWERS = size(200, 3)
ROUNDS = size(4, 2)
BATCHES = size(80, 4)  # batches of 100 lines, 4 a second
# Worker: 1,000 steps.
RUNS = size(100, 3)
STEPS = size(10, 3)

# The bounds (MiB of growth after the warm-up), checked at the full size.
BOUND_POLLER = 8
BOUND_WEB = 16
BOUND_WORKER = 4
BOUND_HORSE = 8


def growth_row(name, start, warm, end, units, unit, bound):
    """One table row: start / after warm-up / end RSS and growth per 1,000 units."""
    grown = end - warm
    per = grown / units * 1000 if units else float("nan")
    ok = grown <= bound
    return ok, (name, f"{start:.1f} → {warm:.1f} → {end:.1f} MiB (start → after warm-up → end); "
                      f"{grown:+.1f} MiB after warm-up, {per:+.2f} MiB per 1,000 {unit}{'' if ok else ' (EXCEEDED)'}",
                f"≤ {bound} MiB after warm-up")


# Poller ----------------------------------------------------------------------------

def count_polls():
    """A trigger counts the polls: one per HA poll stored (`ha.apply_vm_status` sets
    `polled_at`, nothing else does), whatever the bench's own pace of reading."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_polls (n bigint NOT NULL)")
        cursor.execute("INSERT INTO bench_polls VALUES (0)")
        if connection.vendor == "postgresql":
            cursor.execute("CREATE FUNCTION bench_count_poll() RETURNS trigger AS $$ BEGIN "
                           "UPDATE bench_polls SET n = n + 1; RETURN NULL; END $$ LANGUAGE plpgsql")
            cursor.execute("CREATE TRIGGER bench_polls AFTER UPDATE OF polled_at ON upgrades_cluster "
                           "FOR EACH ROW EXECUTE FUNCTION bench_count_poll()")
        else:
            cursor.execute("CREATE TRIGGER bench_polls AFTER UPDATE OF polled_at ON upgrades_cluster "
                           "BEGIN UPDATE bench_polls SET n = n + 1; END")


def polls_counted():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM bench_polls")
        return cursor.fetchone()[0]


def poller(bench):
    from lab.launcher import start_lab

    from upgrades.models import Cluster

    seconds = POLLS / POLL_CLUSTERS * POLL_INTERVAL
    # The lab's clock runs 24 h in about the time the polls take on this machine (~10 a second).
    speed = size(100, 60)
    state = bench.dir / "fastlab"
    (state / "keys").mkdir(parents=True)
    shutil.copy(bench.labs[0].manifest["ssh_key"], state / "keys" / "client_ed25519")
    with phase(f"start a lab at speed {speed}", 120):
        bench.labs.append(start_lab(state, hosts=3, speed=speed))
    index = len(bench.labs) - 1
    ids = [bench.import_lab(index, name=f"fast{n}", poll_interval=POLL_INTERVAL).pk for n in range(POLL_CLUSTERS)]
    os.environ["PACKAGES_POLL_SECONDS"] = str(1800 / SCALE)  # the poller's own timers, scaled as its polls
    proc = bench.start("poller", "manage.py", "ha_poller")
    del os.environ["PACKAGES_POLL_SECONDS"]
    count_polls()
    start = None
    polls, samples, warm = 0, [], None  # samples: (polls, rss)
    warm_at = POLLS // 10
    with phase(f"{POLLS:,} polls of {POLL_CLUSTERS} clusters every {POLL_INTERVAL} s", 120 + seconds * 8):
        next_sample = 0.0
        while polls < POLLS:
            if proc.poll() is not None:
                raise BenchFailure(f"the poller exited with status {proc.returncode}; see {bench.dir}/poller.log")
            polls = polls_counted()
            if start is None and polls >= POLL_CLUSTERS:  # about each cluster polled once: the start
                start = rss_mib(proc.pid)
            if warm is None and polls >= warm_at:
                warm = rss_mib(proc.pid)
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + 1.0
                samples.append((polls, rss_mib(proc.pid)))
            time.sleep(0.1)
    end = rss_mib(proc.pid)
    errors = list(Cluster.objects.filter(pk__in=ids).exclude(poll_error="").values_list("poll_error", flat=True))
    proc.terminate()
    proc.wait(60)
    bench.procs.remove(proc)
    if errors:
        raise BenchFailure(f"polls failed: {errors[0]}")
    peak = max(r for _, r in samples)
    ok, row = growth_row(f"poller, {polls:,} polls of {POLL_CLUSTERS} clusters (24 h at 10 s = 8,640)",
                         start, warm, end, polls - warm_at, "polls", BOUND_POLLER)
    return ok, [row, ("poller, peak RSS sampled (once a second)", f"{peak:.1f} MiB", "—")], samples


# Web -------------------------------------------------------------------------------

async def viewer(base, path, cookie, ready, out, gate):
    return await follow_run(base, path, cookie, ready, gate, lambda _now, lines: out.extend(lines))


async def one_round(base, run_id, cookie, start):
    loop = asyncio.get_running_loop()
    readies = [loop.create_future() for _ in range(VIEWERS)]
    outs = [[] for _ in range(VIEWERS)]
    gate = asyncio.Semaphore(20)
    tasks = [asyncio.create_task(viewer(base, f"/ws/runs/{run_id}/", cookie, ready, out, gate))
             for ready, out in zip(readies, outs)]
    with phase(f"{VIEWERS} viewers connect", 120):
        await asyncio.gather(*readies)
    with phase("the run to its end", 120 + BATCHES):
        await asyncio.to_thread(start)
        statuses = await asyncio.gather(*tasks)
    return statuses, outs


class Sampler(threading.Thread):
    """Reads a process tree's RSS every ``every`` s: [(monotonic time, {pid: MiB})]."""

    def __init__(self, pid, every=0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.stop = pid, every, [], threading.Event()
        self.start()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), tree_rss(self.pid)))
            self.stop.wait(self.every)

    def now(self):
        return rss_mib(self.pid)


def web(bench, user, host):
    from django.test import Client

    from tests.factories import make_run
    from upgrades.services import enqueue_run

    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    base = bench.start_daphne("daphne")
    daphne = bench.procs[-1]
    sampler = Sampler(daphne.pid)
    command = f"for i in $(seq {BATCHES}); do seq $(( (i-1)*100+1 )) $((i*100)); sleep 0.25; done"
    expected = [str(i) for i in range(1, BATCHES * 100 + 1)]
    start = sampler.now()
    after_leave, during = [], []
    try:
        for n in range(ROUNDS):
            r = make_run(user, host, [command])
            t0 = time.monotonic()
            statuses, outs = asyncio.run(one_round(base, r.pk, cookie, lambda r=r: enqueue_run(r)))
            t1 = time.monotonic()
            bad = sum(1 for out in outs if [text for _seq, _stream, text in out] != expected)
            if bad or set(statuses) != {"succeeded"}:
                raise BenchFailure(f"round {n + 1}: {bad} of {VIEWERS} viewers missed lines; statuses {set(statuses)}")
            during.append(max(s[1].get(daphne.pid, 0) for s in sampler.samples if t0 <= s[0] <= t1))
            time.sleep(3)  # the viewers' sockets closed, their groups left
            after_leave.append(sampler.now())
            print(f"memory: web round {n + 1}: peak {during[-1]:.1f} MiB, after the viewers left "
                  f"{after_leave[-1]:.1f} MiB", flush=True)
    finally:
        sampler.stop.set()
    sessions = VIEWERS * (ROUNDS - 1)
    ok, row = growth_row(f"web (daphne), {ROUNDS} rounds of {VIEWERS} viewers, after they left",
                         start, after_leave[0], after_leave[-1], sessions, "viewer sessions", BOUND_WEB)
    rows = [row, (f"web, peak RSS while {VIEWERS} viewers follow {BATCHES * 100:,} lines, each round",
                  ", ".join(f"{p:.1f}" for p in during) + " MiB", "flat from round to round")]
    return ok, rows, [(round(t, 1), s.get(daphne.pid)) for t, s in sampler.samples]


# Worker ----------------------------------------------------------------------------

def worker(bench, user, host):
    from tests.factories import make_run
    from upgrades.models import RunStep, UpgradeRun
    from upgrades.services import enqueue_run

    proc = bench.start_worker(1)[0]
    time.sleep(size(5, 2))  # the worker's start-up
    start = rss_mib(proc.pid)
    total = RUNS * STEPS
    warm_at = total // 10
    warm = None
    horses = {}  # pid: peak RSS
    series = []  # (steps done, parent RSS)
    ids = []
    # One run at a time (a cluster has one active run): the next is queued as one ends.
    with phase(f"{total:,} steps on one worker", 120 + total):
        next_count = 0.0
        while True:
            if proc.poll() is not None:
                raise BenchFailure(f"the worker exited with status {proc.returncode}; see {bench.dir}/worker0.log")
            for pid, rss in tree_rss(proc.pid).items():
                if pid != proc.pid:
                    horses[pid] = max(horses.get(pid, 0.0), rss)
            if time.monotonic() >= next_count:
                next_count = time.monotonic() + 0.5
                done = RunStep.objects.filter(run__in=ids, finished_at__isnull=False).count()
                series.append((done, rss_mib(proc.pid)))
                if warm is None and done >= warm_at:
                    warm = rss_mib(proc.pid)
            if not UpgradeRun.objects.filter(pk__in=ids, status__in=("pending", "running")).exists():
                if len(ids) == RUNS:
                    break
                r = make_run(user, host, ["seq 50"] * STEPS)
                ids.append(r.pk)
                enqueue_run(r)
            time.sleep(0.1)
    end = rss_mib(proc.pid)
    warm = end if warm is None else warm
    failed = UpgradeRun.objects.filter(pk__in=ids).exclude(status="succeeded").count()
    if failed:
        raise BenchFailure(f"{failed} of {RUNS} runs did not succeed; see {bench.dir}/worker0.log")
    peaks = [horses[pid] for pid in sorted(horses)]  # in fork order: pids grow (no wrap-around this short)
    if len(peaks) < RUNS // 2:
        raise BenchFailure(f"only {len(peaks)} work horses seen for {RUNS} runs")
    tenth = max(1, len(peaks) // 10)
    first, last = statistics.median(peaks[tenth:2 * tenth]), statistics.median(peaks[-tenth:])
    ok1, row1 = growth_row(f"worker (rqworker parent), {total:,} steps in {RUNS} runs", start, warm, end,
                           total - warm_at, "steps", BOUND_WORKER)
    ok2, row2 = growth_row(f"work horses' peak ({len(peaks)} seen), median of the 2nd tenth → of the last",
                           statistics.median(peaks[:tenth]), first, last, total - warm_at, "steps", BOUND_HORSE)
    return ok1 and ok2, [row1, row2], series


def main():
    bench = Bench("memory")
    try:
        from django.contrib.auth import get_user_model

        from tests.factories import grant

        results = {}
        if "poller" in PARTS:  # before the speed-1 lab's cluster exists: this poller polls only its own
            results["poller"] = poller(bench)
        cluster = bench.import_lab(0, name="lab")
        host = cluster.hosts.order_by("he_host_id").first()
        user = grant(get_user_model().objects.create_user("bench"), cluster, "viewer")
        if "web" in PARTS:
            bench.start_worker(1)  # the web rounds' runs (the worker measured below is another one)
            results["web"] = web(bench, user, host)
            for proc in bench.procs:
                proc.terminate()
            for proc in bench.procs:
                proc.wait(30)
            bench.procs.clear()
        if "worker" in PARTS:
            results["worker"] = worker(bench, user, host)
        rows = [row for ok, part, _ in results.values() for row in part]
        (bench.dir / "samples.json").write_text(json.dumps({k: v[2] for k, v in results.items()}))
        report(f"Memory: {', '.join(results)}" if not SMOKE else "Memory (smoke)", rows, NOTES + f"\nSamples: {bench.dir}/samples.json.")
        exceeded = [name for name, (ok, _, _) in results.items() if not ok]
        if exceeded and not SMOKE:
            raise BenchFailure(f"memory grew beyond its bound: {', '.join(exceeded)}")
    finally:
        bench.close()


NOTES = f"""
RSS from /proc. Poller: one `ha_poller` (16 threads), {POLL_CLUSTERS} clusters on one lab of 3 hosts
at speed 100 (24 h of its clock in 14.4 min, about the time the polls take here), every {POLL_INTERVAL} s (its floor) instead of 10 s; the
pending-updates polls every {1800 / SCALE:.0f} s instead of 30 min, the engine polls every 6 HA polls
as always; the release check (every 10 min) is not scaled. Polls are counted by a trigger on
`polled_at` (set once per HA poll stored); warm-up: the first tenth. Web: one daphne,
{ROUNDS} rounds of {VIEWERS} websocket viewers on a run page following {BATCHES * 100:,} lines (100
every 0.25 s), every viewer checked to get every line, the worker of those runs not measured;
warm-up: the first round. Worker: one `rqworker`, {RUNS} runs of {STEPS} steps of `seq 50` over SSH
to the lab (speed 1), one after another; warm-up: the first tenth of the steps; each work horse's
peak is read every 0.1 s. Everything shares the machine's 2 cores with other work.
"""

if __name__ == "__main__":
    run(main)
