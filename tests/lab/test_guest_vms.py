"""Guest VMs in the lab's engine: what ovirtsdk4 reads of them, and the engine's refusal to
put a host into maintenance while a VM that may not migrate runs on it
(MaintenanceNumberOfVdssCommand, lab/engine/README.md)."""

import subprocess
import sys

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from conftest import engine_host_id, engine_request
from lab.errors import LabError

NON_MIGRATABLE = ("Cannot switch the following Hosts to Maintenance mode: he2.lab.local.\n"
                  "One or more running VMs are indicated as non-migratable. The non-migratable "
                  "VMs are: db1.")


def connect(lab):
    engine = lab.manifest["engine"]
    return sdk.Connection(url=engine["url"], username=engine["username"],
                          password=engine["password"], ca_file=engine["ca_file"], timeout=30)


def engine_status(state, host):
    return state["engine"]["hosts"][host]["status"]


def test_a_pinned_vm_keeps_its_host_out_of_maintenance_until_it_may_migrate(fresh_lab):
    assert fresh_lab.admin("add-vm", vm="db1", host="he2", affinity="pinned") == (
        "db1: up on he2.lab.local (pinned)")
    connection = connect(fresh_lab)
    try:
        system = connection.system_service()
        hosts = {h.id: h.name for h in system.hosts_service().list()}
        vms = system.vms_service().list()
        assert [vm.name for vm in vms] == ["HostedEngine", "db1"]
        db1 = vms[1]
        assert db1.placement_policy.affinity == types.VmAffinity.PINNED
        assert db1.status == types.VmStatus.UP
        assert hosts[db1.host.id] == "he2.lab.local"
        assert [h.id for h in db1.placement_policy.hosts] == [db1.host.id]
        # The engine VM reads as before, and search by name still finds only it.
        he = system.vms_service().list(search="name=HostedEngine")
        assert [(v.name, v.placement_policy.affinity, v.origin) for v in he] == [
            ("HostedEngine", types.VmAffinity.MIGRATABLE, "managed_hosted_engine")]
        assert system.vms_service().vm_service(db1.id).get().name == "db1"
        assert [v.name for v in system.vms_service().list(search="host=he2*")] == ["db1"]

        # The API's deactivate is refused with the engine's message, the host stays up.
        he2 = system.hosts_service().host_service(engine_host_id(fresh_lab, "he2.lab.local"))
        with pytest.raises(sdk.Error) as refused:
            he2.deactivate()
        assert NON_MIGRATABLE in str(refused.value)
        assert he2.get().status == types.HostStatus.UP
        assert he2.get().summary.active == 1
        # So is the web admin's.
        with pytest.raises(LabError) as refused:
            fresh_lab.admin("host-maintenance", host="he2")
        assert str(refused.value) == NON_MIGRATABLE
        assert engine_status(fresh_lab.state(), "he2.lab.local") == "up"

        assert fresh_lab.admin("set-vm-affinity", vm="db1", affinity="migratable") == (
            "db1: migration mode migratable")
        he2.deactivate()
        state = fresh_lab.wait_for(
            lambda s: engine_status(s, "he2.lab.local") == "maintenance" and s, sim_seconds=300)
        moved = state["engine"]["vms"]["db1"]
        assert moved["host"] in ("he1.lab.local", "he3.lab.local")
        db1 = system.vms_service().vm_service(db1.id).get()
        assert (hosts[db1.host.id], db1.placement_policy.affinity) == (
            moved["host"], types.VmAffinity.MIGRATABLE)
        events = [e.description for e in system.events_service().list(max=20)]
        # VM_MIGRATION_DONE (AuditLogMessages.properties@ovirt-engine-4.3.10.4)
        assert any(e.startswith("Migration completed (VM: db1, Source: he2.lab.local, "
                                "Destination: ") for e in events)
    finally:
        connection.close()


def test_a_manual_migration_only_vm_moves_when_an_admin_asks_for_maintenance(fresh_lab):
    """4.x refuses "user_migratable" VMs only for the engine's own maintenance (a host
    upgrade, isInternal); an admin's maintenance migrates them."""
    fresh_lab.admin("add-vm", vm="app1", host="he3", affinity="user_migratable")
    status, text = engine_request(fresh_lab, "GET", "/vms?search=name%3Dapp1")
    assert status == 200 and "<affinity>user_migratable</affinity>" in text
    fresh_lab.admin("host-maintenance", host="he3")
    state = fresh_lab.wait_for(
        lambda s: engine_status(s, "he3.lab.local") == "maintenance" and s, sim_seconds=300)
    assert state["engine"]["vms"]["app1"]["host"] in ("he1.lab.local", "he2.lab.local")


def test_the_admin_rejects_bad_vm_input_with_clear_messages(fresh_lab):
    cases = [
        (dict(vm="db1", host="he9"), "no such host"),
        (dict(vm="db1", host="he2", affinity="sticky"),
         "--affinity must be one of migratable, user_migratable, pinned, not 'sticky'"),
        (dict(host="he2"), "add-vm needs --vm"),
        (dict(vm="db1"), "add-vm needs --host"),
        (dict(vm="a b;rm", host="he2"), "The given name contains special characters"),
        (dict(vm="HostedEngine", host="he2"), "The VM name is already in use"),
    ]
    for args, message in cases:
        with pytest.raises(LabError, match=message.replace("(", r"\(")):
            fresh_lab.admin("add-vm", **args)
    fresh_lab.admin("add-vm", vm="db1", host="he2")
    assert fresh_lab.state()["engine"]["vms"]["db1"] == {
        "host": "he2.lab.local", "status": "up", "affinity": "migratable"}
    with pytest.raises(LabError, match="The VM name is already in use"):
        fresh_lab.admin("add-vm", vm="db1", host="he3")
    with pytest.raises(LabError, match="the engine has no VM db9"):
        fresh_lab.admin("set-vm-affinity", vm="db9", affinity="pinned")
    with pytest.raises(LabError, match="not on the engine VM HostedEngine"):
        fresh_lab.admin("set-vm-affinity", vm="HostedEngine", affinity="pinned")
    with pytest.raises(LabError, match="--affinity must be one of"):
        fresh_lab.admin("set-vm-affinity", vm="db1")

    def admin(*args):
        return subprocess.run([sys.executable, "-m", "lab", "admin", *args,
                               "--state-dir", fresh_lab.state_dir],
                              capture_output=True, text=True, timeout=60)
    result = admin("add-vm", "--vm", "db2", "--host", "he2", "--affinity", "pinnned")
    assert result.returncode == 1
    assert "--affinity must be one of migratable, user_migratable, pinned" in result.stderr
    result = admin("remove-vm", "--vm", "db1")
    assert (result.returncode, result.stdout) == (0, "db1: powered off and removed\n")
    assert fresh_lab.state()["engine"]["vms"] == {}
    status, text = engine_request(fresh_lab, "GET", "/vms")
    assert "<name>db1</name>" not in text and "<name>HostedEngine</name>" in text
