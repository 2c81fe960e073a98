"""What an admin does in the engine's web admin, for any release (3.x engines too, which
have no v4 API): `POST {control}/admin` and `python -m lab admin ACTION`.

Each action goes through the lab engine's own operations (lab/engine/engine.py), so it
is refused where the engine refuses it and has the same effects on the hosts as the
API call would (e.g. host maintenance sets HA local maintenance and migrates the engine
VM away). Like the web admin, an action returns once the engine accepted it; long
operations (maintenance, activation, migration) go on in the background.
"""

import re

from .errors import LabError

ACTIONS = ("host-maintenance", "host-activate", "create-cluster", "set-cluster-version",
           "set-scheduling-policy", "migrate-engine-vm", "remove-host",
           "add-vm", "set-vm-affinity", "remove-vm")
# The web admin's "Migration mode" of a VM, as ovirtsdk4's types.VmAffinity names it.
AFFINITIES = ("migratable", "user_migratable", "pinned")


def _version(text):
    match = re.fullmatch(r"(\d+)\.(\d+)", text or "")
    if not match:
        raise LabError(f"--version must be MAJOR.MINOR, not {text!r}")
    return {"major": int(match.group(1)), "minor": int(match.group(2))}


def _affinity(text):
    if text not in AFFINITIES:
        raise LabError(f"--affinity must be one of {', '.join(AFFINITIES)}, not {text!r}")
    return text


def run(cluster, action, host=None, cluster_name=None, version=None, cpu=None, policy=None,
        vm=None, affinity=None):
    """Do `action` as the web admin would; returns a short message, raises LabError with
    the engine's own refusal text."""
    from .engine.documents import Fault  # the lab engine is optional (lab/up.py)

    if vm is not None and not isinstance(vm, str):
        raise LabError("--vm must be a VM name")
    if action not in ACTIONS:
        raise LabError(f"unknown admin action: {action} (one of {', '.join(ACTIONS)})")
    api = cluster.engine
    if api is None:
        raise LabError("the lab runs without an engine")
    if not cluster.engine_healthy():
        raise LabError("the web admin does not answer: the engine is not running")
    engine, store = api.engine, api.engine.store

    def engine_host():
        if not host:
            raise LabError(f"{action} needs --host")
        name = cluster.host_by_name(host).name
        found = store.host_by_name(name)
        if found is None:
            raise LabError(f"the engine does not know host {name}")
        return found

    def engine_cluster():
        if not cluster_name:
            raise LabError(f"{action} needs --cluster")
        found = store.cluster_by_name(cluster_name)
        if found is None:
            raise LabError(f"the engine has no cluster {cluster_name}")
        return found

    def guest_vm():
        if not vm:
            raise LabError(f"{action} needs --vm")
        found = store.guest_vm_by_name(vm)
        if found is None:
            if vm == "HostedEngine":
                raise LabError(f"{action} acts on guest VMs, not on the engine VM HostedEngine")
            raise LabError(f"the engine has no VM {vm}")
        return found

    try:
        if action == "add-vm":
            if not vm:
                raise LabError("add-vm needs --vm")
            chosen = _affinity(affinity or "migratable")
            target = engine_host()
            engine.add_guest_vm(vm, target, chosen)
            return f"{vm}: up on {target['name']} ({chosen})"
        if action == "set-vm-affinity":
            target_vm = guest_vm()
            engine.set_vm_affinity(target_vm, _affinity(affinity))
            return f"{vm}: migration mode {affinity}"
        if action == "remove-vm":
            engine.remove_guest_vm(guest_vm())
            return f"{vm}: powered off and removed"
        if action == "host-maintenance":
            target = engine_host()
            engine.deactivate(target)
            return f"{target['name']}: preparing for maintenance"
        if action == "host-activate":
            target = engine_host()
            engine.activate(target)
            return f"{target['name']}: activating"
        if action == "remove-host":
            target = engine_host()
            engine.remove_host(target)
            return f"{target['name']}: removed"
        if action == "migrate-engine-vm":
            target = engine_host() if host else None
            engine.migrate_vm(target)
            return "HostedEngine: migrating" + (f" to {target['name']}" if target else "")
        if action == "create-cluster":
            if not cluster_name:
                raise LabError("create-cluster needs --cluster")
            dc = next(iter(store.data["data_centers"].values()))
            created = engine.create_cluster(cluster_name, _version(version) if version else None,
                                            dc, policy=policy)
            if cpu:
                created["cpu"] = cpu
                store.save()
            level = created["version"]
            return f"cluster {cluster_name} created ({level['major']}.{level['minor']})"
        target = engine_cluster()
        if action == "set-cluster-version":
            engine.edit_cluster(target, version=_version(version))
            return f"cluster {target['name']}: compatibility version {version}"
        if not policy:
            raise LabError("set-scheduling-policy needs --policy")
        engine.edit_cluster(target, policy=policy)
        return f"cluster {target['name']}: scheduling policy {policy}"
    except Fault as exc:
        raise LabError(exc.detail.strip("[]")) from None


def engine_view(cluster):
    """What the web admin shows: each host's status and each cluster's settings (for
    /state; empty without an engine)."""
    api = cluster.engine
    if api is None or not hasattr(api, "engine"):
        return {}
    engine, store = api.engine, api.engine.store
    clusters = {c["id"]: c for c in store.data["clusters"].values()}
    return {
        "hosts": {h["name"]: {"status": engine.host_status(h),
                              "cluster": clusters.get(h["cluster"], {}).get("name")}
                  for h in store.hosts()},
        "clusters": {c["name"]: {"version": f"{c['version']['major']}.{c['version']['minor']}",
                                 "scheduling_policy": c.get("scheduling_policy"),
                                 "cpu": c.get("cpu")}
                     for c in clusters.values()},
        "vms": {v["name"]: {"host": (store.host(v["host"]) or {}).get("name"),
                            "status": v["status"], "affinity": v["affinity"]}
                for v in store.guest_vms()},
    }
