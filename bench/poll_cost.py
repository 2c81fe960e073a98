"""The portal's own CPU per HA poll (bench, not a test).

bench/ha_polling.py measures pollers beside labs that answer every `--vm-status` in a
sandbox on the same cores; at hundreds of clusters the labs starve the pollers, and a
poller's CPU then says little about its cost. Here one cluster is polled in this process,
one poll at a time, on a quiet lab: CPU time of this process per poll (the SSH exchange,
the parse, the store and the publish; not the lab's), once with a database connection per
poll (DB_CONN_MAX_AGE=0, the default) and once with connections kept (as deployed), and
what that cost means for a poller at the issue's size: 1,000 clusters every 10 s over 4
pollers is 25 polls a second each.

--smoke: 5 polls each.
"""
import time

from harness import SMOKE, Bench, BenchFailure, phase, report, run, size

POLLS = size(100, 5)
RATE = 1000 / 10 / 4  # polls a second for each of 4 pollers of 1,000 clusters at 10 s


def measure(poller, hosts, polls):
    """The loop hands each poll its cluster's hosts (read once a refresh), as here."""
    from django.db import close_old_connections

    for _ in range(3):  # warm: session open, caches filled
        poller.poll(hosts)
        close_old_connections()
    cpu, wall = time.process_time(), time.monotonic()
    for _ in range(polls):
        if not poller.poll(hosts):
            raise BenchFailure("a poll found no host")
        close_old_connections()  # as the poller's loop ends each task
    return (time.process_time() - cpu) / polls * 1000, (time.monotonic() - wall) / polls


def main():
    bench = Bench("poll_cost")
    try:
        from django.db import connection

        from upgrades.poller import ClusterPoller

        cluster = bench.import_lab(0, name="cluster")
        poller, hosts = ClusterPoller(cluster.pk), list(cluster.hosts.all())
        rows = []
        try:
            for label, max_age in (("a connection per poll (DB_CONN_MAX_AGE=0)", 0),
                                   ("connections kept (DB_CONN_MAX_AGE=60)", 60)):
                connection.close()
                connection.settings_dict["CONN_MAX_AGE"] = max_age
                with phase(f"{POLLS} polls, {label}", 60 + POLLS * 5):
                    cpu, wall = measure(poller, hosts, POLLS)
                rows.append((f"CPU per poll, {label}", f"{cpu:.1f} ms (a poll takes {wall:.2f} s)",
                             "—"))
                rows.append((f"a poller of 250 clusters every 10 s, {label}",
                             f"{cpu * RATE / 10:.1f} % of a core", "≤ 25 % of a core"))
        finally:
            poller.close()
        if SMOKE and not rows:
            raise BenchFailure("nothing measured")
        report("Portal CPU per HA poll", rows, NOTES)
    finally:
        bench.close()


NOTES = f"""
One cluster (a lab of 3 hosts, speed 1: its `--vm-status` sleeps 1 s as the real command's
start-up and broker round trip take about that) polled {POLLS} times in this process, one
poll at a time, after 3 to warm up; CPU is this process's user + system time
(`time.process_time`), so the lab's own work is not in it. A poller at the issue's size
makes {RATE:.0f} polls a second (1,000 clusters, every 10 s, 4 pollers): the second row of
each pair is the CPU per poll at that rate. Not included: the poller loop's bookkeeping
(a dict per cluster, every 50 ms) and its engine-view and package reads, a few per cent.
"""

if __name__ == "__main__":
    run(main)
