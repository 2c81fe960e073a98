"""Live output: latency at 1,000 lines/s with 1/10/50 viewers on one web process
and 200 viewers over two web processes behind nginx, and throughput of one step
printing 200,000 lines with 10 viewers (bench, not a test); each measured under
daphne and under uvicorn with uvloop, side by side in one run (BENCH_SERVERS).

Latency is measured from the moment a lab host prints a line (the line is
that moment, `date +%s.%N`, the lab running at speed 1 on this machine's
clock) to its arrival at a websocket client connected to the web process.
"200x2" viewers: two web processes on the same Redis channel layer behind
Debian's nginx (the proxy settings of deploy/nginx/heportal.conf), the clients
connected to nginx, which spreads them over the two.

--smoke: 200 lines to 1 viewer and to 2 through nginx over two web processes,
2,000 lines of throughput, for each server.
"""
import asyncio
import gc
import os
import sys
import time

from harness import SMOKE, Bench, BenchFailure, cpu_seconds, follow_run, percentile, phase, report, run, size

LATENCY_LINES = size(5_000, 200)
THROUGHPUT_LINES = size(200_000, 2_000)
# "N" viewers on one daphne, "NxP" split over P daphnes on the same channel layer.
VIEWERS = [(int(n), int(p or 1)) for n, _, p in (v.partition("x") for v in
           os.environ.get("BENCH_VIEWERS", size("1,10,50,200x2", "1,2x2")).split(","))]
SKIP_THROUGHPUT = os.environ.get("BENCH_SKIP_THROUGHPUT") == "1"
# The ASGI servers measured side by side, each as its deploy/systemd unit runs it.
SERVERS = os.environ.get("BENCH_SERVERS", "daphne,uvicorn").split(",")


def window():
    """The batching window in the title when it is not the default (a study of it)."""
    from django.conf import settings

    given = os.environ.get("OUTPUT_MIN_INTERVAL")
    return f", OUTPUT_MIN_INTERVAL {settings.OUTPUT_MIN_INTERVAL * 1000:g} ms" if given else ""


def make_run(user, host, command):
    from tests.factories import make_run as factory

    return factory(user, host, [command])


async def viewer(base, path, cookie, ready, out, gate):
    status = await follow_run(base, path, cookie, ready, gate, lambda now, lines: out.append((now, lines)))
    out.append((time.time(), status))


async def watch(bases, run_id, cookie, viewers, start, seconds):
    # The viewers keep every line they get; a full garbage collection over
    # that growing heap would pause them and be counted as latency.
    gc.collect()
    gc.disable()
    try:
        return await _watch(bases, run_id, cookie, viewers, start, seconds)
    finally:
        gc.enable()


async def _watch(bases, run_id, cookie, viewers, start, seconds):
    loop = asyncio.get_running_loop()
    readies = [loop.create_future() for _ in range(viewers)]
    outs = [[] for _ in range(viewers)]
    gate = asyncio.Semaphore(20)
    tasks = [asyncio.create_task(viewer(bases[n % len(bases)], f"/ws/runs/{run_id}/", cookie, ready, out, gate))
             for n, (ready, out) in enumerate(zip(readies, outs))]
    with phase(f"{viewers} viewer(s) connect", 60):
        await asyncio.gather(*readies)
    await asyncio.sleep(0.5)  # let the initial snapshot pass
    with phase(f"run to its end at {viewers} viewer(s)", seconds):
        started = time.time()
        await asyncio.to_thread(start)
        await asyncio.gather(*tasks)
    return started, outs


def clock_offset(lab):
    """The lab's simulated wall clock minus ours (it runs its agents' history ahead)."""
    client = lab.connect(lab.manifest["hosts"][0]["name"])
    try:
        samples = []
        for _ in range(5):
            before = time.time()
            stamp = float(client.exec_command("date +%s.%N")[1].read())
            after = time.time()
            samples.append((after - before, stamp - (before + after) / 2))
        return min(samples)[1]
    finally:
        client.close()


def lines_of(out):
    return [line for _, batch in out if isinstance(batch, list) for line in batch]


def latency_row(outs, offset):
    """(p50, p99 in ms, lines/s printed, every viewer got every line) of one latency run."""
    latencies, stamps = [], []
    for out in outs:
        for received, batch in out:
            if isinstance(batch, list):
                for _seq, _stream, text in batch:
                    latencies.append((received - (float(text) - offset)) * 1000)
                    stamps.append(float(text))
    if not stamps:
        raise BenchFailure(f"no line reached any of the {len(outs)} viewer(s)")
    complete = all(len(lines_of(out)) == LATENCY_LINES for out in outs)
    return percentile(latencies, 50), percentile(latencies, 99), LATENCY_LINES / (max(stamps) - min(stamps)), complete


def main():
    bench = Bench("live_output")
    try:
        from django.contrib.auth import get_user_model
        from django.test import Client

        from upgrades.models import StepOutput, UpgradeRun
        from upgrades.services import enqueue_run

        cluster = bench.import_lab()
        host = cluster.hosts.order_by("he_host_id").first()
        from tests.factories import grant

        # Roles are per cluster: without one the run's websocket is refused (4403).
        user = grant(get_user_model().objects.create_user("bench"), cluster, "viewer")
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        bench.start_worker(1)
        # Per server: its web processes, and nginx in front of them for the "xP" sizes.
        processes = max(p for _, p in VIEWERS)
        entries, pids = {}, {}
        started = {server: [bench.start_web(server, f"{server}{n}") for n in range(processes)] for server in SERVERS}
        bench.wait_web()
        for server, bases in started.items():
            entries[server] = {1: bases[:1]}
            pids[server] = {1: [bench.web[bases[0]].pid]}
            if processes > 1:
                entries[server][processes] = [bench.start_proxy(bases, f"nginx-{server}")]
                pids[server][processes] = [bench.web[base].pid for base in bases]

        with phase("lab clock offset", 60):
            offset = clock_offset(bench.labs[0])
        # Two lines per loop: the lab's sleep cannot be shorter than the event
        # loop's 1 ms tick, and one line a tick would print fewer than 1,000/s.
        numbers = " ".join(str(i) for i in range(LATENCY_LINES // 2))
        rows = []
        # Server after server at each size, so that both meet the same load on a shared machine.
        for viewers, procs in VIEWERS:
            results, rates = [], []
            for server in SERVERS:
                run = make_run(user, host, f"for i in {numbers}; do date +%s.%N; date +%s.%N; sleep 0.001; done")
                cpu = cpu_seconds(pids[server][procs])
                _, outs = asyncio.run(watch(entries[server][procs], run.pk, cookie, viewers,
                                            lambda run=run: enqueue_run(run), 60 + LATENCY_LINES / 100))
                # The web processes' CPU per frame sent (connecting and the backlog included).
                per_frame = (cpu_seconds(pids[server][procs]) - cpu) / sum(len(out) for out in outs) * 1e6
                p50, p99, rate, complete = latency_row(outs, offset)
                if SMOKE and not complete:
                    raise BenchFailure(f"lines missing at {viewers} viewer(s) on {server}")
                results.append(f"p50 {p50:.1f}, p99 {p99:.1f} ms{'' if complete else ' (LINES MISSING)'}; "
                               f"{per_frame:.0f} µs CPU a frame")
                rates.append(rate)
                print(server, viewers, results[-1], f"{rate:,.0f} lines/s", file=sys.stderr)
            where = f" over {procs} web processes behind nginx" if procs > 1 else ""
            rows.append((f"latency, {viewers} viewer(s){where}, "
                         f"{min(rates):,.0f}–{max(rates):,.0f} lines/s printed", *results,
                         "p99 ≤ 50 ms (200 viewers, 2 processes)" if procs > 1 or viewers > 50
                         else "p99 ≤ 25 ms (at 50 viewers)"))

        columns = ("measure", *SERVERS, "target")
        if SKIP_THROUGHPUT:
            report(f"Live output (latency only){window()}", rows, NOTES, columns)
            return
        speeds, losses, failed = [], [], []
        for server in SERVERS:
            run = make_run(user, host, f"seq {THROUGHPUT_LINES}")
            started, outs = asyncio.run(watch(entries[server][1], run.pk, cookie, 10, lambda run=run: enqueue_run(run),
                                              60 + THROUGHPUT_LINES / 1000))
            expected = [[i, "stdout", str(i)] for i in range(1, THROUGHPUT_LINES + 1)]
            ok_viewers = sum(1 for out in outs if lines_of(out) == expected)
            first = min(out[0][0] for out in outs)
            last = max(out[-1][0] for out in outs)
            step = run.steps.get()
            stored = list(StepOutput.objects.filter(step=step).order_by("seq").values_list("seq", "text"))
            stored_ok = stored == [(i, str(i)) for i in range(1, THROUGHPUT_LINES + 1)]
            status = UpgradeRun.objects.get(pk=run.pk).status
            speeds.append(f"{THROUGHPUT_LINES / (last - first):,.0f} lines/s (first to last line at the slowest "
                          f"viewer); {THROUGHPUT_LINES / (last - started):,.0f} lines/s from queueing the run")
            losses.append(f"{10 - ok_viewers} of 10 viewers differ; stored log {'exact' if stored_ok else 'DIFFERS'}; "
                          f"run {status}")
            if ok_viewers != 10 or not stored_ok or status != "succeeded":
                failed.append(f"{server}: {losses[-1]}")
        rows.append((f"throughput, {THROUGHPUT_LINES:,} lines, 10 viewers", *speeds, "≥ 50,000 lines/s"))
        rows.append(("lost or duplicated lines", *losses, "0"))
        if SMOKE and failed:
            raise BenchFailure("; ".join(failed))
        report(f"Live output{window()}", rows, NOTES, columns)
    finally:
        bench.close()


NOTES = """
One RQ worker, the web processes (daphne, and uvicorn with uvloop, as deploy/systemd runs
them, measured one after the other at each size), Redis channel layer, nginx (Debian's, the
websocket settings of deploy/nginx/heportal.conf) in front of the two processes of the
"behind nginx" size, lab at speed 1 on the same 2-core machine as the viewers, so every
process competes for the same two cores.
"""

if __name__ == "__main__":
    run(main)
