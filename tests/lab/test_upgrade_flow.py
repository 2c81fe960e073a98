"""The howto's "Upgrade Hosted Engine" procedure, typed by hand over SSH on a 3.5 lab."""

from conftest import SPEED, Shell, engine_host_id, engine_request
from lab.launcher import start_lab

RELEASE_36 = "http://resources.ovirt.org/pub/yum-repo/ovirt-release36.rpm"


def scores(ssh, host="he1"):
    """Scores from plain vm-status (1.x ignores --json)."""
    from upgrades.remote.vmstatus import parse_vm_status
    return {h.host_id: h.score for h in parse_vm_status(ssh(host, "hosted-engine --vm-status").out).hosts}


def engine_action(lab, host, action):
    """The web admin's Maintenance / Activate (a 3.x engine: API v3, no SDK)."""
    status, text = engine_request(lab, "POST", f"/hosts/{engine_host_id(lab, host)}/{action}",
                                  "<action/>")
    assert status == 200, text
    wanted = "maintenance" if action == "deactivate" else "up"
    lab.wait_for(lambda s: f"<state>{wanted}</state>" in engine_request(
        lab, "GET", f"/hosts/{engine_host_id(lab, host)}")[1], sim_seconds=120)


def upgrade_host(lab, ssh, host, updated=False):
    """Howto steps 4-6 on one host, in engine maintenance so HA 1.3 converts it."""
    engine_action(lab, f"{host}.lab.local", "deactivate")
    if not updated:
        assert ssh(host, f"yum install -y {RELEASE_36}").rc == 0
        update = ssh(host, "yum update -y")
        assert update.rc == 0, update.err
        assert "Updated:" in update.out and "ovirt-hosted-engine-ha" in update.out
        assert "Complete!" in update.out
    restart = ssh(host, "service vdsmd restart")
    assert restart.rc == 0
    assert "Redirecting to /bin/systemctl restart vdsmd.service" in restart.err
    result = ssh(host, "systemctl restart ovirt-ha-broker && systemctl restart ovirt-ha-agent")
    assert result.rc == 0, result.err
    assert "conf_image_UUID=" in ssh(host, "cat /etc/ovirt-hosted-engine/hosted-engine.conf").out
    engine_action(lab, f"{host}.lab.local", "activate")


def test_the_engine_vm_moves_to_the_upgraded_host(tmp_path):
    with start_lab(tmp_path / "lab", hosts=3, speed=2 * SPEED, engine_version="3.5") as lab:
        ssh = Shell(lab)
        assert scores(ssh) == {1: 2400, 2: 2400, 3: 2400}

        # 1. global maintenance
        assert ssh("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
        lab.wait_for(lambda s: all(h["agent_state"] == "GlobalMaintenance"
                                   for h in s["hosts"].values()), sim_seconds=30)

        # 2. upgrade the engine inside the engine VM
        assert ssh("engine", f"yum install -y {RELEASE_36}").rc == 0
        assert ssh("engine", "yum update -y ovirt-engine-setup").rc == 0
        setup = ssh("engine", "engine-setup --accept-defaults")
        assert setup.rc == 0, setup.err
        assert "Execution of setup completed successfully" in setup.out
        assert lab.state()["engine_version"] == "3.6"

        # 4-6. upgrade he2 without engine maintenance: yum restarts the HA daemons, and the
        # 1.3 agent keeps the 3.5 configuration with 1000 points less (still 2400)
        assert ssh("he2", f"yum install -y {RELEASE_36}").rc == 0
        assert ssh("he2", "yum update -y").rc == 0
        assert ssh("he2", "rpm -q ovirt-hosted-engine-ha").out.startswith("ovirt-hosted-engine-ha-1.3")
        log = ssh("he2", "cat /var/log/ovirt-hosted-engine-ha/agent.log").out
        assert "agent 1.3.5.8 started" in log
        assert "Unable to upgrade while not in maintenance mode" in log
        lab.wait_for(lambda s: s["hosts"]["he2.lab.local"]["agent_version"] == "1.3.5.8-1"
                     and s["hosts"]["he2.lab.local"]["score"] == 2400, sim_seconds=60)
        # HA 1.3 never writes conf_on_shared_storage (it came with 2.0, agent/hosted_engine.py
        # at v1.3.5.8): the unconverted configuration shows in the score and the log only
        assert "conf_on_shared_storage" not in ssh("he2", "hosted-engine --vm-status").out
        # the howto's way: engine maintenance first, then the agent converts
        upgrade_host(lab, ssh, "he2", updated=True)
        lab.wait_for(lambda s: scores(ssh)[2] == 3400, sim_seconds=120)
        assert scores(ssh)[1] == 2400

        # 7. leave global maintenance: the VM goes to the host that now scores 800+ more
        assert ssh("he1", "hosted-engine --set-maintenance --mode=none").rc == 0
        state = lab.wait_for(
            lambda s: s["engine_vm"]["host"] == "he2.lab.local" and s["engine_vm"]["healthy"]
            and s["hosts"]["he2.lab.local"]["agent_state"] == "EngineUp" and s,
            sim_seconds=600)
        assert "EngineUp-EngineStop" in state["hosts"]["he1.lab.local"]["transitions"]

        # 8-9. back to global maintenance, upgrade the remaining hosts
        assert ssh("he2", "hosted-engine --set-maintenance --mode=global").rc == 0
        for host in ("he1", "he3"):
            upgrade_host(lab, ssh, host)
        lab.wait_for(lambda s: scores(ssh) == {1: 3400, 2: 3400, 3: 3400}, sim_seconds=60)

        # 11. leave maintenance: equal scores, the VM stays where it is
        assert ssh("he1", "hosted-engine --set-maintenance --mode=none").rc == 0
        lab.wait_for(lambda s: all(h["agent_state"] in ("EngineUp", "EngineDown")
                                   for h in s["hosts"].values()), sim_seconds=60)
        assert lab.state()["engine_vm"]["host"] == "he2.lab.local"
        ssh.close()
