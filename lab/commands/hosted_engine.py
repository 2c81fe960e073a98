"""`hosted-engine` on an HE host (facts §6, §8, §9), as each ovirt-hosted-engine-setup
version has it (src/bin/hosted-engine.in and src/ovirt_hosted_engine_setup/*.py at the
tags of ovirt-releases.md): the commands it knows, where its messages go, and its checks.
"""

from .. import catalog, distro, vm
from ..vmstatus import render_json, render_plain
from . import command
from .deploy import deploy

BROKER_DOWN = ("An error occured while retrieving vm status, please make sure the HA daemon "
               "is ready and reachable.")
OLD_BROKER_DOWN = "Cannot connect to the HA daemon, please check the logs."
LOCAL_REFUSED = ("Unable to enter local maintenance mode: the engine VM is running on the current "
                 "host, please migrate it before entering local maintenance mode.")
LOCAL_NO_HOSTS = ("Unable to enter local maintenance mode: there are no available hosts capable "
                  "of running the engine VM.")
NO_VM_CONF = {"1.3": "Unable to read vm.conf, please check ovirt-ha-agent logs",
              "2.2": "The hosted engine configuration has not been retrieved from shared storage. "
                     "Please ensure that ovirt-ha-agent is running and the storage server is "
                     "reachable."}
# The first setup version that has each command (1.2 has the rest).
SINCE = {"--reinitialize-lockspace": "1.3", "--clean-metadata": "1.3", "--check-deployed": "2.0"}
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
    """Value of --name=V, else None: the script matches `--mode=*` only."""
    for arg in args:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def setup_at_least(ctx, floor):
    return catalog.setup_key(ctx.host) >= catalog.version_key(floor)


def usage(ctx):
    """The help text of this setup version: without the commands it does not have."""
    lines = USAGE.splitlines(keepends=True)
    text = []
    skip = False
    for line in lines:
        word = line.strip().split(" ")[0]
        if line.startswith("        --"):
            skip = word in SINCE and not setup_at_least(ctx, SINCE[word])
        if not skip:
            text.append(line if setup_at_least(ctx, "2.0") else line.replace(" [--json]", ""))
    return "".join(text)


@command("hosted-engine", path="/usr/sbin", machines=("host",),
         package="ovirt-hosted-engine-setup")
async def hosted_engine(ctx, args):
    if not args or args[0] in ("--help", "-h"):
        ctx.out.write(usage(ctx))
        return 0 if args else 1
    verb = args[0]
    if verb == "--deploy":
        return await deploy(ctx, args[1:])
    if verb not in HANDLERS or (verb in SINCE and not setup_at_least(ctx, SINCE[verb])):
        ctx.error(f"Invalid option '{verb}'")
        ctx.out.write(usage(ctx))
        return 1
    if verb == "--check-deployed":
        return await check_deployed(ctx, args[1:])
    if not ctx.host.configured:
        ctx.print("You must run deploy first")  # echo, on stdout; 1.2 then exits 0
        return 1 if setup_at_least(ctx, "1.3") else 0
    return await HANDLERS[verb](ctx, args[1:])


def broker_up(ctx):
    return ctx.host.services["ovirt-ha-broker"]


async def vm_status(ctx, args):
    await ctx.sleep(1)
    if setup_at_least(ctx, "1.3") and not ctx.host.fs.exists(distro.VM_CONF):
        # check_vm_conf: the agent has not fetched vm.conf since the boot
        ctx.print(NO_VM_CONF["2.2" if setup_at_least(ctx, "2.2") else "1.3"])
        return 1
    if not broker_up(ctx):
        if setup_at_least(ctx, "2.2"):
            ctx.error(BROKER_DOWN)
        else:
            ctx.error(f"[Errno 2] No such file or directory\n{OLD_BROKER_DOWN}")
        return 1
    cluster, now = ctx.cluster, ctx.now()
    segments = sorted(cluster.segments.values(), key=lambda s: s["host-id"])
    live = {seg["host-id"] for seg in cluster.live_segments(ctx.host.host_id, now)}
    version = ctx.host.packages.get("ovirt-hosted-engine-setup", "0")
    if "--json" in args and setup_at_least(ctx, "2.0"):  # 1.x ignores the flag
        ctx.out.write(render_json(segments, live, cluster.global_maintenance))
    else:
        ctx.out.write(render_plain(segments, live, cluster.global_maintenance, version))
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
    if ctx.host.configured:
        return 0
    ctx.print("The hosted engine has not been deployed")
    return 1


def local_refusal(ctx):
    """Why this setup version refuses local maintenance here, or None
    (src/ovirt_hosted_engine_setup/set_maintenance.py): 1.x and 2.0.0 accept it (a 1.x
    agent migrates the VM away); 2.1.0-2.3.10 refuse when no other live host has a
    positive score (commit feb6eee); 2.3.11 and later refuse when the engine VM runs here,
    whatever the other hosts (commit 4a36099, cherry-picked into 2.3.11; 4297b4f in 2.4.0)."""
    host, cluster = ctx.host, ctx.cluster
    if setup_at_least(ctx, "2.3.11"):
        return LOCAL_REFUSED if vm.running_status(host) else None
    if setup_at_least(ctx, "2.1"):
        others = [seg for seg in cluster.live_segments(host.host_id, ctx.now())
                  if seg["host-id"] != host.host_id and seg["score"] > 0]
        return None if others else LOCAL_NO_HOSTS
    return None


async def set_maintenance(ctx, args):
    mode = option(args, "--mode")
    if mode is None:
        ctx.print("You must specify a maintenance mode with --mode")
        return 1
    if mode not in ("global", "local", "none"):
        ctx.print(f"Invalid value '{mode}' for --mode")
        return 1
    await ctx.sleep(1)
    host, cluster = ctx.host, ctx.cluster
    refusal = local_refusal(ctx) if mode == "local" else None
    if refusal:
        ctx.error(refusal)
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
    # It runs the agent with --cleanup: its log lines go to stderr, and it exits 0
    # even when it refuses (ovirt-releases.md).
    version = ctx.host.packages.get("ovirt-hosted-engine-ha", "")
    prefix = "INFO:ovirt_hosted_engine_ha.agent.agent.Agent:"
    ctx.error(f"{prefix}ovirt-hosted-engine-ha agent {version} started")
    await ctx.sleep(3)
    seg = cluster.segments.get(str(host_id))
    if seg is None:
        # clean(): the broker returns no blank blocks, so the id is missing from the stats
        ctx.error("ERROR:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
                  "Metadata for current host missing.")
    elif seg["stopped"] or "--force-cleanup" in args:
        ctx.error("INFO:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
                  "Cleaning the metadata block!")
        del cluster.segments[str(host_id)]
        cluster.changed()
    else:
        ctx.error("ERROR:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
                  "Cannot clean unclean metadata block. Consider --force-clean.")
    ctx.error(f"{prefix}Agent shutting down")
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
