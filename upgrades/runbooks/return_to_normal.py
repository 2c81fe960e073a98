"""Return to normal: undo what a run that did not succeed left behind.

Planned from ``upgrades.leftbehind``: the differences between the cluster now and
the record taken when that run started. Hosts left in engine maintenance are
activated (through the engine on 4.x; on 3.x a web-admin step for a person,
as he-upgrade does), the scheduling policy is set back, and local and global
maintenance are left. The engine VM is not moved back, packages are not
downgraded and a compatibility version is never lowered: the plan says so.
"""
from .base import Check, Engine, Manual, Param, Runbook, Ssh, Wait
from .he_upgrade import HA_CONF_WAIT, SET_MODE


def steps(ctx):
    from ..leftbehind import last_unsuccessful_run, left_behind  # models: not at import time
    from ..models import UpgradeRun
    from ..plan import PlanError

    run_id = ctx.params.get("run")
    run = (UpgradeRun.objects.filter(cluster=ctx.cluster, pk=run_id).select_related("cluster").first()
           if run_id else last_unsuccessful_run(ctx.cluster))
    if run is None:
        raise PlanError(f"Cluster {ctx.cluster.name} has no run #{run_id}." if run_id else
                        f"No run on cluster {ctx.cluster.name} ended without success: nothing to return from.")
    found = left_behind(run)
    if found is None:
        raise PlanError(f"Run #{run.pk} is {run.get_status_display()}: only a run that failed, was cancelled "
                        "or interrupted (after its first step started) leaves something behind.")
    for diff in found.differences:
        ctx.note(f"{diff.what}: {diff.before} when run #{run.pk} started, {diff.now} now"
                 f"{f' (by its {diff.by_run})' if diff.by_run else ''}. {diff.restore}")
    for text in found.unknown:
        ctx.note(text)
    actions = found.actions
    if not actions:
        raise PlanError(f"Nothing to return to normal after run #{run.pk}: nothing it left behind can be "
                        "restored by the portal (see the notes on its page).")
    api = ctx.release is not None and ctx.release >= (4, 0)
    plan = []
    for action in actions:
        if action[0] != "activate":
            continue
        host = action[1]
        if api:
            plan.append(Engine(f"hosts.{host}.activate", f"Activate {host} (engine)", "activate_host",
                               {"host": host}, timeout=900))
        else:
            plan.append(Manual(f"hosts.{host}.activate", f"Activate {host} (web admin)",
                               f"In the web admin, Hosts tab: select {host}, click Activate. Then "
                               "confirm this step."))
        plan.append(Ssh(f"hosts.{host}.activate-wait", f"Wait until {host}'s HA configuration is out of "
                        "local maintenance", HA_CONF_WAIT.format(False), on=host, timeout=900))
    for action in actions:
        if action[0] == "policy" and api:
            _, cluster, policy = action
            plan.append(Engine("policy", f"Scheduling policy {policy} again", "set_scheduling_policy",
                               {"cluster": cluster, "policy": policy}))
    for action in actions:
        if action[0] == "local-none":
            host = action[1]
            plan += [Ssh(f"hosts.{host}.none", f"Maintenance none on {host}", SET_MODE + "none", on=host,
                         changes=True),
                     Wait(f"hosts.{host}.none-wait", f"Wait until vm-status shows {host} out of maintenance",
                          Check("no-maintenance", {"host": host}), timeout=300)]
    if ("global-none",) in actions:
        plan += [Ssh("none", "Maintenance none", SET_MODE + "none", on="any", changes=True),
                 Wait("none-wait", "Wait until vm-status shows no global maintenance",
                      Check("global-maintenance", {"on": False}), timeout=300)]
    return tuple(plan)


RETURN_TO_NORMAL = Runbook(
    slug="return-to-normal",
    name="Return to normal",
    description="After a run that failed, was cancelled or interrupted: activate the hosts it left in "
                "engine maintenance, set the scheduling policy back, leave local and global maintenance "
                "(what the run's page lists as left behind).",
    params=(Param("run", "Run", kind="int", required=False,
                  help="The run whose leftovers to undo (default: the cluster's latest run that did not "
                       "succeed)."),),
    steps=steps,
)
