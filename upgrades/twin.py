"""A snapshot of a cluster, to build its twin in the lab (``python -m lab up --from-snapshot``).

Taken over the paths the portal already uses, read fresh: the HA poller's vm-status
read (``poller.ClusterPoller``), the engine's view on 4.x (``engine_view``), the
pending updates and installed versions over SSH (``packages``), plus each host's
/etc/redhat-release, its libvirt and qemu versions, and on 4.x the guest VMs with
their migration mode. Plain JSON (format 1, lab/snapshot.py reads it); no password,
key or known_hosts line ever goes into it.
"""
import re
import time

from django.utils import timezone

from . import packages as package_reads
from .engine_view import poll_engine_view
from .models import Cluster
from .plan import release_of
from .poller import ClusterPoller
from .remote.base import EngineError, RemoteError
from .remote.engine_api import EngineClient
from .remote.ssh import SshTarget, build_command

FORMAT = 1
HOST_EXTRA = ("libvirt", "qemu-kvm", "qemu-kvm-ev", "qemu-kvm-rhev")
OS_COMMAND = "cat /etc/redhat-release"
PACKAGE_ATTEMPTS = 5
PACKAGE_RETRY_SECONDS = 2.0


class SnapshotError(Exception):
    """The cluster could not be read well enough to build a twin; the message says why."""


def os_of(release_text):
    """el6..el9 from /etc/redhat-release ("CentOS Linux release 7.2.1511 (Core)" -> el7)."""
    match = re.search(r"release (\d+)", release_text or "")
    return f"el{match[1]}" if match else ""


def take(cluster, pool, *, engine_client=EngineClient.for_cluster):
    """Read ``cluster`` now and return its snapshot (a dict); SnapshotError when its HA
    state or release cannot be read (a twin of an unknown cluster would mislead)."""
    poller = ClusterPoller(cluster.pk)
    try:
        if not poller.poll():
            cluster.refresh_from_db()
            raise SnapshotError(f"the HA state of {cluster.name} cannot be read: {cluster.poll_error}")
    finally:
        poller.close()
    poll_engine_view(cluster, client_factory=engine_client)
    read_packages(cluster, pool, engine_client)
    cluster = Cluster.objects.get(pk=cluster.pk)
    release = release_of(cluster)
    if release is None:
        raise SnapshotError(f"the oVirt release of {cluster.name} is not known yet "
                            f"({cluster.detected_release or 'the poller found none'})")
    view = cluster.engine_view or {}
    machines = (cluster.packages or {}).get("machines", {})
    notes = []
    hosts = []
    for host in cluster.hosts.order_by("he_host_id", "name"):
        read = machines.get(host.name) or {}
        session = pool.session(SshTarget.for_host(host))
        try:
            os_text = session.run(OS_COMMAND, timeout=30, idle_timeout=30).stdout.strip()
            extra = session.run(build_command("rpm -q {names}", names=list(HOST_EXTRA)),
                                timeout=60, idle_timeout=60).stdout
        except RemoteError as exc:
            raise SnapshotError(f"{host.name}: {exc.message}") from None
        installed = {**package_reads.parse_rpm_query(extra, HOST_EXTRA), **(read.get("installed") or {})}
        hosts.append({
            "name": host.name, "address": host.address, "he_host_id": host.he_host_id,
            "os": os_of(os_text), "os_release": os_text, "packages": installed,
            "updates": read.get("updates") or [],
            "local_maintenance": host.local_maintenance, "agent_state": host.ha_state,
            "score": host.ha_score, "live": host.ha_live, "engine_vm_here": host.engine_vm_here,
            "engine_status": ((view.get("hosts") or {}).get(host.name) or {}).get("status"),
        })
    missing = [h["name"] for h in hosts if h["he_host_id"] is None]
    if missing:
        raise SnapshotError(f"no HE host id known for {', '.join(missing)}: the HA poller has not listed them")
    engine_vm = machines.get(package_reads.ENGINE_VM) or {}
    on = next((h["name"] for h in hosts if h["engine_vm_here"]), None)
    guest_vms = []
    if view.get("api") == "v4":
        try:
            with engine_client(cluster) as client:
                guest_vms = [{"name": name, "host": where, "status": status, "affinity": affinity}
                             for name, where, status, affinity in client.guest_vms()]
        except (EngineError, RemoteError) as exc:
            notes.append(f"guest VMs not read: {exc.message}")
    else:
        notes.append("guest VMs not read: the engine speaks API v3 only (oVirt 3.x); the twin has none")
    engine_cluster = view.get("cluster") or {}
    return {
        "format": FORMAT,
        "taken_at": timezone.now().isoformat(),
        "cluster": cluster.name,
        "release": f"{release[0]}.{release[1]}",
        "detected_release": cluster.detected_release,
        "global_maintenance": cluster.maintenance_mode == "global",
        "hosts": hosts,
        "engine_vm": {"host": on, "healthy": any(h["engine_vm_here"] and h["agent_state"] == "EngineUp"
                                                 for h in hosts),
                      "health_page": cluster.engine_health, "packages": engine_vm.get("installed") or {},
                      "updates": engine_vm.get("updates") or []},
        "engine": {"api": view.get("api"),
                   "version": (engine_vm.get("installed") or {}).get("ovirt-engine", ""),
                   "compatibility_version": engine_cluster.get("version") or cluster.compatibility_version,
                   "scheduling_policy": engine_cluster.get("scheduling_policy") or "",
                   "engine_vm_host": view.get("engine_vm_host")},
        "guest_vms": guest_vms,
        "notes": notes,
    }


def read_packages(cluster, pool, engine_client, attempts=PACKAGE_ATTEMPTS):
    """Every machine's versions and pending updates; a read that failed (yum busy with the
    HA poller's own read, say) is tried again. SnapshotError when one never answers: a
    twin with guessed versions would rehearse another upgrade."""
    for attempt in range(attempts):
        data = package_reads.poll_packages(cluster, pool, engine_client=engine_client)
        errors = [f"{name}: {m['error']}" for name, m in data["machines"].items() if m.get("error")]
        if not errors:
            return data
        time.sleep(PACKAGE_RETRY_SECONDS)
    raise SnapshotError("package versions not read: " + "; ".join(errors))


def package_changes(before, after):
    """[{machine, package, before, after}] where a snapshot's versions differ (the twin
    before and after a rehearsal)."""
    def versions(snap):
        found = {h["name"]: h.get("packages") or {} for h in snap.get("hosts", [])}
        found["engine VM"] = (snap.get("engine_vm") or {}).get("packages") or {}
        return found

    old, new = versions(before), versions(after)
    rows = []
    for machine in old:
        for package in sorted(set(old[machine]) | set(new.get(machine, {}))):
            a, b = old[machine].get(package, ""), new.get(machine, {}).get(package, "")
            if a != b:
                rows.append({"machine": machine, "package": package, "before": a, "after": b})
    return rows
