"""Hosted-engine upgrade: the howto's "Upgrade Hosted Engine" (11 steps), rolling over
every HE host, the engine VM's host last.

Global maintenance; ``engine-backup`` in the engine VM (the file is kept, its path
decided now and shown in the plan); the engine upgraded in its VM (the target release's
repo, ``yum update`` of the setup packages, ``engine-setup --accept-defaults``); on 4.x
the cluster's scheduling policy switched to ``cluster_maintenance`` and restored at the
end even when the run fails or is cancelled (as ovirt-ansible's cluster_upgrade role
does); then per host: host to maintenance from the engine (so HA 1.3 converts a 3.5
host, ovirt-releases.md), ``yum update``, ``service vdsmd restart``, broker and agent
restarted, the host activated, global maintenance left until the engine VM runs on an
upgraded host (3.5 -> 3.6: the 1.3 agent scores 3400 against 2400, so the agents move
it; equal scores: migrated through the engine), global maintenance again. Finally the
cluster's compatibility version raised, maintenance none.

3.x engines speak API v3 only: their engine steps are manual web-admin steps, each
followed by a wait that sees the effect on the host (the local-maintenance flag vdsm
writes to ha.conf: in global maintenance vm-status does not show it). On 4.x the per-host part keeps the
howto's steps rather than the engine's host upgrade (``upgradecheck``/``upgrade``): that
one reboots or restarts the host with the engine VM's score dropping to 0, and does not
leave global maintenance in between, so the engine VM would never be moved to an
upgraded host as the howto wants.
"""
import datetime

from .base import Check, Engine, Fetch, Manual, Param, Runbook, Ssh, Wait
from .lockspace import service  # el6 hosts (oVirt 3.5) have no systemctl

RELEASE_RPM = "http://resources.ovirt.org/pub/yum-repo/ovirt-release{}{}.rpm"
BACKUP_DIR = "/var/lib/ovirt-engine-backup"
SET_MODE = "hosted-engine --set-maintenance --mode="
# vdsm writes the engine's maintenance into the HA configuration (setHaMaintenanceMode);
# in global maintenance vm-status does not show it, so the host's file is what is checked.
HA_CONF_WAIT = ("for i in $(seq 1 120); do grep -qx 'local_maintenance={}' "
                "/var/lib/ovirt-hosted-engine-ha/ha.conf && exit 0; sleep 5; done; "
                "echo 'ha.conf still says:'; cat /var/lib/ovirt-hosted-engine-ha/ha.conf; exit 1")
POLICIES = ("none", "evenly_distributed", "power_saving", "vm_evenly_distributed")
# The highest cluster level each release's engine offers (4.4/4.5 go beyond their number).
CLUSTER_LEVEL = {(3, 5): "3.5", (3, 6): "3.6", (4, 3): "4.3", (4, 4): "4.6", (4, 5): "4.7"}
# Upgrades this runbook does: a minor update within a release, or the howto's 3.5 -> 3.6.
# 3.6 -> 4.x and 4.3 -> 4.4+ need other hosts' OS (el7, el8): host-os-upgrade does that.
RELEASE_STEPS = {(3, 5): (3, 6)}


def _release(text):
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def steps(ctx):
    from ..plan import PlanError, host_order  # upgrades.plan imports this package

    current = ctx.release
    if current is None:
        raise PlanError("The cluster's oVirt release is not known yet (the HA poller detects it): "
                        "cannot tell which way to upgrade.")
    target = _release(ctx.params.get("target") or "%d.%d" % current)
    if target != current and RELEASE_STEPS.get(current) != target:
        raise PlanError(f"This runbook upgrades within a release or from 3.5 to 3.6, not from "
                        f"{current[0]}.{current[1]} to {target[0]}.{target[1]}.")
    new_release = target != current
    api = current[0] >= 4  # ovirtsdk4 needs API v4: 4.x engines only
    cluster = ctx.params.get("engine_cluster") or "Default"
    ctx.params["engine_cluster"] = cluster
    ctx.params["policy_after"] = ctx.params.get("policy_after") or "none"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    ctx.params["backup_file"] = f"{BACKUP_DIR}/he-upgrade-{stamp}.backup"
    ctx.params["backup_log"] = f"{BACKUP_DIR}/he-upgrade-{stamp}.log"
    ctx.params["release_rpm"] = RELEASE_RPM.format(*target)
    ctx.note(f"engine-backup writes {ctx.params['backup_file']} in the engine VM (kept; "
             f"its log: {ctx.params['backup_log']}).")
    if new_release:
        ctx.note(f"oVirt {current[0]}.{current[1]} -> {target[0]}.{target[1]}: the engine VM and "
                 f"every host get the {target[0]}.{target[1]} repo ({ctx.params['release_rpm']}), "
                 f"and the cluster's compatibility version becomes {CLUSTER_LEVEL[target]}.")
    else:
        ctx.note(f"Minor update within oVirt {current[0]}.{current[1]}: the repos stay, the "
                 "compatibility version stays.")
    if api:
        ctx.note("Engine steps go through the engine API (4.x). The scheduling policy is "
                 "cluster_maintenance while the hosts are upgraded, and becomes "
                 f"{ctx.params.get('policy_after') or 'none'} at the end, also when the run "
                 "fails or is cancelled. Per host the howto's steps are used, not the engine's "
                 "host upgrade (see the runbook's description).")
    else:
        ctx.note("A 3.x engine speaks API v3 only: its steps are done by a person in the web "
                 "admin, each followed by a wait that sees the effect on the host. 3.x has no "
                 "cluster_maintenance scheduling policy: the policy is left as it is.")

    skipped = _pending_updates(ctx, new_release)
    ctx.params["skipped_hosts"] = ",".join(skipped)
    ctx.params["updates_scope"] = "release" if new_release else "minor"
    ctx.note(f"The backup is then copied off the engine VM into the portal's backup directory "
             f"and its sha256 compared with the VM's (free space checked on both sides first).")

    plan = [
        Ssh("global", "Global maintenance", SET_MODE + "global", on="any", changes=True),
        Wait("global-wait", "Wait until vm-status shows global maintenance",
             Check("global-maintenance", {"on": True}), timeout=300),
        Fetch("backup-space", "Free space for the engine backup (engine VM and portal)", BACKUP_DIR,
              mode="space", timeout=120),
        Ssh("engine-backup", "Back up the engine (engine-backup in the engine VM)",
            "engine-backup --mode=backup --file={backup_file} --log={backup_log}",
            on="engine-vm", changes=True, timeout=3600),
        Fetch("backup-copy", "Copy the engine backup to the portal (sha256 checked)", "{backup_file}"),
    ]
    if new_release:
        plan.append(Ssh("engine-repo", "Engine VM: add the {target} repo",
                        "yum install -y {release_rpm}", on="engine-vm", changes=True))
    plan += [
        Ssh("engine-packages", "Engine VM: update the setup packages",
            "yum update -y 'ovirt*setup*'", on="engine-vm", changes=True, timeout=3600),
        Ssh("engine-setup", "Engine VM: engine-setup", "engine-setup --accept-defaults",
            on="engine-vm", changes=True, timeout=3600, rerun_safe=True,
            output_check=r"Execution of setup completed successfully"),
        Wait("engine-up", "Wait until vm-status shows the engine VM up",
             Check("engine-vm-running"), timeout=600),
    ]
    if api:
        plan.append(Engine("policy", "Scheduling policy cluster_maintenance",
                           "set_scheduling_policy", {"cluster": "{engine_cluster}",
                                                     "policy": "cluster_maintenance"}))

    # A skipped host is up to date: the engine VM may stay there.
    upgraded = list(skipped)
    for host in host_order("engine-vm-last", {h.name: h for h in ctx.cluster.hosts.all()},
                           ctx.state):
        if host in skipped:
            continue
        upgraded.append(host)
        plan += _host_steps(host, list(upgraded), api=api, new_release=new_release,
                            min_score=_score_after(ctx.state.host(host), current, target),
                            restart_ha=" && ".join(service(ctx, "restart", unit)
                                                   for unit in ("ovirt-ha-broker", "ovirt-ha-agent")))

    level = CLUSTER_LEVEL[target]
    if new_release and api:
        plan.append(Engine("cluster-version", f"Cluster {cluster}: compatibility version {level}",
                           "set_cluster_version", {"name": "{engine_cluster}", "version": level}))
    elif new_release:
        plan.append(Manual("cluster-version", f"Cluster {cluster}: compatibility version {level}",
                           f"In the web admin, Clusters tab: select {cluster}, Edit, set "
                           f"Compatibility Version to {level}, OK. Then confirm this step."))
    if api:
        plan.append(Engine("policy-restore", "Scheduling policy {policy_after} again (also on failure)",
                           "set_scheduling_policy", {"cluster": "{engine_cluster}",
                                                     "policy": "{policy_after}"}, always=True))
    plan += [
        Ssh("none", "Maintenance none", SET_MODE + "none", on="any", changes=True),
        Wait("none-wait", "Wait until vm-status shows no global maintenance",
             Check("global-maintenance", {"on": False}), timeout=300),
    ]
    plan += _versions_steps(ctx, [h for h in upgraded if h not in skipped])
    return tuple(plan)


def _score_after(seen, current, target):
    """The score the host must get back to after its upgrade: the target release's full
    score (HA 1.2, oVirt 3.5: 2400; later 3400), less what the host lacked before the run
    (a penalty the upgrade does not remove, e.g. an unreachable gateway's 1600). On 3.5 ->
    3.6 a 1.3 agent whose configuration was not converted scores 1000 less: it must not
    pass."""
    full = {(3, 5): 2400}.get(target, 3400)
    if seen is None or not seen.live or seen.local_maintenance or not seen.score:
        return full
    lacked = {(3, 5): 2400}.get(current, 3400) - seen.score
    return max(1, full - max(0, lacked))


def _pending_updates(ctx, new_release):
    """Say in the plan what is pending where (as the HA poller last read it); the hosts
    to skip: those with nothing to update, when the parameter says so."""
    from .. import packages

    cluster = ctx.cluster
    if cluster.packages_read_at is None:
        ctx.note("Pending updates: not read yet (the HA poller reads them with yum check-update); "
                 "no host is skipped.")
        return []
    ctx.note(f"Pending updates ({packages.read_when(cluster)}; installed -> available):")
    for label, _, text in packages.summary(cluster):
        ctx.note(f"{label}: {text}")
    if new_release:
        ctx.note("Those come from the repos configured now; the new release's repo is added by the "
                 "run, so no host is skipped.")
        return []
    if (ctx.params.get("up_to_date_hosts") or "skip") != "skip":
        ctx.note("Hosts with nothing to update are upgraded anyway (parameter).")
        return []
    skipped = [h.name for h in ctx.cluster.hosts.all() if packages.pending(cluster, h.name) == []]
    if skipped:
        ctx.note(f"Skipped, nothing to update: {', '.join(skipped)}; their steps are left out of the plan.")
    return skipped


def _versions_steps(ctx, hosts):
    """Read-only ``rpm -q`` at the end, also when the run fails: the versions after, to
    compare with those recorded when the run started (the run page shows both)."""
    from .. import packages

    out = []
    for name, kind in [(h, "host") for h in hosts] + [(packages.ENGINE_VM, packages.ENGINE_VM)]:
        data = (ctx.cluster.packages or {}).get("machines", {}).get(name) or {}
        names = sorted(set(data.get("installed") or packages.KEY_PACKAGES[kind])
                       | {u["name"] for u in data.get("updates", [])})
        field = "versions_" + name.replace(".", "_").replace("-", "_")
        ctx.params[field] = names
        where = "engine-vm" if kind == packages.ENGINE_VM else name
        title = "Engine VM" if kind == packages.ENGINE_VM else name
        # rpm -q exits with the number of packages not installed.
        out.append(Ssh(f"versions.{name}", f"{title}: installed versions now (also on failure)",
                       "rpm -q {%s}" % field, on=where, expect=tuple(range(len(names) + 1)),
                       always=True))
    return out


def _host_steps(host, upgraded, *, api, new_release, min_score, restart_ha):
    """The howto's steps 3-8 on one host; ``upgraded``: the hosts done so far, this one too."""
    key = f"hosts.{host}."
    out = []
    if api:
        out += [Engine(key + "policy", f"{host}: keep the scheduling policy at cluster_maintenance",
                       "set_scheduling_policy", {"cluster": "{engine_cluster}",
                                                 "policy": "cluster_maintenance"}),
                Engine(key + "maintenance", f"{host} to maintenance (engine)", "deactivate_host",
                       {"host": host}, timeout=1800)]
    else:
        out.append(Manual(key + "maintenance", f"{host} to maintenance (web admin)",
                          f"In the web admin, Hosts tab: select {host}, click Maintenance and "
                          "confirm. Then confirm this step."))
    out.append(Ssh(key + "maintenance-wait", f"Wait until {host}'s HA configuration has local "
                   "maintenance", HA_CONF_WAIT.format(True), on=host, timeout=900))
    if new_release:
        out.append(Ssh(key + "repo", f"{host}: add the {{target}} repo",
                       "yum install -y {release_rpm}", on=host, changes=True))
    out += [
        Ssh(key + "update", f"{host}: yum update", "yum update -y", on=host, changes=True,
            timeout=3600),
        Ssh(key + "vdsmd", f"{host}: restart vdsmd", "service vdsmd restart", on=host,
            changes=True),
        Ssh(key + "ha", f"{host}: restart the HA broker and agent",
            restart_ha, on=host,
            changes=True),
    ]
    if api:
        out.append(Engine(key + "activate", f"Activate {host} (engine)", "activate_host",
                          {"host": host}, timeout=900))
    else:
        out.append(Manual(key + "activate", f"Activate {host} (web admin)",
                          f"In the web admin, Hosts tab: select {host}, click Activate. Then "
                          "confirm this step."))
    names = ",".join(upgraded)
    out += [
        Ssh(key + "activate-wait", f"Wait until {host}'s HA configuration is out of local "
            "maintenance", HA_CONF_WAIT.format(False), on=host, timeout=900),
        Ssh(key + "leave-global", "Leave global maintenance", SET_MODE + "none", on=host,
            changes=True),
        Wait(key + "leave-global-wait", "Wait until vm-status shows global maintenance off",
             Check("global-maintenance", {"on": False}), timeout=300),
        # Out of global maintenance the agent starts over; the engine VM can go there
        # once it scores again. The gate of the rolling upgrade: only data the restarted
        # agent published after global maintenance was left counts, settled, with the
        # host's full score; else the run fails before the next host is touched.
        Wait(key + "score", f"Wait for {host}'s score",
             Check("host-score", {"host": host, "min_score": min_score, "fresh": True,
                                  "settled": True}), timeout=900),
    ]
    if api:
        out.append(Engine(key + "migrate", "Engine VM to an upgraded host (engine, if needed)",
                          "engine_vm_to_upgraded_host", {"upgraded": names, "host": host},
                          timeout=900))
    out += [
        Wait(key + "vm-moved", "Wait until the engine VM runs on an upgraded host",
             Check("engine-vm-on", {"hosts": names}), timeout=1800),
        Ssh(key + "global", "Global maintenance again", SET_MODE + "global", on=host,
            changes=True),
        Wait(key + "global-wait", "Wait until vm-status shows global maintenance",
             Check("global-maintenance", {"on": True}), timeout=300),
    ]
    return out


HE_UPGRADE = Runbook(
    slug="he-upgrade",
    name="Hosted-engine upgrade",
    description="The howto's rolling upgrade: global maintenance, engine backup and upgrade in "
                "the engine VM, then every host (the engine VM's host last) through engine "
                "maintenance, yum update and restarted HA daemons, the engine VM moved to an "
                "upgraded host; the compatibility version raised, maintenance none.",
    params=(
        Param("target", "Target release", kind="version", required=False,
              help="e.g. 3.6 on a 3.5 cluster; empty: a minor update within the cluster's release."),
        Param("engine_cluster", "Engine cluster", required=False, default="Default",
              pattern=r"[A-Za-z0-9_.-]{1,40}", pattern_help="a cluster name of letters, digits and ._-",
              help="The cluster of the hosted-engine hosts in the engine."),
        Param("up_to_date_hosts", "Hosts with nothing to update", kind="choice", choices=("skip", "include"),
              required=False, default="skip",
              help="skip: their steps are left out of the plan (pending updates as the HA poller last "
                   "read them, checked again when the run starts); include: every host goes through "
                   "maintenance and restarts."),
        Param("policy_after", "Scheduling policy at the end", kind="choice", choices=POLICIES,
              required=False, default="none",
              help="4.x: the cluster's policy once the upgrade ends or fails (it is "
                   "cluster_maintenance meanwhile)."),
    ),
    preflight=(Check("engine-vm-can-move"), Check("vms-can-migrate"),
               Check("updates-pending", {"skipped": "{skipped_hosts}", "scope": "{updates_scope}"})),
    steps=steps,
)
