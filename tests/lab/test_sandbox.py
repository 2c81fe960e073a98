"""The sandbox fails closed: a lab host's commands reach that host's own disk and nothing
else of this machine, the lab's state or the other hosts."""

import hashlib
import os
import stat
import time

import pytest

from conftest import SPEED, Shell
from lab.launcher import LabStartError, start_lab


def snapshot(top, skip=()):
    """path -> content digest (or link target) of every file under `top`."""
    found = {}
    for directory, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(directory, d) not in skip]
        for name in dirs + files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                found[path] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[path] = hashlib.sha256(f.read()).hexdigest()
            else:
                found[path] = "dir"
    return found


def quiet(found):
    """Leave out what the simulation itself keeps writing (daemons' logs)."""
    return {path: digest for path, digest in found.items() if "/var/log/" not in path}


def test_rm_rf_on_a_host_changes_nothing_outside_its_root(fresh_lab, fresh_ssh, tmp_path):
    state_dir = fresh_lab.state_dir
    roots = os.path.join(state_dir, "roots")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("machine file\n")
    others = quiet(snapshot(roots, skip={os.path.join(roots, "he1.lab.local")}))
    sim = snapshot(os.path.join(state_dir, "sim"))
    keys = snapshot(os.path.join(state_dir, "keys"))
    usr = os.stat("/usr/bin/bash")
    result = fresh_ssh("he1", f"rm -rf /etc/* /var/* /root/* {outside} /usr/bin/bash 2>/dev/null; "
                              "ls -A /etc /var /root; ls /usr/bin/bash")
    assert result.out == "/etc:\n\n/root:\n.bash_profile\n.bashrc\n\n/var:\n"  # * skips dotfiles
    assert result.rc == 2  # the host's own link to bash is gone, nothing else's
    assert (outside / "keep").read_text() == "machine file\n"
    assert quiet(snapshot(roots, skip={os.path.join(roots, "he1.lab.local")})) == others
    assert snapshot(os.path.join(state_dir, "sim")) == sim
    assert snapshot(os.path.join(state_dir, "keys")) == keys
    assert os.stat("/usr/bin/bash") == usr
    # the other hosts go on as before
    assert fresh_ssh("he2", "cat /etc/hostname; ls /root").out == "he2.lab.local\n"


def test_a_host_sees_only_its_own_files(lab, ssh):
    ssh("he2", "echo mine > /root/he2-only")
    assert ssh("engine", "echo vm > /root/engine-only").rc == 0
    for host in ("he1", "he3", "engine"):
        found = ssh(host, "find / -xdev -name he2-only; ls -A /root")
        assert "he2-only" not in found.out, host
    assert "engine-only" not in ssh("he2", "ls -A /root").out
    assert ssh("engine", "cat /etc/hostname").out == "engine.lab.local\n"
    assert ssh("engine", "hostname").out == "engine.lab.local\n"
    # the simulator's side of the sandbox holds only this host's socket and clock
    # and the release's Python (lab/distro.py PYTHONS)
    assert ssh("he1", "ls /.lab").out.split() == ["bashenv.sh", "clock", "python", "sock", "tick", "usr"]


def test_a_host_has_no_network_and_cannot_reach_the_lab(lab, ssh):
    control_port = lab.control_url.rsplit(":", 1)[1]
    he2 = lab.host("he2")
    for address, port in (("127.0.0.1", control_port), (he2["address"], he2["port"])):
        result = ssh("he1", f"echo > /dev/tcp/{address}/{port}")
        assert result.rc == 1
        assert "Connection refused" in result.err or "unreachable" in result.err


def test_root_on_a_host_cannot_write_the_machine_usr(ssh):
    result = ssh("he1", "touch /.lab/usr/x; mount -o remount,rw,bind /.lab/usr; unshare -U true")
    assert "Read-only file system" in result.err
    assert "permission denied" in result.err.lower()
    assert result.rc != 0
    assert not os.path.exists("/usr/x")


def test_the_simulator_follows_a_host_symlink_inside_that_host(fresh_lab, fresh_ssh, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    setup = fresh_ssh("he1", f"mkdir -p {outside} && rm -rf /etc/yum.repos.d && "
                             f"ln -s {outside} /etc/yum.repos.d")
    assert setup.rc == 0, setup.err
    added = fresh_ssh("he1", "yum-config-manager --add-repo http://example.com/extra/")
    assert added.rc == 0, added.err
    assert list(outside.iterdir()) == []  # the machine's directory of that name is untouched
    assert fresh_ssh("he1", f"ls {outside}").out == "example.com_extra.repo\n"


def sandboxes(lab, command):
    """Processes of this machine running `command` in he1's sandbox (bwrap's argv)."""
    root = os.path.join(lab.state_dir, "roots", "he1.lab.local").encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if root in argv and command.encode() in argv:
            found.append(pid)
    return found


def test_a_command_dies_with_its_channel(lab):
    client = lab.connect("he1")
    channel = client.get_transport().open_session()
    channel.exec_command("echo started; sleep 6000; echo done")  # 100 real seconds
    channel.settimeout(10)
    assert channel.recv(100) == b"started\n"
    assert sandboxes(lab, "echo started; sleep 6000; echo done")
    channel.close()
    client.close()
    deadline = time.monotonic() + 5
    while sandboxes(lab, "echo started; sleep 6000; echo done"):
        assert time.monotonic() < deadline, "the sandbox outlived its SSH channel"
        time.sleep(0.05)


def test_the_lab_refuses_to_start_without_a_working_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LabStartError, match="bubblewrap \\(bwrap\\) is not installed"):
        start_lab(tmp_path / "none", hosts=1, speed=SPEED, timeout=60)
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "bwrap").write_text("#!/bin/sh\n"
                                  "echo 'bwrap: setting up uid map: Permission denied' >&2\n"
                                  "exit 1\n")
    (broken / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}:/usr/bin:/bin")
    with pytest.raises(LabStartError, match=r"cannot run commands on \S+\.lab\.local in its sandbox \(bwrap status 1\)"):
        start_lab(tmp_path / "broken", hosts=1, speed=SPEED, timeout=60)
    assert not (tmp_path / "broken" / "manifest.json").exists()


def test_secrets_are_private_from_the_start(tmp_path):
    old = os.umask(0)  # whatever the umask, nothing is created readable by others
    try:
        lab = start_lab(tmp_path / "lab", hosts=1, speed=SPEED)
    finally:
        os.umask(old)
    with lab:
        state_dir = lab.state_dir
        assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
        for name in ("manifest.json", "engine.json", "state.json", "engine-ca.key",
                     "engine-cert.key", "keys/client_ed25519", "keys/he1_host_ed25519",
                     "keys/engine_host_ed25519"):
            assert stat.S_IMODE(os.stat(os.path.join(state_dir, name)).st_mode) == 0o600, name
        assert stat.S_IMODE(os.stat(os.path.join(state_dir, "keys")).st_mode) == 0o700
        ssh = Shell(lab)
        assert ssh("he1", "true").rc == 0
        ssh.close()


def test_sandboxes_die_with_the_lab(tmp_path):
    lab = start_lab(tmp_path / "lab", hosts=1, speed=SPEED)
    client = lab.connect("he1")
    channel = client.get_transport().open_session()
    channel.exec_command("echo started; sleep 6000")
    channel.settimeout(10)
    assert channel.recv(100) == b"started\n"  # bwrap is set up, bash runs
    assert sandboxes(lab, "echo started; sleep 6000")
    lab.process.kill()  # no clean-up at all
    lab.process.wait()
    deadline = time.monotonic() + 5
    while sandboxes(lab, "echo started; sleep 6000"):
        assert time.monotonic() < deadline, "a sandbox outlived its lab"
        time.sleep(0.05)
    client.close()
