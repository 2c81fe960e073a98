"""The runbook engine's own cost per step.

A 50-step runbook of instant commands (`true`) on one lab host, executed in
this process as `manage.py runbook start --sync` does (the same
``jobs.advance_run`` a worker runs). Each command's own time over SSH is
measured around ``SshSession.run``; the engine's cost of a step is the time
from one command's end to the next one's start plus the time around the
command inside the step: the flag and step queries, guards (none here), the
output recorder's threads, the step's status writes, audit events and
publishing.

--smoke: one run of 5 steps.
"""
import statistics
import time

from harness import Bench, percentile, phase, report, run, size

STEPS = size(50, 5)


def main():
    bench = Bench("engine_steps")
    try:
        from django.contrib.auth import get_user_model

        from upgrades import jobs, services
        from upgrades.models import RunStatus
        from upgrades.remote import ssh
        from upgrades.runbooks import register
        from upgrades.runbooks.base import Param, Runbook, Ssh

        register(Runbook(slug="bench-steps", name="Bench: instant steps", description="",
                         params=(Param("host", "Host", kind="host"),),
                         steps=tuple(Ssh(f"s{n}", f"Step {n}", "true") for n in range(STEPS))))
        cluster = bench.import_lab()
        host = cluster.hosts.order_by("he_host_id").first()
        user = get_user_model().objects.create_user("bench", is_superuser=True)

        commands = []  # (start, end) of each command, around the real SSH call
        run_command = ssh.SshSession.run

        def timed(self, command, *args, **kwargs):
            start = time.perf_counter()
            try:
                return run_command(self, command, *args, **kwargs)
            finally:
                if command == "true":  # not the preflight's vm-status read
                    commands.append((start, time.perf_counter()))

        ssh.SshSession.run = timed
        costs, walls = [], []
        for _ in range(RUNS):
            commands.clear()
            run = services.start_run(cluster=cluster, slug="bench-steps", params={"host": host.name}, user=user)
            with phase(f"run {run.pk} of {STEPS} steps", 60 + STEPS):
                started = time.perf_counter()
                jobs.advance_run(run.pk)
                ended = time.perf_counter()
            run.refresh_from_db()
            assert run.status == RunStatus.SUCCEEDED and len(commands) == STEPS, (run.status, run.error)
            in_commands = sum(end - start for start, end in commands)
            walls.append(ended - started)
            costs += [(b_start - a_start) - (a_end - a_start)
                      for (a_start, a_end), (b_start, _) in zip(commands, commands[1:])]
            print(f"run {run.pk}: {ended - started:.2f} s for {STEPS} steps, {in_commands:.2f} s in commands",
                  flush=True)
        ms = [c * 1000 for c in costs]
        command_ms = statistics.median(end - start for start, end in commands) * 1000
        report("Runbook engine, cost per step", [
            ("`true` over SSH, the command's own time (median)", f"{command_ms:.1f} ms", "—"),
            (f"engine's cost per step ({len(ms)} steps in {RUNS} runs of {STEPS})",
             f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms", "p50 ≤ 20 ms"),
            ("a whole 50-step run, claim to release (median)", f"{statistics.median(walls):.2f} s", "—"),
        ], NOTES)
    finally:
        bench.close()


RUNS = size(5, 1)
NOTES = """
In-process (`--sync` path), lab at speed 1, SQLite, on the same 2-core machine. What a
step costs besides its command: one query for the next step with the run's pause/cancel
flags, claiming the step with a conditional update and its audit event in one transaction,
the output's last line number, handing the recorder to the process's flusher thread and
waiting for its last batch, the step's end and its audit event in one transaction, and
three websocket messages (the step's start and end, the home pages' notice of its start);
the heartbeat thread runs beside it. A worker adds one fork per run, not per step.
What limits it: the ORM's statements (about 0.2 ms each on an idle core) and the audit
chain's locked head row; before 2026-12-06 the recorder's own thread per step (a thread
start, a new database connection and a join) and a query of all the run's steps per step
made it about twice as much.
"""

if __name__ == "__main__":
    run(main)
