"""The howto's "Remove old host from the metadata whiteboard".

``hosted-engine --clean-metadata --host-id=N`` runs ``ovirt-ha-agent --cleanup``
for id N; the agent of the host that runs it has to be stopped first. It
blanks the block only when that host's last word was ``stopped``, or with
``--force-cleanup`` (the flag is not ``--force``); a host that died never
said ``stopped``, so a removed host usually needs it — an option an approver
signs off. The command exits 0 even when it refuses (its log goes to
stderr), so the step checks the log line that says it cleaned. The agent is
started again in the same command, whatever the clean-up did, so a refusal
never leaves the host without its agent. From hosted-engine-setup 1.3 (oVirt
3.6) on.
"""
from .base import Approval, Check, Param, Runbook, Ssh, Wait
from .lockspace import note_services, service

# HA agent/hosted_engine.py clean(): "Cleaning the metadata block!" when it blanked the
# block, "Metadata for current host missing." when there was none to blank.
CLEANED = r"Cleaning the metadata block!|Metadata for current host missing"

# Every release's plain vm-status has a "Host ID" field per block (1.x ignores --json).
VERIFY = ("status=$(hosted-engine --vm-status) || exit 1\n"
          "if printf '%s\\n' \"$status\" | grep -E '^Host ID +: '{host_id}'$'; then\n"
          "  echo \"host id \"{host_id}\" is still in vm-status\"; exit 1\n"
          "fi\n"
          "echo \"host id \"{host_id}\" is not in vm-status\"")


# The same, for a host the portal does not know: refuse an id whose block is up to date.
# Fields come in a different order per release, so each block is read whole.
# vm-status exits 1 for a while after an agent restarts (vm.conf not fetched yet, broker
# starting): asked again for up to 30 s before the check fails, saying what it answered.
NOT_LIVE = ("n=0; until status=$(hosted-engine --vm-status 2>&1); do n=$((n+1)); "
            "if [ $n -ge 6 ]; then printf '%s\\n' \"$status\"; exit 1; fi; sleep 5; done\n"
            "printf '%s\\n' \"$status\" | awk -v id={host_id} '\n"
            "  /^--== Host / {{ if (hid == id) exit; hid = \"\"; up = \"\" }}\n"
            "  /^Host ID +:/ {{ hid = $NF }}\n"
            "  /^Status up-to-date +:/ {{ up = $NF }}\n"
            "  END {{ if (hid == id && up == \"True\") {{ print \"host id \" id \" is live in vm-status: its agent "
            "publishes\"; exit 1 }}\n"
            "        print \"host id \" id \" is not live in vm-status\" }}'")


def steps(ctx):
    note_services(ctx)
    force = bool(ctx.params.get("force_cleanup"))
    clean = "hosted-engine --clean-metadata --host-id={host_id}" + (" --force-cleanup" if force else "")
    if force:
        ctx.note("--force-cleanup: the block is blanked even though its host never reported a clean stop "
                 "(an approver signs it off first).")
    guard = Check("metadata-host-id", {"host_id": "{host_id}", "host": "{host}"})
    return (
        *((Approval("approve-force", "Approve --clean-metadata --force-cleanup for host id {host_id}",
                    "--force-cleanup blanks host id {host_id}'s block without its agent having stopped "
                    "cleanly."),) if force else ()),
        Ssh("check-id", "Check that host id {host_id} is not live in vm-status (on {host})", NOT_LIVE,
            on="{host}"),
        Ssh("stop-agent", "Stop the HA agent on {host}", service(ctx, "stop", "ovirt-ha-agent"), on="{host}",
            changes=True, guards=(guard,)),
        Ssh("clean", "Remove host id {host_id} from the whiteboard (on {host}), then start its agent again",
            clean + "; rc=$?; " + service(ctx, "start", "ovirt-ha-agent") + "; exit $rc", on="{host}",
            changes=True, output_check=CLEANED),
        Wait("agent-back", "Wait until {host} publishes up-to-date data again",
             Check("host-score", {"host": "{host}", "min_score": 0, "fresh": True}), timeout=600),
        Ssh("verify", "Check that host id {host_id} is gone from vm-status", VERIFY, on="{host}"),
    )


CLEAN_METADATA = Runbook(
    slug="clean-metadata",
    name="Remove an old host from the metadata whiteboard",
    description="Remove the block of a host that no longer exists from the hosted-engine whiteboard "
                "(hosted-engine --vm-status): the agent of the host that runs the command stopped, "
                "--clean-metadata --host-id=N, the agent started again.",
    default_host="live-out-of-local-maintenance",
    # The host being removed is stale by nature; the host that runs the command must be live.
    needs_fresh_ha=False,
    params=(Param("host_id", "Host id to remove", kind="int",
                  help="The HE host id of the host that no longer exists, as vm-status shows it."),
            Param("host", "Run on", kind="host", required=False,
                  help="A live host of the cluster; its agent is stopped for the clean-up (default: a live "
                       "host not in local maintenance)."),
            Param("force_cleanup", "Use --force-cleanup", kind="bool", default=False,
                  help="Blank the block even though its host never reported a clean stop (a host that died "
                       "or was reinstalled). Needs an approver.")),
    preflight=(Check("release-at-least", {"version": "3.6", "needs": "hosted-engine --clean-metadata"}),
               Check("host-live", {"host": "{host}"}),
               Check("metadata-host-id", {"host_id": "{host_id}", "host": "{host}"})),
    steps=steps,
)
