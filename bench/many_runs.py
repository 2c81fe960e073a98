"""Many runs at once (bench, not a test): 50 clusters each running a runbook with
output, on 8 RQ workers.

Each cluster (its 3 hosts those of one of a few labs) gets a run of STEPS steps,
each step printing 50 lines (`seq 50`); all runs are queued at once. From the
steps' stored start and end times: the engine's cost between one step's end and
the next one's start (per-step overhead), each run's wait in the queue and its
duration (no run starved: every run ends, and a run's wait is its place in the
queue, not unbounded); then the audit chain is walked (`audit.verify`), and the
workers' memory is read.

--smoke: 3 clusters, 2 workers, 3 steps.
"""
import statistics
import time

from harness import SMOKE, Bench, BenchFailure, percentile, phase, report, rss_mib, run, size

CLUSTERS = size(50, 3)
WORKERS = size(8, 2)
STEPS = size(10, 3)
LABS = size(5, 1)


def main():
    bench = Bench("many_runs", labs=LABS)
    try:
        from django.contrib.auth import get_user_model
        from django.db.models import Count

        from tests.factories import make_run
        from upgrades import audit
        from upgrades.models import RunStep, UpgradeRun
        from upgrades.services import enqueue_run

        user = get_user_model().objects.create_user("bench", is_superuser=True)
        runs = []
        with phase(f"import {CLUSTERS} clusters", 60 + CLUSTERS):
            for n in range(CLUSTERS):
                cluster = bench.import_lab(n % LABS, name=f"cluster{n:03d}")
                host = cluster.hosts.order_by("he_host_id").first()
                runs.append(make_run(user, host, ["seq 50"] * STEPS))
        workers = bench.start_worker(WORKERS)
        started = time.time()
        for r in runs:
            enqueue_run(r)
        ids = [r.pk for r in runs]
        try:
            with phase(f"{CLUSTERS} runs of {STEPS} steps on {WORKERS} workers", 120 + CLUSTERS * STEPS):
                while UpgradeRun.objects.filter(pk__in=ids, status__in=("pending", "running")).exists():
                    dead = [w for w in workers if w.poll() is not None]
                    if dead:
                        raise BenchFailure(f"a worker exited with status {dead[0].returncode}; see {bench.dir}")
                    time.sleep(0.5)
        except BenchFailure as failure:  # how far it got: slow everywhere, or a few runs stuck?
            by_status = sorted(UpgradeRun.objects.filter(pk__in=ids).values_list("status").annotate(n=Count("pk")))
            ended = RunStep.objects.filter(run__in=ids, finished_at__isnull=False).count()
            raise BenchFailure(f"{failure}: runs by status {dict(by_status)}, {ended} of {CLUSTERS * STEPS} "
                               f"steps ended; worker logs in {bench.dir}") from None
        wall = time.time() - started
        statuses = dict(UpgradeRun.objects.filter(pk__in=ids).values_list("pk", "status"))
        failed = [pk for pk, status in statuses.items() if status != "succeeded"]
        gaps, waits, durations = [], [], []
        for r in runs:
            steps = list(RunStep.objects.filter(run=r).order_by("order").values_list("started_at", "finished_at"))
            if any(s is None or f is None for s, f in steps):
                continue
            gaps += [(b[0] - a[1]).total_seconds() * 1000 for a, b in zip(steps, steps[1:])]
            r.refresh_from_db()
            waits.append((steps[0][0] - r.queued_at).total_seconds())
            durations.append((steps[-1][1] - steps[0][0]).total_seconds())
        with phase("audit_verify", 300):
            checked, problem = audit.verify()
        rss = [rss_mib(w.pid) for w in workers]
        if SMOKE and (failed or problem or not gaps):
            raise BenchFailure(f"runs not succeeded: {failed}; audit chain: {problem}")
        rows = [
            ("all runs, queued to the last step's end", f"{wall:.1f} s; {len(failed)} of {CLUSTERS} not succeeded",
             "every run succeeds"),
            (f"engine's cost between steps ({len(gaps)} step starts)",
             f"p50 {percentile(gaps, 50):.1f} ms, p99 {percentile(gaps, 99):.1f} ms, max {max(gaps):.0f} ms",
             "p50 ≤ 10 ms"),
            ("each run's wait in the queue", f"p50 {percentile(waits, 50):.1f} s, max {max(waits):.1f} s",
             "no run starved"),
            ("each run's duration, first step start to last step end",
             f"p50 {statistics.median(durations):.2f} s, max {max(durations):.2f} s", "—"),
            ("audit chain", f"{checked:,} events, {'intact' if problem is None else problem}", "intact"),
            (f"RSS of the {WORKERS} workers at the end", f"{min(rss):.0f}–{max(rss):.0f} MiB", "flat"),
        ]
        report(f"Many runs at once: {CLUSTERS} clusters, {WORKERS} workers", rows, NOTES)
    finally:
        bench.close()


NOTES = f"""
{CLUSTERS} clusters over {LABS} labs of 3 hosts (speed 1), each a run of {STEPS} steps of `seq 50`
on its first host, all queued at once to {WORKERS} `rqworker` processes (each forks a work
horse per run). The cost between steps is the next step's start minus the previous step's
end as stored (the step's claim, its audit event, the output's end, the publish); it does
not include the SSH channel inside a step. Everything shares the 2 cores: with 8 workers
busy, a step waits for a core more than for the portal.
"""

if __name__ == "__main__":
    run(main)
