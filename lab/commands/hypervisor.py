"""A hypervisor's own tools: vdsm's clients, sanlock's, and reboot."""

import json
import uuid

from .. import catalog, distro, vm
from . import command

QEMU_PID = 12345  # the engine VM's qemu process, as vm_stats and sanlock show it
VM_DISK_VOLUME = distro.VM_DISK_VOLUME


def vdsm_version(machine):
    return catalog.version_key(machine.packages.get("vdsm", "0"))


def vm_stats(ctx):
    """vdsm's view of HostedEngine on this host, or None."""
    rec = ctx.host.vm
    if rec is None:
        return None
    return {"vmId": vm.VM_ID, "vmName": "HostedEngine", "status": rec["status"],
            "pid": str(QEMU_PID) if vm.running_status(ctx.host) else "0"}


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


def he_conf(host):
    """hosted-engine.conf as key -> value (the file on the host's disk)."""
    text = host.fs.read(distro.HE_CONF) or ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def domain_dir(conf):
    """Where vdsm mounts the HE storage domain: /rhev/data-center/mnt/SERVER:_PATH/SD
    (vdsm fileUtils.transformPath: `_` doubled, `/` made `_`)."""
    server, _, path = conf.get("storage", "").partition(":")
    mount = server + ":" + path.replace("_", "__").replace("/", "_")
    return f"/rhev/data-center/mnt/{mount}/{conf.get('sdUUID', '')}"


def vdsm_run_dir(host):
    """vdsm's run directory: /var/run/vdsm up to 4.30, /run/vdsm from 4.40 (configure.ac
    `vdsmrundir` at v4.30.46 and v4.50.3.4)."""
    return "/run/vdsm" if vdsm_version(host) >= catalog.version_key("4.40") else "/var/run/vdsm"


@command("sanlock", path="/usr/sbin", machines=("host",), package="vdsm")
async def sanlock(ctx, args):
    """sanlock client status, in the format of sanlock's client_cmd.c (3.6.0): `daemon`, a
    `p` line per client, an `s NAME:HOST_ID:PATH:OFFSET` line per lockspace and an
    `r LOCKSPACE:RESOURCE:PATH:OFFSET:LVER p PID` line per lease held.

    Lockspaces: the HE storage domain's `ids` (vdsm's domain monitor, started by the HA
    agent: storage_broker.start_domain_monitor at v2.3.6; kept over a vdsm stop,
    monitor.py at v4.30.46) and `hosted-engine`, joined by the agent (1.2.10, 1.3.5.8
    agent/hosted_engine.py _initialize_sanlock) or the broker for its agent (2.3.6, 2.5.1
    broker/status_broker.py) on the lockspace volume vdsm prepared under its run
    directory (hsm.prepareImage, fileSD.createImageLinks). The lease: the engine VM disk's
    volume lease, `VOLUME.lease` at offset 0 (fileSD getVolumeLease), held by qemu."""
    if [a for a in args if a != "-D"] != ["client", "status"]:
        ctx.error("sanlock: the lab answers `sanlock client status`")
        return 1
    host, cluster = ctx.host, ctx.cluster
    daemon = uuid.uuid5(uuid.NAMESPACE_DNS, "sanlock." + host.name)
    ctx.print(f"daemon {f'{daemon}.{host.name}'[:47]}")  # uuid.nodename, NAME_ID_SIZE 48
    ctx.print("p -1 helper\np -1 listener")
    holder = cluster.lease == host.name and vm.running_status(host)
    if holder:
        ctx.print(f"p {QEMU_PID} HostedEngine")
    ctx.print("p -1 status")
    conf = he_conf(host)
    if host.host_id is None or "sdUUID" not in conf:
        return 0
    sd, domain = conf["sdUUID"], domain_dir(conf)
    ctx.print(f"s {sd}:{host.host_id}:{domain}/dom_md/ids:0")
    agent = cluster.agents.get(host.name)
    if agent is not None and not agent.stuck and not cluster.lockspace_corrupt:
        ctx.print(f"s hosted-engine:{host.host_id}:{vdsm_run_dir(host)}/storage/{sd}/"
                  f"{conf.get('lockspace_image_UUID', '')}/{conf.get('lockspace_volume_UUID', '')}:0")
    if holder:
        volume = conf.get("vm_disk_vol_id", VM_DISK_VOLUME)
        ctx.print(f"r {sd}:{volume}:{domain}/images/{conf.get('vm_disk_id', '')}/{volume}.lease:0:"
                  f"{cluster.lease_version} p {QEMU_PID}")
    return 0


@command("reboot", path="/usr/sbin", machines=("host",))
async def reboot(ctx, args):
    """A clean reboot: services stop, the VM running here dies with the host, SSH drops
    and the host comes back like after boot-host."""
    ctx.cluster.power_cycle(ctx.host)
    return 0
