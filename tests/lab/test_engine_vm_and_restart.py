"""The engine VM's own SSH (engine-setup, engine-backup) and restarting a lab from its state dir."""

import socket

from conftest import SPEED, Shell
from lab.launcher import start_lab


def test_engine_setup_needs_global_maintenance(fresh_lab, fresh_ssh):
    result = fresh_ssh("engine", "engine-setup --accept-defaults")
    assert result.rc == 1
    assert "are not in \"Global Maintenance\" mode" in result.err
    assert fresh_ssh("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
    client = fresh_lab.connect("engine")
    channel = client.get_transport().open_session()
    channel.exec_command("engine-setup --accept-defaults")
    # while engine-setup runs the engine is down: the health page fails
    fresh_lab.wait_for(lambda s: not s["engine_vm"]["healthy"], sim_seconds=60)
    assert channel.recv_exit_status() == 0
    assert fresh_lab.state()["engine_vm"]["healthy"] is True
    client.close()


def test_engine_backup_writes_the_archive(ssh):
    result = ssh("engine", "engine-backup --mode=backup --file=/root/engine.bck --log=/root/backup.log")
    assert result.rc == 0, result.err
    assert result.out.endswith("Done.\n")
    assert ssh("engine", "cat /root/engine.bck").out.startswith("ovirt-engine-backup ")
    assert ssh("engine", "hostname").out == "engine.lab.local\n"
    assert ssh("engine", "hosted-engine --vm-status").rc == 127  # not a hypervisor
    result = ssh("engine", "engine-backup --mode=restore --file=/root/missing.bck")
    assert result.rc == 1


def test_engine_vm_ssh_is_closed_while_the_vm_is_down(fresh_lab, fresh_ssh):
    fresh_ssh("he1", "hosted-engine --set-maintenance --mode=global")
    fresh_ssh("he1", "hosted-engine --vm-poweroff")
    entry = fresh_lab.host("engine")

    def closed(_):
        with socket.socket() as sock:
            sock.settimeout(2)
            return sock.connect_ex((entry["address"], entry["port"])) != 0

    fresh_lab.wait_for(closed, sim_seconds=10)


def test_a_restarted_lab_keeps_its_state(tmp_path):
    state_dir = tmp_path / "lab"
    with start_lab(state_dir, hosts=2, speed=SPEED) as lab:
        ssh = Shell(lab)
        ssh("he2", "yum install -y http://resources.ovirt.org/pub/yum-repo/ovirt-release36.rpm")
        ssh("he2", "echo remembered > /root/note")
        ssh("he1", "hosted-engine --set-maintenance --mode=global")
        ssh("he2", "systemctl stop ovirt-ha-agent")
        lab.wait_for(lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "GlobalMaintenance",
                     sim_seconds=30)
        first = lab.manifest
        before = lab.state()
        ssh.close()
    assert not (state_dir / "manifest.json").exists()
    with start_lab(state_dir, hosts=2, speed=SPEED) as lab:
        ssh = Shell(lab)
        state = lab.state()
        assert state["now"] >= before["now"]  # the clock never goes back
        assert state["global_maintenance"] is True
        assert state["engine_vm"]["host"] == "he1.lab.local"
        assert state["hosts"]["he1.lab.local"]["agent_state"] == "GlobalMaintenance"
        assert state["hosts"]["he2.lab.local"]["services"]["ovirt-ha-agent"] is False
        assert "ovirt-release36" in state["hosts"]["he2.lab.local"]["packages"]
        # same ports and host keys: old known_hosts lines still work
        assert [h["known_hosts"] for h in lab.manifest["hosts"]] == \
            [h["known_hosts"] for h in first["hosts"]]
        assert lab.manifest["ssh_key"] == first["ssh_key"]
        assert ssh("he2", "cat /root/note").out == "remembered\n"
        assert "!! Cluster is in GLOBAL MAINTENANCE mode !!" in ssh("he1", "hosted-engine --vm-status").out
        ssh.close()


def test_a_bad_start_reports_the_lab_output(tmp_path):
    import pytest

    from lab.launcher import LabStartError

    with pytest.raises(LabStartError, match="has no el6 hosts"):
        start_lab(tmp_path / "lab", os="el6", engine_version="4.x", timeout=20)


def test_a_hung_engine_is_restarted_after_the_bad_health_timeout(fresh_lab, fresh_ssh):
    assert fresh_ssh("engine", "systemctl stop ovirt-engine").rc == 0
    start = fresh_lab.state()["now"]
    fresh_lab.wait_for(lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUpBadHealth",
                       sim_seconds=30)
    status = fresh_ssh("he2", "hosted-engine --vm-status --json").json
    fresh_lab.wait_for(lambda s: "timeout=" in fresh_ssh("he2", "hosted-engine --vm-status --json")
                       .json["1"]["extra"], sim_seconds=30)
    assert status["1"]["engine-status"]["reason"] == "failed liveliness check"
    # FAQ: 5 minutes of grace, then the VM is shut down and started again (maybe elsewhere)
    state = fresh_lab.wait_for(
        lambda s: "EngineUpBadHealth-EngineStop" in s["hosts"]["he1.lab.local"]["transitions"] and s,
        sim_seconds=330)
    assert state["now"] - start >= 300
    fresh_lab.wait_for(lambda s: s["engine_vm"]["healthy"], sim_seconds=400)
