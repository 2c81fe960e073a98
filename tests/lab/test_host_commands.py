"""yum, services and the hosted-engine VM commands on a lab host."""

import json


def test_yum_install_of_a_release_rpm_adds_its_repo(fresh_lab, fresh_ssh):
    result = fresh_ssh("he2", "yum install -y http://resources.ovirt.org/pub/yum-repo/ovirt-release36.rpm")
    assert result.rc == 0
    assert "Installing:" in result.out and "ovirt-release36" in result.out
    repo = fresh_ssh("he2", "cat /etc/yum.repos.d/ovirt-3.6.repo").out
    assert "baseurl=http://resources.ovirt.org/pub/ovirt-3.6/rpm/el$releasever/" in repo


def test_yum_update_without_a_newer_repo_changes_nothing(fresh_lab):
    ssh = fresh_lab.connect("he1")
    _, out, _ = ssh.exec_command("yum update -y")
    assert "No packages marked for update" in out.read().decode()
    ssh.exec_command("yum-config-manager --add-repo http://resources.ovirt.org/pub/ovirt-4.6/rpm/el7/")[1].read()
    # a repo that names no known release adds nothing to update
    _, out, _ = ssh.exec_command("yum check-update")
    assert out.channel.recv_exit_status() == 0
    ssh.close()


def test_yum_update_after_adding_a_newer_repo(tmp_path):
    from conftest import SPEED, Shell
    from lab.launcher import start_lab

    with start_lab(tmp_path / "lab", hosts=1, speed=SPEED, engine_version="3.5") as lab:
        ssh = Shell(lab)
        assert ssh("he1", "yum check-update").rc == 0
        assert ssh("he1", "yum-config-manager --add-repo "
                          "http://resources.ovirt.org/pub/ovirt-3.6/rpm/el7/").rc == 0
        check = ssh("he1", "yum check-update")
        assert check.rc == 100
        assert "ovirt-hosted-engine-ha.noarch" in check.out
        # without -y yum asks, and "N" (or no answer) aborts
        result = ssh("he1", "yum update", stdin="N\n")
        assert result.rc == 1
        assert "Is this ok [y/d/N]: " in result.out and "Exiting on user command" in result.out
        client = lab.connect("he1")
        channel = client.get_transport().open_session()
        channel.exec_command("yum update -y")
        channel.settimeout(10)
        first = channel.recv(4096).decode()
        assert first.startswith("Loaded plugins")
        assert not channel.exit_status_ready()  # still running: output is streamed
        rest = b""
        while True:
            chunk = channel.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert channel.recv_exit_status() == 0
        assert "Updating   : " not in first and "Complete!" in rest.decode()
        assert json.loads(json.dumps(lab.state()))["hosts"]["he1.lab.local"]["packages"][
            "ovirt-hosted-engine-ha"].startswith("1.3")
        client.close()
        # yum remove, and what happens to a name that does not exist
        result = ssh("he1", "yum remove -y ovirt-engine-sdk-python")
        assert result.rc == 0 and "Removed:" in result.out
        result = ssh("he1", "yum install -y no-such-package")
        assert result.rc == 1
        assert "No package no-such-package available." in result.out
        assert result.err == "Error: Nothing to do\n"
        ssh.close()


def test_systemctl_controls_the_ha_agent(fresh_lab, fresh_ssh):
    status = fresh_ssh("he2", "systemctl status ovirt-ha-agent")
    assert status.rc == 0
    assert "Active: active (running)" in status.out
    assert fresh_ssh("he2", "systemctl stop ovirt-ha-agent").rc == 0
    assert fresh_ssh("he2", "systemctl status ovirt-ha-agent.service").rc == 3
    assert fresh_ssh("he2", "systemctl is-active ovirt-ha-agent").out == "inactive\n"
    # a clean stop publishes AgentStopped once: score 0, stopped=True
    status = fresh_ssh("he1", "hosted-engine --vm-status --json").json
    assert status["2"]["stopped"] is True
    assert status["2"]["score"] == 0
    assert "state=AgentStopped" in status["2"]["extra"]
    # after 60 s the stopped host's own vm-status shows everyone stale
    start = fresh_lab.state()["now"]
    fresh_lab.wait_for(lambda s: s["now"] - start > 65, sim_seconds=80)
    own = fresh_ssh("he2", "hosted-engine --vm-status --json").json
    assert not any(own[i]["live-data"] for i in ("1", "2", "3"))
    assert fresh_ssh("he1", "hosted-engine --vm-status --json").json["1"]["live-data"] is True
    result = fresh_ssh("he2", "systemctl restart nosuchd")
    assert (result.rc, result.err) == (5, "Failed to restart nosuchd.service: Unit not found.\n")


def test_broker_down_breaks_vm_status(fresh_lab, fresh_ssh):
    assert fresh_ssh("he3", "systemctl stop ovirt-ha-broker").rc == 0
    result = fresh_ssh("he3", "hosted-engine --vm-status")
    assert result.rc == 1
    assert result.err == ("An error occured while retrieving vm status, please make sure the HA "
                          "daemon is ready and reachable.\n")
    assert fresh_ssh("he3", "systemctl start ovirt-ha-broker").rc == 0
    assert fresh_ssh("he3", "hosted-engine --vm-status").rc == 0


def test_vdsm_restart_passes_through_unknown_local_vm_state(fresh_lab, fresh_ssh):
    assert fresh_ssh("he1", "service vdsmd restart").rc == 0
    state = fresh_lab.wait_for(
        lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUp"
        and "UnknownLocalVmState-ReinitializeFSM" in s["hosts"]["he1.lab.local"]["transitions"]
        and s, sim_seconds=120)
    assert state["engine_vm"]["host"] == "he1.lab.local"  # the VM kept running


def test_clean_metadata_needs_a_stopped_agent_or_force(fresh_lab, fresh_ssh):
    fresh_lab.fault("kill-host", host="he3")
    result = fresh_ssh("he1", "hosted-engine --clean-metadata --host-id=3")
    assert result.rc == 0  # it refuses, logs why on stderr, and still exits 0
    assert "Cannot clean unclean metadata block. Consider --force-clean." in result.err
    result = fresh_ssh("he1", "hosted-engine --clean-metadata --host-id=3 --force-cleanup")
    assert result.rc == 0
    assert "3" not in fresh_ssh("he1", "hosted-engine --vm-status --json").json
    assert "--== Host he3" not in fresh_ssh("he1", "hosted-engine --vm-status").out
    # a cleanly stopped agent can be cleaned without force
    fresh_ssh("he2", "systemctl stop ovirt-ha-agent")
    assert fresh_ssh("he2", "hosted-engine --clean-metadata").rc == 0
    assert "2" not in fresh_ssh("he1", "hosted-engine --vm-status --json").json
    # an id with no block: the agent's clean() finds no metadata for it
    result = fresh_ssh("he1", "hosted-engine --clean-metadata --host-id=7")
    assert result.rc == 0
    assert "ERROR:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:Metadata for current host missing.\n" \
        in result.err


def test_vm_start_shutdown_and_poweroff(fresh_lab, fresh_ssh):
    assert fresh_ssh("he1", "hosted-engine --check-liveliness").out == "Hosted Engine is up!\n"
    result = fresh_ssh("he1", "hosted-engine --vm-start")
    # cmd_vm_start echoes it (hosted-engine.in@2.3.13): stdout
    assert (result.rc, result.out, result.err) == (1, "VM exists and its status is Up\n", "")
    fresh_ssh("he1", "hosted-engine --set-maintenance --mode=global")
    assert fresh_ssh("he1", "hosted-engine --vm-shutdown").rc == 0
    fresh_lab.wait_for(lambda s: s["engine_vm"]["host"] is None, sim_seconds=60)
    result = fresh_ssh("he1", "hosted-engine --check-liveliness")
    assert (result.rc, result.out) == (1, "Hosted Engine is not up!\n")
    result = fresh_ssh("he2", "hosted-engine --vm-start")
    assert (result.rc, result.out) == (0, "VM in WaitForLaunch\n")
    state = fresh_lab.wait_for(lambda s: s["engine_vm"]["status"] == "powering_up" and s, sim_seconds=10)
    assert state["engine_vm"]["host"] == "he2.lab.local"
    fresh_lab.wait_for(lambda s: s["engine_vm"]["healthy"], sim_seconds=200)
    assert fresh_ssh("he2", "hosted-engine --vm-poweroff").rc == 0
    assert fresh_lab.state()["engine_vm"]["status"] == "down"
    result = fresh_ssh("he2", "hosted-engine --vm-poweroff")
    assert result.rc == 1 and "Virtual machine does not exist" in result.err


def test_vdsm_and_sanlock_clients_show_the_vm_where_it_runs(ssh):
    listed = json.loads(ssh("he1", "vdsm-client Host getVMList").out)  # ShortStatus dicts
    assert [(v["vmId"], v["status"]) for v in listed] == [("3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70", "Up")]
    assert json.loads(ssh("he1", "vdsm-client Host getVMList onlyUUID=true").out) == \
        ["3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70"]
    assert json.loads(ssh("he2", "vdsm-client Host getVMList").out) == []
    stats = json.loads(ssh("he1", "vdsm-client VM getStats "
                                  "vmID=3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70").out)
    assert stats[0]["status"] == "Up"
    assert ssh("he1", "vdsClient -s 0 list table").rc == 127  # gone since vdsm 4.20
    status = ssh("he1", "sanlock client status").out
    assert "p 12345 HostedEngine" in status and "\ns hosted-engine:1:" in status
    assert "HostedEngine" not in ssh("he2", "sanlock client status").out


def test_chkconfig_and_the_el6_tools(tmp_path):
    from conftest import SPEED, Shell
    from lab.launcher import start_lab

    with start_lab(tmp_path / "lab", hosts=1, speed=SPEED, engine_version="3.5", os="el6") as lab:
        ssh = Shell(lab)
        assert "vdsmd" in ssh("he1", "chkconfig --list vdsmd").out
        assert ssh("he1", "chkconfig vdsmd off && chkconfig vdsmd").rc == 1
        assert ssh("he1", "initctl stop libvirtd").out == "libvirtd stop/waiting\n"
        assert ssh("he1", "vdsClient -s 0 list table").out.split()[-1] == "Up"
        assert ssh("he1", "vdsm-client Host getVMList").rc == 127  # not before vdsm 4.19
        ssh.close()


def test_reboot_drops_the_session_and_brings_the_host_back(fresh_lab, fresh_ssh):
    fresh_ssh("he3", "echo volatile > /run/x; echo kept > /root/x")
    client = fresh_lab.connect("he3")
    channel = client.get_transport().open_session()
    channel.exec_command("reboot")
    assert channel.recv_exit_status() in (0, -1)
    client.close()
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["power"] == "booting", sim_seconds=10)
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["power"] == "on", sim_seconds=90)
    fresh_ssh.clients.pop("he3", None)
    assert fresh_ssh("he3", "cat /root/x; ls /run").out == "kept\n"
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["agent_state"] == "EngineDown"
                       and s["hosts"]["he3.lab.local"]["live"], sim_seconds=150)


def test_the_simulator_reads_its_files_back_from_the_host_disk(fresh_lab, fresh_ssh):
    assert "ovirt-4.3" in fresh_ssh("he3", "yum repolist").out
    assert fresh_ssh("he3", "rm /etc/yum.repos.d/ovirt-4.3.repo").rc == 0
    assert "ovirt-4.3" not in fresh_ssh("he3", "yum repolist").out
    assert fresh_ssh("he3", "sed -i 's/host_id=3/host_id=7/' "
                            "/etc/ovirt-hosted-engine/hosted-engine.conf").rc == 0
    assert fresh_lab.state()["hosts"]["he3.lab.local"]["host_id"] == 7
    assert fresh_ssh("he3", "rm /etc/ovirt-hosted-engine/hosted-engine.conf").rc == 0
    result = fresh_ssh("he3", "hosted-engine --vm-status")
    assert (result.rc, result.out) == (1, "You must run deploy first\n")
    result = fresh_ssh("he3", "systemctl restart ovirt-ha-agent")
    assert result.rc == 1 and "Job for ovirt-ha-agent.service failed" in result.err
    # what the agent logged while it ran stays for the admin to grep
    log = fresh_ssh("he3", "grep -c 'Current state' /var/log/ovirt-hosted-engine-ha/agent.log")
    assert int(log.out) >= 1
