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


# What vdsm's dsaversion says it supports (version_info at v4.16.30, v4.17.32, v4.30.46,
# v4.50.3.4; 4.16 on el6 goes back to 3.0, and 4.50 offers 4.7 with libvirt >= 8).
VDSM_LEVELS = (
    ("4.50", ["4.2", "4.3", "4.4", "4.5"], ["4.2", "4.3", "4.4", "4.5", "4.6", "4.7"]),
    ("4.30", ["4.1", "4.2", "4.3"], ["4.1", "4.2", "4.3"]),
    ("4.17", ["3.4", "3.5", "3.6"], ["3.4", "3.5", "3.6"]),
    ("4.16", ["3.4", "3.5"], ["3.4", "3.5"]),
)
EL6_LEVELS = ["3.0", "3.1", "3.2", "3.3", "3.4", "3.5"]
OS_RPM = {"el6": ("6", "6.el6.centos.12.2", "RHEL"), "el7": ("7", "2.1511.el7.centos.2.10", "RHEL"),
          "el8": ("8", "6.el8", "RHEL"), "el9": ("9", "26.el9", "RHEL")}
CPU_FLAGS = ("fpu,vme,de,pse,tsc,msr,pae,mce,cx8,apic,sep,mtrr,pge,mca,cmov,pat,pse36,clflush,"
             "mmx,fxsr,sse,sse2,ss,syscall,nx,pdpe1gb,rdtscp,lm,constant_tsc,rep_good,nopl,"
             "pni,pclmulqdq,vmx,ssse3,fma,cx16,pcid,sse4_1,sse4_2,x2apic,movbe,popcnt,aes,"
             "xsave,avx,f16c,rdrand,hypervisor,lahf_lm,abm,fsgsbase,bmi1,avx2,smep,bmi2,erms,"
             "invpcid,xsaveopt")
CPU_MODELS = ("model_Haswell-noTSX", "model_Nehalem", "model_Conroe", "model_Penryn",
              "model_Westmere", "model_SandyBridge")
HOST_MEMORY_MB = 16384  # as deploy.py offers the engine VM


def split_version(text):
    version, _, release = text.partition("-")
    return version, release


def capabilities(host):
    """Host.getCapabilities / getVdsCaps as this host's vdsm answers: the fields of
    VdsmCapabilities (lib/vdsm/api/vdsm-api.yml at v4.30.46 and v4.50.3.4; caps.get() and
    API.getCapabilities at v4.16.30 and v4.17.32), with this host's packages and OS."""
    key = vdsm_version(host)
    version, release = split_version(host.packages.get("vdsm", "0-0"))
    for floor, engines, levels in VDSM_LEVELS:
        if key >= catalog.version_key(floor):
            break
    if floor == "4.16" and host.os == "el6":
        engines = levels = EL6_LEVELS
    new = key >= catalog.version_key("4.30")
    os_version, os_release, os_name = OS_RPM[host.os]
    kernel_version, kernel_release = catalog.KERNEL[host.os].split("-", 1)
    packages = {"kernel": {"version": kernel_version, "release": kernel_release.rsplit(".", 1)[0],
                           "buildtime": 1447197344}}
    wanted = {"vdsm": ("vdsm",), "libvirt": ("libvirt",), "mom": ("mom",),
              "qemu-kvm": ("qemu-kvm", "qemu-kvm-rhev", "qemu-kvm-ev"),
              "qemu-img": ("qemu-img", "qemu-kvm", "qemu-kvm-rhev", "qemu-kvm-ev"),
              "spice-server": ("spice-server",)}
    if new:
        wanted["ovirt-hosted-engine-ha"] = ("ovirt-hosted-engine-ha",)
    for name, rpms in wanted.items():
        found = next((host.packages[r] for r in rpms if r in host.packages), None)
        if found is None and name in ("mom", "spice-server"):
            found = "0.5.12-1" if name == "mom" else "0.14.0-2"
        if found is not None:
            v, r = split_version(found)
            packages[name] = {"version": v, "release": f"{r}.{host.os}", "buildtime": 1447197344}
    address = host.address
    caps = {
        "kvmEnabled": "true", "cpuCores": "4", "cpuThreads": "4", "cpuSockets": "1",
        "onlineCpus": "0,1,2,3", "cpuSpeed": "2394.454",
        "cpuModel": "Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz",
        "cpuFlags": CPU_FLAGS + "," + ",".join(CPU_MODELS),
        "version_name": "Snow Man", "software_version": version,
        "software_revision": release, "supportedENGINEs": engines, "clusterLevels": levels,
        "networks": {"ovirtmgmt": {"iface": "ovirtmgmt", "bridged": True, "addr": address,
                                   "netmask": "255.255.255.0", "gateway": "192.168.122.1",
                                   "mtu": "1500", "ports": ["eth0"], "stp": "off"}},
        "bridges": {"ovirtmgmt": {"addr": address, "netmask": "255.255.255.0",
                                  "gateway": "192.168.122.1", "mtu": "1500",
                                  "ports": ["eth0"], "stp": "off"}},
        "nics": {"eth0": {"addr": "", "netmask": "", "mtu": "1500", "speed": 1000,
                          "hwaddr": f"52:54:00:00:01:{host.index:02x}"}},
        "bondings": {}, "vlans": {},
        "hooks": {}, "operatingSystem": {"release": os_release, "version": os_version,
                                         "name": os_name},
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, "host." + host.name)).upper(),
        "packages2": packages, "emulatedMachines": ["pc", "rhel6.5.0", "rhel6.6.0"]
        if host.os == "el6" else ["pc", "pc-i440fx-rhel7.0.0", "q35", "pc-q35-rhel7.6.0"],
        "ISCSIInitiatorName": f"iqn.1994-05.com.redhat:{host.short_name}",
        "HBAInventory": {"iSCSI": [{"InitiatorName": f"iqn.1994-05.com.redhat:{host.short_name}"}],
                         "FC": []},
        "vmTypes": ["kvm"], "memSize": str(HOST_MEMORY_MB), "reservedMem": "321",
        "guestOverhead": "65", "rngSources": ["random"],
        "numaNodes": {"0": {"totalMemory": str(HOST_MEMORY_MB), "cpus": [0, 1, 2, 3]}},
        "numaNodeDistance": {"0": [10]}, "autoNumaBalancing": 0, "selinux": {"mode": "1"},
        "liveSnapshot": "true", "liveMerge": "true", "kdumpStatus": 0,
        "netConfigDirty": "False",
    }
    if key >= catalog.version_key("4.17"):
        caps.update(hostdevPassthrough="false", additionalFeatures=[])
    if key < catalog.version_key("4.17"):
        caps["supportedProtocols"] = ["2.2", "2.3"]
    if new:
        caps["operatingSystem"]["pretty_name"] = catalog.OS_RELEASE[host.os]
        caps.update(
            lastClientIface="ovirtmgmt", supportsIPv6=True, nameservers=["192.168.122.1"],
            kernelArgs=f"BOOT_IMAGE=/vmlinuz-{catalog.KERNEL[host.os]} root=/dev/mapper/"
                       "centos-root ro crashkernel=auto rhgb quiet",
            realtimeKernel=False, nestedVirtualization=False,
            hostedEngineDeployed=host.host_id is not None, hugepages=[1048576, 2048],
            kernelFeatures={"RETP": 1, "IBRS": 0, "PTI": 1}, vncEncrypted=False,
            connector_info={}, backupEnabled=False, domain_versions=[0, 2, 3, 4, 5],
            supported_block_size={"FCP": [512], "GLUSTERFS": [0, 512, 4096],
                                  "ISCSI": [512], "LOCALFS": [0, 512, 4096],
                                  "NFS": [512], "POSIXFS": [512]},
            additionalFeatures=["libgfapi_supported"], deferred_preallocation=True)
    if key >= catalog.version_key("4.50"):
        caps.update(
            cpuTopology=[{"cpu_id": i, "numa_cell_id": 0, "socket_id": 0, "die_id": 0,
                          "core_id": i} for i in range(4)],
            vdsmToCpusAffinity=[1], fipsEnabled=False, tscFrequency="2394454000",
            tscScaling=False, boot_uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, "boot." + host.name)),
            ovnConfigured=False, zerocopy_migrations=True, backupEnabled=True,
            coldBackupEnabled=True, clearBitmapsEnabled=True, cd_change_pdiv=True,
            refresh_disk_supported=True, replicate_extend=True, measure_subchain=True,
            measure_active=True, mailbox_events=True,
            additionalFeatures=["libgfapi_supported", "GLUSTER_SNAPSHOT",
                                "GLUSTER_GEO_REPLICATION", "GLUSTER_BRICK_MANAGEMENT"])
    return caps


def py2_repr(value):
    """repr as Python 2.7's pprint._safe_repr writes it: dict keys sorted."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py2_repr(k)}: {py2_repr(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py2_repr(v) for v in value) + "]"
    return repr(value)


def py2_pformat(value, indent=0, allowance=0, width=80):
    """pprint.pformat as Python 2.7's PrettyPrinter._format writes it (vdsClient runs on
    Python 2): one line if it fits, else one item a line; strings never split."""
    text = py2_repr(value)
    if len(text) <= width - 1 - indent - allowance or not value or \
            not isinstance(value, (dict, list)):
        return text
    indent += 1
    if isinstance(value, dict):
        parts = []
        for k, v in sorted(value.items()):
            key = py2_repr(k)
            parts.append(f"{key}: " + py2_pformat(v, indent + len(key) + 2, allowance + 1, width))
        return "{" + (",\n" + " " * indent).join(parts) + "}"
    parts = [py2_pformat(v, indent, allowance + 1, width) for v in value]
    return "[" + (",\n" + " " * indent).join(parts) + "]"


def py2_json(value):
    """json.dumps(value, indent=4) as Python 2.7 writes it: ', ' between items, so each
    line that ends an item ends with a space (vdsm-client on el7 runs on Python 2)."""
    return json.dumps(value, indent=4, separators=(", ", ": "))


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
    if call == ("Host", "getCapabilities"):
        caps = capabilities(ctx.host)
        ctx.print(py2_json(caps) if ctx.host.os == "el7" else json.dumps(caps, indent=4))
    elif call == ("Host", "getVMList"):
        # API.getVMList and Vm.status(fullStatus=False) at v4.30.46: a ShortStatus per
        # VM, or only the UUIDs with onlyUUID=true (for engine 3.5).
        listed = []
        if stats and "onlyUUID=true" in args[2:]:
            listed = [stats["vmId"]]
        elif stats and "fullStatus=true" in args[2:]:
            listed = [dict(stats, statusTime=str(int(ctx.now() * 1000)))]
        elif stats:
            listed = [{"vmId": stats["vmId"], "status": stats["status"],
                       "statusTime": str(int(ctx.now() * 1000))}]
        ctx.print(py2_json(listed) if ctx.host.os == "el7" else json.dumps(listed, indent=4))
    elif call == ("VM", "getStats"):
        if stats is None or f"vmID={vm.VM_ID}" not in args:
            ctx.error('vdsm-client: Command VM.getStats with args {} failed:\n'
                      '(code=1, message=Virtual machine does not exist)')
            return 1
        ctx.print(json.dumps([stats], indent=4))
    else:
        ctx.error("vdsm-client: the lab answers Host getCapabilities, Host getVMList and VM getStats, "
                  f"not {' '.join(call)}")
        return 1
    return 0


@command("vdsClient", machines=("host",), package="vdsm",
         when=lambda m: vdsm_version(m) < catalog.version_key("4.20"))
async def vds_client(ctx, args):
    """vdsClient -s 0 list [table] | getVdsCaps (vdsm before 4.20)."""
    words = [a for a in args if a not in ("-s", "0")]
    if not words or words[0] not in ("list", "getVdsCaps"):
        ctx.error("vdsClient: the lab answers `vdsClient -s 0 list [table]` and `getVdsCaps`")
        return 1
    if vdsm_refuses(ctx, "Connection to 0:54321 refused"):
        return 1
    if words[0] == "getVdsCaps":
        # client/vdsClient.py at v4.16.30: printDict, `\tKEY = VALUE` sorted by key, the
        # value pprint'ed and continued under its first character.
        for name, value in sorted(capabilities(ctx.host).items()):
            text = py2_pformat(value)
            ctx.print(f"\t{name} = " + text.replace("\n", "\n\t" + " " * len(name + " = ")))
        return 0
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
