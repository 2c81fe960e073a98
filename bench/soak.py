"""Soak (bench, not a test): an hour of cluster time, Redis and PostgreSQL restarted.

Real processes: the labs (at --speed SPEED: one cluster hour in 3600 / SPEED real
seconds), one `ha_poller` polling every cluster every 10 cluster seconds
(10 / SPEED real), one daphne, and aiohttp clients that behave like the pages
(static/js/cluster.js, home.js, fragments.js): a cluster page per cluster and two
home pages, each sending {"type": "check"} every 5 s and reconnecting after a
close (0.5 s, doubling up to 10 s). The bench's own Redis (redis-server on a free
loopback port) and its own PostgreSQL (Debian's initdb / pg_ctl, a temporary
folder, a free loopback port, as the postgres user when run as root) are each
restarted once in the middle; nobody else's server is touched. On a schedule the
labs' control provokes HA changes: a host to local maintenance and back, the
engine VM migrated, the engine VM killed (HA restarts it).

What is counted, as the pages promise it (upgrades/consumers.py):
- a cluster page gets every HA change pushed ("ha.update", the whole cluster's
  state); each host's changes stored as samples (HaSample, consecutive equal
  samples merged) are aligned with that host's states as the page received them.
  A stored change the page never showed is *missed* — unless it was stored during
  a restart (from the stop until the page is back: reconnected, or its first
  check after Redis answers), where a message can be lost by design and the
  page's check sends the latest state instead (*superseded*, counted apart).
- a home page gets a card per change ("home.card", or "home.changed" and it
  fetches it) and, on each (re)connect, every card: each stored change outside a
  restart must be followed by a card of that cluster.
- at the end (the poller stopped, then FINAL_CHECKS checks waited), each cluster page's
  last state has the database's version and each home page's cards are the
  server's (the card's age and colour, which move with the clock alone, left out).
- RSS of the poller and daphne, every 2 s: "flat" is the last quarter's median
  within max(8 MiB, 5 %) of the second quarter's (after warm-up).
Exit 1 when a change is missed, a page ends different, a process dies or RSS grows.

--smoke: one lab, 2 clusters, speed 60, 20 s (20 cluster minutes), one restart of each
(at 15 % and 55 %, 1.5 s down), one final check.
"""
import asyncio
import os
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from harness import SMOKE, Bench, BenchFailure, free_port, phase, report, rss_mib, run, size

SPEED = float(os.environ.get("BENCH_SPEED", size(20, 60)))
RUN_SECONDS = float(os.environ.get("BENCH_SECONDS", size(180, 20)))  # real seconds of soak
LABS = size(2, 1)
CLUSTERS_PER_LAB = size(3, 2)
INTERVAL = max(0.2, 10 / SPEED)  # 10 cluster seconds between polls of a cluster
ACTION_EVERY = size(300, 120) / SPEED  # real seconds between provoked changes, per lab
CHECK_SECONDS = 5.0  # fragments.js CHECK_MS
DOWN_SECONDS = size(5.0, 1.5)  # how long Redis, then PostgreSQL, stay down
RESTART_AT = size((1 / 3, 2 / 3), (0.15, 0.55))  # Redis, PostgreSQL: when, as a share of the soak
FINAL_CHECKS = size(2, 1)  # checks each page makes once the poller has stopped
HOME_PAGES = 2
RSS_EVERY = 2.0
RSS_BOUND_MIB, RSS_BOUND_SHARE = 8.0, 0.05


class OwnRedis:
    """redis-server on a free loopback port, no persistence: a restart forgets every group."""

    def __init__(self, folder):
        self.folder, self.port, self.proc = folder, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis

        for _ in range(100):
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return self
            except redis.RedisError:
                if self.proc.poll() is not None:
                    raise BenchFailure(f"redis-server exited with {self.proc.returncode}") from None
                time.sleep(0.1)
        raise BenchFailure("redis-server did not answer within 10 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class OwnPostgres:
    """Debian's PostgreSQL server in a temporary folder on a free loopback port (as
    tests/faults.PrivatePostgres, which the bench cannot import without the test fixtures)."""

    def __init__(self, folder):
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
        if not versions:
            raise BenchFailure("PostgreSQL's server is not installed (Debian package postgresql; "
                               "scripts/bootstrap.sh installs it)")
        self.bin, self.folder, self.port = versions[-1].parent, Path(folder), free_port()
        self.data = self.folder / "pgdata"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/heportal"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args, check=True):
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True)
        if check and result.returncode:
            raise BenchFailure(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def init(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data.mkdir()
        if self.as_user:
            user = pwd.getpwnam("postgres")
            for path in (self.folder, self.data):
                shutil.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(self.folder.parent, 0o711)  # the bench's temporary folder: postgres must pass through
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                  "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.folder}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self.start()
        self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                  "postgres", "-qc", "create database heportal")
        return self

    def start(self):
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-t", "30", "start")

    def stop(self, mode="fast"):
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)


def host_state(state, score, live, local_maintenance, engine_vm_here):
    """What a page shows of a host, from a sample or a pushed payload alike."""
    return (state, score, live, local_maintenance, engine_vm_here)


class ClusterPage:
    """One cluster page's websocket, as cluster.js: checks, reconnects, keeps what it got."""

    def __init__(self, base, cookie, cluster_id):
        self.url = f"ws://{base}/ws/clusters/{cluster_id}/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://{base}"}
        self.cluster_id = cluster_id
        self.got = defaultdict(list)  # host id -> [(received at, host_state)], consecutive equal merged
        self.connects, self.closes, self.last, self.error = [], [], None, None

    def take(self, payload):
        self.last = payload
        now = time.time()
        for h in payload["hosts"]:
            seen = host_state(h["state"], h["score"], h["live"], h["local_maintenance"], h["engine_vm_here"])
            if not self.got[h["id"]] or self.got[h["id"]][-1][1] != seen:
                self.got[h["id"]].append((now, seen))

    async def follow(self, session, stop):
        await follow(session, self, stop, lambda ev: ev.get("type") == "ha.update" and self.take(ev))


class HomePage:
    """One home page's websocket, as home.js: every card on (re)connect, then each change."""

    def __init__(self, base, cookie, cluster_ids):
        self.base, self.cluster_ids = base, cluster_ids
        self.url = f"ws://{base}/ws/home/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://{base}"}
        self.cards = {}  # cluster id -> html last shown
        self.got = defaultdict(list)  # cluster id -> [received at] of each card pushed or fetched on a change
        self.connects, self.closes, self.error = [], [], None

    async def fetch(self, session, cluster_id):
        async with session.get(f"http://{self.base}/clusters/{cluster_id}/card/", headers=self.headers) as r:
            if r.status == 200:
                self.cards[cluster_id] = await r.text()
                return True
        return False

    async def follow(self, session, stop):
        async def on(ev):
            if ev["type"] == "home.ready":
                for cluster_id in self.cluster_ids:
                    await self.fetch(session, cluster_id)
            elif ev["type"] == "home.card":
                self.cards[ev["cluster"]] = ev["html"]
                self.got[ev["cluster"]].append(time.time())
            elif ev["type"] == "home.changed" and ev.get("cluster"):
                if await self.fetch(session, ev["cluster"]):
                    self.got[ev["cluster"]].append(time.time())

        await follow(session, self, stop, on)


async def follow(session, page, stop, on):
    """The pages' loop: connect, check every CHECK_SECONDS, hand each message to ``on``,
    reconnect after a close (or a refused connect) with the pages' backoff."""
    import aiohttp

    retry = 0.5
    while not stop.is_set():
        try:
            ws = await session.ws_connect(page.url, headers=page.headers, heartbeat=None, compress=15)  # as browsers offer
        except (aiohttp.ClientError, OSError) as error:  # a refusal (403: no role) is retried as the page does
            page.error = repr(error)
            await asyncio.sleep(retry)
            retry = min(retry * 2, 10)
            continue
        page.connects.append(time.time())
        retry = 0.5

        async def checks():
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                await ws.send_json({"type": "check"})

        checking = asyncio.create_task(checks())
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    result = on(msg.json())
                    if asyncio.iscoroutine(result):
                        await result
        except (aiohttp.ClientError, OSError, ConnectionResetError):
            pass
        finally:
            checking.cancel()
        page.closes.append((time.time(), ws.close_code))
        if not stop.is_set():
            await asyncio.sleep(retry)
            retry = min(retry * 2, 10)


def rss_series(procs, series, stop):
    """Every RSS_EVERY s: (time, {name: RSS MiB}) of each process alive."""
    async def sample():
        while not stop.is_set():
            series.append((time.time(), {name: rss_mib(p.pid) for name, p in procs.items() if p.poll() is None}))
            await asyncio.sleep(RSS_EVERY)
    return sample()


async def provoke(bench, stop, done):
    """Each lab in turn, every ACTION_EVERY s: a host to local maintenance, back, the
    engine VM migrated, the engine VM killed. A refusal (the engine is down) is counted."""
    from lab.errors import LabError

    step = 0
    held = {}
    while not stop.is_set():
        for index, lab in enumerate(bench.labs):
            kind = ("host-maintenance", "host-activate", "migrate-engine-vm", "kill-engine-vm")[step % 4]
            try:
                state = await asyncio.to_thread(lab.state)
                vm_host = state["engine_vm"]["host"]
                if kind == "host-maintenance":
                    held[index] = next(h for h in sorted(state["hosts"]) if h != vm_host)
                    await asyncio.to_thread(lab.admin, kind, host=held[index])
                elif kind == "host-activate":
                    await asyncio.to_thread(lab.admin, kind, host=held.pop(index))
                elif kind == "migrate-engine-vm":
                    await asyncio.to_thread(lab.admin, kind)
                else:
                    await asyncio.to_thread(lab.fault, kind)
                done.append((time.time(), index, kind, "done"))
            except (LabError, KeyError, StopIteration) as error:
                done.append((time.time(), index, kind, f"refused: {error}"))
        step += 1
        try:
            await asyncio.wait_for(stop.wait(), ACTION_EVERY)
        except asyncio.TimeoutError:
            pass


def stored_changes(cluster_ids):
    """{host id: [(stored at, host_state)]}, consecutive equal samples merged; {host id: cluster id}."""
    from upgrades.models import HaSample, Host

    cluster_of = dict(Host.objects.filter(cluster__in=cluster_ids).values_list("pk", "cluster_id"))
    changes = defaultdict(list)
    for host_id, at, state, score, live, engine_vm, local in HaSample.objects.filter(
            host__in=list(cluster_of)).order_by("host", "at", "pk").values_list(
            "host", "at", "state", "score", "live", "engine_vm", "local_maintenance"):
        seen = host_state(state, score, live, local, engine_vm == "up" and live)
        if not changes[host_id] or changes[host_id][-1][1] != seen:
            changes[host_id].append((at.timestamp(), seen))
    return changes, cluster_of


def align(stored, got):
    """Indexes of ``stored`` [(at, state)] that ``got`` [(at, state)] shows, in order (the
    longest common subsequence; a state counts only if received after it was stored)."""
    n, m = len(stored), len(got)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            if stored[i][1] == got[j][1] and got[j][0] >= stored[i][0] - 0.5:
                best[i][j] = best[i + 1][j + 1] + 1
            else:
                best[i][j] = max(best[i + 1][j], best[i][j + 1])
    shown, i, j = set(), 0, 0
    while i < n and j < m:
        if stored[i][1] == got[j][1] and got[j][0] >= stored[i][0] - 0.5 and best[i][j] == best[i + 1][j + 1] + 1:
            shown.add(i)
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return shown


def restart_windows(restarts, page):
    """[(from, to)] in which this page may miss a message: from each stop until the
    page is back (its last reconnect soon after, or its first check after the restart)."""
    windows = []
    for stopped, started in restarts:
        back = started + CHECK_SECONDS + 1
        reconnects = [t for t in page.connects if stopped < t < started + 30]
        windows.append((stopped, max([back, *(t + 0.5 for t in reconnects)])))
    return windows


def inside(at, windows):
    return any(a <= at <= b for a, b in windows)


CARD_NOISE = [re.compile(r'<span class="age".*?</span>', re.S), re.compile(r'class="cluster-card \w+"')]


def same_card(a, b):
    """Equal but for what moves with the clock alone (the poll's age, the colour an old poll gives)."""
    def clean(html):
        for pattern in CARD_NOISE:
            html = pattern.sub("", html or "")
        return html
    return clean(a) == clean(b)


def flat(values):
    """(second quarter's median, last quarter's median, within the bound?)."""
    q = max(1, len(values) // 4)
    early, late = statistics.median(values[q:2 * q] or values), statistics.median(values[-q:])
    return early, late, late - early <= max(RSS_BOUND_MIB, RSS_BOUND_SHARE * early)


def main():
    # Killed (timeout, Ctrl-C in make): the finally blocks still stop the bench's own servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(__import__("tempfile").mkdtemp(prefix="bench-soak-servers-"))
    redis_server = OwnRedis(folder)
    postgres = OwnPostgres(folder / "pg")
    try:
        with phase("start the bench's Redis and PostgreSQL", 60):
            redis_server.start()
            postgres.init()
        os.environ["REDIS_URL"] = redis_server.url
        os.environ["DATABASE_URL"] = postgres.url
        soak(redis_server, postgres)
    finally:
        redis_server.stop()
        postgres.stop(mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


def soak(redis_server, postgres):
    bench = Bench("soak", labs=LABS, speed=SPEED)
    try:
        from django.contrib.auth.models import Group, User
        from django.test import Client

        from upgrades.cards import render_card
        from upgrades.ha import cluster_payload
        from upgrades.models import Cluster

        with phase("import the clusters", 60):
            clusters = [bench.import_lab(n % LABS, name=f"soak{n:02d}", poll_interval=INTERVAL).pk
                        for n in range(LABS * CLUSTERS_PER_LAB)]
            viewer = User.objects.create_user("viewer", password="x")
            viewer.groups.add(Group.objects.get(name="viewer"))
            client = Client(HTTP_HOST="localhost")
            client.force_login(viewer)
            cookie = client.cookies["sessionid"].value
        with phase("start daphne and the poller", 60):
            base = bench.start_daphne()
            poller = bench.start("poller", "manage.py", "ha_poller")
            daphne = bench.procs[-2]
        result = asyncio.run(drive(bench, base, cookie, clusters, redis_server, postgres,
                                   {"ha_poller": poller, "daphne": daphne}))
        pages, homes, restarts, actions, rss = result

        with phase("count", 120):
            from django.db import connection

            connection.close()  # the bench's own connection did not outlive PostgreSQL's restart
            changes, cluster_of = stored_changes(clusters)
            rows, failures = [], []
            records = []  # (page, stored at, "shown" | "superseded" | "missed") of each stored change at each page
            for page in pages:
                windows = restart_windows(restarts.values(), page)
                for host_id, cluster_id in cluster_of.items():
                    if cluster_id != page.cluster_id:
                        continue
                    stored = changes[host_id]
                    shown = align(stored, page.got[host_id])
                    for i, (at, state) in enumerate(stored):
                        status = "shown" if i in shown else "superseded" if inside(at, windows) else "missed"
                        records.append((page, at, status))
                        if status == "missed":
                            failures.append(f"cluster page {cluster_id}, host {host_id}: {state} stored at "
                                            f"{time.strftime('%H:%M:%S', time.localtime(at))} never shown")
                final = cluster_payload(Cluster.objects.get(pk=page.cluster_id))["version"]
                if page.last is None or page.last["version"] != final:
                    failures.append(f"cluster page {page.cluster_id} ends on another state than the database's")
            # home pages: each change (a cluster's samples stored at one poll) followed by a card
            events = defaultdict(set)
            for host_id, stored in changes.items():
                for at, _ in stored[1:]:
                    events[cluster_of[host_id]].add(round(at, 3))
            for home in homes:
                windows = restart_windows(restarts.values(), home)
                for cluster_id, ats in events.items():
                    cards = sorted(home.got[cluster_id])
                    for at in sorted(ats):
                        later = [t for t in cards if t >= at]
                        if later:
                            cards = later[1:]
                        status = "shown" if later else "superseded" if inside(at, windows) else "missed"
                        records.append((home, at, status))
                        if status == "missed":
                            failures.append(f"home page: no card of cluster {cluster_id} after its change at "
                                            f"{time.strftime('%H:%M:%S', time.localtime(at))}")
                    server = render_card(Cluster.objects.filter(pk=cluster_id))[1]
                    if not same_card(home.cards.get(cluster_id), server):
                        failures.append(f"home page ends with another card of cluster {cluster_id} than the server's")
            if not changes:
                failures.append("no HA sample stored: the poller did not poll")
        changed = sum(len(s) - 1 for s in changes.values())
        refused = [a for a in actions if a[3] != "done"]
        rows.append(("HA changes stored (samples differing from the host's previous one)",
                     f"{changed} over {len(changes)} hosts; {len(actions) - len(refused)} changes provoked, "
                     f"{len(refused)} refused by the lab's engine", "—"))
        for label, kind, target in ((f"cluster pages ({len(pages)}): each host's stored states shown", ClusterPage,
                                     "0 missed, each page ends on the database's state"),
                                    (f"home pages ({len(homes)}): each stored change followed by a card", HomePage,
                                     "0 missed, each card ends as the server's")):
            counts = {k: sum(1 for p, _, st in records if isinstance(p, kind) and st == k)
                      for k in ("shown", "superseded", "missed")}
            rows.append((label, f"{counts['shown']} of {sum(counts.values())}; {counts['superseded']} superseded "
                                f"during a restart (a later state shown), {counts['missed']} missed", target))
        stops = sorted(stopped for stopped, _ in restarts.values()) + [float("inf")]
        for name, (stopped, started) in restarts.items():
            until = next(t for t in stops if t > stopped)
            reconnected = sum(any(stopped < t < started + 30 for t in p.connects) for p in pages + homes)
            back = max(restart_windows([(stopped, started)], p)[0][1] for p in pages + homes)
            after = [st for p, at, st in records
                     if restart_windows([(stopped, started)], p)[0][1] < at < until]
            rows.append((f"{name} restart (down {started - stopped:.1f} s)",
                         f"{reconnected} of {len(pages) + len(homes)} pages reconnected; every page counted strictly "
                         f"again {back - started:.1f} s after the restart; after that: "
                         f"{after.count('shown')} of {len(after)} changes shown at the pages, {after.count('missed')} "
                         "missed", "the pages recover: nothing missed after"))
        for name in ("ha_poller", "daphne"):
            values = [s[name] for _, s in rss if name in s]
            if len(values) < 8:
                failures.append(f"{name}: only {len(values)} RSS samples (it died?)")
                continue
            early, late, ok = flat(values)
            if not ok and not SMOKE:
                failures.append(f"{name} RSS grew from {early:.1f} to {late:.1f} MiB")
            tenths = [values[min(len(values) - 1, round(k * (len(values) - 1) / 10))] for k in range(11)]
            rows.append((f"{name} RSS at each tenth of the soak", " → ".join(f"{v:.0f}" for v in tenths) + " MiB",
                         "—"))
            rows.append((f"{name} RSS (every {RSS_EVERY:.0f} s, {len(values)} samples)",
                         f"min {min(values):.1f}, after warm-up {early:.1f}, last quarter {late:.1f}, "
                         f"max {max(values):.1f} MiB{'' if ok else ' (GREW)'}",
                         f"last quarter ≤ second quarter + max({RSS_BOUND_MIB:.0f} MiB, "
                         f"{RSS_BOUND_SHARE:.0%})"))
        for proc, name in ((poller, "ha_poller"), (daphne, "daphne")):
            if proc.returncode not in (None, 0, -15):
                failures.append(f"{name} exited with status {proc.returncode}; see {bench.dir}/{name}.log")
        report(f"Soak, {LABS * CLUSTERS_PER_LAB} clusters, {RUN_SECONDS * SPEED / 3600:.2g} h of cluster time at "
               f"speed {SPEED:.0f}, Redis and PostgreSQL restarted", rows, NOTES)
        if failures:
            raise BenchFailure(f"{len(failures)} failure(s):\n  " + "\n  ".join(failures[:30]))
    finally:
        bench.close()


async def drive(bench, base, cookie, clusters, redis_server, postgres, procs):
    """The soak itself: pages follow, changes are provoked, Redis then PostgreSQL restart."""
    import aiohttp

    stop, stop_actions = asyncio.Event(), asyncio.Event()
    pages = [ClusterPage(base, cookie, c) for c in clusters]
    homes = [HomePage(base, cookie, clusters) for _ in range(HOME_PAGES)]
    restarts, actions, rss = {}, [], []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        following = [asyncio.create_task(p.follow(session, stop)) for p in pages + homes]
        sampling = asyncio.create_task(rss_series(procs, rss, stop))
        with phase("every page connects", 90):
            deadline = time.monotonic() + 60
            while not all(p.connects for p in pages + homes):
                if time.monotonic() > deadline:
                    raise BenchFailure("pages not connected within 60 s: " + "; ".join(
                        f"{p.url}: {p.error}" for p in pages + homes if not p.connects))
                await asyncio.sleep(0.2)
        provoking = asyncio.create_task(provoke(bench, stop_actions, actions))
        began = time.monotonic()

        async def until(fraction):
            await asyncio.sleep(max(0.0, began + RUN_SECONDS * fraction - time.monotonic()))

        with phase(f"soak {RUN_SECONDS:.0f} s ({RUN_SECONDS * SPEED / 60:.0f} cluster minutes)",
                   RUN_SECONDS + 4 * DOWN_SECONDS + 120):
            await until(RESTART_AT[0])
            stopped = time.time()
            await asyncio.to_thread(redis_server.stop)
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(redis_server.start)
            restarts["Redis"] = (stopped, time.time())
            await until(RESTART_AT[1])
            stopped = time.time()
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(postgres.start)
            restarts["PostgreSQL"] = (stopped, time.time())
            await until(1)
            stop_actions.set()
            await provoking
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise BenchFailure(f"{name} exited with status {proc.returncode}; see {bench.dir}/{name}.log")
        with phase(f"stop the poller, let every page check {FINAL_CHECKS} time(s)", 60):
            poller = procs["ha_poller"]
            poller.terminate()
            await asyncio.to_thread(poller.wait, 30)
            await asyncio.sleep(FINAL_CHECKS * CHECK_SECONDS + 2)
        stop.set()
        for task in following:
            task.cancel()
        await asyncio.gather(*following, sampling, return_exceptions=True)
    return pages, homes, restarts, actions, rss


NOTES = f"""
Time mapping: the labs run at --speed {SPEED:.0f}, so {RUN_SECONDS:.0f} real seconds are
{RUN_SECONDS * SPEED / 60:.0f} cluster minutes; the poller polls each cluster every 10 cluster
seconds ({INTERVAL:.2f} s real), as at speed 1 every 10 s. {LABS} lab(s) of 3 hosts,
{CLUSTERS_PER_LAB} portal clusters on each (each with its own hosts and samples), one
`ha_poller`, one daphne, the bench's own Redis and PostgreSQL. Every {ACTION_EVERY * SPEED:.0f}
cluster seconds each lab gets the next of: a host to local maintenance (web admin), the host
activated, the engine VM migrated, the engine VM killed (HA restarts it elsewhere). Redis
is stopped at {RESTART_AT[0]:.0%} of the soak, PostgreSQL at {RESTART_AT[1]:.0%}, each for {DOWN_SECONDS:.1f} s. The pages
are aiohttp clients that behave as cluster.js / home.js (a check every 5 s, reconnect with
backoff). A change stored during a restart may reach a page only as a later state (the page
is promised the latest state, through its check or its reconnect): counted as superseded,
not missed. RSS is read from /proc every {RSS_EVERY:.0f} s; samples, pages and restarts share
the machine's cores with the labs.
"""

if __name__ == "__main__":
    run(main)
