"""`--set-maintenance` semantics and the vm-status formats that show them (facts §6, §9)."""

from conftest import release_lab
from lab.launcher import start_lab

# The shared lab of this module runs 4.5, whose vm-status layout and refusals the
# tests below pin down; tests with fresh_lab run the default release.
lab = release_lab(hosts=3, engine_version="4.5")

LOCAL_REFUSED = ("Unable to enter local maintenance mode: the engine VM is running on the current "
                 "host, please migrate it before entering local maintenance mode.\n")
BANNER = "!! Cluster is in GLOBAL MAINTENANCE mode !!"


def states(state):
    return {name: h["agent_state"] for name, h in state["hosts"].items()}


def test_global_maintenance_freezes_every_agent(fresh_lab, fresh_ssh):
    result = fresh_ssh("he2", "hosted-engine --set-maintenance --mode=global")
    assert (result.rc, result.out, result.err) == (0, "", "")
    fresh_lab.wait_for(lambda s: set(states(s).values()) == {"GlobalMaintenance"}, sim_seconds=30)
    status = fresh_ssh("he1", "hosted-engine --vm-status --json").json
    assert status["global_maintenance"] is True
    assert {status[i]["score"] for i in ("1", "2", "3")} == {3400}  # scores are kept
    plain = fresh_ssh("he1", "hosted-engine --vm-status").out
    assert plain.startswith(f"\n\n{BANNER}\n")
    assert plain.rstrip("\n").endswith(BANNER)
    # Nobody restarts a VM that dies during global maintenance.
    fresh_lab.fault("kill-engine-vm")
    state = fresh_lab.state()
    start = state["now"]
    fresh_lab.wait_for(lambda s: s["now"] - start > 120, sim_seconds=200)
    state = fresh_lab.state()
    assert state["engine_vm"]["host"] is None
    assert set(states(state).values()) == {"GlobalMaintenance"}
    # Leaving it: agents reinitialize and the best host starts the VM.
    assert fresh_ssh("he1", "hosted-engine --set-maintenance --mode=none").rc == 0
    state = fresh_lab.wait_for(lambda s: "EngineUp" in states(s).values() and s, sim_seconds=400)
    assert all("GlobalMaintenance-ReinitializeFSM" in h["transitions"]
               for h in state["hosts"].values())


def test_local_maintenance_is_refused_on_the_vm_host(ssh):
    result = ssh("he1", "hosted-engine --set-maintenance --mode=local")
    assert result.rc == 1
    assert result.err == LOCAL_REFUSED


def test_local_maintenance_zeroes_the_score_and_none_clears_it(fresh_lab, fresh_ssh):
    assert fresh_ssh("he3", "hosted-engine --set-maintenance --mode=local").rc == 0
    state = fresh_lab.wait_for(
        lambda s: s["hosts"]["he3.lab.local"]["agent_state"] == "LocalMaintenance" and s,
        sim_seconds=30)
    status = fresh_ssh("he1", "hosted-engine --vm-status --json").json
    assert status["3"]["score"] == 0
    assert status["3"]["maintenance"] is True
    assert "Local maintenance                  : True" in fresh_ssh("he1", "hosted-engine --vm-status").out
    assert state["hosts"]["he3.lab.local"]["local_maintenance"] is True
    # `local` on one host clears global maintenance (all three flags are written).
    assert fresh_ssh("he3", "hosted-engine --set-maintenance --mode=none").rc == 0
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["agent_state"] == "EngineDown"
                       and s["hosts"]["he3.lab.local"]["score"] == 3400, sim_seconds=60)


def test_local_mode_clears_global_maintenance(fresh_lab, fresh_ssh):
    fresh_ssh("he1", "hosted-engine --set-maintenance --mode=global")
    assert fresh_lab.state()["global_maintenance"] is True
    fresh_ssh("he2", "hosted-engine --set-maintenance --mode=local")
    assert fresh_lab.state()["global_maintenance"] is False


def test_bad_or_missing_modes_are_rejected(ssh):
    # hosted-engine is a shell script that echoes these on stdout
    result = ssh("he2", "hosted-engine --set-maintenance --mode=partial")
    assert (result.rc, result.out) == (1, "Invalid value 'partial' for --mode\n")
    result = ssh("he2", "hosted-engine --set-maintenance")
    assert (result.rc, result.out) == (1, "You must specify a maintenance mode with --mode\n")


def test_plain_vm_status_has_the_documented_layout(ssh):
    plain = ssh("he1", "hosted-engine --vm-status").out
    assert plain.startswith("\n\n--== Host he1.lab.local (id: 1) status ==--\n\nHost ID")
    lines = plain.splitlines()
    labels = [line[:35].rstrip() for line in lines if line[35:37] == ": "]
    assert labels[:11] == ["Host ID", "Host timestamp", "Score", "Engine status", "Hostname",
                           "Local maintenance", "stopped", "crc32", "conf_on_shared_storage",
                           "local_conf_timestamp", "Status up-to-date"]
    extra = plain.split("Extra metadata (valid at timestamp):\n")[1].split("\n\n")[0].splitlines()
    assert [line.split("=")[0] for line in extra] == [
        "\tmetadata_parse_version", "\tmetadata_feature_version", "\ttimestamp", "\thost-id",
        "\tscore", "\tvm_conf_refresh_time", "\tconf_on_shared_storage", "\tmaintenance",
        "\tstate", "\tstopped"]
    assert 'Engine status                      : {"vm": "up", "health": "good", "detail": "Up"}' in lines


def test_a_3_5_lab_prints_the_old_header(tmp_path):
    from conftest import SPEED, Shell

    with start_lab(tmp_path / "lab", hosts=2, speed=SPEED, engine_version="3.5", os="el6") as lab:
        ssh = Shell(lab)
        plain = ssh("he2", "hosted-engine --vm-status").out
        assert "\n\n--== Host 1 status ==--\n" in plain
        assert "(id: 1)" not in plain
        # 3.5-era agents top out at 2400
        assert "Score                              : 2400" in plain
        assert ssh("he1", "cat /etc/redhat-release").out == "CentOS release 6.7 (Final)\n"
        # el6 has no systemctl; `service` speaks SysV
        assert ssh("he1", "systemctl status vdsmd").rc == 127
        result = ssh("he1", "service vdsmd restart")
        assert result.rc == 0
        assert "Starting up vdsm daemon:" in result.out
        ssh.close()
