"""The lab's web-admin actions (`/admin`, `python -m lab admin`): the engine's own
refusals, and the same effects on the hosts as the engine's API calls."""

import subprocess
import sys

import pytest

from conftest import engine_request, module_shell, release_lab
from lab.errors import LabError

lab35 = release_lab(hosts=3, engine_version="3.5", os="el6")
ssh35 = module_shell("lab35")


def engine_status(state, host):
    return state["engine"]["hosts"][host]["status"]


def vm_status_maintenance(shell, host, of):
    """Local maintenance of host `of` as `hosted-engine --vm-status` on `host` prints it."""
    out = shell(host, "hosted-engine --vm-status").out
    block = out.split(f"Hostname                           : {of}")[1].split("--==")[0]
    return "Local maintenance                  : True" in block


def test_host_maintenance_on_a_3_5_engine_reaches_the_hosts_and_activate_undoes_it(lab35, ssh35):
    message = lab35.admin("host-maintenance", host="he2")
    assert message == "he2.lab.local: preparing for maintenance"
    lab35.wait_for(lambda s: engine_status(s, "he2.lab.local") == "maintenance", sim_seconds=120)
    lab35.wait_for(lambda s: s["hosts"]["he2.lab.local"]["local_maintenance"], sim_seconds=120)
    # What a runbook's wait checks: vm-status on another host shows it.
    lab35.wait_for(lambda s: vm_status_maintenance(ssh35, "he3", "he2.lab.local"),
                   sim_seconds=300)
    with pytest.raises(LabError, match="Host is already in Maintenance mode"):
        lab35.admin("host-maintenance", host="he2")
    lab35.admin("host-activate", host="he2")
    lab35.wait_for(lambda s: engine_status(s, "he2.lab.local") == "up"
                   and not s["hosts"]["he2.lab.local"]["local_maintenance"], sim_seconds=120)
    with pytest.raises(LabError, match="Host is already Up"):
        lab35.admin("host-activate", host="he2")


def test_maintenance_of_the_engine_vm_host_migrates_the_vm_first(lab35):
    lab35.wait_for(lambda s: all(h["score"] > 0 for h in s["hosts"].values()), sim_seconds=300)
    source = lab35.state()["engine_vm"]["host"]
    lab35.admin("host-maintenance", host=source)
    state = lab35.wait_for(lambda s: engine_status(s, source) == "maintenance" and s,
                           sim_seconds=600)
    assert state["engine_vm"]["host"] not in (None, source)
    lab35.admin("host-activate", host=source)
    lab35.wait_for(lambda s: engine_status(s, source) == "up", sim_seconds=120)


def test_clusters_versions_and_scheduling_policy_with_the_engine_refusals(lab35):
    assert lab35.admin("create-cluster", cluster="el7", version="3.5",
                       cpu="Intel Haswell") == "cluster el7 created (3.5)"
    with pytest.raises(LabError, match="Cluster name is already in use"):
        lab35.admin("create-cluster", cluster="el7")
    # A 3.5 engine offers no 3.6 level.
    with pytest.raises(LabError, match="Selected Compatibility Version is not supported"):
        lab35.admin("set-cluster-version", cluster="Default", version="3.6")
    with pytest.raises(LabError, match="Cannot decrease the Compatibility Version"):
        lab35.admin("set-cluster-version", cluster="Default", version="3.4")
    lab35.admin("set-scheduling-policy", cluster="Default", policy="cluster_maintenance")
    with pytest.raises(LabError, match="scheduling policy: nonsense"):
        lab35.admin("set-scheduling-policy", cluster="Default", policy="nonsense")
    clusters = lab35.state()["engine"]["clusters"]
    assert clusters["el7"] == {"version": "3.5", "scheduling_policy": "none",
                               "cpu": "Intel Haswell"}
    assert clusters["Default"]["scheduling_policy"] == "cluster_maintenance"
    lab35.admin("set-scheduling-policy", cluster="Default", policy="none")


def test_remove_host_needs_maintenance_and_unknown_names_are_refused(lab35):
    with pytest.raises(LabError, match="Host is operational"):
        lab35.admin("remove-host", host="he3")
    with pytest.raises(LabError, match="no such host"):
        lab35.admin("host-maintenance", host="he9")
    with pytest.raises(LabError, match="needs --host"):
        lab35.admin("host-activate")
    with pytest.raises(LabError, match="unknown admin action"):
        lab35.admin("reboot-everything")


def test_command_line_prints_the_message_or_the_refusal(lab35):
    def admin(*args):
        return subprocess.run([sys.executable, "-m", "lab", "admin", *args,
                               "--state-dir", lab35.state_dir],
                              capture_output=True, text=True, timeout=60)
    result = admin("set-scheduling-policy", "--cluster", "Default", "--policy", "power_saving")
    assert (result.returncode, result.stdout) == (
        0, "cluster Default: scheduling policy power_saving\n")
    result = admin("set-cluster-version", "--cluster", "Default", "--version", "3.9")
    assert result.returncode == 1
    assert "Selected Compatibility Version is not supported" in result.stderr
    admin("set-scheduling-policy", "--cluster", "Default", "--policy", "none")


def test_on_a_4_x_engine_the_api_sees_what_the_admin_did(lab):
    lab.admin("set-scheduling-policy", cluster="Default", policy="cluster_maintenance")
    status, text = engine_request(lab, "GET", "/clusters?search=name%3DDefault")
    assert status == 200
    assert 'id="7677771e-5eab-422e-83fa-dc04080d21b7"' in text  # cluster_maintenance
    lab.admin("set-scheduling-policy", cluster="Default", policy="none")
    status, text = engine_request(lab, "GET", "/clusters?search=name%3DDefault")
    assert 'id="b4ed2332-a7ac-4d5f-9596-99a439cb2812"' in text
