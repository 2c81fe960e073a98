"""The fake engine's database: one JSON file in the state dir.

The real engine keeps clusters, hosts, audit-log events and (in memory) SSO
tokens; the lab keeps them in `engine.json` so a restarted lab still knows
which cluster a host is in, whether it is in maintenance, and which event ids
a client already saw.
"""
import datetime
import json
import secrets
import uuid
from pathlib import Path

from .. import catalog
from ..private import write_private

STATE_FILE = "engine.json"
MAX_EVENTS = 2000  # the real engine prunes its audit log too (AuditLogAgingThreshold)
DEFAULT_DC_ID = "a1b2c3d4-0000-4000-8000-000000000001"


def now_iso() -> str:
    """Engine timestamp format, e.g. 2024-03-05T10:15:42.000+00:00."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+00:00"


def parse_version(text: str) -> dict:
    """A release name of the lab (3.5 ... 4.5, 4.x) stands for the engine build it installs."""
    if text in catalog.RELEASES or text in catalog.ALIASES:
        text = catalog.ENGINE_PACKAGES[catalog.canonical(text)]["ovirt-engine"].split("-")[0]
    parts = [int(p) for p in text.split(".")] + [0, 0, 0]
    return {"major": parts[0], "minor": parts[1], "build": parts[2], "revision": parts[3]}


def max_cluster_level(engine_version: dict) -> tuple[int, int]:
    """Highest cluster compatibility level the engine offers.

    Engines 4.4/4.5 offer levels beyond their own version number; older ones
    offer exactly their own major.minor.
    """
    key = (engine_version["major"], engine_version["minor"])
    return {(4, 4): (4, 6), (4, 5): (4, 7)}.get(key, key)


class EngineStore:
    def __init__(self, state_dir: Path):
        self.path = state_dir / STATE_FILE
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
        else:
            self.data = {
                "password": secrets.token_urlsafe(12),
                "vm_id": str(uuid.uuid4()),
                "data_centers": {},
                "clusters": {},
                "hosts": {},
                "removed_hosts": [],
                "events": [],
                "next_event_id": 1000,
                "tokens": {},
            }
        self.data.setdefault("guest_vms", {})  # engine.json of labs from before guest VMs

    def save(self) -> None:
        # Write-then-rename so a lab killed mid-write never leaves half a file.
        # It holds the admin password: 0600 (lab/private.py).
        write_private(self.path, json.dumps(self.data, indent=1, sort_keys=True))

    # Data centers and clusters

    def ensure_default(self, engine_version: dict) -> None:
        """Create the Default data center and cluster of a fresh setup."""
        major, minor = max_cluster_level(engine_version)
        if not self.data["data_centers"]:
            self.data["data_centers"][DEFAULT_DC_ID] = {
                "id": DEFAULT_DC_ID, "name": "Default", "version": {"major": major, "minor": minor},
            }
        if not self.data["clusters"]:
            self.add_cluster("Default", {"major": major, "minor": minor}, DEFAULT_DC_ID)
        self.save()

    def data_center(self, dc_id: str) -> dict | None:
        return self.data["data_centers"].get(dc_id)

    def data_center_by_name(self, name: str) -> dict | None:
        return next((d for d in self.data["data_centers"].values() if d["name"] == name), None)

    def cluster(self, cluster_id: str) -> dict | None:
        return self.data["clusters"].get(cluster_id)

    def cluster_by_name(self, name: str) -> dict | None:
        return next((c for c in self.data["clusters"].values() if c["name"] == name), None)

    def add_cluster(self, name: str, version: dict, dc_id: str, description: str = "") -> dict:
        cluster = {
            "id": str(uuid.uuid4()), "name": name, "description": description,
            "version": version, "data_center": dc_id,
            "upgrade_in_progress": False, "upgrade_percent_complete": 0,
            "upgrade_correlation_id": None, "scheduling_policy": "none",
        }
        self.data["clusters"][cluster["id"]] = cluster
        self.save()
        return cluster

    # Hosts

    def host(self, host_id: str) -> dict | None:
        return self.data["hosts"].get(host_id)

    def host_by_name(self, name: str) -> dict | None:
        return next((h for h in self.data["hosts"].values() if h["name"] == name), None)

    def host_by_address(self, address: str) -> dict | None:
        return next((h for h in self.data["hosts"].values() if h["address"] == address), None)

    def hosts(self) -> list[dict]:
        return sorted(self.data["hosts"].values(), key=lambda h: h["name"])

    def add_host(self, name: str, address: str, cluster_id: str) -> dict:
        host = {
            "id": str(uuid.uuid4()), "name": name, "address": address,
            "cluster": cluster_id, "status": "up", "update_available": False,
        }
        self.data["hosts"][host["id"]] = host
        self.save()
        return host

    # Guest VMs (the engine VM itself lives in the HA model; only its id is kept here)

    def guest_vm(self, vm_id: str) -> dict | None:
        return self.data["guest_vms"].get(vm_id)

    def guest_vm_by_name(self, name: str) -> dict | None:
        return next((v for v in self.data["guest_vms"].values() if v["name"] == name), None)

    def guest_vms(self) -> list[dict]:
        return sorted(self.data["guest_vms"].values(), key=lambda v: v["name"])

    def add_guest_vm(self, name: str, host: dict, affinity: str) -> dict:
        vm = {"id": str(uuid.uuid4()), "name": name, "cluster": host["cluster"],
              "host": host["id"], "status": "up", "affinity": affinity}
        self.data["guest_vms"][vm["id"]] = vm
        self.save()
        return vm

    # Events

    def add_event(self, code: int, description: str, *, severity: str = "normal",
                  host: dict | None = None, cluster_id: str | None = None,
                  vm: bool | str = False, correlation_id: str | None = None) -> dict:
        """`vm`: True for the engine VM, or a guest VM's id."""
        event_id = self.data["next_event_id"]
        self.data["next_event_id"] += 1
        event = {
            "id": event_id, "code": code, "description": description,
            "severity": severity, "time": now_iso(),
            "host": host["id"] if host else None,
            "cluster": cluster_id or (host["cluster"] if host else None),
            "vm": vm if isinstance(vm, str) else self.data["vm_id"] if vm else None,
            "correlation_id": correlation_id,
        }
        self.data["events"].append(event)
        del self.data["events"][:-MAX_EVENTS]
        self.save()
        return event

    # SSO tokens

    def add_token(self, lifetime_s: int) -> tuple[str, int]:
        token = secrets.token_urlsafe(48)
        expires_ms = int((datetime.datetime.now().timestamp() + lifetime_s) * 1000)
        self.data["tokens"][token] = expires_ms
        self.save()
        return token, expires_ms

    def token_valid(self, token: str) -> bool:
        expires_ms = self.data["tokens"].get(token)
        return expires_ms is not None and expires_ms > datetime.datetime.now().timestamp() * 1000

    def drop_token(self, token: str) -> None:
        if self.data["tokens"].pop(token, None) is not None:
            self.save()

    def drop_all_tokens(self) -> None:
        self.data["tokens"].clear()
        self.save()
