"""Deploy an additional hosted-engine host (the howto's "Installing additional nodes").

The host must be a host of the cluster in the portal already, with its SSH host key
pinned (added in the admin or by an inventory import, and its key reviewed): the
preflight refuses a host whose key is not pinned, and the portal never accepts a key
by itself. On setup 1.x (oVirt 3.5/3.6) ``hosted-engine --deploy`` runs on the host
with a generated answer file; from oVirt 4.1 the engine adds it with hosted-engine
deploy (``hosts.py``).
"""
from .base import Check, Param, Runbook
from .hosts import (DEFAULTS, PARAMS, RELEASE_OS, deploy_steps, next_free_id, os_check, repo_steps, uses_cli,
                    with_defaults)


def steps(ctx):
    from ..plan import PlanError  # not at import: upgrades.plan imports the runbook format

    release = ctx.release
    if release is None:
        raise PlanError("The cluster's oVirt release is not known yet (the HA poller detects it); "
                        "the deploy differs per release.")
    with_defaults(ctx, {**DEFAULTS, "target_cluster": "Default"}, release)
    host = ctx.params["host"]
    allowed = RELEASE_OS.get(release)
    if allowed is None:
        raise PlanError(f"oVirt {release[0]}.{release[1]} is not a release this runbook knows.")
    plan = [os_check("check-os", "{host}", allowed), *repo_steps("", "{host}", release)]
    if uses_cli(release):
        others = {h.he_host_id for h in ctx.cluster.hosts.exclude(name=host) if h.he_host_id}
        own = ctx.cluster.hosts.get(name=host).he_host_id  # an id the inventory gave the new host
        given = ctx.params.get("host_id")
        host_id = given if given is not None else own if own and own >= 2 and own not in others \
            else next_free_id(others)
        if host_id < 2:
            raise PlanError(f"Host id {host_id} cannot be used: ids start at 1, and setup refuses 1 for an "
                            "additional host (\"Cannot use the same ID used by first host\").")
        if host_id in others:
            raise PlanError(f"Host id {host_id} is used by another host of the cluster.")
        ctx.note(f"oVirt {release[0]}.{release[1]} (setup {'1.x' if release[0] < 4 else '2.0'}): "
                 f"hosted-engine --deploy on {host} as an additional host with host id {host_id}"
                 f"{'' if given is not None or host_id == own else ' (the next free one)'}, answered by the file "
                 "the plan shows; a person writes the admin@internal password on the host.")
        plan += deploy_steps("", "{host}", release, host_id=host_id)
    else:
        ctx.note(f"oVirt {release[0]}.{release[1]}: setup 2.1 and later refuse additional hosts on the "
                 "command line; the engine adds the host with hosted-engine deploy and picks its host id. "
                 "The engine logs in to it as root with its SSH key (the host's authorized_keys must "
                 "have the engine's public key, as for any host the engine adds).")
        plan += deploy_steps("", "{host}", release, address="{host}")
    return tuple(plan)


DEPLOY_HOST = Runbook(
    slug="deploy-host",
    name="Deploy an additional host",
    description="Make a host of the cluster an additional hosted-engine host: hosted-engine --deploy "
                "with a generated answer file on oVirt 3.5/3.6, through the engine (hosted-engine deploy) "
                "on 4.x; then wait until its agent shows live in vm-status with a score.",
    scope="host",
    params=(Param("host", "Host", kind="host",
                  help="A host of the cluster in the portal, with its SSH host key pinned, not yet a "
                       "hosted-engine host."),
            *PARAMS,
            Param("host_id", "Host id", kind="int", required=False,
                  help="setup 1.x only: the hosted-engine host id, 2 or more (default: the next free one)."),
            Param("target_cluster", "Engine cluster", pattern=r"[A-Za-z0-9_.-]{1,40}",
                  pattern_help="a cluster name of letters, digits and ._-", default="Default", required=False)),
    preflight=(Check("host-key-pinned", {"host": "{host}"}),
               Check("not-deployed", {"host": "{host}"}),
               Check("engine-vm-running")),
    steps=steps,
)
