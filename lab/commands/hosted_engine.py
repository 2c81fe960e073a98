"""`hosted-engine` on an HE host (facts §6, §8, §9)."""

from .. import catalog, vm
from ..vmstatus import render_json, render_plain
from . import command
from .deploy import deploy

BROKER_DOWN = ("An error occured while retrieving vm status, please make sure the HA daemon "
               "is ready and reachable.")
LOCAL_REFUSED = ("Unable to enter local maintenance mode: the engine VM is running on the current "
                 "host, please migrate it before entering local maintenance mode.")
USAGE = """Usage: /usr/sbin/hosted-engine [--help] <command> [<command-args>]
    --help
        show this help message.

    The available commands are:
        --deploy [options]
            run ovirt-hosted-engine deployment
        --vm-start
            start VM on this host
        --vm-shutdown
            gracefully shutdown the VM on this host
        --vm-poweroff
            forcefully poweroff the VM on this host
        --vm-status [--json]
            VM status according to the HA agent.
        --check-liveliness
            Checks liveliness page of engine
        --check-deployed
            Checks whether the hosted engine has been deployed already
        --set-maintenance --mode=<mode>
            Set maintenance status to the specified mode (global/local/none)
        --reinitialize-lockspace [--force]
            Reinitialize the sanlock lockspace file. This wipes all locks.
        --clean-metadata [--force-cleanup] [--host-id=<id>]
            Remove host's metadata from the global status database.
"""


def option(args, name):
    """Value of --name=V or --name V, else None."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args) and not args[i + 1].startswith("--"):
            return args[i + 1]
    return None


@command("hosted-engine", path="/usr/sbin", machines=("host",),
         package="ovirt-hosted-engine-setup")
async def hosted_engine(ctx, args):
    if not args or args[0] in ("--help", "-h"):
        ctx.out.write(USAGE)
        return 0 if args else 1
    verb = args[0]
    if verb == "--deploy":
        return await deploy(ctx, args[1:])
    if verb not in HANDLERS:
        ctx.error(f"Invalid option '{verb}'")
        ctx.err.write(USAGE)
        return 1
    if not ctx.host.configured:
        ctx.error("You must run deploy first")
        return 1
    return await HANDLERS[verb](ctx, args[1:])


def broker_up(ctx):
    return ctx.host.services["ovirt-ha-broker"]


async def vm_status(ctx, args):
    await ctx.sleep(1)
    if not broker_up(ctx):
        ctx.error(BROKER_DOWN)
        return 1
    cluster, now = ctx.cluster, ctx.now()
    segments = sorted(cluster.segments.values(), key=lambda s: s["host-id"])
    live = {seg["host-id"] for seg in cluster.live_segments(ctx.host.host_id, now)}
    if "--json" in args:
        ctx.out.write(render_json(segments, live, cluster.global_maintenance))
    else:
        old = catalog.uses_old_header(ctx.host.packages.get("ovirt-hosted-engine-setup", "0"))
        ctx.out.write(render_plain(segments, live, cluster.global_maintenance, old))
    return 0


def vdsm_check(ctx):
    if not ctx.cluster.vdsm_up(ctx.host, ctx.now()):
        ctx.error("Connection to VDSM failed: [Errno 111] Connection refused")
        return False
    return True


async def vm_start(ctx, args):
    await ctx.sleep(2)
    if not vdsm_check(ctx):
        return 1
    ok, message = vm.vm_start(ctx.cluster, ctx.host, ctx.now())
    (ctx.print if ok else ctx.error)(message)
    return 0 if ok else 1


async def vm_shutdown(ctx, args):
    return await _vm_stop(ctx, vm.vm_shutdown, "VM.shutdown")


async def vm_poweroff(ctx, args):
    return await _vm_stop(ctx, vm.vm_poweroff, "VM.destroy")


async def _vm_stop(ctx, stop, verb):
    """--vm-shutdown and --vm-poweroff: the vdsm call, and its failure as vdsm words it."""
    await ctx.sleep(1)
    if not vdsm_check(ctx):
        return 1
    ok, message = stop(ctx.cluster, ctx.host, ctx.now())
    if not ok:
        ctx.error(f"Command {verb} with args {{'vmID': '3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70'}} "
                  f"failed:\n(code=1, message={message})")
        return 1
    return 0


async def check_liveliness(ctx, args):
    await ctx.sleep(1)
    if ctx.cluster.engine_healthy():
        ctx.print("Hosted Engine is up!")
        return 0
    ctx.print("Hosted Engine is not up!")
    return 1


async def check_deployed(ctx, args):
    return 0


async def set_maintenance(ctx, args):
    mode = option(args, "--mode")
    if mode is None:
        ctx.error("You must specify a maintenance mode with --mode")
        return 1
    if mode not in ("global", "local", "none"):
        ctx.error(f"Invalid value '{mode}' for --mode")
        return 1
    await ctx.sleep(1)
    host, cluster = ctx.host, ctx.cluster
    if mode == "local" and vm.running_status(host):
        ctx.error(LOCAL_REFUSED)
        return 1
    # facts §6: every mode writes all three flags.
    cluster.global_maintenance = mode == "global"
    host.local_maintenance = host.local_maintenance_manual = mode == "local"
    cluster.changed()
    return 0


async def reinitialize_lockspace(ctx, args):
    cluster = ctx.cluster
    await ctx.sleep(2)
    if not broker_up(ctx):
        ctx.error(BROKER_DOWN)
        return 1
    if "--force" not in args:
        if not cluster.global_maintenance:
            ctx.error("Lockfile reset can be performed in global maintenance mode only.")
            return 1
        if any(not seg["stopped"] for seg in cluster.segments.values()):
            ctx.error("Lockfile reset cannot be performed with an active agent.")
            return 1
    cluster.lockspace_corrupt = False
    return 0


async def clean_metadata(ctx, args):
    cluster = ctx.cluster
    raw_id = option(args, "--host-id")
    try:
        host_id = int(raw_id) if raw_id is not None else ctx.host.host_id
    except ValueError:
        ctx.error(f"Invalid value '{raw_id}' for --host-id")
        return 1
    version = ctx.host.packages.get("ovirt-hosted-engine-ha", "")
    prefix = "INFO:ovirt_hosted_engine_ha.agent.agent.Agent:"
    ctx.print(f"{prefix}ovirt-hosted-engine-ha agent {version} started")
    await ctx.sleep(3)
    seg = cluster.segments.get(str(host_id))
    if seg is None:
        ctx.print(f"INFO:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
                  f"Metadata block for host {host_id} is already clean")
    elif seg["stopped"] or "--force-cleanup" in args:
        ctx.print("INFO:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
                  "Cleaning the metadata block!")
        del cluster.segments[str(host_id)]
        cluster.changed()
    else:
        ctx.error("ERROR:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
                  "Cannot clean unclean metadata block. Consider --force-clean.")
        ctx.print(f"{prefix}Agent shutting down")
        return 1
    ctx.print(f"{prefix}Agent shutting down")
    return 0


HANDLERS = {
    "--vm-status": vm_status,
    "--vm-start": vm_start,
    "--vm-shutdown": vm_shutdown,
    "--vm-poweroff": vm_poweroff,
    "--check-liveliness": check_liveliness,
    "--check-deployed": check_deployed,
    "--set-maintenance": set_maintenance,
    "--reinitialize-lockspace": reinitialize_lockspace,
    "--clean-metadata": clean_metadata,
}
