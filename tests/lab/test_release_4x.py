"""oVirt 4.3 (el7, setup and HA 2.3) and 4.5 (el9, setup 2.7, HA 2.5) as the lab plays
them (ovirt-releases.md); one lab per release shared by the module."""

import re

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from conftest import SPEED, module_shell, reinstall, release_lab
from lab.launcher import LabStartError, start_lab


lab43 = release_lab(hosts=3, engine_version="4.3")
ssh43 = module_shell("lab43")
lab45 = release_lab(hosts=2, engine_version="4.x")
ssh45 = module_shell("lab45")


def test_4_5_hosts_are_el9_with_dnf(lab45, ssh45):
    assert lab45.manifest["engine_version"] == "4.5"
    assert ssh45("he1", "cat /etc/redhat-release").out == "CentOS Stream release 9\n"
    assert ssh45("he1", "rpm -q ovirt-hosted-engine-setup").out.startswith(
        "ovirt-hosted-engine-setup-2.7.1-1.el9")
    result = ssh45("he1", "dnf check-update; echo rc=$?")
    assert result.out.startswith("Last metadata expiration check:")
    missing = ssh45("he1", "dnf install -y no-such-package")
    assert (missing.rc, missing.err) == (1, "Error: Unable to find a match: no-such-package\n")


def test_no_4_5_packages_for_el7(tmp_path, ssh43):
    with pytest.raises(LabStartError, match="oVirt 4.5 has no el7 hosts"):
        start_lab(tmp_path / "lab", hosts=1, speed=SPEED, engine_version="4.5", os="el7")
    assert ssh43("he3", "yum-config-manager --add-repo "
                        "http://resources.ovirt.org/pub/ovirt-4.5/rpm/el7/").rc == 0
    result = ssh43("he3", "yum check-update")
    assert result.rc == 0 and "ovirt-hosted-engine" not in result.out


def test_2_5_publishes_a_monotonic_timeout_for_engine_unexpectedly_down(lab45, ssh45):
    lab45.wait_for(lambda s: s["engine_vm"]["healthy"], sim_seconds=300)
    lab45.fault("kill-engine-vm")
    state = lab45.wait_for(
        lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUnexpectedlyDown" and s,
        sim_seconds=120)
    assert "EngineUp-EngineUnexpectedlyDown" in state["hosts"]["he1.lab.local"]["transitions"]
    extra = ssh45("he1", "hosted-engine --vm-status --json").json["1"]["extra"]
    assert re.search(r"^timeout=\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d 1970$", extra, flags=re.M), extra


def test_setup_2_3_11_refuses_local_maintenance_on_the_vms_host_whatever_the_other_hosts(lab43, ssh43):
    """The lab's 4.3 hosts run setup 2.3.13: on the engine VM's host local maintenance is
    refused with the VM's message (set_maintenance.py@ovirt-hosted-engine-setup-2.3.11,
    commit 4a36099), also when no other host could take the VM; elsewhere it is accepted."""
    refused = ssh43("he1", "hosted-engine --set-maintenance --mode=local")  # runs the VM
    assert refused.rc == 1
    assert refused.err == ("Unable to enter local maintenance mode: the engine VM is running on the current "
                           "host, please migrate it before entering local maintenance mode.\n")
    for host in ("he2", "he3"):
        assert ssh43(host, "hosted-engine --set-maintenance --mode=local").rc == 0
    lab43.wait_for(lambda s: s["hosts"]["he2.lab.local"]["score"] == 0
                   and s["hosts"]["he3.lab.local"]["score"] == 0, sim_seconds=60)
    again = ssh43("he1", "hosted-engine --set-maintenance --mode=local")
    assert (again.rc, again.err) == (1, refused.err)
    assert lab43.state()["hosts"]["he1.lab.local"]["local_maintenance"] is False
    for host in ("he2", "he3"):
        assert ssh43(host, "hosted-engine --set-maintenance --mode=none").rc == 0


def test_setup_2_2_and_later_say_the_configuration_was_not_retrieved(ssh43):
    assert ssh43("he2", "rm /run/ovirt-hosted-engine-ha/vm.conf").rc == 0
    result = ssh43("he2", "hosted-engine --vm-status")
    assert result.rc == 1
    assert result.out.startswith("The hosted engine configuration has not been retrieved from "
                                 "shared storage.")
    assert ssh43("he2", "systemctl restart ovirt-ha-agent").rc == 0
    assert ssh43("he2", "hosted-engine --check-deployed").rc == 0


def test_additional_hosts_come_through_the_engine_from_setup_2_1(lab43, ssh43):
    reinstall(lab43, ssh43, "he3")
    assert ssh43("he3", "yum install -y http://resources.ovirt.org/pub/yum-repo/"
                        "ovirt-release43.rpm").rc == 0
    assert ssh43("he3", "yum install -y ovirt-hosted-engine-setup").rc == 0
    result = ssh43("he3", "hosted-engine --deploy",
                   stdin="\n\nnfs.lab.local:/exports/hosted-engine\n")
    assert result.rc == 1
    assert ("Setup of additional hosts using this software is not allowed anymore. Please use "
            "the engine web interface to deploy any additional hosts.") in result.out
    engine = lab43.manifest["engine"]
    connection = sdk.Connection(url=engine["url"], username=engine["username"],
                                password=engine["password"], ca_file=engine["ca_file"])
    hosts = connection.system_service().hosts_service()
    old = hosts.list(search="name=he3.lab.local")[0]
    hosts.host_service(old.id).remove()  # non responsive while reinstalled
    added = hosts.add(types.Host(name="he3.lab.local", address="127.0.1.3",
                                 root_password="secret", cluster=types.Cluster(name="Default")),
                      deploy_hosted_engine=True)
    assert added.status == types.HostStatus.INSTALLING
    lab43.wait_for(lambda s: s["hosts"]["he3.lab.local"]["agent_state"] == "EngineDown"
                   and s["hosts"]["he3.lab.local"]["live"], sim_seconds=400)
    assert hosts.host_service(added.id).get().status == types.HostStatus.UP
    # the first id free on the whiteboard: he3's old block 3 stays until --clean-metadata
    assert "host_id=4" in ssh43("he3", "cat /etc/ovirt-hosted-engine/hosted-engine.conf").out
    connection.close()
