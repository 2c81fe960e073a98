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
    sub(root, "storage_format", "v5")
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


def to_v3(root: ET.Element, release: tuple[int, int]) -> ET.Element:
    """A v4 document in API v3's shapes (api.xsd of the v3 model: @ovirt-engine-3.5.6.2,
    @ovirt-engine-3.6.9.2, and v3/api.xsd @ovirt-engine-4.3.10.4): every `status` is a
    `Status` (`<status><state>up</state></status>`); a host has `update_available` from 3.6
    on (HostMapper.java @ovirt-engine-3.6.9.2), and only the actions its release has. Other
    elements keep their v4 shape (the lab's simplification)."""
    root = copy.deepcopy(root)
    for parent in root.iter():
        for child in list(parent):
            if child.tag == "status" and len(child) == 0:
                state, child.text = child.text, None
                sub(child, "state", state)
            if parent.tag == "host" and child.tag == "update_available" and release < (3, 6):
                parent.remove(child)
            if parent.tag == "actions" and "/hosts/" in child.get("href", ""):
                if child.get("rel") not in host_actions(release):
                    parent.remove(child)
    return root
