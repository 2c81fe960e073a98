"""The dashboard at scale (bench, not a test): 1,000 clusters of 5 hosts.

1. Server render time and queries of the home page, a cluster page (as a
   viewer and as an operator, whose page plans every maintenance button) and
   a home card, rendered in-process with Django's test client.
2. The week chart's data, downsampled on the server, for a cluster whose 5
   hosts have a year of samples (one a minute, as the poller stores them).
3. Fan-out: 200 home pages hold their websocket open on a real daphne; HA
   updates are published as the poller does (``events.publish``); the web
   process renders each changed card once and pushes it to every page (the
   pages do not say which cards they show: each gets every card, the worst
   case); a page that gets "home.changed" instead fetches the card, as home.js
   does. The time for all pages to join is measured too.

BENCH_CLUSTERS sets the number of clusters. --smoke: 5 clusters, a day of
samples, 3 home pages, 3 updates, 3 renders each.
"""
import asyncio
import os
import random
import statistics
import time
from datetime import timedelta

from harness import RESETS, SMOKE, Bench, BenchFailure, percentile, phase, report, run, size, ws_connect

CLUSTERS = int(os.environ.get("BENCH_CLUSTERS", size(1000, 5)))
HOSTS = 5
ACTIVE_RUNS = min(50, CLUSTERS)  # clusters with a run in progress
# the measured cluster's hosts (BENCH_CHART_MINUTES: fewer, to measure the pages alone sooner)
YEAR_MINUTES = int(os.environ.get("BENCH_CHART_MINUTES", size(365 * 24 * 60, 24 * 60)))
OTHER_MINUTES = size(60, 10)  # each other host: an hour of samples
REPEAT = size(30, 3)
VIEWERS = size(200, 3)
UPDATES = size(60, 3)
UPDATE_EVERY = 0.5


def fill(now):
    """Clusters, hosts, runs and samples; the first cluster's hosts get a year of samples."""
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from upgrades.models import Cluster, HaSample, Host, Runbook, RunStep, UpgradeRun

    operator = User.objects.create_user("operator", password="x")
    operator.groups.add(Group.objects.get(name="operator"))
    viewer = User.objects.create_user("viewer", password="x")
    viewer.groups.add(Group.objects.get(name="viewer"))
    runbook, _ = Runbook.objects.get_or_create(slug="diagnostic", defaults={"name": "Diagnostic"})
    hosts = []
    with transaction.atomic():
        for c in range(CLUSTERS):
            cluster = Cluster.objects.create(name=f"cluster{c:04d}", polled_at=now, maintenance_mode="none",
                                             detected_release="oVirt 4.3 (ovirt-hosted-engine-ha 2.3.6)")
            mine = Host.objects.bulk_create([Host(
                cluster=cluster, name=f"he{h}.c{c:04d}.example.com", address=f"10.{c // 250}.{c % 250}.{h}",
                he_host_id=h, os_release="el7", ha_state="EngineUp" if h == 1 else "EngineDown",
                ha_score=3400, ha_live=True, engine_vm_here=h == 1, ha_seen_at=now) for h in range(1, HOSTS + 1)])
            hosts += mine
            steps = []
            for r in range(3):
                active = r == 2 and c < ACTIVE_RUNS
                run = UpgradeRun.objects.create(cluster=cluster, runbook=runbook, requested_by=operator,
                                                status="running" if active else "succeeded")
                start = now - timedelta(days=6 - 2 * r)
                for n in range(1, 11):
                    done = not active or n < 4
                    steps.append(RunStep(
                        run=run, order=n, key=f"s{n}", title=f"Step {n}", host=mine[n % HOSTS],
                        command="true", status="succeeded" if done else ("running" if n == 4 else "pending"),
                        started_at=start + timedelta(minutes=n) if done or n == 4 else None,
                        finished_at=start + timedelta(minutes=n, seconds=40) if done else None))
            RunStep.objects.bulk_create(steps)
    adapt = connection.ops.adapt_datetimefield_value
    sql = (f"INSERT INTO {HaSample._meta.db_table} (host_id, at, state, score, live, engine_vm, local_maintenance)"
           " VALUES (%s, %s, %s, %s, %s, %s, %s)")
    rng = random.Random(1)
    total = 0
    for n, host in enumerate(hosts):
        minutes = YEAR_MINUTES if n < HOSTS else OTHER_MINUTES
        rows = []
        for m in range(minutes):
            score = 3400 if rng.random() > 0.002 else rng.choice((0, 1800, 2400))
            rows.append((host.pk, adapt(now - timedelta(minutes=m)), "EngineDown", score, True, "down", False))
            if len(rows) == 20000 or m == minutes - 1:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.executemany(sql, rows)
                total += len(rows)
                rows = []
    return operator, viewer, total


def timed(client, url, repeat=REPEAT):
    """(p50 ms, max ms, queries) of GET url, in-process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), max(times), len(queries), len(response.content)


async def fan_out(base, cookie, clusters):
    """VIEWERS home pages; returns the latencies (ms) of the cards pushed, and of those fetched."""
    import aiohttp

    from upgrades import events, ha

    card_ms, fetched_ms, joined = [], [], []
    sent = {}  # cluster id -> publish time of its latest update
    headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://{base}"}

    gate = asyncio.Semaphore(10)  # daphne's listen backlog (50) resets a crowd of connections at once

    async def viewer(session, ready):
        url = f"ws://{base}/ws/home/"
        try:
            async with gate:
                ws = await ws_connect(session, url, headers)
        except BenchFailure as error:
            ready.set_exception(error)
            raise
        async with ws:
            ready.set_result(None)
            async for msg in ws:
                ev = msg.json()
                if ev["type"] == "home.card":  # the card itself, rendered once for all pages
                    card_ms.append((time.perf_counter() - sent[ev["cluster"]]) * 1000)
                elif ev["type"] == "home.changed":  # the fallback: fetch it, as home.js does
                    async with session.get(f"http://{base}/clusters/{ev['cluster']}/card/", headers=headers) as r:
                        await r.read()
                    fetched_ms.append((time.perf_counter() - sent[ev["cluster"]]) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:  # 100 by default
        readies = [asyncio.get_running_loop().create_future() for _ in range(VIEWERS)]
        tasks = [asyncio.create_task(viewer(session, ready)) for ready in readies]
        # A join reads the process's shared digest map (upgrades/homefeed.py), once per
        # 4 s for all pages: the time for all pages to join is measured too.
        began = time.perf_counter()
        with phase(f"{VIEWERS} home pages connect", 60 + VIEWERS):
            await asyncio.gather(*readies)
        joined.append(time.perf_counter() - began)
        await asyncio.sleep(1)
        for n in range(UPDATES):
            cluster = clusters[n % len(clusters)]
            sent[cluster.pk] = time.perf_counter()
            await asyncio.to_thread(lambda c=cluster: events.publish(events.cluster_group(c.pk), ha.cluster_payload(c)))
            await asyncio.sleep(UPDATE_EVERY)
        await asyncio.sleep(5)
        for task in tasks:
            if task.done() and task.exception():  # a page the server closed
                raise task.exception()
            task.cancel()
    return card_ms, fetched_ms, joined[0]


def main():
    bench = Bench("dashboard", labs=0)
    try:
        from django.test import Client
        from django.urls import reverse
        from django.utils import timezone

        from upgrades import charts
        from upgrades.models import Cluster

        t0 = time.perf_counter()
        with phase(f"fill {CLUSTERS} clusters", 1800):
            operator, viewer, samples = fill(timezone.now())
        fill_s = time.perf_counter() - t0
        clusters = list(Cluster.objects.order_by("name"))
        big = clusters[0]
        as_viewer, as_operator = Client(HTTP_HOST="localhost"), Client(HTTP_HOST="localhost")
        as_viewer.force_login(viewer)
        as_operator.force_login(operator)
        rows = []
        for label, client, url in [
            (f"home page ({CLUSTERS} clusters), viewer", as_viewer, reverse("home")),
            ("cluster page, viewer", as_viewer, reverse("cluster-detail", args=[big.pk])),
            ("cluster page, operator (plans 12 maintenance buttons)", as_operator,
             reverse("cluster-detail", args=[big.pk])),
            ("cluster live fragment, operator", as_operator, reverse("cluster-live", args=[big.pk])),
            ("home card of one cluster (fan-out fetch)", as_viewer, reverse("cluster-card", args=[big.pk])),
            ("chart data, last hour", as_viewer, reverse("cluster-scores", args=[big.pk]) + "?range=hour"),
            ("chart data, last day", as_viewer, reverse("cluster-scores", args=[big.pk]) + "?range=day"),
            (f"chart data, last week ({min(YEAR_MINUTES, 7 * 1440) * HOSTS:,} samples → 5 × 336 points)", as_viewer,
             reverse("cluster-scores", args=[big.pk]) + "?range=week"),
        ]:
            with phase(label, 300):
                p50, worst, queries, kib = timed(client, url)
            target = "≤ 150 ms, constant queries" if label.startswith("home page") else (
                "≤ 50 ms" if label.startswith("cluster page") else "—")
            rows.append((label, f"{p50:.0f} ms (max {worst:.0f}), {queries} queries, {kib // 1024} KiB", target))
            print(*rows[-1], sep=" | ", flush=True)
        data = charts.score_history(big, list(big.hosts.all()), "week")
        assert len(data["x"]) == 336 and all(len(h["score"]) == 336 for h in data["hosts"])

        base = bench.start_daphne()
        cookie = as_viewer.cookies["sessionid"].value
        with phase("fan-out", 120 + VIEWERS + UPDATES * UPDATE_EVERY):
            card_ms, fetched_ms, joined = asyncio.run(fan_out(base, cookie, clusters[:UPDATES]))
        expected = VIEWERS * UPDATES
        rows.append((f"{VIEWERS} home page websockets opened (10 at a time) until all joined", f"{joined:.1f} s",
                     "—"))
        if SMOKE and len(card_ms) + len(fetched_ms) < expected:
            raise BenchFailure(f"{len(card_ms) + len(fetched_ms)} of {expected} cards reached the home pages")
        rows.append((f"fan-out: {UPDATES} HA updates to {VIEWERS} home pages, publish to new card on the page",
                     f"p50 {percentile(card_ms, 50):.0f} ms, p99 {percentile(card_ms, 99):.0f} ms, "
                     f"{len(card_ms)}/{expected} cards pushed, {len(fetched_ms)} fetched instead; "
                     f"{len(RESETS)} connections reset and opened again",
                     "p99 ≤ 100 ms, every page gets every change"))
        report(f"Dashboard, {CLUSTERS} clusters × {HOSTS} hosts", rows, NOTES.format(
            samples=samples, fill=fill_s, chart=YEAR_MINUTES, db=os.environ.get("DATABASE_URL", "").split(":", 1)[0]))
    finally:
        bench.close()


NOTES = """
{samples:,} HA samples ({fill:.0f} s to write, with the clusters, hosts and runs): {chart:,} minutes
at one a minute for the measured cluster's 5 hosts (a year unless BENCH_CHART_MINUTES says),
an hour for each other host (the pages read the hosts'
last state, not the samples; only the chart reads samples, of one cluster); 3 runs of 10 steps
per cluster, 50 of them running. Render times are in-process (Django test client, {db}),
median and max of 30, after the first. The chart reads
an index range on (host, at) and keeps each interval's lowest score, so its cost follows the range's
samples, not the table's size. Fan-out: one daphne, {viewers} aiohttp websockets, an HA update every
{every} s published as the poller does; the web process renders the changed card once and pushes it
to every home page (a page fetches it itself only if that render fails).
Everything (daphne, Redis, the viewers, the bench) shares the machine's cores.
The operator's cluster page plans each maintenance button without further queries (the hosts
and the active run are read once for all of them) and a user's roles are read once per request,
so every page costs the same queries for any number of hosts (before 2026-12-06: the operator's
page 43 queries for 5 hosts, 4 more per host).
""".replace("{viewers}", str(VIEWERS)).replace("{every}", str(UPDATE_EVERY))

if __name__ == "__main__":
    run(main)
