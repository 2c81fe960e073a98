"""The HostedEngine VM as each host's vdsm sees it, and the disk lease that guards it.

A host's `vm` record is None when vdsm does not know the VM. Timings are simulated seconds
chosen to reproduce the howto's FAQ: pings ~1 min after start, engine healthy ~3 min after.
"""

from . import logs

LOCK_DELAY = 2            # WaitForLaunch until sanlock grants (or refuses) the disk lease
PING_AFTER = 60           # Powering up -> Up
HEALTHY_AFTER = 180       # engine health page answers "DB Up!" this long after start
SHUTDOWN_SECS = 30        # guest shutdown (the real timeout is 120 s)
MIGRATE_SECS = 15
FORGET_AFTER = 30         # vdsm drops a Down VM record after this long
LEASE_EXPIRY = 140           # host_dead_seconds: a dead host's lease frees (sanlock src/timeouts.h)

LOCKED = "Storage of VM is locked. Is another host already starting the VM?"
NOT_HERE = "vm not running on this host"

VM_ID = "3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70"
RUNNING = ("WaitForLaunch", "Powering up", "Up", "Powering down", "Migration Source", "Paused")


def new_record(status, now, started=None, reason=None):
    return {"status": status, "t": now, "started": now if started is None else started,
            "reason": reason}


def lease_free(cluster, host, now):
    holder = cluster.hosts.get(cluster.lease) if cluster.lease else None
    if holder is None or holder is host:
        return True
    if holder.power != "on" and holder.died_at is not None:
        return now >= holder.died_at + LEASE_EXPIRY
    return False


def due_events(cluster, now):
    """(time, host, action) for every automatic transition that is due."""
    events = []
    for host in cluster.hosts.values():
        rec = host.vm
        if host.power != "on" or rec is None:
            continue
        status, t = rec["status"], rec["t"]
        if status == "WaitForLaunch":
            events.append((t + LOCK_DELAY, host, "lock"))
        elif status == "Powering up":
            events.append((rec["started"] + PING_AFTER, host, "up"))
        elif status == "Powering down":
            events.append((t + SHUTDOWN_SECS, host, "forget"))
        elif status == "Migration Source":
            events.append((t + MIGRATE_SECS, host, "migrated"))
        elif status == "Down":
            events.append((t + FORGET_AFTER, host, "forget"))
    return sorted((e for e in events if e[0] <= now), key=lambda e: (e[0], e[1].index))


def advance(cluster, now):
    """Apply due transitions in time order, so the lock race has one winner."""
    for _ in range(100):
        events = due_events(cluster, now)
        if not events:
            return
        when, host, action = events[0]
        apply_event(cluster, host, action, when)


def apply_event(cluster, host, action, when):
    rec = host.vm
    if action == "lock":
        if lease_free(cluster, host, when):
            cluster.lease = host.name
            cluster.lease_version += 1
            host.died_here = False
            # launchPaused (hosted-engine --vm-start-paused): qemu holds the lease, paused
            host.vm = new_record("Paused" if rec.get("paused") else "Powering up", when,
                                 started=rec["started"])
            # ovirt-engine is enabled at boot, once engine-setup has configured it
            cluster.engine_vm.engine_running = cluster.engine_vm.engine_configured
        else:
            host.vm = new_record("Down", when, reason="locked")
            log_lock_failure(cluster, host)
    elif action == "up":
        host.vm = new_record("Up", when, started=rec["started"])
    elif action == "migrated":
        dest = cluster.hosts[rec["dest"]]
        dest.vm = new_record("Up", when, started=rec["started"])
        dest.died_here = False
        cluster.lease = dest.name
        cluster.lease_version += 1
        host.vm = new_record("Down", when, reason="migrated")
    elif action == "forget":
        if rec["status"] == "Powering down":
            release(cluster, host)
        host.vm = None
    cluster.changed()


def log_lock_failure(cluster, host):
    """The vdsm.log error of the howto's FAQ ("Failed to acquire lock")."""
    logs.vdsm(host, cluster.clock.wall(), "vm::2288::virt.vm::(_startUnderlyingVm)",
              f"vmId=`{VM_ID}`::The vm start process failed\nTraceback (most recent call "
              "last):\n  File \"/usr/lib/python2.7/site-packages/vdsm/virt/vm.py\", line 2228, "
              "in _startUnderlyingVm\n    self._run()\nlibvirtError: Failed to acquire lock: "
              "error -243", level="ERROR", thread="vm/3f8a2a0e")


def release(cluster, host):
    if cluster.lease == host.name:
        cluster.lease = None


def running_status(host):
    """vdsm status if the VM's qemu process runs on this host, else None."""
    if host.power == "on" and host.vm and host.vm["status"] in RUNNING:
        return host.vm["status"]
    return None


def healthy(cluster, host, now):
    rec = host.vm
    return (running_status(host) in ("Up", "Migration Source")
            and now >= rec["started"] + HEALTHY_AFTER
            and cluster.engine_vm.engine_running and not cluster.engine_vm.setup_running)


def engine_status(cluster, host, now, legacy=False):
    """The `engine-status` dict this host's broker reports (facts §4). A 1.x broker
    (Python 2) writes its keys in dict order with `detail` lower case, and reports a VM
    whose lease another host holds as `already_locked` (ovirt-releases.md)."""
    status = _engine_status(cluster, host, now)
    if not legacy:
        return status
    if status.get("reason") == LOCKED:
        status["vm"] = "already_locked"
    order = ("reason", "health", "vm", "detail")
    return {key: (status[key].lower() if key == "detail" else status[key])
            for key in order if key in status}


def _engine_status(cluster, host, now):
    if not cluster.vdsm_up(host, now):
        return {"vm": "unknown", "health": "unknown", "detail": "unknown",
                "reason": "failed to getVmStats"}
    rec = host.vm
    if rec is None:
        vm = "down_unexpected" if host.died_here else "down"
        return {"vm": vm, "health": "bad", "detail": "unknown", "reason": NOT_HERE}
    status = rec["status"]
    if status == "Up":
        if healthy(cluster, host, now):
            return {"vm": "up", "health": "good", "detail": "Up"}
        return {"vm": "up", "health": "bad", "detail": "Up", "reason": "failed liveliness check"}
    if status == "Migration Source":
        return {"vm": "up", "health": "good", "detail": status}
    if status == "Migration Destination":
        return {"vm": "down", "health": "bad", "detail": status, "reason": "bad vm status"}
    if status in RUNNING:
        return {"vm": "up", "health": "bad", "detail": status, "reason": "bad vm status"}
    reason = rec["reason"]
    if reason == "migrated":
        return {"vm": "down", "health": "bad", "detail": "Down",
                "reason": "VM migrated away successfully"}
    if reason == "locked":
        return {"vm": "down", "health": "bad", "detail": "Down", "reason": LOCKED}
    return {"vm": "down_unexpected", "health": "bad", "detail": "Down", "reason": "bad vm status"}


def vm_start(cluster, host, now, paused=False):
    """vdsm create (launchPaused=true with `paused`). Returns (ok, message)."""
    rec = host.vm
    if rec is not None and rec["status"] not in ("Down", "Paused"):
        return False, f"VM exists and its status is {rec['status']}"
    host.vm = new_record("WaitForLaunch", now)
    if paused:
        host.vm["paused"] = True
    cluster.changed()
    return True, "VM in WaitForLaunch"


def vm_shutdown(cluster, host, now):
    if running_status(host) is None:
        return False, "Virtual machine does not exist"
    if host.vm["status"] != "Powering down":
        host.vm = new_record("Powering down", now, started=host.vm["started"])
        cluster.changed()
    return True, ""


def vm_poweroff(cluster, host, now):
    if host.vm is None:
        return False, "Virtual machine does not exist"
    if running_status(host):
        release(cluster, host)
    host.vm = None
    cluster.changed()
    return True, ""


def vm_crash(cluster, host, now):
    """kill -9 of qemu: sanlock frees the lease at once, vdsm keeps a Down record."""
    release(cluster, host)
    host.vm = new_record("Down", now, reason="crash")
    host.died_here = True
    cluster.changed()


def start_migration(cluster, source, dest, now):
    source.vm = new_record("Migration Source", now, started=source.vm["started"])
    source.vm["dest"] = dest.name
    dest.vm = new_record("Migration Destination", now)
    cluster.changed()
