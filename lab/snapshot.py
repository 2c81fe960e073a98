"""`python -m lab up --from-snapshot FILE`: a lab shaped like a real cluster.

The snapshot is what the portal reads of a cluster (upgrades/twin.py, format 1): the
release, each host's name, HE host id, OS, package versions and HA flags, global
maintenance, the engine VM's host, the engine's compatibility level and scheduling
policy, the guest VMs and their migration mode. The lab keeps the host names and HE ids
(so a plan made for the real cluster names the same hosts and steps); what a snapshot
cannot tell (addresses, how long a `yum update` takes, the repo's newest build) comes
from the lab's model, and `model_notes` says which.
"""

import json
import os
import re

from . import admin, catalog, distro
from .errors import LabError
from .machines import HE_CONF, ROOTS

FORMAT = 1
HA_CONF = "/var/lib/ovirt-hosted-engine-ha/ha.conf"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
# Besides these, a snapshot's package versions are applied only where the lab's host
# has the package (a lab host does not grow packages the model knows nothing of).
MODEL_NOTES = (
    "addresses and SSH ports are the lab's (127.0.1.N), not the real hosts'",
    "package sources are the lab's repos: the release's current build is what an update installs",
    "durations (yum update, reboots, migrations) are the lab's model, not measured on the real hosts",
    "HA agents start in steady state with the snapshot's states; scores are the lab's",
)


def _bare(version):
    """rpm's version-release as the lab's model keeps it: without the dist tag (.el7)."""
    return re.sub(r"\.el\d+(_\d+)*$", "", version)


def load(path):
    """The snapshot in FILE, checked: LabError with what is wrong."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read the snapshot {path}: {exc}") from None
    return check(data)


def check(data):
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LabError(f"not a cluster snapshot of format {FORMAT}")
    try:
        data["release"] = catalog.canonical(str(data.get("release")))
    except ValueError as exc:
        raise LabError(f"snapshot: {exc}") from None
    hosts = data.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise LabError("snapshot: no hosts")
    names, ids = set(), set()
    for host in hosts:
        name, host_id = host.get("name"), host.get("he_host_id")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in names:
            raise LabError(f"snapshot: bad or repeated host name {name!r}")
        if not isinstance(host_id, int) or host_id < 1 or host_id in ids:
            raise LabError(f"snapshot: host {name}: bad or repeated HE host id {host_id!r}")
        names.add(name)
        ids.add(host_id)
    return data


def host_os(data):
    """One OS for the lab's hosts: the snapshot's (the most common one), else the release's."""
    release = data["release"]
    found = [h.get("os") for h in data["hosts"] if h.get("os") in catalog.RELEASES[release]["os"]]
    return max(set(found), key=found.count) if found else catalog.DEFAULT_OS[release]


def shape(cluster, data):
    """Make a freshly created lab cluster (hosts he1..heN) look like the snapshot, before
    anything runs: names, HE ids, packages, HA flags, the engine VM's host."""
    hosts = sorted(data["hosts"], key=lambda h: h["he_host_id"])
    lab_hosts = list(cluster.hosts.values())
    renamed = {}
    engine_vm_from = next((h for h in lab_hosts if h.vm), None)
    record = engine_vm_from.vm if engine_vm_from else None
    for lab_host, item in zip(lab_hosts, hosts):
        old = lab_host.name
        lab_host.name = item["name"]
        old_root = os.path.join(cluster.state_dir, ROOTS, old)
        new_root = os.path.join(cluster.state_dir, ROOTS, lab_host.name)
        if old_root != new_root:
            os.rename(old_root, new_root)
            lab_host.attach_disk(cluster.state_dir)
        _set_host_id(lab_host, item["he_host_id"])
        wanted = {name: _bare(version) for name, version in (item.get("packages") or {}).items()
                  if name in lab_host.packages and isinstance(version, str)}
        if wanted:
            lab_host.install_packages(wanted)
        lab_host.vm = None
        if item.get("local_maintenance"):
            lab_host.local_maintenance = True
            lab_host.fs.write(HA_CONF, "local_maintenance=True\n")
        renamed[lab_host.name] = lab_host
    cluster.hosts = renamed
    cluster.agents = {}
    cluster.global_maintenance = bool(data.get("global_maintenance"))
    target = (data.get("engine_vm") or {}).get("host")
    if target not in renamed:
        target = next(iter(renamed))
    if record is not None:
        renamed[target].vm = record
        cluster.lease = target
    # Agents resume in steady state (as Cluster._create has them), reading the new ids.
    # The engine VM's host first: its agent publishes before the others look (they would
    # otherwise see no live engine anywhere and try to start it).
    for name, host in sorted(renamed.items(), key=lambda item: item[0] != target):
        if host.configured:
            state = "LocalMaintenance" if host.local_maintenance else \
                "EngineUp" if name == target else "EngineDown"
            cluster._resume_agent(host, {"state": state, "history": 100_000})
    engine_packages = {name: _bare(version) for name, version in
                       ((data.get("engine_vm") or {}).get("packages") or {}).items()
                       if name in cluster.engine_vm.packages and isinstance(version, str)}
    if engine_packages:
        cluster.engine_vm.install_packages(engine_packages)


def _set_host_id(host, host_id):
    """The HE id in hosted-engine.conf (what the agent reads) and in the deploy's answer files."""
    text = host.fs.read(HE_CONF) or ""
    host.fs.write(HE_CONF, re.sub(r"^host_id=\d+", f"host_id={host_id}", text, flags=re.M))
    for path in [distro.HE_ANSWERS] + list(host.fs.glob(distro.ANSWERS_DIR, "answers-*.conf")):
        text = host.fs.read(path)
        if text:
            host.fs.write(path, re.sub(r"hostID=int:\d+", f"hostID=int:{host_id}", text))


def apply_engine(cluster, data):
    """What the web admin holds: compatibility level, scheduling policy, guest VMs (the
    lab's admin actions, once the engine runs). Returns what could not be done."""
    problems = []
    engine = data.get("engine") or {}
    view = admin.engine_view(cluster)
    name = next(iter(view.get("clusters") or {}), None)
    actions = []
    if name and engine.get("compatibility_version") and \
            engine["compatibility_version"] != view["clusters"][name]["version"]:
        actions.append(("set-cluster-version", {"cluster_name": name,
                                                "version": engine["compatibility_version"]}))
    if name and engine.get("scheduling_policy") and \
            engine["scheduling_policy"] != view["clusters"][name]["scheduling_policy"]:
        actions.append(("set-scheduling-policy", {"cluster_name": name, "policy": engine["scheduling_policy"]}))
    for vm in data.get("guest_vms") or []:
        if vm.get("host") and vm.get("status", "up") == "up":
            actions.append(("add-vm", {"vm": vm["name"], "host": vm["host"],
                                       "affinity": vm.get("affinity") or "migratable"}))
    for action, args in actions:
        try:
            admin.run(cluster, action, **args)
        except LabError as exc:
            problems.append(f"{action} {args}: {exc}")
    return problems
