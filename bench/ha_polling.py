"""HA polling at 100 and 300 clusters (bench, not a test).

The portal clusters are spread over a few lab processes (each cluster gets the
3 hosts of one lab), so the portal side does every cluster's work: one SSH
session per cluster, one `--vm-status --json`, a parse and a store per interval.
The issue's target is 10 s with 4 poller processes; each size is measured
with that interval and shard count unless BENCH_INTERVAL / BENCH_POLLERS say
otherwise. BENCH_CLUSTERS="100,300" picks the sizes.

--smoke: 4 clusters on one lab, every 1 s, 2 pollers, 4 s of sampling.
"""
import os
import subprocess
import time

from harness import SMOKE, Bench, BenchFailure, cpu_seconds, percentile, phase, report, rss_mib, run, size

CLUSTERS = [int(n) for n in os.environ.get("BENCH_CLUSTERS", size("100,300", "4")).split(",")]
LABS = size(10, 1)
INTERVAL = float(os.environ.get("BENCH_INTERVAL", size(10.0, 1.0)))
POLLERS = int(os.environ.get("BENCH_POLLERS", size(4, 2)))
DURATION = size(60.0, 4.0)


def measure(bench, clusters, imported):
    """Import up to ``clusters``, poll them with POLLERS shards, sample the ages."""
    from django.utils import timezone

    from upgrades.models import Cluster

    with phase(f"import {clusters - imported} clusters", 60 + clusters):
        for n in range(imported, clusters):
            bench.import_lab(n % LABS, name=f"cluster{n:04d}", poll_interval=INTERVAL)
    pollers = [bench.start(f"poller{clusters}-{i}", "manage.py", "ha_poller", "--shard", f"{i}/{POLLERS}")
               for i in range(POLLERS)]
    with phase(f"first poll of {clusters} clusters", 120 + clusters):
        since = timezone.now()
        while Cluster.objects.filter(polled_at__gte=since).count() < clusters:
            dead = [p for p in pollers if p.poll() is not None]
            if dead:
                raise BenchFailure(f"a poller exited with status {dead[0].returncode}; see {bench.dir}")
            time.sleep(0.5)
    time.sleep(INTERVAL)  # warm: every connection open
    cpu0 = [cpu_seconds([p.pid]) for p in pollers]
    t0 = time.monotonic()
    ages, errors, polls = [], 0, set()
    with phase(f"sample {clusters} clusters for {DURATION:.0f} s", DURATION + 60):
        while time.monotonic() - t0 < DURATION:
            now = timezone.now()
            for pk, polled_at, error in Cluster.objects.values_list("pk", "polled_at", "poll_error"):
                ages.append((now - polled_at).total_seconds() if polled_at else float("inf"))
                errors += bool(error)
                polls.add((pk, polled_at))  # each poll moves polled_at: one pair per poll seen
            time.sleep(1.0)
    wall = time.monotonic() - t0
    cpus = [(cpu_seconds([p.pid]) - c0) / wall * 100 for p, c0 in zip(pollers, cpu0)]
    # The polls made in the window (the first sample's values were made before it).
    polls = len(polls) - clusters
    per_poll = sum(cpus) / 100 * wall / max(polls, 1) * 1000  # ms of CPU
    at_target = per_poll * clusters / INTERVAL / POLLERS / 10  # % of a core per poller
    rss = [rss_mib(p.pid) for p in pollers]
    for proc in pollers:
        proc.terminate()
    for proc in pollers:  # a poller finishes the polls under way (a yum check-update...) first
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        bench.procs.remove(proc)
    if SMOKE and (errors or max(ages) > INTERVAL + 10):
        raise BenchFailure(f"{errors} polls failed, oldest sample {max(ages):.1f} s")
    limit = INTERVAL + 2
    return [
        (f"{clusters} clusters: age of each cluster's freshest sample",
         f"p50 {percentile(ages, 50):.2f} s, p99 {percentile(ages, 99):.2f} s, max {max(ages):.2f} s"
         f"{'' if percentile(ages, 99) <= limit else ' (UNMET)'}", f"p99 ≤ interval + 2 s = {limit:.0f} s"),
        (f"{clusters} clusters: CPU of each of the {POLLERS} pollers",
         f"{', '.join(f'{c:.1f}' for c in cpus)} % of a core (all: {sum(cpus):.1f} %); RSS "
         f"{', '.join(f'{r:.0f}' for r in rss)} MiB", "each ≤ 25 % of a core"),
        (f"{clusters} clusters: polls made, and CPU per poll",
         f"{polls / wall:.1f} polls/s of the {clusters / INTERVAL:.1f} wanted; {per_poll:.1f} ms of CPU per poll: "
         f"{at_target:.1f} % of a core per poller at the wanted rate", "≤ 25 % at the wanted rate"),
        (f"{clusters} clusters: polls that found no host", str(errors), "0"),
    ]


def main():
    bench = Bench("ha_polling", labs=LABS)
    try:
        rows, imported = [], 0
        for clusters in CLUSTERS:
            rows += measure(bench, clusters, imported)
            imported = clusters
            print(*rows[-4:], sep="\n", flush=True)
        report(f"HA polling, {'/'.join(map(str, CLUSTERS))} clusters every {INTERVAL:.0f} s, {POLLERS} pollers",
               rows, NOTES)
    finally:
        bench.close()


NOTES = f"""
Clusters spread over {LABS} labs of 3 hosts each (speed 1), {POLLERS} `ha_poller` shards
(`--shard i/{POLLERS}`), every {INTERVAL:.0f} s. After every cluster's first poll and one more
interval, the age of each cluster's freshest sample (`polled_at`) is read from the database
once a second for {DURATION:.0f} s, so it includes up to one interval of waiting by design.
CPU is user + system time of each poller process over the sampling, from /proc. Each
distinct `polled_at` seen is a poll; CPU per poll is the pollers' CPU over those polls,
and "at the wanted rate" is that cost times clusters / interval / pollers: what each
poller would use if the labs answered as fast as the interval asks (when they do not,
the pollers wait, and their CPU over the window says less about their cost).
The labs (bubblewrap sandboxes answering every `--vm-status`) run on the same cores as the
pollers: at 300 clusters the labs' own work is most of the machine.
"""

if __name__ == "__main__":
    run(main)
