"""What the lab's sandbox costs per command, next to the small shell it replaced.

Measured on this machine, each N times:
- `bash -c true` started directly, then inside a lab machine's bubblewrap sandbox
  (lab/sandbox.py, no SSH): the sandbox's own start-up;
- over SSH on a lab host (paramiko, one connection, a channel per command, as the portal
  does): `true`, `rpm -q vdsm` (a simulated tool through the machine's socket) and
  `hosted-engine --vm-status --json` (what the HA poller runs; it includes the tool's one
  simulated second, 1/60 s at speed 60);
- `date +%s.%N` a thousand times in one command: the cost of one call.
The SSH figures are taken for this branch's lab and for the lab of `main` (the small
shell), extracted with `git archive` and run the same way.

--smoke: 5 runs of each, this branch's lab only (no comparison with `main`).
"""
import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time

from harness import ROOT, SMOKE, percentile, phase, report, run, size

N = size(200, 5)
SPEED = 60


def timed(fn, n=N):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def spread(times):
    return f"p50 {percentile(times, 50):.1f} ms, p99 {percentile(times, 99):.1f} ms"


def sandbox_start_up():
    """bash -c true, directly and in a sandbox of a fresh lab machine (no SSH)."""
    from lab.clock import ScaledClock
    from lab.machines import Host
    from lab.sandbox import Sandbox, find_bwrap

    direct = timed(lambda: subprocess.run(["bash", "-c", "true"], check=True))
    state = tempfile.mkdtemp(prefix="bench-sandbox-")
    host = Host(1)
    host.attach_disk(state)
    host.install_os("el7")
    sandbox = Sandbox(host, ScaledClock(SPEED), state, find_bwrap())
    sandbox.prepare()

    async def run():
        proc = await sandbox.spawn("true", None, None, None)
        assert await proc.wait() == 0

    loop = asyncio.new_event_loop()
    boxed = timed(lambda: loop.run_until_complete(run()))
    loop.close()
    return direct, boxed


def over_ssh(lab_code):
    """Runs in a child process whose `lab` package is `lab_code`; prints JSON timings."""
    sys.path.insert(0, lab_code)
    from lab.launcher import start_lab

    with start_lab(tempfile.mkdtemp(prefix="bench-sandbox-lab-"), hosts=1, speed=SPEED) as lab:
        client = lab.connect("he1")

        def run(command):
            channel = client.get_transport().open_session()
            channel.exec_command(command)
            while channel.recv(65536):
                pass
            assert channel.recv_exit_status() == 0, command
            channel.close()

        results = {name: timed(lambda: run(command)) for name, command in
                   (("true", "true"), ("tool", "rpm -q vdsm"),
                    ("vm-status", "hosted-engine --vm-status --json"))}
        start = time.perf_counter()
        numbers = " ".join(map(str, range(1000)))  # the small shell has no $(...)
        run(f"for i in {numbers}; do date +%s.%N; done")
        results["date"] = (time.perf_counter() - start) * 1000 / 1000
        client.close()
    print(json.dumps(results))


def measure_lab(lab_code):
    args = ["--smoke"] if SMOKE else []
    out = subprocess.run([sys.executable, __file__, "--over-ssh", lab_code, *args], check=True,
                         capture_output=True, text=True, cwd=ROOT / "bench", timeout=120 + N).stdout
    return json.loads(out.splitlines()[-1])


def measure_main_lab():
    """The same over `main`'s lab, extracted with `git archive`."""
    with tempfile.TemporaryDirectory(prefix="bench-main-lab-") as old_code:
        archive = subprocess.run(["git", "archive", "main", "lab"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old_code], input=archive, check=True)
        with phase("over SSH, main's lab", 180 + N):
            return measure_lab(old_code)


def main():
    with phase("sandbox start-up", 60 + N):
        direct, boxed = sandbox_start_up()
    with phase("over SSH, this lab", 180 + N):
        new = measure_lab(str(ROOT))
    old = new if SMOKE else measure_main_lab()
    rows = [
        ("`bash -c true`, started directly", spread(direct), "—"),
        ("`bash -c true` in a lab machine's sandbox (bwrap, no SSH)", spread(boxed),
         "small next to the HA poll interval (10 s / speed)"),
    ]
    for key, label in (("true", "`true` over SSH"), ("tool", "`rpm -q vdsm` over SSH"),
                       ("vm-status", "`hosted-engine --vm-status --json` over SSH")):
        rows.append((f"{label}, speed {SPEED}", f"{spread(new[key])} (small shell: "
                     f"{spread(old[key])})", "≤ 170 ms (the poll interval at speed 60)"))
    rows.append(("one `date +%s.%N` inside a command", f"{new['date']:.2f} ms "
                 f"(small shell: {old['date']:.2f} ms)", "≤ 0.7 ms (1,450 lines/s)"))
    report("Lab sandbox, cost per command", rows, NOTES)


NOTES = f"""
{N} runs of each; one lab host, one SSH connection, a new channel per command as the portal
opens them. The lab, paramiko and the bench share the same two cores.
"""

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--over-ssh", metavar="LAB_CODE")
    args = parser.parse_args()
    if args.over_ssh:
        over_ssh(args.over_ssh)
    else:
        run(main)
