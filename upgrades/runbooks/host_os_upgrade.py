"""Upgrade the hosts' OS, one host at a time (the howto's "Upgrade hosts to el7").

oVirt 3.5 is the last release that installs el6 hosts and the first with el7 ones, so
el6 -> el7 is done there: per host, evacuate it, remove it from the engine, reinstall it
as el7 (a person), create the ``el7`` cluster once, add the 3.5 repos, install
ovirt-hosted-engine-setup and ``hosted-engine --deploy`` it as an additional host, then
wait until its agent is live. oVirt 4.5 does el8 -> el9 the same way, with the engine
doing the engine-side steps and re-adding the host with hosted-engine deploy.
"""
from .base import Check, Manual, Param, Runbook
from .hosts import (DEFAULTS, PARAMS, clean_own_block_steps, deploy_steps, evacuate_steps, literal, next_free_id,
                    os_check, remove_from_engine_step, repo_steps, uses_cli, with_defaults)

# release -> (OS now, OS after, the engine cluster the reinstalled hosts join by default)
UPGRADES = {(3, 5): ("el6", "el7", "el7"), (4, 5): ("el8", "el9", "Default")}
OS_NAMES = {"el6": "EL 6 (RHEL/CentOS 6)", "el7": "EL 7 (RHEL/CentOS 7)", "el8": "EL 8", "el9": "EL 9"}


def steps(ctx):
    from ..plan import PlanError, host_order  # not at import: upgrades.plan imports the runbook format

    release = ctx.release
    if release not in UPGRADES:
        known = "not known yet (the HA poller detects it)" if release is None else f"oVirt {release[0]}.{release[1]}"
        raise PlanError(f"The cluster's release is {known}. The OS upgrade is done on oVirt 3.5 "
                        "(el6 -> el7: 3.6 installs no el6 hosts) or 4.5 (el8 -> el9).")
    source, target, cluster = UPGRADES[release]
    with_defaults(ctx, {**DEFAULTS, "target_cluster": cluster}, release)
    hosts = {h.name: h for h in ctx.cluster.hosts.all()}
    order = host_order("engine-vm-last", hosts, ctx.state)
    # Hosts that are not hosted-engine hosts (never in vm-status, no HE id) are not upgraded here.
    others = [n for n in order if hosts[n].he_host_id is None and not getattr(ctx.state.host(n), "known", False)]
    if others:
        order = [n for n in order if n not in others]
        ctx.note(f"Not a hosted-engine host, left alone: {', '.join(others)}.")
    used = {h.he_host_id for h in hosts.values() if h.he_host_id}
    ctx.note(f"oVirt {release[0]}.{release[1]}: {source} -> {target}, one host at a time, the engine VM's host "
             f"last ({', '.join(order)}).")
    if uses_cli(release):
        # A host that cannot keep its id (1) leaves its old block in vm-status, stale, under
        # its own name: after it, the portal would read that host as stale. So it goes last.
        renamed = [n for n in order if (hosts[n].he_host_id or 0) < 2]
        if renamed and order[-len(renamed):] != renamed:
            order = [n for n in order if n not in renamed] + renamed
            ctx.note(f"{', '.join(renamed)} last instead: it cannot keep its host id, and its old block stays "
                     "in vm-status under its name, which the interlocks of the hosts after it would read.")
    if uses_cli(release):
        ctx.note("Engine-side steps are done by a person in the web admin (the 3.5 engine has no v4 API); "
                 "each host is deployed again with hosted-engine --deploy as an additional host into "
                 "cluster {target_cluster}, created once.".format(**ctx.params))
    else:
        ctx.note("The engine puts each host into maintenance, removes it and, after the reinstall, adds it "
                 "again with hosted-engine deploy into cluster {target_cluster} (it picks the host id; a "
                 "4.5 cluster takes el8 and el9 hosts alike).".format(**ctx.params))
    plan = []
    for number, name in enumerate(order):
        key, host = f"hosts.{name}.", literal(name)
        plan += evacuate_steps(key, host, release)
        plan += clean_own_block_steps(key, host, release)
        plan.append(remove_from_engine_step(key, host, release))
        plan.append(Manual(f"{key}reinstall", f"Reinstall {host} as {target}",
                           f"Reinstall {host} with {OS_NAMES[target]}: same host name and address, and its "
                           "SSH host key restored from a backup of /etc/ssh/ssh_host_* (the portal refuses a "
                           "changed key until an admin accepts the new one). Confirm when it answers SSH."))
        if number == 0 and uses_cli(release):
            plan.append(Manual("create-cluster", "Create the cluster {target_cluster} in the web admin",
                               "In the web admin: Clusters, New, name {target_cluster}, in the data center "
                               "of the hosted-engine hosts, compatibility version "
                               f"{release[0]}.{release[1]}. Confirm when it is listed. The reinstalled hosts "
                               "are deployed into it."))
        plan.append(os_check(f"{key}check-os", host, (target,)))
        plan += repo_steps(key, host, release)
        if uses_cli(release):
            own = hosts[name].he_host_id
            host_id = own if own and own >= 2 else next_free_id(used)
            used.add(host_id)
            if host_id != own:
                ctx.note(f"{name} gets host id {host_id}: setup refuses id {own or '(unknown)'} for an additional "
                         f"host. Its old block stays in vm-status, stale, under its name (3.5 has no "
                         f"--clean-metadata): once on 3.6, clean it (--clean-metadata --host-id={own or 'N'}) and "
                         f"set {name}'s HE host id to {host_id} in the portal.")
            plan += deploy_steps(key, host, release, host_id=host_id, redeploy=host_id == own)
        else:
            plan += deploy_steps(key, host, release, address=host)
    return tuple(plan)


HOST_OS_UPGRADE = Runbook(
    slug="host-os-upgrade",
    name="Host OS upgrade",
    description="Reinstall every host with the next OS, one at a time, and deploy it again as a hosted-engine "
                "host: el6 -> el7 on oVirt 3.5 (the howto), el8 -> el9 on 4.5.",
    params=(*PARAMS,
            Param("target_cluster", "Engine cluster for the reinstalled hosts", pattern=r"[A-Za-z0-9_.-]{1,40}",
                  pattern_help="a cluster name of letters, digits and ._-", required=False,
                  help="Default: el7 on 3.5 (created once, in the web admin), Default on 4.5.")),
    preflight=(Check("engine-hosts-at-least", {"count": 2}),
               Check("engine-vm-running"),
               Check("hosts-on-os")),
    steps=steps,
)
