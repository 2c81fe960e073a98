"""The three hosted-engine maintenance modes, each its own runbook (and button).

``hosted-engine --set-maintenance --mode=...`` writes all three flags on the
host where it runs (facts §6): ``local`` also clears global maintenance,
``global`` clears local maintenance on that host, ``none`` clears both there.
Each runbook sets the mode, then waits until vm-status shows it.

They are the emergency lane (``emergency=True``): a dead or stale host does not
block them (no ``ha-fresh``; the host the command runs on is only warned about),
local maintenance needs only another live host that can take the engine VM, and
they run whatever procedure is active (pausing it: upgrades.services.runs).
"""
from .base import Check, Param, Runbook, Ssh, Wait

SET_MODE = "hosted-engine --set-maintenance --mode="

MAINTENANCE_GLOBAL = Runbook(
    slug="maintenance-global",
    name="Global maintenance",
    description="Stop the HA agents from managing the engine VM (to upgrade or restart it): "
                "every agent goes to GlobalMaintenance and the VM stays where it is.",
    default_host="live-out-of-local-maintenance",
    params=(Param("host", "Run on", kind="host", required=False,
                  help="The host that runs the command (default: a live host not in local maintenance). "
                       "Global maintenance clears local maintenance on that host."),),
    preflight=(Check("command-host-live", {"host": "{host}"}), Check("global-maintenance-off")),
    needs_fresh_ha=False,
    emergency=True,
    steps=(
        Ssh("set-mode", "Set global maintenance (on {host})", SET_MODE + "global", on="{host}", changes=True),
        Wait("wait-mode", "Wait until vm-status shows global maintenance",
             Check("global-maintenance", {"on": True}), timeout=300),
    ),
)

MAINTENANCE_LOCAL = Runbook(
    slug="maintenance-local",
    name="Local maintenance",
    description="Take one host out of the engine VM's candidates (to maintain it): its agent goes to "
                "LocalMaintenance with score 0. hosted-engine refuses where the engine VM runs.",
    scope="host",
    params=(Param("host", "Host", kind="host"),),
    preflight=(Check("command-host-live", {"host": "{host}"}),
               Check("not-last-engine-host", {"host": "{host}"}),
               Check("engine-vm-elsewhere", {"host": "{host}"}),
               Check("local-maintenance-off", {"host": "{host}"})),
    needs_fresh_ha=False,
    emergency=True,
    steps=(
        Ssh("set-mode", "Set local maintenance on {host}", SET_MODE + "local", on="{host}", changes=True,
            guards=(Check("not-last-engine-host", {"host": "{host}"}),
                    Check("engine-vm-elsewhere", {"host": "{host}"}))),
        Wait("wait-mode", "Wait until {host} shows local maintenance",
             Check("local-maintenance", {"host": "{host}", "on": True}), timeout=300),
    ),
)

MAINTENANCE_NONE = Runbook(
    slug="maintenance-none",
    name="No maintenance",
    description="Resume HA: clears global maintenance, and local maintenance on the host where it runs.",
    default_host="live-out-of-local-maintenance",
    params=(Param("host", "Host", kind="host", required=False,
                  help="Leave local maintenance on this host (and global maintenance). Without a host: "
                       "leave global maintenance, from a host not in local maintenance."),),
    preflight=(Check("command-host-live", {"host": "{host}"}), Check("something-in-maintenance", {"host": "{host}"})),
    needs_fresh_ha=False,
    emergency=True,
    steps=(
        Ssh("set-mode", "Set maintenance none (on {host})", SET_MODE + "none", on="{host}", changes=True),
        Wait("wait-mode", "Wait until vm-status shows no maintenance",
             Check("no-maintenance", {"host": "{host}"}), timeout=300),
    ),
)
