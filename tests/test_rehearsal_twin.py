"""The twin: a snapshot the portal takes of a cluster (upgrades/twin.py) and a lab started
from it (`python -m lab up --from-snapshot`, lab/snapshot.py).

A lab stands in for the real cluster: its snapshot builds a second lab, whose own
snapshot (taken the same way) must say the same of every host, the engine VM and the
guest VMs, for 3.5, 4.3 and 4.5."""
import json
import shutil

import pytest

from lab.launcher import start_lab
from upgrades import services, twin
from upgrades.remote.ssh import SshPool
from tests.conftest import LAB_SPEED, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

COMPARED_PACKAGES = ("vdsm", "ovirt-hosted-engine-ha", "ovirt-hosted-engine-setup", "libvirt",
                     "qemu-kvm", "qemu-kvm-ev", "qemu-kvm-rhev")


def comparable(snapshot):
    """What a twin must reproduce: every host's identity, versions and HA flags, the engine
    VM's host and versions, the engine's settings, the guest VMs."""
    return {
        "release": snapshot["release"],
        "global_maintenance": snapshot["global_maintenance"],
        "hosts": [{"name": h["name"], "he_host_id": h["he_host_id"], "os": h["os"],
                   "local_maintenance": h["local_maintenance"], "agent_state": settled_state(h["agent_state"]),
                   "packages": {p: v for p, v in h["packages"].items() if p in COMPARED_PACKAGES},
                   "updates": sorted(u["name"] for u in h["updates"])}
                  for h in snapshot["hosts"]],
        "engine_vm": {"host": snapshot["engine_vm"]["host"], "packages": snapshot["engine_vm"]["packages"]},
        "engine": {k: snapshot["engine"][k] for k in ("version", "compatibility_version", "scheduling_policy")},
        "guest_vms": snapshot["guest_vms"],
    }


def settled_state(state):
    """The part of an agent's state a twin can reproduce: whether it runs the engine or is in
    local maintenance. The passing states (EngineMaybeAway, EngineStarting...) depend on
    when each lab's agents last moved, which a twin started later cannot copy."""
    return state if state in ("EngineUp", "LocalMaintenance") else "other"


def start_twin(lab, path, tmp_path):
    keys = tmp_path / "twin" / "keys"
    keys.mkdir(parents=True)
    shutil.copy(lab.manifest["ssh_key"], keys / "client_ed25519")
    return start_lab(tmp_path / "twin", speed=LAB_SPEED, from_snapshot=path)


def register(name, lab, tmp_path):
    password = tmp_path / f"{name}-password"
    password.write_text(lab.manifest["engine"]["password"])
    return services.import_cluster(name=name, engine=lab.manifest["engine"], engine_vm=lab.manifest["engine_vm"],
                                   password_file=str(password), hosts=lab.manifest["hosts"],
                                   poll_interval=10 / lab.speed)


def settled(lab, engine_vm_host):
    lab.wait_for(lambda s: s["engine_vm"]["host"] == engine_vm_host and s["engine_vm"]["healthy"]
                 and all(h["live"] for h in s["hosts"].values()), sim_seconds=900)


def settled_snapshot(cluster, engine_vm_host, maintenance_host):
    """A snapshot taken once the agents publish what they settle in: EngineUp on the engine
    VM's host, LocalMaintenance on the host in local maintenance (a healthy VM comes a loop
    or two before its agent says EngineUp)."""
    def take():
        with SshPool() as pool:
            snapshot = twin.take(cluster, pool)
        states = {h["name"]: h["agent_state"] for h in snapshot["hosts"]}
        ready = states.get(engine_vm_host) == "EngineUp" and states.get(maintenance_host) == "LocalMaintenance"
        return ready and snapshot
    return wait_until(take, 60, f"EngineUp on {engine_vm_host}, LocalMaintenance on {maintenance_host}")


@pytest.mark.parametrize("release", [
    pytest.param("3.5", marks=pytest.mark.lab(engine_version="3.5")),
    pytest.param("4.3", marks=pytest.mark.lab(engine_version="4.3", outdated=True)),
    pytest.param("4.5", marks=pytest.mark.lab(engine_version="4.5", outdated=True)),
])
def test_a_twin_started_from_a_snapshot_has_the_clusters_state(release, fresh_lab_cluster, lab, tmp_path):
    real = fresh_lab_cluster.lab
    # Not the lab's defaults: the engine VM on he2, a pinned guest VM on he3, he3 in
    # local maintenance (4.x: outdated packages too).
    real.admin("migrate-engine-vm", host="he2")
    settled(real, "he2.lab.local")
    real.admin("add-vm", vm="db1", host="he3", affinity="pinned")
    real.admin("add-vm", vm="web1", host="he1", affinity="migratable")
    with real.connect("he3") as client:
        assert client.exec_command("hosted-engine --set-maintenance --mode=local")[1].channel.recv_exit_status() == 0
    real.wait_for(lambda s: s["hosts"]["he3.lab.local"]["local_maintenance"], sim_seconds=300)

    snapshot = settled_snapshot(fresh_lab_cluster, "he2.lab.local", "he3.lab.local")
    text = json.dumps(snapshot)
    assert real.manifest["engine"]["password"] not in text
    assert "known_hosts" not in text and "ssh-ed25519" not in text
    assert snapshot["release"] == release
    assert snapshot["engine_vm"]["host"] == "he2.lab.local"
    he3 = snapshot["hosts"][2]
    assert (he3["name"], he3["he_host_id"], he3["local_maintenance"]) == ("he3.lab.local", 3, True)
    if release != "3.5":
        assert {"name": "db1", "host": "he3.lab.local", "status": "up", "affinity": "pinned"} in snapshot["guest_vms"]
        assert he3["updates"], "an outdated cluster has pending updates"
    else:
        assert snapshot["guest_vms"] == [] and any("API v3" in n for n in snapshot["notes"])
    path = tmp_path / "snapshot.json"
    path.write_text(text)

    with start_twin(real, path, tmp_path) as second:
        assert second.manifest["twin"]["from_the_lab_model"]
        assert second.manifest["twin"]["problems"] == []
        settled(second, "he2.lab.local")
        second.wait_for(lambda s: s["hosts"]["he3.lab.local"]["local_maintenance"], sim_seconds=300)
        again = register("Twin", second, tmp_path)
        copied = settled_snapshot(again, "he2.lab.local", "he3.lab.local")
        got, wanted = comparable(copied), comparable(snapshot)
        for host, expected in zip(got.pop("hosts"), wanted.pop("hosts")):
            assert host == expected
        assert got == wanted
        if release != "3.5":
            assert second.state()["engine"]["vms"] == real.state()["engine"]["vms"]


def test_a_twin_keeps_host_names_and_he_ids_the_lab_would_not_pick(tmp_path, lab):
    """Names and ids unlike the lab's own he1..he3 / 1..3: the twin has them, its agents
    publish under them, and the engine knows the hosts by them."""
    snapshot = {"format": 1, "release": "4.3", "global_maintenance": False,
                "hosts": [{"name": "node-a.example.com", "he_host_id": 2, "os": "el7",
                           "packages": {"vdsm": "4.30.40-1"}},
                          {"name": "node-b.example.com", "he_host_id": 5, "os": "el7", "packages": {}},
                          {"name": "node-c.example.com", "he_host_id": 7, "os": "el7", "packages": {}}],
                "engine_vm": {"host": "node-b.example.com", "packages": {}},
                "engine": {"compatibility_version": "4.3", "scheduling_policy": "none"},
                "guest_vms": [{"name": "db1", "host": "node-c.example.com", "affinity": "pinned", "status": "up"}]}
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot))
    with start_twin(lab, path, tmp_path) as second:
        settled(second, "node-b.example.com")
        state = second.state()
        assert {name: h["host_id"] for name, h in state["hosts"].items()} == {
            "node-a.example.com": 2, "node-b.example.com": 5, "node-c.example.com": 7}
        assert state["hosts"]["node-a.example.com"]["packages"]["vdsm"] == "4.30.40-1"
        assert state["hosts"]["node-b.example.com"]["packages"]["vdsm"] == "4.30.46-1"
        assert set(state["engine"]["hosts"]) == set(state["hosts"])
        assert state["engine"]["vms"]["db1"] == {"host": "node-c.example.com", "status": "up", "affinity": "pinned"}
        with second.connect("node-c.example.com") as client:
            out = client.exec_command("hosted-engine --vm-status --json")[1].read().decode()
            answers = client.exec_command("cat /etc/ovirt-hosted-engine/answers.conf")[1].read().decode()
        assert "OVEHOSTED_STORAGE/hostID=int:7" in answers
        blocks = json.loads(out)
        assert {b["hostname"]: b["host-id"] for k, b in blocks.items() if k.isdigit()} == {
            "node-a.example.com": 2, "node-b.example.com": 5, "node-c.example.com": 7}


def test_a_twin_restarted_from_its_state_dir_keeps_its_hosts(tmp_path, lab):
    """A twin's state dir reloads with the snapshot's names and ids (the lab keyed its
    hosts by he<N>.lab.local when reloading)."""
    snapshot = {"format": 1, "release": "4.5", "global_maintenance": False,
                "hosts": [{"name": "kvm-1.example.org", "he_host_id": 3, "os": "el9"},
                          {"name": "kvm-2.example.org", "he_host_id": 4, "os": "el9"}],
                "engine_vm": {"host": "kvm-2.example.org"}, "engine": {}, "guest_vms": []}
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot))
    with start_twin(lab, path, tmp_path) as first:
        settled(first, "kvm-2.example.org")
    with start_lab(tmp_path / "twin", speed=LAB_SPEED) as again:
        settled(again, "kvm-2.example.org")
        assert {name: h["host_id"] for name, h in again.state()["hosts"].items()} == {
            "kvm-1.example.org": 3, "kvm-2.example.org": 4}


def test_a_bad_snapshot_is_refused_with_what_is_wrong(tmp_path, lab):
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps({"format": 1, "release": "4.3", "hosts": [
        {"name": "a.example.com", "he_host_id": 1}, {"name": "b.example.com", "he_host_id": 1}]}))
    from lab.launcher import LabStartError
    with pytest.raises(LabStartError, match="repeated HE host id 1"):
        start_twin(lab, path, tmp_path)
