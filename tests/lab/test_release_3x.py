"""oVirt 3.5 and 3.6 as the lab plays them: setup 1.2/1.3 command lines, HA 1.x agents
(ovirt-releases.md), one lab per release shared by the module."""

import re
import time

import pytest

from conftest import Shell, module_shell, reinstall, release_lab


lab35 = release_lab(hosts=3, engine_version="3.5", os="el6")
ssh35 = module_shell("lab35")
lab36 = release_lab(hosts=3, engine_version="3.6")
ssh36 = module_shell("lab36")


def field_labels(text):
    block = text.split("--== Host 2 status ==--")[1].split("Extra metadata")[0]
    return [line.split(":")[0].strip() for line in block.strip().splitlines()]


def test_setup_1_2_ignores_json_and_prints_its_own_field_order(ssh35):
    result = ssh35("he2", "hosted-engine --vm-status --json")
    assert result.rc == 0
    assert not result.out.lstrip().startswith("{")
    assert "--== Host 1 status ==--" in result.out
    assert field_labels(result.out) == ["Status up-to-date", "Hostname", "Host ID", "Engine status",
                                        "Score", "Local maintenance", "Host timestamp"]
    assert 'Engine status                      : {"health": "good", "vm": "up", "detail": "up"}' \
        in result.out
    assert "Score                              : 2400" in result.out
    assert ssh35("he2", "cat /etc/redhat-release").out == "CentOS release 6.7 (Final)\n"


@pytest.mark.parametrize("option", ["--reinitialize-lockspace", "--clean-metadata",
                                    "--check-deployed"])
def test_setup_1_2_has_no_lockspace_metadata_or_deployed_commands(ssh35, option):
    result = ssh35("he2", f"hosted-engine {option}")
    assert result.rc == 1
    assert result.err == f"Invalid option '{option}'\n"
    assert result.out.startswith("Usage: /usr/sbin/hosted-engine")
    assert option not in result.out


def test_set_maintenance_takes_only_mode_equals_and_answers_on_stdout(ssh35):
    result = ssh35("he2", "hosted-engine --set-maintenance --mode local")
    assert (result.rc, result.out, result.err) == (
        1, "You must specify a maintenance mode with --mode\n", "")
    result = ssh35("he2", "hosted-engine --set-maintenance --mode=later")
    assert (result.rc, result.out) == (1, "Invalid value 'later' for --mode\n")


def test_setup_1_3_prints_stopped_and_crc32_and_gates_on_vm_conf(ssh36):
    out = ssh36("he2", "hosted-engine --vm-status").out
    assert field_labels(out) == ["Status up-to-date", "Hostname", "Host ID", "Engine status",
                                 "Score", "stopped", "Local maintenance", "crc32", "Host timestamp"]
    # vm.conf lives in /run; without it (as right after a boot) vm-status refuses.
    assert ssh36("he3", "rm /run/ovirt-hosted-engine-ha/vm.conf").rc == 0
    result = ssh36("he3", "hosted-engine --vm-status")
    assert (result.rc, result.out) == (1, "Unable to read vm.conf, please check ovirt-ha-agent logs\n")
    assert ssh36("he3", "systemctl restart ovirt-ha-agent").rc == 0  # fetches it again
    assert ssh36("he3", "hosted-engine --vm-status").rc == 0


def test_clean_metadata_refusal_exits_0_with_its_log_on_stderr(ssh36):
    result = ssh36("he2", "hosted-engine --clean-metadata --host-id=3")
    assert result.rc == 0
    assert result.out == ""
    assert "Cannot clean unclean metadata block" in result.err
    assert "ovirt-hosted-engine-ha agent 1.3.5.8 started" in result.err


def test_engine_setup_of_3_6_7_does_not_check_global_maintenance(lab36, ssh36):
    """The check came with 3.6.9 / 4.0.2.1: this engine-setup runs outside it."""
    result = ssh36("engine", "engine-setup --accept-defaults", timeout=120)
    assert result.rc == 0, result.out + result.err
    assert "Global Maintenance" not in result.out + result.err
    assert "Execution of setup completed successfully" in result.out


def test_an_additional_host_is_deployed_as_setup_1_3_asks(lab36, ssh36):
    """Re-using a known id is a re-deployment question; the clusters come from the engine;
    an engine that still knows the host makes the deploy fail."""
    reinstall(lab36, ssh36, "he3")
    assert ssh36("he3", "yum install -y http://resources.ovirt.org/pub/yum-repo/"
                        "ovirt-release36.rpm").rc == 0
    assert ssh36("he3", "yum install -y 'ovirt-hosted-engine-set*'").rc == 0
    answers = "\n".join(["", "", "nfs.lab.local:/exports/hosted-engine", "yes",
                         "",      # default id 2: known
                         "Yes",   # a re-deployment? yes
                         "", "", "", "secret", "secret",
                         "el7",   # not one of the engine's clusters
                         "",      # Default
                         ""]) + "\n"
    result = ssh36("he3", "hosted-engine --deploy", stdin=answers, timeout=120)
    out = result.out
    assert "Please specify the Host ID [Must be integer, default: 2]: " in out
    assert ("The Host ID is already known. Is this a re-deployment on an additional host that "
            "was previously set up (Yes, No)[Yes]? ") in out
    assert "add the host (Default) [Default]: " in out
    assert "[ ERROR ] Invalid value" in out
    # he3 was never removed from the engine
    assert result.rc == 1
    assert "[ ERROR ] Cannot automatically add the host to cluster Default:" in out
    assert "Cannot add Host. The Host name is already in use" in out


def test_local_maintenance_on_the_vm_host_makes_a_1_x_agent_migrate_it(lab35, ssh35):
    result = ssh35("he1", "hosted-engine --set-maintenance --mode=local")
    assert result.rc == 0, result.err
    state = lab35.wait_for(lambda s: s["engine_vm"]["host"] not in (None, "he1.lab.local")
                           and s["hosts"]["he1.lab.local"]["agent_state"] == "LocalMaintenance"
                           and s, sim_seconds=300)
    path = state["hosts"]["he1.lab.local"]["transitions"]
    assert "EngineUp-LocalMaintenanceMigrateVm" in path
    assert "LocalMaintenanceMigrateVm-EngineMigratingAway" in path
    assert state["engine_vm"]["status"] == "up"  # live-migrated, never down
    assert ssh35("he1", "hosted-engine --set-maintenance --mode=none").rc == 0


def test_a_1_x_agent_has_no_engine_maybe_away_and_waits_600_s(lab35, ssh35):
    state = lab35.wait_for(lambda s: s["engine_vm"]["healthy"] and s, sim_seconds=400)
    host = state["engine_vm"]["host"]
    lab35.fault("kill-engine-vm")
    state = lab35.wait_for(lambda s: s["hosts"][host]["agent_state"] == "EngineUnexpectedlyDown"
                           and s, sim_seconds=60)
    assert "EngineUp-EngineUnexpectedlyDown" in state["hosts"][host]["transitions"]
    assert not any("EngineMaybeAway" in t for h in state["hosts"].values() for t in h["transitions"])
    log = Shell(lab35)(host.split(".")[0], "grep 'Timeout set to' /var/log/ovirt-hosted-engine-ha/"
                                           "agent.log | tail -1").out
    when = re.search(r"Timeout set to (.*) while transitioning", log).group(1)
    entered = re.match(r"\S+::INFO::(\S+ \S+),", log).group(1)
    assert time.mktime(time.strptime(when)) - time.mktime(
        time.strptime(entered, "%Y-%m-%d %H:%M:%S")) == pytest.approx(600, abs=2)


def test_no_3_6_packages_for_el6_hosts(ssh35):
    assert ssh35("he3", "yum-config-manager --add-repo "
                        "http://resources.ovirt.org/pub/ovirt-3.6/rpm/el6/").rc == 0
    assert "No packages marked for update" in ssh35("he3", "yum update -y").out


def test_yum_update_restarts_the_ha_daemons_and_globs_pick_packages(lab36, ssh36):
    ssh = ssh36
    ssh("he2", "yum-config-manager --add-repo http://resources.ovirt.org/pub/ovirt-4.3/rpm/el7/")
    before = ssh("he2", "grep -c 'agent 1.3.5.8 started' /var/log/ovirt-hosted-engine-ha/agent.log").out
    result = ssh("he2", "yum update -y 'ovirt*setup*'")
    assert result.rc == 0, result.err
    assert "ovirt-hosted-engine-setup" in result.out
    assert "vdsm" not in result.out.split("Transaction Summary")[0].split("Updating:")[1]
    assert ssh("he2", "rpm -q ovirt-hosted-engine-ha").out.startswith("ovirt-hosted-engine-ha-1.3")
    assert ssh("he2", "yum update -y ovirt-hosted-engine-ha").rc == 0
    log = ssh("he2", "cat /var/log/ovirt-hosted-engine-ha/agent.log").out
    assert "ovirt-hosted-engine-ha agent 2.3.6 started" in log
    assert int(before) >= 1
    broker = ssh("he2", "cat /var/log/ovirt-hosted-engine-ha/broker.log").out
    assert "broker 2.3.6-1 started" in broker
    # right after the restart the new agent sees the other hosts stale (no history yet)
    status = ssh("he2", "hosted-engine --vm-status --json").json  # 2.3 speaks JSON
    assert status["1"]["live-data"] is False and status["3"]["live-data"] is False
    lab36.wait_for(lambda s: s["hosts"]["he2.lab.local"]["live"], sim_seconds=60)
    time.sleep(65 / lab36.speed)
    status = ssh("he2", "hosted-engine --vm-status --json").json
    assert status["1"]["live-data"] is True
    removal = ssh("he2", "yum remove -y ovirt-hosted-engine-ha")
    assert removal.rc == 0
    assert ssh("he2", "systemctl is-active ovirt-ha-agent ovirt-ha-broker").out.split() == [
        "unknown", "unknown"]
    assert lab36.state()["hosts"]["he2.lab.local"]["services"]["ovirt-ha-agent"] is False


def test_starting_the_agent_starts_the_broker(ssh36):
    assert ssh36("he1", "systemctl stop ovirt-ha-agent ovirt-ha-broker").rc == 0
    assert ssh36("he1", "systemctl start ovirt-ha-agent").rc == 0
    assert ssh36("he1", "systemctl is-active ovirt-ha-broker").out == "active\n"
