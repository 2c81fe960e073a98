"""XML documents in the shapes ovirtsdk4 4.6.3 reads (facts §10).

Only elements the SDK knows are emitted; hrefs and `<link>`s follow the real
API so clients that follow links or print objects see familiar values.
"""
import copy
import xml.etree.ElementTree as ET

API = "/ovirt-engine/api"
XML_TYPE = "application/xml"


class Fault(Exception):
    """A request the engine refuses; rendered as a `<fault>` document."""

    def __init__(self, status: int, detail: str, reason: str = "Operation Failed"):
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def render(root: ET.Element) -> bytes:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body + "\n").encode()


def sub(parent: ET.Element, tag: str, text=None, **attrs) -> ET.Element:
    child = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if isinstance(text, bool):
        child.text = "true" if text else "false"
    elif text is not None:
        child.text = str(text)
    return child


def ref(parent: ET.Element, tag: str, collection: str, obj_id: str | None) -> None:
    if obj_id:
        sub(parent, tag, href=f"{API}/{collection}/{obj_id}", id=obj_id)


def _actions(parent: ET.Element, base: str, names: list[str]) -> None:
    actions = sub(parent, "actions")
    for name in names:
        sub(actions, "link", href=f"{base}/{name}", rel=name)


def fault(reason: str, detail: str) -> ET.Element:
    root = ET.Element("fault")
    sub(root, "detail", detail)
    sub(root, "reason", reason)
    return root


def action(status: str = "complete", **fields) -> ET.Element:
    root = ET.Element("action")
    for tag, value in fields.items():
        sub(root, tag, value)
    sub(root, "status", status)
    return root


def version(parent: ET.Element, v: dict, tag: str = "version", full: str | None = None) -> None:
    el = sub(parent, tag)
    for key in ("build", "major", "minor", "revision"):
        if key in v:
            sub(el, key, v[key])
    if full:
        sub(el, "full_version", full)


def _entry_point() -> ET.Element:
    root = ET.Element("api")
    for rel in ("clusters", "datacenters", "events", "hosts", "vms"):
        sub(root, "link", href=f"{API}/{rel}", rel=rel)
    return root


def api_root(engine_version: dict, full_version: str, now: str, counts: dict) -> ET.Element:
    root = _entry_point()
    info = sub(root, "product_info")
    sub(info, "instance_id", "9f6e1c1a-5d2b-4d54-8d0b-2a1f3c4d5e6f")
    sub(info, "name", "oVirt Engine")
    sub(info, "vendor", "ovirt.org")
    version(info, engine_version, full=full_version)
    summary = sub(root, "summary")
    for key in ("hosts", "vms"):
        el = sub(summary, key)
        sub(el, "active", counts[key + "_active"])
        sub(el, "total", counts[key + "_total"])
    sub(root, "time", now)
    return root


def api_root_v3(engine_version: dict, full_version: str) -> ET.Element:
    """API v3's entry point (oVirt 3.x): the version as attributes."""
    root = _entry_point()
    info = sub(root, "product_info")
    sub(info, "name", "oVirt Engine")
    sub(info, "vendor", "ovirt.org")
    sub(info, "version", major=str(engine_version["major"]), minor=str(engine_version["minor"]),
        build=str(engine_version["build"]), revision=str(engine_version["revision"]))
    sub(info, "full_version", full_version)
    return root


def host_actions(api_v3: tuple[int, int] | None) -> list[str]:
    """The host actions the lab has, per API: v4 and 4.x's v3 all four; 3.6's v3 no
    `upgradecheck` (rsdl_metadata.yaml @ovirt-engine-3.6.9.2 lists only `upgrade`), 3.5's
    neither."""
    if api_v3 is None or api_v3 >= (4, 0):
        return ["activate", "deactivate", "upgrade", "upgradecheck"]
    return ["activate", "deactivate"] + (["upgrade"] if api_v3 >= (3, 6) else [])


def host(h: dict) -> ET.Element:
    """`h` is the engine's view of a host (see Engine.host_view)."""
    base = f"{API}/hosts/{h['id']}"
    root = ET.Element("host", href=base, id=h["id"])
    _actions(root, base, host_actions(None))
    sub(root, "name", h["name"])
    sub(root, "comment", "")
    for rel in ("statistics", "nics", "tags"):
        sub(root, "link", href=f"{base}/{rel}", rel=rel)
    sub(root, "address", h["address"])
    sub(root, "auto_numa_status", "unknown")
    sub(root, "external_status", "ok")
    if h["hosted_engine"] is not None:
        he = sub(root, "hosted_engine")
        for key in ("active", "configured", "global_maintenance", "local_maintenance", "score"):
            sub(he, key, h["hosted_engine"][key])
    os_el = sub(root, "os")
    sub(os_el, "type", "RHEL")
    version(os_el, {"major": h["os_major"]}, full=h["os_full"])
    sub(root, "port", 54321)
    sub(root, "protocol", "stomp")
    spm = sub(root, "spm")
    sub(spm, "priority", 5)
    sub(spm, "status", "spm" if h.get("spm") else "none")
    sub(root, "status", h["status"])
    summary = sub(root, "summary")
    sub(summary, "active", h["vms_active"])
    sub(summary, "migrating", h["vms_migrating"])
    sub(summary, "total", h["vms_active"])
    sub(root, "type", "rhel")
    sub(root, "update_available", h["update_available"])
    if h.get("vdsm_version"):
        v = h["vdsm_version"]
        version(root, {k: getattr(v, k) for k in ("build", "major", "minor", "revision")},
                full=v.full_version)
    ref(root, "cluster", "clusters", h["cluster"])
    return root


def cluster(c: dict) -> ET.Element:
    base = f"{API}/clusters/{c['id']}"
    root = ET.Element("cluster", href=base, id=c["id"])
    _actions(root, base, ["resetemulatedmachine", "syncallnetworks", "upgrade"])
    sub(root, "name", c["name"])
    sub(root, "description", c.get("description", ""))
    for rel in ("affinitygroups", "networks", "permissions"):
        sub(root, "link", href=f"{base}/{rel}", rel=rel)
    if c.get("cpu"):
        sub(sub(root, "cpu"), "type", c["cpu"])
    sub(root, "ha_reservation", False)
    sub(root, "upgrade_in_progress", c["upgrade_in_progress"])
    sub(root, "upgrade_percent_complete", c["upgrade_percent_complete"])
    if c.get("upgrade_correlation_id"):
        sub(root, "upgrade_correlation_id", c["upgrade_correlation_id"])
    version(root, c["version"])
    sub(root, "virt_service", True)
    ref(root, "data_center", "datacenters", c["data_center"])
    policy_id = c.get("scheduling_policy_id")
    if policy_id:
        ref(root, "scheduling_policy", "schedulingpolicies", policy_id)
    return root


def storage_format(level: dict) -> str:
    """A data center's storage format for its level: v3 for 3.1-3.6 (VersionStorageFormatUtil.java
    @ovirt-engine-3.6.9.2) and 4.0, v4 for 4.1 and 4.2, v5 from 4.3 (the same file
    @ovirt-engine-4.3.10.4)."""
    key = (int(level["major"]), int(level["minor"]))
    return "v3" if key < (4, 1) else "v4" if key < (4, 3) else "v5"


def data_center(d: dict, clusters_href: bool = True) -> ET.Element:
    base = f"{API}/datacenters/{d['id']}"
    root = ET.Element("data_center", href=base, id=d["id"])
    sub(root, "name", d["name"])
    sub(root, "description", d.get("description", "The default Data Center"))
    if clusters_href:
        sub(root, "link", href=f"{base}/clusters", rel="clusters")
    sub(root, "local", False)
    sub(root, "quota_mode", "disabled")
    sub(root, "status", "up")
    sub(root, "storage_format", storage_format(d["version"]))
    version(root, d["version"])
    return root


def vm(v: dict) -> ET.Element:
    """`v` is the engine's view of a VM (Engine.vm_view / guest_vm_view): the engine VM or
    a guest VM; `affinity` is ovirtsdk4's VmAffinity value."""
    base = f"{API}/vms/{v['id']}"
    root = ET.Element("vm", href=base, id=v["id"])
    _actions(root, base, ["migrate", "shutdown", "start", "stop"])
    sub(root, "name", v["name"])
    for rel in ("diskattachments", "nics", "statistics", "tags"):
        sub(root, "link", href=f"{base}/{rel}", rel=rel)
    sub(root, "description", v["description"])
    sub(root, "memory", v["memory"])
    sub(root, "origin", v["origin"])
    placement = sub(root, "placement_policy")
    sub(placement, "affinity", v["affinity"])
    if v.get("placement_hosts"):
        hosts = sub(placement, "hosts")
        for host_id in v["placement_hosts"]:
            ref(hosts, "host", "hosts", host_id)
    sub(root, "stateless", False)
    sub(root, "type", "server")
    sub(root, "status", v["status"])
    sub(root, "stop_reason", "")
    ref(root, "cluster", "clusters", v["cluster"])
    ref(root, "host", "hosts", v["host"])
    return root


def event(e: dict) -> ET.Element:
    root = ET.Element("event", href=f"{API}/events/{e['id']}", id=str(e["id"]))
    sub(root, "description", e["description"])
    sub(root, "code", e["code"])
    if e.get("correlation_id"):
        sub(root, "correlation_id", e["correlation_id"])
    sub(root, "custom_id", e.get("custom_id", -1))
    sub(root, "flood_rate", 30)
    sub(root, "index", e["id"])
    sub(root, "origin", e.get("origin", "oVirt"))
    sub(root, "severity", e["severity"])
    sub(root, "time", e["time"])
    ref(root, "cluster", "clusters", e.get("cluster"))
    ref(root, "host", "hosts", e.get("host"))
    ref(root, "vm", "vms", e.get("vm"))
    return root


def collection(tag: str, items: list[ET.Element]) -> ET.Element:
    root = ET.Element(tag)
    root.extend(items)
    return root


def sdk(obj, links: tuple[str, ...] = ()) -> ET.Element:
    """An ovirtsdk4 type rendered by ovirtsdk4's own writer for it (shapes generated from the
    API model), plus the `<link rel>`s to its sub-collections the SDK follows."""
    import ovirtsdk4.writers as writers
    from ovirtsdk4.xml import XmlWriter

    writer_cls = getattr(writers, type(obj).__name__ + "Writer")
    out = XmlWriter(None)
    try:
        writer_cls.write_one(obj, out)
        root = ET.fromstring(out.string())
    finally:
        out.close()
    for rel in links:
        sub(root, "link", href=f"{obj.href}/{rel}", rel=rel)
    for datum in root.iter("datum"):  # the engine writes whole numbers without ".0"
        if datum.text and datum.text.endswith(".0"):
            datum.text = datum.text[:-2]
    return root


def to_json(root: ET.Element):
    """A document as the engine's JSON: a collection `<vms><vm/>..</vms>` is
    `{"vm": [..]}`, attributes and leaves are strings, repeated children (and `link`) lists."""
    def convert(el):
        if len(el) == 0 and not el.attrib:
            return el.text or ""
        out: dict = dict(el.attrib)
        for child in el:
            value = convert(child)
            if child.tag == "link" or child.tag in out and child.tag != "actions":
                existing = out.get(child.tag)
                out[child.tag] = (existing if isinstance(existing, list) else
                                  [] if existing is None else [existing]) + [value]
            else:
                out[child.tag] = value
        return out
    if root.tag not in ("api", "action", "fault") and (
            len(root) == 0 and not root.attrib or all(c.tag == root[0].tag for c in root)
            and root.tag.endswith("s") and not root.attrib):
        singular = root[0].tag if len(root) else root.tag[:-1]
        return {singular: [convert(c) for c in root]} if len(root) else {}
    return convert(root)


# API v3's element order per type: ActionableResource and BaseResource first, then the type's
# own sequence, from backend/manager/modules/restapi/interface/definition/src/main/resources/
# api.xsd @ovirt-engine-3.5.6.2 and @ovirt-engine-3.6.9.2 (v3/api.xsd @ovirt-engine-4.3.10.4
# has 3.6's sequences for these types). Elements a release's type lacks are left out.
_V3_BASE = ("actions", "name", "description", "comment", "creation_status", "link")
_V3_TYPES = {
    (3, 5): {
        "host": ("address", "certificate", "status", "cluster", "port", "type", "storage_manager",
                 "spm", "version", "hardware_information", "power_management", "ksm",
                 "transparent_hugepages", "iscsi", "ssh", "statistics", "cpu", "memory",
                 "max_scheduling_memory", "summary", "override_iptables", "protocol", "os",
                 "hooks", "libvirt_version", "display", "hosted_engine", "kdump_status",
                 "selinux", "auto_numa_status", "numa_supported", "live_snapshot_support"),
        "vm": ("type", "status", "stop_reason", "memory", "cpu", "cpu_shares", "bios", "os",
               "high_availability", "display", "host", "cluster", "template", "instance_type",
               "storage_domain", "start_time", "stop_time", "creation_time", "origin",
               "stateless", "delete_protected", "sso", "rng_device", "console", "timezone",
               "domain", "custom_properties", "payloads", "statistics", "disks",
               "initialization", "nics", "tags", "snapshots", "placement_policy",
               "memory_policy", "guest_info", "quota", "usb", "soundcard_enabled",
               "tunnel_migration", "migration_downtime", "virtio_scsi", "permissions",
               "cpu_profile", "vmpool", "cdroms", "floppies", "reported_devices", "watchdogs",
               "use_latest_template_version", "serial_number", "next_run_configuration_exists",
               "numa_tune_mode"),
        "cluster": ("cpu", "data_center", "memory_policy", "scheduling_policy", "version",
                    "supported_versions", "error_handling", "virt_service", "gluster_service",
                    "threads_as_cores", "tunnel_migration", "trusted_service", "ha_reservation",
                    "optional_reason", "ballooning_enabled", "display", "ksm", "serial_number",
                    "required_rng_sources", "fencing_policy"),
        "data_center": ("storage_type", "local", "storage_format", "version",
                        "supported_versions", "status"),
        "storage_domain": ("data_center", "type", "status", "master", "storage", "host",
                           "format", "destroy", "available", "used", "committed",
                           "storage_format", "import"),
        "event": ("code", "severity", "time", "correlation_id", "user", "vm", "storage_domain",
                  "host", "template", "cluster", "data_center", "origin", "custom_id",
                  "flood_rate", "custom_data"),
        "placement_policy": ("host", "affinity"),
    },
    (3, 6): {
        "host": ("address", "certificate", "status", "external_status", "cluster", "port", "type",
                 "storage_manager", "spm", "version", "hardware_information",
                 "power_management", "ksm", "transparent_hugepages", "iscsi", "ssh",
                 "statistics", "cpu", "memory", "max_scheduling_memory", "summary",
                 "override_iptables", "protocol", "os", "hooks", "libvirt_version", "display",
                 "hosted_engine", "kdump_status", "selinux", "auto_numa_status",
                 "numa_supported", "live_snapshot_support", "katello_errata",
                 "external_host_provider", "update_available", "device_passthrough",
                 "storage_connection_extensions"),
        # VmBase's sequence, then VM's own
        "vm": ("type", "status", "memory", "cpu", "cpu_shares", "bios", "os", "cluster",
               "storage_domain", "creation_time", "origin", "stateless", "delete_protected",
               "high_availability", "display", "sso", "rng_device", "console", "timezone",
               "domain", "usb", "soundcard_enabled", "tunnel_migration", "migration_downtime",
               "virtio_scsi", "serial_number", "start_paused", "cpu_profile", "migration", "io",
               "custom_properties", "custom_emulated_machine", "custom_cpu_model", "time_zone",
               "small_icon", "large_icon", "memory_policy",
               "stop_reason", "host", "template", "instance_type", "start_time", "stop_time",
               "run_once", "payloads", "statistics", "disks", "initialization", "nics", "tags",
               "snapshots", "placement_policy", "guest_info", "quota", "vmpool", "cdroms",
               "floppies", "reported_devices", "watchdogs", "use_latest_template_version",
               "next_run_configuration_exists", "numa_tune_mode", "permissions",
               "external_host_provider", "katello_errata", "guest_time_zone",
               "guest_operating_system"),
        "cluster": ("cpu", "data_center", "memory_policy", "scheduling_policy", "version",
                    "supported_versions", "error_handling", "virt_service", "gluster_service",
                    "threads_as_cores", "tunnel_migration", "trusted_service", "ha_reservation",
                    "optional_reason", "maintenance_reason_required", "ballooning_enabled",
                    "display", "ksm", "serial_number", "required_rng_sources", "fencing_policy",
                    "migration", "management_network"),
        "data_center": ("storage_type", "local", "storage_format", "version",
                        "supported_versions", "status", "mac_pool", "quota_mode"),
        "storage_domain": ("data_center", "data_centers", "type", "status", "external_status",
                           "master", "storage", "host", "format", "destroy", "available",
                           "used", "committed", "storage_format", "wipe_after_delete", "import",
                           "warning_low_space_indicator", "critical_space_action_blocker"),
        "event": ("code", "severity", "time", "correlation_id", "user", "vm", "storage_domain",
                  "host", "template", "cluster", "data_center", "origin", "custom_id",
                  "flood_rate", "custom_data"),
        "placement_policy": ("hosts", "host", "affinity"),
    },
}
# Nested types' sequences (the same in both releases): HostedEngine; Storage is the groups
# BaseStorageConnection then FileStorageConnection (NfsStorage).
_V3_NESTED = {
    "hosted_engine": ("configured", "active", "score", "global_maintenance", "local_maintenance"),
    "storage": ("address", "type", "path", "mount_options", "vfs_type", "nfs_version",
                "nfs_timeo", "nfs_retrans"),
}
# Actions per collection in v3 (rsdl_metadata.yaml @ovirt-engine-3.5.6.2, @ovirt-engine-3.6.9.2);
# hosts: host_actions().
_V3_CLUSTER_ACTIONS = {(3, 5): (), (3, 6): ("resetemulatedmachine",)}
_VERSION_KEYS = ("major", "minor", "build", "revision", "full_version")


def v3_types(release: tuple[int, int]) -> dict:
    """The v3 type sequences a release serves (4.0-4.3's v3 is 3.6's model)."""
    return _V3_TYPES[(3, 5) if release < (3, 6) else (3, 6)]


def _v3_version(el: ET.Element) -> None:
    """v4 `<version><major>4</major>..</version>` -> v3 `<version major="4" .../>` (api.xsd
    `Version`: attributes only)."""
    values = {c.tag: c.text for c in el if c.tag in _VERSION_KEYS and len(c) == 0}
    if not values or len(values) != len(el):
        return
    for child in list(el):
        el.remove(child)
    el.text = None
    for key in _VERSION_KEYS:
        if values.get(key) is not None:
            el.set(key, values[key])


def _v3_entity(el: ET.Element, release: tuple[int, int]) -> None:
    """One host/vm/cluster/... element in its v3 shape, children first."""
    types = v3_types(release)
    tag = el.tag
    if tag == "host":
        spm = el.find("spm")
        if spm is not None:  # HostMapper: storage_manager = (spm status == SPM), with priority
            manager = ET.Element("storage_manager", priority=spm.findtext("priority", "5"))
            manager.text = "true" if spm.findtext("status/state") == "spm" else "false"
            el.insert(list(el).index(spm), manager)
        os_el = el.find("os")
    else:
        os_el = el.find("os") if tag == "vm" else None
    if os_el is not None and os_el.find("type") is not None:  # OperatingSystem's type attribute
        os_el.set("type", os_el.find("type").text or "")
        os_el.remove(os_el.find("type"))
    if tag == "cluster":
        cpu = el.find("cpu")
        if cpu is not None and cpu.find("type") is not None:  # ClusterMapper: cpu.setId(name)
            cpu.set("id", cpu.find("type").text or "")
            cpu.remove(cpu.find("type"))
        actions = el.find("actions")
        if actions is not None:
            allowed = _V3_CLUSTER_ACTIONS[(3, 5) if release < (3, 6) else (3, 6)]
            for link in list(actions):
                if link.get("rel") not in allowed:
                    actions.remove(link)
            if len(actions) == 0:
                el.remove(actions)
    if tag == "storage_domain" and el.find("data_centers/data_center") is not None \
            and el.find("data_center") is None:
        # StorageDomainMapper: `data_center` (kept for compatibility), 3.6 also `data_centers`
        el.append(copy.deepcopy(el.find("data_centers/data_center")))
    if tag == "vm":  # disk attachments are v4's (v3 has `disks`, which the lab does not serve)
        for link in el.findall("link[@rel='diskattachments']"):
            el.remove(link)
    if tag == "placement_policy":
        _v3_order(el, types["placement_policy"], base=False)
        return
    for nested, sequence in _V3_NESTED.items():
        for child in el.findall(nested):
            _v3_order(child, sequence, base=False)
    _v3_order(el, types[tag], base=True)


def _v3_order(el: ET.Element, sequence: tuple, base: bool) -> None:
    order = (_V3_BASE if base else ()) + sequence
    rank = {name: i for i, name in enumerate(order)}
    kept = [c for c in el if c.tag in rank]
    kept.sort(key=lambda c: rank[c.tag])  # stable: repeated `link`s keep their order
    for child in list(el):
        el.remove(child)
    el.extend(kept)


def to_v3(root: ET.Element, release: tuple[int, int]) -> ET.Element:
    """A v4 document in API v3's shapes (api.xsd of the v3 model: @ovirt-engine-3.5.6.2,
    @ovirt-engine-3.6.9.2, and v3/api.xsd @ovirt-engine-4.3.10.4): every `status` is a
    `Status` (`<status><state>up</state></status>`, `external_status` too); a `Version` has
    attributes, an `os` its `type` attribute, a cluster's `cpu` the type as its `id`
    (ClusterMapper.java), a host `storage_manager` next to `spm` (HostMapper.java); hosts,
    VMs, clusters, data centers, storage domains and events keep only the elements their
    v3 type has, in its order (a host has `update_available` from 3.6 on), and only the
    actions the release has. Statistics, NICs, disks and tags keep their v4 shape (the
    lab's simplification)."""
    root = copy.deepcopy(root)
    types = v3_types(release)
    for parent in root.iter():
        for child in list(parent):
            if child.tag in ("status", "external_status") and len(child) == 0:
                state, child.text = child.text, None
                sub(child, "state", state)
            if parent.tag == "actions" and "/hosts/" in child.get("href", ""):
                if child.get("rel") not in host_actions(release):
                    parent.remove(child)
    for el in list(root.iter()):
        if el.tag in ("version", "libvirt_version") and len(el):
            _v3_version(el)
    entities = [el for el in root.iter() if el.tag in types and el.tag != "placement_policy"
                and (el.get("href") or el is root) and len(el) > 0]
    for el in root.iter("placement_policy"):
        _v3_entity(el, release)
    for el in reversed(entities):
        _v3_entity(el, release)
    return root


def rebase(root: ET.Element, prefix: str) -> ET.Element:
    """Every href under API moved under `prefix`: the legacy restapi war at /api (3.x) builds
    its links from the request's base URI (LinkHelper.java, `uriInfo.getBaseUri()`)."""
    for el in root.iter():
        href = el.get("href")
        if href and href.startswith(API):
            el.set("href", prefix + href[len(API):])
    return root
