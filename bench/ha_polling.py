"""HA polling of 100 clusters at a 5 s interval with 2 poller processes (bench, not a test).

The 100 portal clusters are spread over a few lab processes (each cluster
gets the 3 hosts of one lab), so the portal side does 100 clusters' work:
100 SSH sessions, 100 parses and stores every 5 s.
"""
import os
import time

from harness import Bench, percentile, report

CLUSTERS = 100
LABS = 10
INTERVAL = 5.0
DURATION = 60.0


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    bench = Bench("ha_polling", labs=LABS)
    try:
        from django.utils import timezone

        from upgrades.models import Cluster

        for n in range(CLUSTERS):
            bench.import_lab(n % LABS, name=f"cluster{n:03d}", poll_interval=INTERVAL)
        pollers = [bench.start(f"poller{i}", "manage.py", "ha_poller", "--shard", f"{i}/2") for i in range(2)]
        time.sleep(INTERVAL * 2)  # warm up: first connections
        cpu0 = sum(cpu_seconds(p.pid) for p in pollers)
        t0 = time.monotonic()
        lags, errors = [], 0
        while time.monotonic() - t0 < DURATION:
            now = timezone.now()
            for polled_at, error in Cluster.objects.values_list("polled_at", "poll_error"):
                lags.append((now - polled_at).total_seconds() if polled_at else float("inf"))
                errors += bool(error)
            time.sleep(1.0)
        wall = time.monotonic() - t0
        cpu = sum(cpu_seconds(p.pid) for p in pollers) - cpu0
        rows = [
            ("age of each cluster's freshest sample", f"p50 {percentile(lags, 50):.2f} s, p99 "
             f"{percentile(lags, 99):.2f} s, max {max(lags):.2f} s", f"≤ interval ({INTERVAL:.0f} s) + one poll"),
            ("CPU of the 2 pollers", f"{cpu / wall * 100:.1f} % of one core ({cpu:.1f} s in {wall:.0f} s)",
             "well under the 2 cores"),
            ("polls that found no host", str(errors), "0"),
        ]
        report(f"HA polling, {CLUSTERS} clusters every {INTERVAL:.0f} s, 2 pollers", rows, NOTES)
    finally:
        bench.close()


NOTES = f"""
{CLUSTERS} clusters spread over {LABS} labs of 3 hosts each (speed 1), 2 `ha_poller` shards.
Lag is sampled once a second for {DURATION:.0f} s from the database, so it includes up to one
interval of waiting by design; a lag well above {INTERVAL:.0f} s would mean polls fall behind.
"""

if __name__ == "__main__":
    main()
