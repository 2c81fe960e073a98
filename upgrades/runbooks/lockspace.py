"""The howto's "Lockspace corrupted recovery procedure".

1. global maintenance; 2. stop every HA agent, keeping the brokers running;
3. ``hosted-engine --reinitialize-lockspace`` on a host whose broker runs;
then start the agents again, leave global maintenance and wait until every
host publishes a score. Without ``--force`` the command needs global
maintenance and every agent's ``stopped`` flag, which an agent writes only on
a clean exit: after a power outage or a corrupted lockspace ``--force`` is
usually needed (ovirt-releases.md), so it is an option that an approver
signs off. ``--reinitialize-lockspace`` exists from hosted-engine-setup 1.3
(oVirt 3.6): on 3.5 the runbook is blocked.
"""
from .base import Approval, Check, ForEachHost, Param, Runbook, Ssh, Wait

SET_MODE = "hosted-engine --set-maintenance --mode="


def service(ctx, action, unit):
    """How a daemon is started or stopped on the cluster's release: SysV ``service``
    on oVirt 3.5 (el6 hosts), ``systemctl`` from 3.6 (el7 and later)."""
    if ctx.release is not None and ctx.release < (3, 6):
        return f"service {unit} {action}"
    return f"systemctl {action} {unit}"


def note_services(ctx):
    if ctx.release is None:
        ctx.note("The cluster's release is not detected yet: the daemons are driven with systemctl "
                 "(oVirt 3.6 and later, el7 hosts and newer).")
    elif ctx.release < (3, 6):
        ctx.note(f"oVirt {ctx.release[0]}.{ctx.release[1]}: daemons with SysV service (el6 hosts).")
    else:
        ctx.note(f"oVirt {ctx.release[0]}.{ctx.release[1]}: daemons with systemctl (el7 hosts and newer).")


def steps(ctx):
    note_services(ctx)
    force = bool(ctx.params.get("force"))
    reinit = "hosted-engine --reinitialize-lockspace" + (" --force" if force else "")
    if force:
        ctx.note("--force: the lockspace is wiped even if an agent did not report a clean stop "
                 "(an approver signs it off first).")
    else:
        ctx.note("Without --force the re-initialisation needs every agent to have published \"stopped\" when "
                 "it stopped; an agent that cannot join a corrupted lockspace never does, and the step then "
                 "fails (a traceback ending in \"Lockfile reset cannot be performed with an active agent.\"): "
                 "run it again with --force.")
    return (
        Ssh("global", "Set global maintenance (on {host})", SET_MODE + "global", on="{host}", changes=True),
        ForEachHost("stop-agent", (
            Ssh("stop", "Stop the HA agent on {host} (its broker keeps running)",
                service(ctx, "stop", "ovirt-ha-agent"), changes=True),
        ), order="by-id"),
        Ssh("broker", "Check that the broker runs on {host}", service(ctx, "status", "ovirt-ha-broker")
            if ctx.release is not None and ctx.release < (3, 6) else "systemctl is-active ovirt-ha-broker",
            on="{host}"),
        *((Approval("approve-force", "Approve --reinitialize-lockspace --force",
                    "--force wipes every lock of the hosted-engine lockspace without checking that every "
                    "agent stopped cleanly."),) if force else ()),
        Ssh("reinitialize", "Re-initialise the sanlock lockspace (on {host})", reinit, on="{host}",
            changes=True),
        ForEachHost("start-agent", (
            Ssh("start", "Start the HA agent on {host}", service(ctx, "start", "ovirt-ha-agent"), changes=True),
        ), order="by-id"),
        Ssh("none", "Leave global maintenance (on {host})", SET_MODE + "none", on="{host}", changes=True),
        ForEachHost("score", (
            Wait("wait-score", "Wait until {host} publishes up-to-date data and a score again",
                 Check("host-score", {"host": "{host}", "min_score": 0, "fresh": True}), timeout=900),
        ), order="by-id"),
    )


LOCKSPACE_RECOVERY = Runbook(
    slug="lockspace-recovery",
    name="Lockspace recovery",
    description="Re-initialise a corrupted sanlock lockspace (after a power outage or a hardware fault): "
                "global maintenance, every HA agent stopped, --reinitialize-lockspace on a host whose broker "
                "runs, agents started again, global maintenance left, scores back.",
    default_host="live-out-of-local-maintenance",
    needs_fresh_ha=False,  # what it repairs leaves every host's HA data stale
    params=(Param("host", "Run on", kind="host", required=False,
                  help="The host that runs the maintenance and re-initialisation commands; its broker must "
                       "run (default: a live host, else the first by HE id)."),
            Param("force", "Use --force", kind="bool", default=False,
                  help="Re-initialise even if an agent did not report a clean stop (usual after a power "
                       "outage or a corrupted lockspace). Needs an approver.")),
    preflight=(Check("release-at-least", {"version": "3.6", "needs": "hosted-engine --reinitialize-lockspace"}),
               Check("lockspace-suspect")),
    steps=steps,
)
