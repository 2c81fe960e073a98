"""The HA model against the howto's FAQ timings (all scaled by the lab's --speed)."""

import pytest

VM_HOST = "he1.lab.local"


def engine_up_on(state, exclude=()):
    """Name of a host whose agent reached EngineUp with a healthy engine, if any."""
    for name, host in state["hosts"].items():
        if name not in exclude and host["agent_state"] == "EngineUp" \
                and host["engine_status"]["health"] == "good":
            return name
    return None


def starting_elsewhere(state, dead):
    return any(h["agent_state"] == "EngineStarting" and n != dead
               for n, h in state["hosts"].items())


def test_it_starts_in_a_steady_state(fresh_lab, fresh_ssh):
    status = fresh_ssh("he2", "hosted-engine --vm-status --json").json
    assert status["global_maintenance"] is False
    assert [status[i]["score"] for i in ("1", "2", "3")] == [3400, 3400, 3400]
    assert status["1"]["engine-status"] == {"vm": "up", "health": "good", "detail": "Up"}
    assert "state=EngineUp" in status["1"]["extra"]
    assert "state=EngineDown" in status["2"]["extra"]
    assert all(status[i]["live-data"] for i in ("1", "2", "3"))
    assert fresh_lab.state()["engine_vm"] == {"host": VM_HOST, "status": "up", "healthy": True,
                                             "lease": VM_HOST}


def test_it_fails_over_when_the_vm_host_is_killed(fresh_lab, fresh_ssh):
    fresh_lab.fault("kill-host", host=VM_HOST)
    start = fresh_lab.state()["now"]
    # FAQ: T+2 min EngineStarting on another host ...
    state = fresh_lab.wait_for(lambda s: starting_elsewhere(s, VM_HOST) and s, sim_seconds=150)
    assert state["now"] - start <= 150
    # ... the dead host shows stale data meanwhile ...
    plain = fresh_ssh("he2", "hosted-engine --vm-status").out
    block = plain.split("--== Host he1.lab.local (id: 1) status ==--")[1].split("--== Host")[0]
    assert "Engine status                      : unknown stale-data" in block
    assert "Status up-to-date                  : False" in block
    # ... and T+5 min EngineUp with good health: the start that wins comes once sanlock
    # frees the dead host's lease (140 s), the engine is healthy 180 s later.
    state = fresh_lab.wait_for(lambda s: engine_up_on(s) and s, sim_seconds=450)
    assert state["now"] - start <= 400
    assert state["engine_vm"]["host"] in ("he2.lab.local", "he3.lab.local")
    assert fresh_ssh(state["engine_vm"]["host"].split(".")[0], "hosted-engine --check-liveliness").out \
        == "Hosted Engine is up!\n"


def test_it_restarts_a_killed_vm_within_seconds(fresh_lab, fresh_ssh):
    fresh_lab.fault("kill-engine-vm")
    start = fresh_lab.state()["now"]
    state = fresh_lab.wait_for(lambda s: starting_elsewhere(s, VM_HOST) and s, sim_seconds=40)
    assert state["now"] - start <= 40
    assert state["hosts"][VM_HOST]["agent_state"] == "EngineUnexpectedlyDown"
    assert state["hosts"][VM_HOST]["score"] == 0
    # the dead VM's host keeps reporting down_unexpected
    status = fresh_ssh("he3", "hosted-engine --vm-status --json").json
    assert status["1"]["engine-status"]["vm"] == "down_unexpected"
    state = fresh_lab.wait_for(lambda s: engine_up_on(s) and s, sim_seconds=240)
    assert state["engine_vm"]["host"] != VM_HOST


def test_it_recovers_from_a_power_outage(fresh_lab, fresh_ssh):
    fresh_lab.fault("power-outage")
    state = fresh_lab.state()
    start = state["now"]
    assert {h["power"] for h in state["hosts"].values()} == {"booting"}
    assert state["engine_vm"]["host"] is None
    # FAQ: T+3 min EngineStarting on the first host, engine up a few minutes later
    state = fresh_lab.wait_for(
        lambda s: any(h["agent_state"] == "EngineStarting" for h in s["hosts"].values()) and s,
        sim_seconds=200)
    assert state["now"] - start <= 200
    fresh_lab.wait_for(engine_up_on, sim_seconds=300)


@pytest.mark.parametrize("version,loser_path", [
    ("4.x", "EngineStarting-EngineForceStop"),
    ("3.5", "EngineStarting-EngineForceStop"),  # HA 1.2: its VM shows already_locked
])
def test_losers_of_the_lock_race_follow_their_agent_version(tmp_path, version, loser_path):
    from conftest import SPEED, Shell
    from lab.launcher import start_lab

    with start_lab(tmp_path / "lab", hosts=3, speed=SPEED, engine_version=version) as lab:
        ssh = Shell(lab)
        # Equal scores everywhere and nobody runs the VM: every agent tries, one wins.
        assert ssh("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
        lab.wait_for(lambda s: all(h["agent_state"] == "GlobalMaintenance"
                                   for h in s["hosts"].values()), sim_seconds=30)
        assert ssh("he1", "hosted-engine --vm-poweroff").rc == 0
        assert ssh("he1", "hosted-engine --set-maintenance --mode=none").rc == 0
        state = lab.wait_for(lambda s: engine_up_on(s) and s, sim_seconds=400)
        winner = engine_up_on(state)
        losers = [n for n in state["hosts"] if n != winner]
        paths = {n: state["hosts"][n]["transitions"] for n in losers}
        assert any(loser_path in paths[n] for n in losers), paths
        ssh.close()


def test_it_hands_the_vm_to_a_host_scoring_800_more(fresh_lab, fresh_ssh):
    # A disconnected management network costs the gateway penalty (1600).
    fresh_lab.fault("disconnect-host", host=VM_HOST)
    state = fresh_lab.wait_for(
        lambda s: s["hosts"][VM_HOST]["agent_state"] in ("EngineStop", "EngineDown") and s,
        sim_seconds=60)
    assert state["hosts"][VM_HOST]["score"] == 1800
    state = fresh_lab.wait_for(lambda s: engine_up_on(s, exclude=(VM_HOST,)) and s,
                               sim_seconds=400)
    assert "EngineUp-EngineStop" in state["hosts"][VM_HOST]["transitions"]
    # Agents never live-migrate: the VM was shut down and cold-started.
    assert state["engine_vm"]["host"] != VM_HOST
