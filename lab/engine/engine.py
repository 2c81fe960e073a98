"""What the fake engine does: host, cluster and VM state, validations, and the
long operations that keep running after a POST has returned.

HTTP lives in server.py; this module never sees a request. Every state change
is saved to the store at once, and long operations are asyncio tasks that
sleep on the lab clock, so a client polling the API sees the same status
sequence as with a real engine, only faster at high `--speed`.
"""
import asyncio
import logging
import re

from lab.errors import LabError

from . import inventory
from .documents import Fault
from .store import EngineStore, max_cluster_level, parse_version

log = logging.getLogger(__name__)

USER = "admin@internal-authz"

# Real-world durations in seconds, before the lab clock scales them.
MONITOR_DELAY = 5         # host monitoring period (VdsManager refresh)
ACTIVATE_DELAY = 5        # Unassigned -> Up after activate
UPGRADE_CHECK_DELAY = 30  # the check-for-updates ansible playbook
UPGRADE_SETUP_DELAY = 15  # the host-upgrade playbook's set-up before packages
REBOOT_DOWN_DELAY = 10    # the host takes this long to drop off after `reboot`
POLL_DELAY = 5            # how often the engine re-probes a rebooting host
INITIALIZING_DELAY = 5    # Initializing -> back to the previous status

# Statuses the engine sets itself while it drives a host; monitoring does not
# override them with non_responsive.
_DRIVEN = {"installing", "reboot", "install_failed"}
_MAINTENANCE_FROM = {"up", "preparing_for_maintenance", "non_responsive", "error",
                     "non_operational", "install_failed"}


# The engine's built-in scheduling policies (ids as in ovirt-engine's db seed).
SCHEDULING_POLICIES = {
    "b4ed2332-a7ac-4d5f-9596-99a439cb2812": "none",
    "20d25257-b4bd-4589-92a6-c4c5c5d3fd1a": "evenly_distributed",
    "5a2b0939-7d46-4b73-a469-e9c2c7fc6a53": "power_saving",
    "8d5d7bec-68de-4a67-b53e-0ac54686d579": "vm_evenly_distributed",
    "7677771e-5eab-422e-83fa-dc04080d21b7": "cluster_maintenance",
}

# AuditLogDirector.UNKNOWN_REASON_VALUE @ovirt-engine-3.6.9.2 (its leading space included).
UNKNOWN_REASON_VALUE = " No reason was returned for this operation failure. See logs for further details."


def no_he_candidate_text(version: dict) -> str:
    """VDS_CANNOT_MAINTENANCE_NO_ALTERNATE_HOST_FOR_HOSTED_ENGINE of AppErrors.properties
    (frontend/webadmin/modules/frontend/src/main/resources/org/ovirt/engine/ui/frontend/):
    @ovirt-engine-4.0.7 to @ovirt-engine-4.3.10.4 "There are no available hosts ...",
    @ovirt-engine-4.4.10 and @ovirt-engine-4.5.6 "None of the hosts ... score ...". 3.x has
    no such message (@ovirt-engine-3.6.9.2): its hosts are not refused."""
    if (version["major"], version["minor"]) >= (4, 4):
        tail = "None of the hosts capable of running the engine VM has score more than 0 and is in Up state."
    else:
        tail = "There are no available hosts capable of running the engine VM."
    return f"Cannot switch the Host(s) to Maintenance mode.\n{tail}"


# ovirtsdk4 types.VmAffinity: the web admin's "Migration mode" (Allow manual and automatic
# migration / Allow manual migration only / Do not allow migration).
AFFINITIES = ("migratable", "user_migratable", "pinned")
HOSTED_ENGINE = "HostedEngine"


def non_migratable_text(hosts: list[str], vms: list[str]) -> str:
    """VDS_CANNOT_MAINTENANCE_IT_INCLUDES_NON_MIGRATABLE_VM (AppErrors.properties), the lists
    joined as MaintenanceNumberOfVdssCommand.handleNonMigratableVms joins them."""
    return (f"Cannot switch the following Hosts to Maintenance mode: {' , '.join(hosts)}.\n"
            "One or more running VMs are indicated as non-migratable. The non-migratable VMs "
            f"are: {' , '.join(vms)}.")


def _refused(text: str) -> Fault:
    """A failed validation: 409, detail in brackets as the engine writes it
    (the code is an assumption, facts §12)."""
    return Fault(409, f"[{text}]")


class Engine:
    def __init__(self, backend, store: EngineStore):
        self.backend = backend
        self.store = store
        self.busy: dict[str, asyncio.Task] = {}  # host id -> its running operation
        self.tasks: set[asyncio.Task] = set()
        self.last_status: dict[str, str] = {}  # host id -> status the monitor last saw
        # host ids whose 3.x maintenance waits for the engine VM to leave (activation ends it)
        self.waiting: set[str] = set()

    # ---- reading state -------------------------------------------------

    def version(self) -> dict:
        """The engine's version; it changes when engine-setup upgrades the engine VM."""
        return parse_version(self.backend.engine_version)

    def api_v3_only(self) -> bool:
        """oVirt 3.x engines speak API v3 only, without SSO (ovirt-releases.md)."""
        return self.version()["major"] < 4

    def info(self, host: dict) -> dict | None:
        if host["name"] not in self.backend.host_names():
            return None
        return self.backend.host_info(host["name"])

    def host_status(self, host: dict) -> str:
        info = self.info(host)
        if (info is None or not info["reachable"]) and host["status"] not in _DRIVEN:
            return "non_responsive"
        return host["status"]

    def vm_host(self) -> dict | None:
        name = self.backend.engine_vm_host()
        return self.store.host_by_name(name) if name else None

    def host_view(self, host: dict, all_content: bool) -> dict:
        info = self.info(host) or {}
        os_name = info.get("os", "el7")
        os_major = int("".join(ch for ch in os_name if ch.isdigit()) or 7)
        vm_host = self.vm_host()
        here = vm_host is not None and vm_host["id"] == host["id"]
        hosted_engine = None
        if all_content and info:
            hosted_engine = {
                "active": info["live"],
                "configured": info["configured"],
                "global_maintenance": info["global_maintenance"],
                "local_maintenance": info["local_maintenance"],
                "score": info["score"],
            }
        return {
            **host,
            "status": self.host_status(host),
            "os_major": os_major,
            # vdsm's "major - release" string for the lab's CentOS 6.7 and 7.2 hosts
            "os_full": {6: "6 - 7.el6.centos.12.3", 7: "7 - 2.1511.el7.centos.2.10"}.get(
                os_major, str(os_major)),
            "hosted_engine": hosted_engine,
            "vms_active": (1 if here else 0) + len(self.guests_on(host)),
            "vms_migrating": 1 if here and self.backend.engine_vm_status() == "migrating" else 0,
            "spm": (self.spm_host() or {}).get("id") == host["id"],
            "vdsm_version": inventory.host_version(info["vdsm_version"], os_name)
            if info.get("vdsm_version") else None,
        }

    def spm_host(self) -> dict | None:
        """The data center's SPM: the lab gives the role to the first Up host by name (the
        engine elects one of the Up hosts; which one is not modelled)."""
        up = [h for h in self.store.hosts() if self.host_status(h) == "up"]
        return min(up, key=lambda h: h["name"]) if up else None

    def host_search_record(self, host: dict) -> dict:
        cluster = self.store.cluster(host["cluster"]) or {}
        dc = self.store.data_center(cluster.get("data_center", "")) or {}
        return {
            "name": host["name"], "address": host["address"], "status": self.host_status(host),
            "cluster": cluster.get("name"), "datacenter": dc.get("name"),
            "update_available": "true" if host["update_available"] else "false",
            "ha_score": (self.info(host) or {}).get("score", 0),
        }

    def vm_view(self) -> dict:
        """The engine VM, from the HA model."""
        vm_host = self.vm_host()
        status = self.backend.engine_vm_status()
        if vm_host is not None:
            cluster = vm_host["cluster"]
        else:
            default = self.store.cluster_by_name("Default")
            cluster = default["id"] if default else None
        return {
            "id": self.store.data["vm_id"], "name": HOSTED_ENGINE,
            "description": "Hosted engine VM", "memory": 17179869184,
            "origin": "managed_hosted_engine", "affinity": "migratable",
            "status": status, "cluster": cluster,
            "host": vm_host["id"] if vm_host and status != "down" else None,
        }

    @staticmethod
    def guest_vm_view(vm: dict) -> dict:
        """A guest VM; a VM not migratable lists its host as the placement policy's host, as
        the web admin sets "Start Running On: Specific Host" for it."""
        return {
            **vm, "description": "", "memory": 1073741824, "origin": "ovirt",
            "host": vm["host"] if vm["status"] != "down" else None,
            "placement_hosts": [vm["host"]] if vm["affinity"] != "migratable" else [],
        }

    def vm_views(self) -> list[dict]:
        """Every VM the engine knows, the engine VM first."""
        return [self.vm_view()] + [self.guest_vm_view(v) for v in self.store.guest_vms()]

    def vm_view_by_id(self, vm_id: str) -> dict | None:
        return next((v for v in self.vm_views() if v["id"] == vm_id), None)

    def vm_search_record(self, view: dict) -> dict:
        host = self.store.host(view["host"]) if view["host"] else None
        cluster = self.store.cluster(view["cluster"]) if view["cluster"] else None
        return {"name": view["name"], "status": view["status"],
                "description": view["description"], "host": host["name"] if host else None,
                "cluster": cluster["name"] if cluster else None}

    def guests_on(self, host: dict) -> list[dict]:
        """The guest VMs running on `host` (a stopped VM keeps its last host as its record)."""
        return [v for v in self.store.guest_vms()
                if v["host"] == host["id"] and v["status"] != "down"]

    def guest_destinations(self, source: dict) -> list[dict]:
        """Up hosts of the source's cluster a guest VM can migrate to, least loaded first."""
        found = [h for h in self.store.hosts()
                 if h["id"] != source["id"] and h["cluster"] == source["cluster"]
                 and self.host_status(h) == "up"]
        return sorted(found, key=lambda h: (len(self.guests_on(h)), h["name"]))

    def he_candidates(self, source: dict) -> list[dict]:
        """Hosts that could take the engine VM from `source`, best first.

        As HostedEngineHelper.haveHostsAvailableForHE: another host of the
        same cluster that is Up, HA-active, not in local maintenance and has a
        positive score.
        """
        found = []
        for host in self.store.hosts():
            if host["id"] == source["id"] or host["cluster"] != source["cluster"]:
                continue
            info = self.info(host)
            if (info and self.host_status(host) == "up" and info["configured"] and info["live"]
                    and not info["local_maintenance"] and info["score"] > 0):
                found.append((info["score"], host))
        found.sort(key=lambda pair: -pair[0])
        return [host for _, host in found]

    # ---- host actions --------------------------------------------------

    def _check_idle(self, host: dict, action: str) -> None:
        if host["id"] in self.busy:
            raise _refused(f"Cannot {action}. Related operation is currently in progress. "
                           "Please try again later.")

    def _check_can_maintain(self, host: dict, internal: bool = False) -> None:
        """MaintenanceNumberOfVdssCommand.validate. `internal`: the engine's own maintenance
        (a host upgrade), where 4.x refuses "manual migration only" VMs too; an admin's
        maintenance migrates them. 3.x refuses every VM that is not migratable."""
        status = self.host_status(host)
        if status == "maintenance":
            raise _refused(
                "Cannot switch Host to Maintenance mode. Host is already in Maintenance mode.")
        if status not in _MAINTENANCE_FROM:
            raise _refused("Cannot switch Host to Maintenance mode, Host is not operational.")
        vm_host = self.vm_host()
        if vm_host and vm_host["id"] == host["id"] and self.backend.engine_vm_status() != "down":
            if status == "non_responsive":
                raise _refused(f"Cannot switch Host to Maintenance mode. Host {host['name']} "
                               "is non responsive with running VMs.")
            if not self.he_candidates(host) and not self.api_v3_only():
                raise _refused(no_he_candidate_text(self.version()))
        guests = self.guests_on(host)
        blocking = {"pinned"}
        if internal or self.api_v3_only():
            blocking.add("user_migratable")
        stuck = [v["name"] for v in guests if v["affinity"] in blocking]
        if stuck:
            raise _refused(non_migratable_text([host["name"]], stuck))
        if guests and status == "non_responsive":
            raise _refused(f"Cannot switch Host to Maintenance mode. Host {host['name']} "
                           "is non responsive with running VMs.")
        if guests and not self.guest_destinations(host):
            cluster = self.store.cluster(host["cluster"]) or {}
            raise _refused(  # CANNOT_MAINTENANCE_VDS_RUN_VMS_NO_OTHER_RUNNING_VDS
                "The following Hosts have running VMs and cannot be switched to maintenance "
                f"mode: {host['name']}.\nPlease ensure that the following Clusters have at "
                f"least one Host in UP state: {cluster.get('name')}.")

    def deactivate(self, host: dict, reason: str | None = None) -> None:
        self._check_idle(host, "switch Host to Maintenance mode")
        self._check_can_maintain(host)
        self._set_status(host, "preparing_for_maintenance")
        self._start(host, self._maintenance(host, announce=self._maintenance_event(host, reason)))

    def _maintenance_event(self, host: dict, reason: str | None) -> tuple[int, str]:
        """USER_VDS_MAINTENANCE (600) with a reason, USER_VDS_MAINTENANCE_WITHOUT_REASON (620)
        without (AuditLogType.java, AuditLogMessages.properties @ovirt-engine-4.3.10.4, 4.5.6).
        3.x has no 620: 3.5's 600 has no reason (@ovirt-engine-3.5.6.2), 3.6's always names
        one, AuditLogDirector's UNKNOWN_REASON_VALUE when there is none (@ovirt-engine-3.6.9.2)."""
        text = f"Host {host['name']} was switched to Maintenance mode by {USER}"
        v = self.version()
        if (v["major"], v["minor"]) < (3, 6):
            return 600, f"{text}."
        if (v["major"], v["minor"]) < (4, 0):
            return 600, f"{text} (Reason: {reason or UNKNOWN_REASON_VALUE})."
        return (600, f"{text} (Reason: {reason}).") if reason else (620, f"{text}.")

    def activate(self, host: dict) -> None:
        if host["id"] in self.waiting:  # a 3.x host PreparingForMaintenance can be activated
            self.busy.pop(host["id"]).cancel()
            self.waiting.discard(host["id"])
        self._check_idle(host, "activate Host")
        if self.host_status(host) == "up":
            raise _refused("Cannot activate Host. Host is already Up.")
        self._set_status(host, "unassigned")
        # VDS_ACTIVATE (16) when the command ends, VDS_DETECTED (13) when monitoring sees it Up
        self.store.add_event(16, f"Activation of host {host['name']} initiated by {USER}.",
                             host=host)
        self._start(host, self._activate(host))

    def upgrade_check(self, host: dict) -> None:
        if self.host_status(host) not in ("up", "maintenance", "non_operational"):
            self.store.add_event(
                887, f"Failed to check for available updates on host {host['name']}: "
                     "Unsupported host status.", severity="warning", host=host)
            return
        if host["id"] in self.busy:
            self.store.add_event(886, f"Failed to check for available updates on host "
                                      f"{host['name']}: Another process is already running.",
                                 severity="warning", host=host)
            return
        self.store.add_event(884, f"Started to check for available updates on host {host['name']}.",
                             host=host)
        self._start(host, self._upgrade_check(host))

    def upgrade(self, host: dict, reboot: bool, timeout_min: int) -> None:
        self._check_idle(host, "upgrade Host")
        if not host["update_available"]:
            raise _refused("Cannot upgrade Host. There are no available updates for the host.")
        status = self.host_status(host)
        if status not in ("up", "maintenance", "non_operational", "install_failed"):
            raise _refused("Cannot upgrade Host. Host is not in a valid status for upgrade.")
        if status != "maintenance":
            self._check_can_maintain(host, internal=True)
        self.store.add_event(840, f"Host {host['name']} upgrade was started (User: {USER}).",
                             host=host)
        self._start(host, self._upgrade(host, status, reboot, timeout_min))

    def migrate_vm(self, dest: dict | None) -> None:
        source = self.vm_host()
        if source is None or self.backend.engine_vm_status() != "up":
            raise _refused("Cannot migrate VM. VM HostedEngine is not running.")
        candidates = self.he_candidates(source)
        if dest is None:
            if not candidates:
                raise _refused("Cannot migrate VM. There is no host that satisfies current "
                               "scheduling constraints.")
            dest = candidates[0]
        elif dest["id"] == source["id"]:
            raise _refused("Cannot migrate VM. Source and destination hosts are the same.")
        elif dest not in candidates:
            raise _refused(
                "Cannot migrate VM. There is no host that satisfies current scheduling "
                f"constraints. See below for details:, The host {dest['name']} did not satisfy "
                "internal filter HA because it is not a Hosted Engine host or its hosted engine "
                "score is too low.")
        self._spawn(self._migrate(source, dest, user=True))

    # ---- guest VMs (the web admin's Virtual Machines tab) --------------

    def vm_power(self, view: dict, action: str) -> None:
        """start/stop/shutdown of a guest VM, events USER_STARTED_VM (153), USER_STOP_VM (33),
        USER_INITIATED_SHUTDOWN_VM (73) then VM_DOWN (61) (AuditLogMessages.properties
        @ovirt-engine-4.3.10.4). The engine VM belongs to the HA agents: the lab refuses."""
        vm = self.store.guest_vm(view["id"])
        if vm is None:
            raise _refused(f"Cannot {action} VM. The lab's engine VM is started and stopped by "
                           "the HA agents (hosted-engine --vm-start / --vm-shutdown).")
        host = self.store.host(vm["host"]) or {"name": ""}
        if action == "start":
            if vm["status"] == "up":
                raise _refused("Cannot run VM because the VM is in Up status.")
            vm["status"] = "up"
            self.store.save()
            self.store.add_event(153, f"VM {vm['name']} was started by {USER} (Host: "
                                      f"{host['name']}).", host=host, vm=vm["id"])
            return
        if vm["status"] == "down":
            raise _refused(f"Cannot {action} VM. VM is not running.")
        if action == "stop":
            self.store.add_event(33, f"VM {vm['name']} powered off by {USER} (Host: "
                                     f"{host['name']}).", host=host, vm=vm["id"])
        else:
            self.store.add_event(73, f"VM shutdown initiated by {USER} on VM {vm['name']} "
                                     f"(Host: {host['name']}).", host=host, vm=vm["id"])
        vm["status"] = "down"
        self.store.save()
        self.store.add_event(61, f"VM {vm['name']} is down. ", host=host, vm=vm["id"])

    def add_tag(self, name: str) -> None:
        tags = self.store.data.setdefault("tags", {"names": [], "assigned": {}})
        if name in tags["names"] or name == "root":
            raise _refused("Cannot add Tag. Tag name is in use.")
        tags["names"].append(name)
        self.store.save()
        self.store.add_event(432, f"New Tag {name} was created by {USER}.")

    def assign_tag(self, name: str, kind: str, owner: dict) -> None:
        """USER_ATTACH_TAG_TO_VDS (442) / USER_ATTACH_TAG_TO_VM (440)."""
        tags = self.store.data.setdefault("tags", {"names": [], "assigned": {}})
        if name not in tags["names"]:
            tags["names"].append(name)
        assigned = tags["assigned"].setdefault(owner["id"], [])
        if name not in assigned:
            assigned.append(name)
        self.store.save()
        if kind == "hosts":
            self.store.add_event(442, f"Tag {name} was attached to Host(s) {owner['name']} by "
                                      f"{USER}.", host=owner)
        else:
            self.store.add_event(440, f"Tag {name} was attached to VM(s) {owner['name']} by "
                                      f"{USER}.", vm=owner["id"])

    def edit_data_center(self, dc: dict, *, name=None, description=None) -> None:
        """USER_UPDATE_STORAGE_POOL (952)."""
        if name:
            dc["name"] = name
        if description is not None:
            dc["description"] = description
        self.store.save()
        self.store.add_event(952, f"Data Center {dc['name']} was updated by {USER}")

    def _check_affinity(self, affinity: str) -> None:
        if affinity not in AFFINITIES:
            raise Fault(400, f"Invalid value '{affinity}' for placement_policy.affinity: one of "
                             f"{', '.join(AFFINITIES)}", reason="Invalid value")

    def add_guest_vm(self, name: str, host: dict, affinity: str) -> dict:
        """New VM, run on `host` (Run Once on a specific host), with its migration mode."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name or ""):
            raise _refused("Cannot add VM. The given name contains special characters. Only "
                           "lower-case and upper-case letters, numbers, '_', '-', '.' are "
                           "allowed.")
        if name == HOSTED_ENGINE or self.store.guest_vm_by_name(name):
            raise _refused("Cannot add VM. The VM name is already in use, please choose a "
                           "unique name and try again.")
        self._check_affinity(affinity)
        status = self.host_status(host)
        if status != "up":
            raise _refused(f"Cannot run VM. There is no host that satisfies current scheduling "
                           f"constraints. See below for details:, The host {host['name']} did "
                           f"not satisfy internal filter Status because it is {status}.")
        vm = self.store.add_guest_vm(name, host, affinity)
        self.store.add_event(34, f"VM {name} was created by {USER}.", cluster_id=host["cluster"],
                             vm=vm["id"])
        self.store.add_event(153, f"VM {name} started on Host {host['name']}", host=host,
                             vm=vm["id"])
        return vm

    def set_vm_affinity(self, vm: dict, affinity: str) -> None:
        """Edit VM > Host > Migration mode."""
        self._check_affinity(affinity)
        vm["affinity"] = affinity
        self.store.save()
        self.store.add_event(35, f"VM {vm['name']} configuration was updated by {USER}.",
                             cluster_id=vm["cluster"], vm=vm["id"])

    def remove_guest_vm(self, vm: dict) -> None:
        """Power Off, then Remove."""
        del self.store.data["guest_vms"][vm["id"]]
        self.store.save()
        self.store.add_event(113, f"VM {vm['name']} was removed by {USER}.",
                             cluster_id=vm["cluster"])

    # ---- clusters ------------------------------------------------------

    def check_cluster_version(self, version: dict, action: str) -> None:
        top = max_cluster_level(self.version())
        if (version["major"], version["minor"]) > top:
            raise _refused(
                f"Cannot {action} Cluster. Selected Compatibility Version is not supported.")

    def check_version_change(self, cluster: dict, version: dict) -> None:
        """Lowering a cluster's level while it has hosts is refused; so is raising it
        above what an active host of it supports (its vdsm)."""
        old = (cluster["version"]["major"], cluster["version"]["minor"])
        new = (version["major"], version["minor"])
        hosts = [h for h in self.store.hosts() if h["cluster"] == cluster["id"]]
        if new < old and hosts:
            raise _refused("Cannot edit Cluster. Cannot decrease the Compatibility Version of "
                           "a Cluster that has Hosts.")
        if new > old:
            for host in hosts:
                info = self.info(host)
                if (info and self.host_status(host) == "up"
                        and tuple(info.get("cluster_level", new)) < new):
                    raise _refused(
                        "Cannot change Cluster Compatibility Version to higher version when "
                        "there are active Hosts with lower version.\n-Please move Hosts with "
                        "lower version to maintenance first.")

    def create_cluster(self, name: str, version: dict | None, dc: dict, description: str = "",
                       policy: str | None = None) -> dict:
        """New cluster (web admin "New Cluster", API POST /clusters); version defaults to
        the data center's."""
        if self.store.cluster_by_name(name):
            raise _refused("Cannot create Cluster. Cluster name is already in use.")
        version = version or dict(dc["version"])
        self.check_cluster_version(version, "create")
        self._check_policy(policy)
        cluster = self.store.add_cluster(name, version, dc["id"], description)
        if policy:
            cluster["scheduling_policy"] = policy
        self.store.save()
        self.store.add_event(809, f"Cluster {name} was added by {USER}", cluster_id=cluster["id"])
        return cluster

    def edit_cluster(self, cluster: dict, *, version: dict | None = None, name: str | None = None,
                     description: str | None = None, policy: str | None = None) -> None:
        """Edit Cluster: compatibility version, name, description, scheduling policy."""
        if version:
            self.check_cluster_version(version, "edit")
            self.check_version_change(cluster, version)
        if name and name != cluster["name"] and self.store.cluster_by_name(name):
            raise _refused("Cannot edit Cluster. Cluster name is already in use.")
        self._check_policy(policy)
        if version:
            cluster["version"] = version
        if name:
            cluster["name"] = name
        if description is not None:
            cluster["description"] = description
        if policy:
            cluster["scheduling_policy"] = policy
        self.store.save()
        self.store.add_event(811, f"Host cluster {cluster['name']} was updated by {USER}",
                             cluster_id=cluster["id"])

    @staticmethod
    def _check_policy(policy: str | None) -> None:
        if policy is not None and policy not in SCHEDULING_POLICIES.values():
            raise Fault(404, f"Entity not found: scheduling policy: {policy}")

    def remove_host(self, host: dict) -> None:
        if self.host_status(host) not in ("maintenance", "non_responsive", "install_failed"):
            raise Fault(409, "[Cannot remove Host. Host is operational.\n"
                             "-Please switch Host to Maintenance mode first.]")
        if self.guests_on(host):
            raise _refused("Cannot remove Host. One or more VMs are still running on this Host.")
        del self.store.data["hosts"][host["id"]]
        self.store.data["removed_hosts"].append(host["name"])
        self.store.save()
        self.store.add_event(44, f"Host {host['name']} was removed by {USER}.",
                             cluster_id=host["cluster"])

    def add_host(self, name: str, address: str, cluster: dict, hosted_engine: bool) -> dict:
        """Add a host and run host-deploy on it (status installing, then up)."""
        if self.store.host_by_name(name) or self.store.host_by_address(address):
            raise _refused("Cannot add Host. The Host name is already in use, please choose a "
                           "unique name and try again.")
        try:
            lab_name = self.backend.host_by_name(address).name
        except LabError:
            raise _refused(f"Cannot add Host. Host address {address} cannot be reached.") from None
        host = self.store.add_host(name, address, cluster["id"])
        if name in self.store.data["removed_hosts"]:
            self.store.data["removed_hosts"].remove(name)
        self.store.add_event(42, f"Host {name} was added by {USER}.", host=host)
        self._set_status(host, "installing")
        self._start(host, self._deploy(host, lab_name, hosted_engine))
        return host

    async def _deploy(self, host: dict, lab_name: str, hosted_engine: bool) -> None:
        try:
            await self.backend.deploy_host(lab_name, hosted_engine)
        except LabError as exc:
            self._set_status(host, "install_failed")
            self.store.add_event(505, f"Host {host['name']} installation failed. {exc}.",
                                 severity="error", host=host)
            return
        self._set_status(host, "up")
        self.store.add_event(13, f"Status of host {host['name']} was set to Up.", host=host)

    def cluster_upgrade(self, cluster: dict, action: str, percent=None,
                        correlation_id=None) -> None:
        if action == "start":
            if cluster["upgrade_in_progress"]:
                raise _refused("Cannot upgrade Cluster. The cluster is already upgrading.")
            cluster.update(upgrade_in_progress=True, upgrade_percent_complete=0,
                           upgrade_correlation_id=correlation_id)
        elif action == "update_progress":
            if not cluster["upgrade_in_progress"]:
                raise _refused("Cannot update Cluster upgrade progress. "
                               "The cluster is not upgrading.")
            cluster["upgrade_percent_complete"] = int(percent or 0)
        elif action == "finish":
            cluster.update(upgrade_in_progress=False, upgrade_percent_complete=100,
                           upgrade_correlation_id=None)
        else:
            raise Fault(400, f"Invalid value '{action}' for upgrade_action",
                        reason="Invalid value")
        self.store.save()

    # ---- background operations -----------------------------------------

    def _set_status(self, host: dict, status: str) -> None:
        host["status"] = status
        self.store.save()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _start(self, host: dict, coro) -> None:
        task = self._spawn(coro)
        self.busy[host["id"]] = task
        task.add_done_callback(lambda t, hid=host["id"]: self.busy.get(hid) is t
                               and self.busy.pop(hid))

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine operation crashed", exc_info=task.exception())

    async def _sleep(self, seconds: float) -> None:
        await self.backend.clock.sleep(seconds)

    async def _migrate(self, source: dict, dest: dict, *, user: bool) -> bool:
        """Live-migrate the engine VM; events as the engine's migrate commands."""
        self._migration_started(HOSTED_ENGINE, source, dest, True, user)
        started = self.backend.clock.now()
        try:
            await self.backend.migrate_engine_vm(dest["name"])
        except LabError as exc:  # what vdsm would report back
            if user:
                self.store.add_event(
                    65, f"Migration failed due to an Error: {exc} (VM: HostedEngine, Source: "
                        f"{source['name']}).", severity="error", host=source, vm=True)
            else:
                self.store.add_event(
                    140, f"VM migration failed due to an Error: {exc} while Host is in 'preparing "
                         "for maintenance' state. Consider manual intervention: stopping/migrating "
                         "Vms as Host's state will not turn to maintenance while VMs are still "
                         f"running on it.(VM: HostedEngine, Source Host: {source['name']}).",
                    severity="error", host=source, vm=True)
            return False
        self._migration_done(HOSTED_ENGINE, source, dest, True,
                             round(self.backend.clock.now() - started))
        return True

    def _migration_started(self, name: str, source: dict, dest: dict, vm, user: bool) -> None:
        """VM_MIGRATION_START (62, an admin's) or VM_MIGRATION_START_SYSTEM_INITIATED (67, a
        host's maintenance), texts of AuditLogMessages.properties@ovirt-engine-4.3.10.4 and
        @ovirt-engine-4.5.6 (the same)."""
        if user:
            self.store.add_event(
                62, f"Migration started (VM: {name}, Source: {source['name']}, Destination: "
                    f"{dest['name']}, User: {USER}). ", host=source, vm=vm)
        else:
            self.store.add_event(
                67, f"Migration initiated by system (VM: {name}, Source: {source['name']}, "
                    f"Destination: {dest['name']}, Reason: Host preparing for maintenance).",
                host=source, vm=vm)

    def _migration_done(self, name: str, source: dict, dest: dict, vm, seconds: int) -> None:
        """VM_MIGRATION_DONE (63); the downtime is the lab's."""
        self.store.add_event(
            63, f"Migration completed (VM: {name}, Source: {source['name']}, Destination: "
                f"{dest['name']}, Duration: {seconds} seconds, Total: {seconds} seconds, "
                "Actual downtime: 100ms)", host=source, vm=vm)

    async def _maintenance(self, host: dict, announce: tuple[int, str] | None) -> bool:
        """Move a host to maintenance as MaintenanceVdsCommand does.

        1. On an HE host, ask vdsm to set HA local maintenance; a failure
           aborts only when the engine VM runs here.
        2. Migrate the engine VM away if it runs here.
        3. Once monitoring sees the host empty, status -> maintenance.
        """
        info = self.info(host)
        vm_here = (self.vm_host() or {}).get("id") == host["id"]
        if info and info["configured"]:
            try:
                self.backend.set_local_maintenance(host["name"], True)
            except LabError as exc:  # vdsm refused: see step 1
                log.warning("set local maintenance on %s failed: %s", host["name"], exc)
                if vm_here:
                    return self._maintenance_failed(host)
        if vm_here and self.backend.engine_vm_status() != "down" and self.api_v3_only():
            return await self._maintenance_3x(host, announce)
        if vm_here and self.backend.engine_vm_status() != "down":
            # A failed migration leaves the host in preparing_for_maintenance,
            # as event 140 says; the admin retries or activates it.
            candidates = self.he_candidates(host)
            if not candidates:
                return self._maintenance_failed(host)
            if not await self._migrate(host, candidates[0], user=False):
                return False
        return await self._finish_maintenance(host, announce)

    async def _maintenance_3x(self, host: dict, announce: tuple[int, str] | None) -> bool:
        """A 3.x engine does not migrate the engine VM: MaintenanceVdsCommand.migrateAllVms
        (@ovirt-engine-3.5.6.2, @ovirt-engine-3.6.9.2) skips it ("The Hosted Engine vm is
        migrated by the HA agent", which the LOCAL maintenance just set makes do it:
        LocalMaintenanceMigrateVm of HA 1.x) and only asks the scheduler whether another host
        could run it; if none, the command fails with USER_VDS_MAINTENANCE_MIGRATION_FAILED
        (602) and the host stays PreparingForMaintenance: HA 1.x's LocalMaintenanceMigrateVm
        has no destination, goes EngineStop, whose local-maintenance check sends it to
        LocalMaintenance with the VM still running (agent/states.py @v1.3.5.8). Either way
        monitoring moves the host to Maintenance once the VM has left it."""
        if not self.he_candidates(host):
            if announce is not None:
                self.store.add_event(
                    602, f"Host {host['name']} cannot change into maintenance mode - not all Vms "
                         "have been migrated successfully. Consider manual intervention: "
                         f"stopping/migrating Vms: {HOSTED_ENGINE} (User: {USER}).",
                    severity="warning", host=host)
                announce = None
        self.waiting.add(host["id"])
        try:
            while (self.vm_host() or {}).get("id") == host["id"] \
                    and self.backend.engine_vm_status() != "down":
                if host["status"] != "preparing_for_maintenance":
                    return False
                await self._sleep(MONITOR_DELAY)
        finally:
            self.waiting.discard(host["id"])
        return await self._finish_maintenance(host, announce)

    async def _finish_maintenance(self, host: dict, announce: tuple[int, str] | None) -> bool:
        """The engine VM has left the host (4.x and 3.x alike): the guests go, then Maintenance."""
        if not self._migrate_guests(host):
            return False
        await self._sleep(MONITOR_DELAY)
        self._set_status(host, "maintenance")
        self.store.add_event(15, f"Host {host['name']} was switched to Maintenance Mode.",
                             host=host)
        if announce:
            self.store.add_event(*announce, host=host)
        return True

    def _migrate_guests(self, host: dict) -> bool:
        """Move the guest VMs to other Up hosts of the cluster (at once: the lab's guests
        have no memory to copy). A pinned VM, or no host to go to, keeps the host in
        preparing_for_maintenance, as a failed migration does (event 140)."""
        for vm in self.guests_on(host):
            destinations = self.guest_destinations(host)
            if vm["affinity"] == "pinned" or not destinations:
                reason = ("VM is pinned to Host" if vm["affinity"] == "pinned"
                          else "there is no host that satisfies current scheduling constraints")
                self.store.add_event(
                    140, f"VM migration failed due to an Error: {reason} while Host is in "
                         "'preparing for maintenance' state. Consider manual intervention: "
                         "stopping/migrating Vms as Host's state will not turn to maintenance "
                         f"while VMs are still running on it.(VM: {vm['name']}, Source Host: "
                         f"{host['name']}).", severity="error", host=host, vm=vm["id"])
                return False
            dest = destinations[0]
            self._migration_started(vm["name"], host, dest, vm["id"], False)
            vm["host"] = dest["id"]
            self.store.save()
            self._migration_done(vm["name"], host, dest, vm["id"], 0)
        return True

    def _maintenance_failed(self, host: dict) -> bool:
        self.store.add_event(17, f"Failed to switch Host {host['name']} to Maintenance mode.",
                             severity="error", host=host)
        self._set_status(host, "up")
        return False

    async def _activate(self, host: dict) -> None:
        info = self.info(host)
        if info and info["configured"]:
            # Activate clears only LOCAL maintenance (facts §6).
            self.backend.set_local_maintenance(host["name"], False)
        await self._sleep(ACTIVATE_DELAY)
        self._set_status(host, "up")
        self.store.add_event(13, f"Status of host {host['name']} was set to Up.", host=host)

    async def _upgrade_check(self, host: dict) -> None:
        await self._sleep(UPGRADE_CHECK_DELAY)
        info = self.info(host)
        if info is None or not info["reachable"]:
            self.store.add_event(
                839, f"Failed to check for available updates on host {host['name']} with message "
                     "'Failed to run check-update of host.'", severity="error", host=host)
            return
        host["update_available"] = bool(info["packages_outdated"])
        message = ("found updates for packages ovirt-hosted-engine-ha, vdsm"
                   if host["update_available"] else "no updates found.")
        self.store.save()
        if host["update_available"]:
            self.store.add_event(843, f"Host {host['name']} has available updates: {message}.",
                                 host=host)
        self.store.add_event(
            885, f"Check for available updates on host {host['name']} was completed successfully "
                 f"with message '{message}'.", host=host)

    async def _upgrade(self, host: dict, original: str, reboot: bool, timeout_min: int) -> None:
        """Upgrade as UpgradeHostCommand + HostUpgradeCallback.

        1. Maintenance first if the host is not there yet (events 15, 600).
        2. installing: the ansible playbook updates packages on the host.
        3. Without reboot: event 842. With reboot: event 888 and status
           reboot once the host drops off (or the playbook ends), then wait
           for it to answer again, initializing.
        4. Back to the original status: an Up host is activated again.
        """
        if original != "maintenance":
            self._set_status(host, "preparing_for_maintenance")
            if not await self._maintenance(host, announce=None):
                self._upgrade_failed(host, status=None)
                return
        self._set_status(host, "installing")
        await self._sleep(UPGRADE_SETUP_DELAY)
        # The lab's upgrade_host covers packages and the reboot in one call;
        # watch reachability meanwhile so status reboot spans the real reboot.
        playbook = asyncio.ensure_future(self.backend.upgrade_host(host["name"], reboot))
        try:
            while not playbook.done():
                info = self.info(host)
                if reboot and host["status"] == "installing" and not (info and info["reachable"]):
                    self._rebooting(host)
                await asyncio.wait({playbook}, timeout=POLL_DELAY / self.backend.clock.speed)
        finally:
            playbook.cancel()  # only has an effect when the engine itself is stopping
        try:
            playbook.result()
        except LabError as exc:  # the playbook failed on the host
            log.warning("upgrade of %s failed: %s", host["name"], exc)
            self._upgrade_failed(host)
            return
        host["update_available"] = False
        if not reboot:
            self.store.add_event(842, f"Host {host['name']} upgrade was completed successfully.",
                                 host=host)
        else:
            if host["status"] == "installing":
                self._rebooting(host)
                await self._sleep(REBOOT_DOWN_DELAY)
            if not await self._wait_reachable(host, timeout_min * 60):
                self._upgrade_failed(host)
                return
            self._set_status(host, "initializing")
            await self._sleep(INITIALIZING_DELAY)
        if original == "maintenance":
            self._set_status(host, "maintenance")
        else:
            await self._activate(host)

    def _rebooting(self, host: dict) -> None:
        self.store.add_event(
            888, f"Host {host['name']} upgrade was completed successfully and will be rebooted.",
            host=host)
        self._set_status(host, "reboot")

    def _upgrade_failed(self, host: dict, status: str | None = "install_failed") -> None:
        if status:
            self._set_status(host, status)
        self.store.add_event(841, f"Failed to upgrade Host {host['name']} (User: {USER}).",
                             severity="error", host=host)

    async def _wait_reachable(self, host: dict, timeout_s: float) -> bool:
        waited = 0.0
        while waited < timeout_s:
            info = self.info(host)
            if info and info["reachable"]:
                return True
            await self._sleep(POLL_DELAY)
            waited += POLL_DELAY
        return False

    def start_monitoring(self) -> None:
        self._spawn(self._monitor())

    async def _monitor(self) -> None:
        """Host monitoring: log event 12 when a host stops answering.

        A host already unreachable when the engine starts is logged too, as a
        starting engine does. Nothing is logged while the engine itself is
        down: a stopped engine monitors nothing.
        """
        while True:
            if self.backend.engine_healthy():
                for host in self.store.hosts():
                    status = self.host_status(host)
                    previous = self.last_status.get(host["id"])
                    if status == "non_responsive" and previous != "non_responsive":
                        self.store.add_event(12, f"Host {host['name']} is non responsive.",
                                             severity="error", host=host)
                    self.last_status[host["id"]] = status
            await self._sleep(MONITOR_DELAY)

    def resume(self) -> None:
        """Settle operations a previous lab process left half done.

        Maintenance is restarted; short transitional statuses end as the
        engine would end them; an interrupted upgrade counts as failed.
        """
        for host in self.store.hosts():
            if host["status"] == "preparing_for_maintenance":
                self._start(host, self._maintenance(host, announce=None))
            elif host["status"] in ("unassigned", "initializing", "reboot"):
                self._set_status(host, "up")
            elif host["status"] == "installing":
                self._set_status(host, "install_failed")

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
