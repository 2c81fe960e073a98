"""Move the engine VM to another host, e.g. before local maintenance on its host, which
hosted-engine-setup 2.3.11 and later refuse while the VM runs there (ovirt-releases.md).

4.x: the engine live-migrates HostedEngine (API v4 ``migrate``) to the host named, or to
the live host out of local maintenance with the best score; then the wait sees the VM up
and the engine healthy there in vm-status. 3.x engines have no API v4: a person migrates
it in the web admin, and the same wait follows.
"""
from .base import Check, Engine, Manual, Param, Runbook, Wait


def steps(ctx):
    from ..plan import PlanError  # not at import: upgrades.plan imports the runbook format

    if not ctx.params.get("host"):
        vm_host = ctx.state.engine_vm_host
        able = [h for h in ctx.state.hosts if h.can_run_engine_vm and h is not vm_host]
        if not able:
            raise PlanError("No other live host out of local maintenance with a positive score can take the "
                            "engine VM.")
        best = max(able, key=lambda h: h.score or 0)  # the first by HE id among equals
        ctx.params["host"] = best.name
        ctx.note(f"To {best.name}: the live host out of local maintenance with the best score ({best.score}).")
    wait = Wait("wait-there", "Wait until vm-status shows the engine VM up on {host}",
                Check("engine-vm-on", {"hosts": "{host}"}), timeout=900)
    if ctx.release is not None and ctx.release < (4, 0):
        ctx.note(f"oVirt {ctx.release[0]}.{ctx.release[1]}: the engine has no API v4; the migration is done in the "
                 "web admin.")
        return (Manual("migrate", "Migrate the engine VM to {host} in the web admin",
                       "In the web admin: Virtual Machines, select HostedEngine, Migrate, choose {host}, OK. "
                       "Confirm this step once the migration has started."),
                wait)
    if ctx.release is None:
        raise PlanError("The cluster's oVirt release is not known yet (the HA poller detects it): the engine VM is "
                        "moved through the API on 4.x only.")
    return (Engine("migrate", "Engine VM to {host} (engine)", "migrate_engine_vm", {"host": "{host}"},
                   timeout=900),
            wait)


ENGINE_VM_MIGRATE = Runbook(
    slug="engine-vm-migrate",
    name="Move the engine VM",
    description="Live-migrate the engine VM to another host (through the engine on 4.x, in the web admin on "
                "3.x) and wait until vm-status shows it up there, e.g. before local maintenance on its host.",
    params=(Param("host", "Move it to", kind="host", required=False,
                  help="Default: the live host out of local maintenance with the best score."),),
    preflight=(Check("engine-vm-running"), Check("engine-vm-target", {"host": "{host}"})),
    steps=steps,
)
