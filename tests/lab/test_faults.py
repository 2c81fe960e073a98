"""Every fault kind, through the control endpoint and the `python -m lab fault` CLI."""

import socket
import subprocess
import sys
import time

import paramiko
import pytest

from lab.errors import LabError


def refused(lab, host):
    entry = lab.host(host)
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect((entry["address"], entry["port"]))
        except ConnectionRefusedError:
            return True
    return False


def test_kill_and_boot_host(fresh_lab, fresh_ssh):
    fresh_lab.fault("kill-host", host="he3")
    state = fresh_lab.state()
    assert state["hosts"]["he3.lab.local"]["power"] == "off"
    assert state["hosts"]["he3.lab.local"]["reachable"] is False
    assert refused(fresh_lab, "he3")
    fresh_lab.fault("boot-host", host="he3")
    assert fresh_lab.state()["hosts"]["he3.lab.local"]["power"] == "booting"
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["power"] == "on", sim_seconds=90)
    fresh_lab.wait_for(lambda s: not refused(fresh_lab, "he3"), sim_seconds=10)
    assert fresh_lab.connect("he3").exec_command("hostname")[1].read() == b"he3.lab.local\n"
    # the agent comes back and publishes again
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["agent_state"] == "EngineDown"
                       and s["hosts"]["he3.lab.local"]["live"], sim_seconds=120)


def test_disconnect_host_makes_ssh_time_out(fresh_lab):
    client = fresh_lab.connect("he2")
    fresh_lab.fault("disconnect-host", host="he2")
    assert fresh_lab.state()["hosts"]["he2.lab.local"]["reachable"] is False
    # the open session is cut ...
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        for _ in range(20):
            client.exec_command("hostname", timeout=2)[1].read()
            time.sleep(0.1)
    # ... and new ones hang until the client gives up
    with pytest.raises((paramiko.SSHException, socket.timeout, EOFError, OSError)):
        fresh_lab.connect("he2", timeout=1)
    fresh_lab.fault("reconnect-host", host="he2")
    fresh_lab.wait_for(lambda s: s["hosts"]["he2.lab.local"]["reachable"], sim_seconds=10)
    assert fresh_lab.connect("he2").exec_command("hostname")[1].read() == b"he2.lab.local\n"


def test_fail_next_command_fails_once(fresh_lab, fresh_ssh):
    fresh_lab.fault("fail-next-command", host="he1", pattern="yum update")
    assert fresh_ssh("he1", "echo unaffected").rc == 0
    result = fresh_ssh("he1", "yum update -y && echo after")
    assert result.rc == 1
    assert result.out == ""
    assert "injected failure" in result.err
    assert fresh_ssh("he1", "yum update -y").rc == 0
    # only the targeted host is affected
    fresh_lab.fault("fail-next-command", host="he1", pattern="^hostname$")
    assert fresh_ssh("he2", "hostname").rc == 0
    assert fresh_ssh("he1", "hostname").rc == 1


def test_slow_host_runs_commands_slower(fresh_lab, fresh_ssh):
    def timed(host):
        start = time.monotonic()
        assert fresh_ssh(host, "sleep 30").rc == 0
        return time.monotonic() - start

    normal = timed("he2")
    fresh_lab.fault("slow-host", host="he2", factor=6)
    slow = timed("he2")
    assert slow > normal + 1.5  # 30 s * 6 = 180 simulated seconds = 3 s at speed 60


def test_corrupt_lockspace_and_its_recovery(fresh_lab, fresh_ssh):
    """The howto's "Lockspace corrupted recovery procedure"."""
    fresh_lab.fault("corrupt-lockspace")
    # agents cannot work: everybody goes stale, the VM keeps running
    fresh_lab.wait_for(lambda s: not any(h["live"] for h in s["hosts"].values()), sim_seconds=90)
    status = fresh_ssh("he2", "hosted-engine --vm-status --json").json
    assert not any(status[i]["live-data"] for i in ("1", "2", "3"))
    assert fresh_lab.state()["engine_vm"]["host"] == "he1.lab.local"
    # reset_lockspace raises, uncaught: a traceback (client/client.py@v2.3.6)
    result = fresh_ssh("he2", "hosted-engine --reinitialize-lockspace")
    assert result.rc == 1
    assert result.err.startswith("Traceback (most recent call last):\n")
    assert result.err.endswith("Exception: Lockfile reset can be performed in global maintenance mode only.\n")
    # 1. global maintenance, 2. stop all agents, 3. reinitialize from a host with a broker
    assert fresh_ssh("he2", "hosted-engine --set-maintenance --mode=global").rc == 0
    result = fresh_ssh("he2", "hosted-engine --reinitialize-lockspace")
    assert result.err.endswith("Exception: Lockfile reset cannot be performed with an active agent.\n")
    for host in ("he1", "he2", "he3"):
        assert fresh_ssh(host, "systemctl stop ovirt-ha-agent").rc == 0
    # Agents that kept dying at start-up on the corrupted lockspace never published
    # "stopped": without --force it is refused still (ovirt-releases.md, "HA agent").
    result = fresh_ssh("he2", "hosted-engine --reinitialize-lockspace")
    assert (result.rc, result.err.splitlines()[-1]) == (
        1, "Exception: Lockfile reset cannot be performed with an active agent.")
    assert fresh_ssh("he2", "hosted-engine --reinitialize-lockspace --force").rc == 0
    for host in ("he1", "he2", "he3"):
        assert fresh_ssh(host, "systemctl start ovirt-ha-agent").rc == 0
    assert fresh_ssh("he2", "hosted-engine --set-maintenance --mode=none").rc == 0
    fresh_lab.wait_for(lambda s: all(h["live"] for h in s["hosts"].values())
                       and s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUp", sim_seconds=120)


def test_reinstall_host_wipes_it_but_keeps_its_host_key(fresh_lab, fresh_ssh):
    before = fresh_lab.connect("he3").get_transport().get_remote_server_key().get_base64()
    fresh_lab.fault("reinstall-host", host="he3", os="el7")
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["power"] == "on", sim_seconds=90)
    fresh_lab.wait_for(lambda s: not refused(fresh_lab, "he3"), sim_seconds=10)
    fresh_ssh.clients.pop("he3", None)
    result = fresh_ssh("he3", "hosted-engine --vm-status")
    assert (result.rc, result.err) == (127, "bash: hosted-engine: command not found\n")
    assert fresh_ssh("he3", "ls /etc/yum.repos.d").out == "CentOS-Base.repo\n"
    after = fresh_lab.connect("he3").get_transport().get_remote_server_key().get_base64()
    assert before == after
    # the old whiteboard entry stays (stale) until someone cleans it
    status = fresh_ssh("he1", "hosted-engine --vm-status --json").json
    fresh_lab.wait_for(lambda s: not s["hosts"]["he3.lab.local"]["live"], sim_seconds=90)
    assert "3" in status


def test_unknown_hosts_and_kinds_are_refused(lab):
    with pytest.raises(LabError, match="no such host"):
        lab.fault("kill-host", host="he9")
    with pytest.raises(LabError, match="needs --host"):
        lab.fault("kill-host")
    with pytest.raises(LabError, match="unknown fault kind"):
        lab.fault("flood")


def test_the_cli_posts_faults_to_the_running_lab(fresh_lab):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lab", *args, "--state-dir", fresh_lab.state_dir],
                              capture_output=True, text=True, timeout=30)

    result = cli("fault", "slow-host", "--host", "he2", "--factor", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "slow-host done on he2.lab.local\n"
    assert fresh_lab.state()["hosts"]["he2.lab.local"]["slow_factor"] == 3
    result = cli("fault", "kill-host", "--host", "nope")
    assert result.returncode == 1
    assert result.stderr == "lab: no such host: nope\n"
    result = cli("state")
    assert '"he1.lab.local"' in result.stdout


def test_reinitialize_lockspace_needs_force_when_a_host_died(fresh_lab, fresh_ssh):
    fresh_lab.fault("kill-host", host="he3")
    assert fresh_ssh("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
    for host in ("he1", "he2"):
        assert fresh_ssh(host, "systemctl stop ovirt-ha-agent").rc == 0
    # he3 never reported a clean shutdown
    result = fresh_ssh("he1", "hosted-engine --reinitialize-lockspace")
    assert (result.rc, result.err.splitlines()[-1]) == (
        1, "Exception: Lockfile reset cannot be performed with an active agent.")
    assert fresh_ssh("he1", "hosted-engine --reinitialize-lockspace --force").rc == 0


def test_a_lab_stops_when_its_parent_dies(tmp_path):
    import json
    import os
    import signal as sig
    import textwrap

    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from lab.launcher import start_lab
        lab = start_lab({str(tmp_path / 'lab')!r}, hosts=1, speed=60)
        print(lab.manifest["pid"], flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    lab_pid = int(parent.stdout.readline())
    assert json.load(open(tmp_path / "lab" / "manifest.json"))["pid"] == lab_pid
    parent.send_signal(sig.SIGKILL)
    parent.wait()
    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 60  # it notices within 1 s; stopping its servers takes longer on a busy machine
    while time.monotonic() < deadline and alive(lab_pid):
        time.sleep(0.1)
    # the lab noticed, cleaned up (manifest removed) and exited
    assert not alive(lab_pid)
    assert not (tmp_path / "lab" / "manifest.json").exists()


def test_a_lab_whose_starter_dies_during_its_start_up_stops_once_up(tmp_path):
    """The starter gone before the lab is up (a test run killed as it starts its labs): the lab
    must not take its new parent for its starter and run on."""
    import os
    import textwrap

    state = tmp_path / "lab"
    script = textwrap.dedent(f"""
        import os, subprocess, sys
        lab = subprocess.Popen([sys.executable, "-m", "lab", "up", "--state-dir", {str(state)!r}, "--hosts", "1",
                                "--speed", "60", "--exit-with-parent", str(os.getpid())], cwd={os.getcwd()!r},
                               stdout=subprocess.DEVNULL, stderr=open({str(tmp_path / "lab.out")!r}, "w"))
        print(lab.pid, flush=True)
        os._exit(0)
    """)
    starter = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lab_pid = int(starter.stdout)

    def alive():
        try:
            os.kill(lab_pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and alive():
        time.sleep(0.1)
    assert not alive()
    log = (tmp_path / "lab.out").read_text()
    assert "lab up: 1 hosts" in log and "parent process" in log and "is gone" in log, log[-2000:]
    assert not (state / "manifest.json").exists()
