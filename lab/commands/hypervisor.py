"""A hypervisor's own tools: vdsm's clients, sanlock's, and reboot."""

import json

from .. import catalog, vm
from . import command


def vdsm_version(machine):
    return catalog.version_key(machine.packages.get("vdsm", "0"))


def vm_stats(ctx):
    """vdsm's view of HostedEngine on this host, or None."""
    rec = ctx.host.vm
    if rec is None:
        return None
    return {"vmId": vm.VM_ID, "vmName": "HostedEngine", "status": rec["status"],
            "pid": "12345" if vm.running_status(ctx.host) else "0"}


def vdsm_refuses(ctx, message):
    if ctx.cluster.vdsm_up(ctx.host, ctx.now()):
        return False
    ctx.error(message)
    return True


@command("vdsm-client", machines=("host",), package="vdsm",
         when=lambda m: vdsm_version(m) >= catalog.version_key("4.19"))
async def vdsm_client(ctx, args):
    """vdsm-client NAMESPACE METHOD [name=value ...] (vdsm >= 4.19)."""
    if len(args) < 2:
        ctx.error("usage: vdsm-client [-h] [-a ADDRESS] [-p PORT] namespace method [arg=value]")
        return 2
    if vdsm_refuses(ctx, "vdsm-client: Connection to localhost:54321 with use_tls=True, "
                         "timeout=60 failed: [Errno 111] Connection refused"):
        return 1
    stats = vm_stats(ctx)
    call = (args[0], args[1])
    if call == ("Host", "getVMList"):
        ctx.print(json.dumps([stats["vmId"]] if stats else [], indent=4))
    elif call == ("VM", "getStats"):
        if stats is None or f"vmID={vm.VM_ID}" not in args:
            ctx.error('vdsm-client: Command VM.getStats with args {} failed:\n'
                      '(code=1, message=Virtual machine does not exist)')
            return 1
        ctx.print(json.dumps([stats], indent=4))
    else:
        ctx.error("vdsm-client: the lab answers Host getVMList and VM getStats, "
                  f"not {' '.join(call)}")
        return 1
    return 0


@command("vdsClient", machines=("host",), package="vdsm",
         when=lambda m: vdsm_version(m) < catalog.version_key("4.20"))
async def vds_client(ctx, args):
    """vdsClient -s 0 list [table] (vdsm before 4.20)."""
    words = [a for a in args if a not in ("-s", "0")]
    if not words or words[0] != "list":
        ctx.error("vdsClient: the lab answers `vdsClient -s 0 list [table]`")
        return 1
    if vdsm_refuses(ctx, "Connection to 0:54321 refused"):
        return 1
    stats = vm_stats(ctx)
    if stats is None:
        return 0
    if "table" in words:
        ctx.print(f"{stats['vmId']}  {stats['pid']:>5}  {stats['vmName']:<20} {stats['status']}")
    else:
        ctx.print(f"\n{stats['vmId']}\n\tStatus = {stats['status']}\n\tvmName = {stats['vmName']}")
    return 0


@command("sanlock", path="/usr/sbin", machines=("host",), package="vdsm")
async def sanlock(ctx, args):
    """sanlock client status: the HE lockspace, and the VM's lease where it is held."""
    if args[:2] != ["client", "status"]:
        ctx.error("sanlock: the lab answers `sanlock client status`")
        return 1
    host, cluster = ctx.host, ctx.cluster
    ctx.print("daemon 5c4b8a3e-lab0-4d1b-9f00-" + f"{host.index:012d}." + host.short_name)
    ctx.print("p -1 helper\np -1 listener")
    holder = cluster.lease == host.name and vm.running_status(host)
    if holder:
        ctx.print("p 12345 HostedEngine")
    ctx.print("p -1 status")
    if host.host_id is not None and host.services["ovirt-ha-agent"]:
        ctx.print(f"s hosted-engine:{host.host_id}:/var/run/vdsm/storage/"
                  "8a3bcd42-1b2c-4d3e-9f4a-5b6c7d8e9f01/ha_agent/hosted-engine.lockspace:0")
    if holder:
        ctx.print("r 8a3bcd42-1b2c-4d3e-9f4a-5b6c7d8e9f01:6d2a5e1c-1b1c-4f0e-9b53-5a7c2b8f1d11:"
                  "/rhev/data-center/mnt/leases:0:1 p 12345")
    return 0


@command("reboot", path="/usr/sbin", machines=("host",))
async def reboot(ctx, args):
    """A clean reboot: services stop, the VM running here dies with the host, SSH drops
    and the host comes back like after boot-host."""
    ctx.cluster.power_cycle(ctx.host)
    return 0
