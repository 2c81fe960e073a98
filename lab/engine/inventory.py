"""What an admin's tooling reads besides hosts and VMs: storage domains, disks, disk
attachments, NICs, statistics, tags, a host's vdsm `version` and `spm`.

These documents are built as ovirtsdk4 types and rendered by ovirtsdk4's own writers
(`ovirtsdk4.writers`, generated from the API model), so every element has the shape the
SDK reads; `documents.sdk` adds the hrefs and `<link>`s the writers leave out. The
hand-written documents of documents.py predate this and keep their shapes.

The hosted-engine disks are the four of ovirt-engine's
`StorageConstants.HOSTED_ENGINE_DISKS_ALIASES` (he_virtio_disk, he_sanlock, he_metadata,
HostedEngineConfigurationImage) on the domain `hosted_storage`
(ovirt-hosted-engine-setup's default `OVEHOSTED_STORAGE/storageDomainName`); sizes,
addresses and statistics' values are the lab's own.
"""
import uuid

import ovirtsdk4.types as t

from .documents import API

GIB = 1024 ** 3
_NS = uuid.UUID("6a1e4a2c-0f5b-4a57-9a43-5f0d5e0c7a11")


def lab_id(*parts: str) -> str:
    """A stable id for a static lab object (the same across lab restarts)."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


def href(obj, path: str):
    obj.href = f"{API}/{path}"
    return obj


def ref(cls, collection: str, obj_id: str):
    return href(cls(id=obj_id), f"{collection}/{obj_id}")


HE_DOMAIN, DATA_DOMAIN = "hosted_storage", "data"
# name -> (export path, total GiB, used GiB)
DOMAINS = {HE_DOMAIN: ("/exports/hosted_engine", 99, 61), DATA_DOMAIN: ("/exports/data", 499, 37)}
# The hosted-engine disks: alias -> (size, attached to the engine VM as its boot disk)
HE_DISKS = {"he_virtio_disk": (51 * GIB, True), "he_sanlock": (GIB, False),
            "he_metadata": (128 * 1024 ** 2, False), "HostedEngineConfigurationImage": (GIB, False)}


def storage_domains(dc_id: str | None, storage_format: str = "v5") -> list[t.StorageDomain]:
    """Both domains attached to the data center (no top-level `status`: the engine gives it
    only for unattached domains; it is per data center), in the data center's format."""
    out = []
    for name, (path, total, used) in DOMAINS.items():
        sd_id = lab_id("sd", name)
        sd = t.StorageDomain(
            id=sd_id, name=name, description="", comment="", type=t.StorageDomainType.DATA,
            master=name == HE_DOMAIN, available=(total - used) * GIB, used=used * GIB,
            committed=used * GIB, backup=False, block_size=512, discard_after_delete=False,
            supports_discard=False, wipe_after_delete=False, warning_low_space_indicator=10,
            critical_space_action_blocker=5, external_status=t.ExternalStatus.OK,
            storage_format=t.StorageFormat(storage_format),
            storage=t.HostStorage(type=t.StorageType.NFS, address="storage.lab.local",
                                  path=path),
            data_centers=[ref(t.DataCenter, "datacenters", dc_id)] if dc_id else None)
        out.append(href(sd, f"storagedomains/{sd_id}"))
    return out


def _disk(disk_id: str, name: str, size: int, domain: str, description: str) -> t.Disk:
    sd_id = lab_id("sd", domain)
    disk = t.Disk(
        id=disk_id, name=name, alias=name, description=description,
        provisioned_size=size, actual_size=size // 4, total_size=size // 4,
        format=t.DiskFormat.RAW, sparse=True, shareable=False, propagate_errors=False,
        wipe_after_delete=False, status=t.DiskStatus.OK, storage_type=t.DiskStorageType.IMAGE,
        content_type=t.DiskContentType.DATA, image_id=lab_id("image", disk_id),
        storage_domains=[ref(t.StorageDomain, "storagedomains", sd_id)])
    return href(disk, f"disks/{disk_id}")


def disks(guest_vms: list[dict]) -> list[t.Disk]:
    out = [_disk(lab_id("disk", alias), alias, size, HE_DOMAIN, "Hosted-Engine disk")
           for alias, (size, _) in HE_DISKS.items()]
    out += [_disk(lab_id("disk", vm["id"]), f"{vm['name']}_Disk1", 20 * GIB, DATA_DOMAIN, "")
            for vm in guest_vms]
    return out


def boot_disk_id(vm_id: str, engine_vm_id: str) -> str:
    return lab_id("disk", "he_virtio_disk") if vm_id == engine_vm_id else lab_id("disk", vm_id)


def disk_attachments(vm_id: str, engine_vm_id: str) -> list[t.DiskAttachment]:
    disk_id = boot_disk_id(vm_id, engine_vm_id)
    attachment = t.DiskAttachment(
        id=disk_id, active=True, bootable=True, interface=t.DiskInterface.VIRTIO,
        logical_name="/dev/vda", pass_discard=False, read_only=False,
        uses_scsi_reservation=False, disk=ref(t.Disk, "disks", disk_id),
        vm=ref(t.Vm, "vms", vm_id))
    return [href(attachment, f"vms/{vm_id}/diskattachments/{disk_id}")]


def _mac(seed: str) -> str:
    raw = uuid.uuid5(_NS, seed).bytes
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in raw[:3])


def vm_nics(vm_id: str, engine_vm_id: str) -> list[t.Nic]:
    """The engine VM's NIC is `vnet0` (the name hosted-engine setup gives it); guests' `nic1`."""
    name = "vnet0" if vm_id == engine_vm_id else "nic1"
    nic_id = lab_id("nic", vm_id)
    nic = t.Nic(id=nic_id, name=name, interface=t.NicInterface.VIRTIO, linked=True,
                plugged=True, mac=t.Mac(address=_mac(vm_id)), vm=ref(t.Vm, "vms", vm_id))
    return [href(nic, f"vms/{vm_id}/nics/{nic_id}")]


def host_nics(host: dict) -> list[t.HostNic]:
    nic_id = lab_id("hostnic", host["id"])
    nic = t.HostNic(
        id=nic_id, name="eth0", boot_protocol=t.BootProtocol.DHCP, bridged=False, mtu=1500,
        speed=1000000000, status=t.NicStatus.UP, mac=t.Mac(address=_mac(host["id"])),
        ip=t.Ip(address=host["address"], netmask="255.255.255.0", version=t.IpVersion.V4),
        host=ref(t.Host, "hosts", host["id"]))
    return [href(nic, f"hosts/{host['id']}/nics/{nic_id}")]


def _stat(owner, path: str, name: str, description: str, unit, datum, kind=t.StatisticKind.GAUGE):
    value_type = t.ValueType.DECIMAL if isinstance(datum, float) else t.ValueType.INTEGER
    stat = t.Statistic(id=lab_id("stat", path, name), name=name, description=description,
                       kind=kind, type=value_type, unit=unit,
                       values=[t.Value(datum=float(datum))], **owner)
    return href(stat, f"{path}/statistics/{stat.id}")


def host_statistics(host: dict, running_vms: int) -> list[t.Statistic]:
    owner, path, b, pct = ({"host": ref(t.Host, "hosts", host["id"])}, f"hosts/{host['id']}",
                           t.StatisticUnit.BYTES, t.StatisticUnit.PERCENT)
    total, used = 32 * GIB, (4 + 16 * running_vms) * GIB
    return [
        _stat(owner, path, "memory.total", "Total memory", b, total),
        _stat(owner, path, "memory.used", "Used memory", b, used),
        _stat(owner, path, "memory.free", "Free memory", b, total - used),
        _stat(owner, path, "memory.shared", "Shared memory", b, 0),
        _stat(owner, path, "memory.buffers", "I/O buffers", b, 0),
        _stat(owner, path, "memory.cached", "OS caches", b, 0),
        _stat(owner, path, "swap.total", "Total swap", b, 8 * GIB),
        _stat(owner, path, "swap.free", "Free swap", b, 8 * GIB),
        _stat(owner, path, "swap.used", "Used swap", b, 0),
        _stat(owner, path, "swap.cached", "Swap also cached in memory", b, 0),
        _stat(owner, path, "ksm.cpu.current", "KSM CPU usage", pct, 0),
        _stat(owner, path, "cpu.current.user", "User CPU usage", pct, 2 + 5 * running_vms),
        _stat(owner, path, "cpu.current.system", "System CPU usage", pct, 1),
        _stat(owner, path, "cpu.current.idle", "Idle CPU usage", pct, 97 - 5 * running_vms),
        _stat(owner, path, "cpu.load.avg.5m", "CPU 5 minute load average", t.StatisticUnit.NONE,
              0.1 * running_vms),
        _stat(owner, path, "boot.time", "Boot time of the machine", t.StatisticUnit.NONE, 0),
    ]


def vm_statistics(vm_id: str, memory: int, up: bool) -> list[t.Statistic]:
    owner, path, b, pct = ({"vm": ref(t.Vm, "vms", vm_id)}, f"vms/{vm_id}",
                           t.StatisticUnit.BYTES, t.StatisticUnit.PERCENT)
    return [
        _stat(owner, path, "memory.installed", "Total memory configured", b, memory),
        _stat(owner, path, "memory.used", "Memory used (agent)", b, memory // 2 if up else 0),
        _stat(owner, path, "memory.free", "Memory free (agent)", b, memory // 2 if up else 0),
        _stat(owner, path, "cpu.current.guest", "CPU used by guest", pct, 5.0 if up else 0.0),
        _stat(owner, path, "cpu.current.hypervisor", "CPU overhead", pct, 0.0),
        _stat(owner, path, "cpu.current.total", "Total CPU used", pct, 5.0 if up else 0.0),
        _stat(owner, path, "migration.progress", "Migration Progress", pct, 0),
        _stat(owner, path, "network.current.total", "Total network used", pct, 0.0),
        _stat(owner, path, "elapsed.time", "Elapsed VM runtime", t.StatisticUnit.SECONDS,
              3600 if up else 0, kind=t.StatisticKind.COUNTER),
    ]


def tags(names: list[str], path: str) -> list[t.Tag]:
    """`path` is the tags' collection: `tags`, `hosts/ID/tags` or `vms/ID/tags`. The engine
    always has the `root` tag, parent of every top-level tag."""
    out = []
    for name in names:
        tag = t.Tag(id=lab_id("tag", name), name=name,
                    description="root" if name == "root" else "")
        if name != "root":
            tag.parent = ref(t.Tag, "tags", lab_id("tag", "root"))
        out.append(href(tag, f"{path}/{tag.id}"))
    return out


def host_version(vdsm_version: str, os_tag: str) -> t.Version:
    """The host's vdsm version as the engine reports it (`vdsm-4.30.46-1.el7`)."""
    numbers = [int(n) for n in vdsm_version.split("-")[0].split(".")[:4]] + [0, 0, 0, 0]
    return t.Version(major=numbers[0], minor=numbers[1], build=numbers[2], revision=numbers[3],
                     full_version=f"vdsm-{vdsm_version}.{os_tag}")
