"""API v3 as 3.5, 3.6 and 4.3 (`Version: 3`) serve it, fetched with plain HTTP (ovirtsdk4
does not speak v3), and 3.x's host deactivation of the engine VM's host. Each test cites the
oVirt/ovirt-engine (or ovirt-hosted-engine-ha) file and tag it follows."""
import base64
import ssl
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from tests.lab.conftest import release_lab

lab35 = release_lab(hosts=2, engine_version="3.5")
lab36 = release_lab(hosts=2, engine_version="3.6")
lab43 = release_lab(hosts=1, engine_version="4.3")
lab45 = release_lab(hosts=1, engine_version="4.5")

UNKNOWN_REASON = " No reason was returned for this operation failure. See logs for further details."


def fetch(lab, path, *, auth=True, v3_header=False, root=None):
    """GET `path` under the engine's address (root: the manifest's API URL's path by default);
    returns (status, headers, text)."""
    engine = lab.manifest["engine"]
    base = engine["url"]
    if root is not None:
        base = base[:base.index("/ovirt-engine/api")] + root
    headers = {}
    if auth:
        token = base64.b64encode(f"{engine['username']}:{engine['password']}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if v3_header:
        headers["Version"] = "3"
    context = ssl.create_default_context(cafile=engine["ca_file"])
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def post(lab, path, body="<action/>", root=None, full=False):
    """POST with basic auth; the status (with `full`: status, headers, text)."""
    engine = lab.manifest["engine"]
    base = engine["url"]
    if root is not None:
        base = base[:base.index("/ovirt-engine/api")] + root
    token = base64.b64encode(f"{engine['username']}:{engine['password']}".encode()).decode()
    request = urllib.request.Request(base + path, data=body.encode(), method="POST",
                                     headers={"Authorization": f"Basic {token}",
                                              "Content-Type": "application/xml"})
    context = ssl.create_default_context(cafile=engine["ca_file"])
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        if full:
            return response.status, response.headers, response.read().decode()
        return response.status


def v3(lab, path, root=None):
    """A document of a 3.x engine (API v3 is all it has) as an element."""
    status, _headers, text = fetch(lab, path, root=root)
    assert status == 200, text
    return ET.fromstring(text)


def tags(el):
    return [c.tag for c in el]


def in_order(children, sequence):
    """The children's tags appear in the xsd sequence's order (and all of them are in it)."""
    ranks = [sequence.index(tag) for tag in children]
    return ranks == sorted(ranks)


@pytest.mark.parametrize("lab_name", ["lab35", "lab36"])
def test_3x_serves_the_api_at_ovirt_engine_api_and_at_api(request, lab_name):
    """Makefile @ovirt-engine-3.5.6.2 and @ovirt-engine-3.6.9.2 install restapi.war
    (`<context-root>/ovirt-engine/api`, its jboss-web.xml) and a copy, legacy_restapi.war, whose
    context root is sed'ed to `/api` and realm to `Basic realm="ENGINE"`; ENGINE_APPS
    (ovirt-engine.conf.in) deploys both and Apache proxies `^/(ovirt-engine($|/)|api($|/)|..)`
    (ovirt-engine-proxy.conf.v2.in). Links are built from the request's base URI
    (LinkHelper.java, `uriInfo.getBaseUri()`)."""
    lab = request.getfixturevalue(lab_name)
    legacy = v3(lab, "/hosts", root="/api")
    current = v3(lab, "/hosts")
    assert [h.get("id") for h in legacy] == [h.get("id") for h in current] and len(legacy) == 2
    assert all(h.get("href") == f"/api/hosts/{h.get('id')}" for h in legacy)
    assert all(h.get("href").startswith("/ovirt-engine/api/hosts/") for h in current)
    assert legacy[0].find("cluster").get("href").startswith("/api/clusters/")
    assert legacy[0].find("status/state").text == "up"
    root = v3(lab, "", root="/api")
    assert {link.get("href") for link in root.iter("link")} >= {"/api/hosts", "/api/vms"}
    host_id = legacy[0].get("id")
    assert v3(lab, f"/hosts/{host_id}/statistics", root="/api") is not None
    status, headers, text = post(lab, "/clusters", root="/api", full=True, body=(
        "<cluster><name>zz-legacy</name><data_center><name>Default</name></data_center>"
        "</cluster>"))
    created = ET.fromstring(text)
    assert status == 201 and headers["Location"] == f"/api/clusters/{created.get('id')}"
    assert created.get("href") == headers["Location"]
    status, headers, _ = fetch(lab, "/hosts", auth=False, root="/api")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="ENGINE"'
    status, headers, _ = fetch(lab, "/hosts", auth=False)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="RESTAPI"'


@pytest.mark.parametrize("lab_name", ["lab43", "lab45"])
def test_4x_has_no_api_path(request, lab_name):
    """4.x ships no legacy_restapi.war (ENGINE_APPS="engine.ear restapi.war apidoc.war",
    ovirt-engine.conf.in @ovirt-engine-4.0.7, @4.3.10.4, @4.5.6) and Apache proxies only
    `^/ovirt-engine($|/)` (ovirt-engine-proxy.conf.v2.in, same tags): `/api` is httpd's own 404."""
    lab = request.getfixturevalue(lab_name)
    status, headers, text = fetch(lab, "/hosts", root="/api")
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert "The requested URL /api/hosts was not found on this server." in text
    assert fetch(lab, "/hosts")[0] == 200


# The v3 sequences the tests check against (api.xsd @ovirt-engine-3.5.6.2 and 3.6.9.2,
# restapi/interface/definition/src/main/resources/; 4.3's v3/api.xsd has 3.6's).
BASE = ["actions", "name", "description", "comment", "link"]
HOST_35 = BASE + ["address", "status", "cluster", "port", "type", "storage_manager", "spm",
                  "version", "summary", "protocol", "os", "hosted_engine", "auto_numa_status"]
HOST_36 = BASE + ["address", "status", "external_status", "cluster", "port", "type",
                  "storage_manager", "spm", "version", "summary", "protocol", "os",
                  "hosted_engine", "auto_numa_status", "update_available"]
VM_35 = BASE + ["type", "status", "stop_reason", "memory", "host", "cluster", "origin",
                "stateless", "placement_policy"]
VM_36 = BASE + ["type", "status", "memory", "cluster", "origin", "stateless", "stop_reason",
                "host", "placement_policy"]
CLUSTER = BASE + ["cpu", "data_center", "scheduling_policy", "version", "virt_service",
                  "ha_reservation"]
DATA_CENTER = BASE + ["local", "storage_format", "version", "status", "quota_mode"]
DOMAIN_35 = BASE + ["data_center", "type", "status", "master", "storage", "available", "used",
                    "committed", "storage_format"]
DOMAIN_36 = BASE + ["data_center", "data_centers", "type", "status", "external_status",
                    "master", "storage", "available", "used", "committed", "storage_format",
                    "wipe_after_delete", "warning_low_space_indicator",
                    "critical_space_action_blocker"]
EVENT = BASE + ["code", "severity", "time", "correlation_id", "user", "vm", "host", "cluster",
                "data_center", "origin", "custom_id", "flood_rate"]


def v3_documents(lab, header):
    def get(path):
        status, _h, text = fetch(lab, path, v3_header=header)
        assert status == 200, text
        return ET.fromstring(text)
    return get


@pytest.mark.parametrize("lab_name, release", [("lab35", (3, 5)), ("lab36", (3, 6)),
                                               ("lab43", (4, 3))])
def test_v3_documents_have_the_shapes_of_the_release_api_xsd(request, lab_name, release):
    """What an admin's tooling reads from API v3, in the types of api.xsd @ovirt-engine-3.5.6.2
    and @ovirt-engine-3.6.9.2 (v3/api.xsd @ovirt-engine-4.3.10.4 for 4.3 with `Version: 3`):
    `Status` is `<state>`, `Version` attributes, `OperatingSystem` its `type` attribute,
    Host's `storage_manager` (HostMapper.java) and `hosted_engine` without all_content
    (BackendHostsResource.addHostedEngineIfConfigured), Cluster's `cpu id` (ClusterMapper.java),
    storage format v3 for 3.x levels (VersionStorageFormatUtil.java @ovirt-engine-3.6.9.2),
    no v4-only elements (Event `index`, Cluster `upgrade_in_progress`, StorageDomain `backup`),
    each type's children in its xsd order."""
    lab = request.getfixturevalue(lab_name)
    get = v3_documents(lab, header=release >= (4, 0))
    old = release < (3, 6)

    hosts = get("/hosts")
    assert len(hosts) >= 1
    for host in hosts:
        assert in_order(tags(host), HOST_35 if old else HOST_36), tags(host)
        assert host.find("status/state").text == "up"
        manager = host.find("storage_manager")
        assert manager.get("priority") == "5" and manager.text in ("true", "false")
        assert (manager.text == "true") == (host.find("spm/status/state").text == "spm")
        assert host.find("os").get("type") == "RHEL" and host.find("os/type") is None
        assert host.find("os/version").get("major") in ("6", "7") and len(host.find("os/version")) == 0
        assert tags(host.find("hosted_engine")) == [
            "configured", "active", "score", "global_maintenance", "local_maintenance"]
        assert (host.find("update_available") is None) == old
        assert (host.find("external_status/state") is None) == old
        version = host.find("version")
        assert version.get("major") == "4" and version.get("full_version", "").startswith("vdsm-")
        assert len(version) == 0

    vms = get("/vms")
    engine_vm = next(vm for vm in vms if vm.findtext("name") == "HostedEngine")
    assert engine_vm.find("status/state").text == "up"
    assert in_order(tags(engine_vm), VM_35 if old else VM_36), tags(engine_vm)
    assert engine_vm.find("placement_policy/affinity") is not None
    assert tags(engine_vm.find("placement_policy"))[-1] == "affinity"
    links = {link.get("rel") for link in engine_vm.iterfind("link")}
    assert "nics" in links and "diskattachments" not in links  # v4's (v3 has `disks`)

    clusters = get("/clusters")
    cluster = clusters[0]
    assert in_order(tags(cluster), CLUSTER), tags(cluster)
    assert cluster.find("version").get("major") == str(release[0])
    assert cluster.find("version").get("minor") == str(release[1]) and len(cluster.find("version")) == 0
    assert cluster.find("cpu") is None or cluster.find("cpu").get("id")
    assert cluster.find("upgrade_in_progress") is None
    actions = [link.get("rel") for link in cluster.iterfind("actions/link")]
    assert actions == ([] if old else ["resetemulatedmachine"])

    dc = get("/datacenters")[0]
    assert in_order(tags(dc), DATA_CENTER), tags(dc)
    assert dc.find("status/state").text == "up"
    assert dc.findtext("storage_format") == ("v3" if release < (4, 1) else "v5")
    assert dc.find("version").get("major") == str(release[0])

    domains = get("/storagedomains")
    assert {d.findtext("name") for d in domains} == {"hosted_storage", "data"}
    for domain in domains:
        assert domain.find("data_center").get("id") == dc.get("id")
        assert tags(domain.find("storage"))[:3] == ["address", "type", "path"]
        assert in_order(tags(domain), DOMAIN_35 if old else DOMAIN_36), tags(domain)
        assert domain.findtext("storage/type") == "nfs" and domain.find("backup") is None
        assert domain.findtext("storage_format") == ("v3" if release < (4, 1) else "v5")
        assert domain.find("status") is None  # attached: its status is per data center
    attached = get(f"/datacenters/{dc.get('id')}/storagedomains")
    assert {d.find("status/state").text for d in attached} == {"active"}

    events = get("/events")
    assert len(events) > 0
    for event in events:
        assert event.find("index") is None and event.findtext("code")
        assert in_order(tags(event), EVENT), tags(event)


def events(lab, code):
    return [e for e in v3(lab, "/events") if e.findtext("code") == str(code)]


def test_3_6_deactivation_lets_the_ha_agent_migrate_the_engine_vm(lab36):
    """MaintenanceVdsCommand.migrateAllVms @ovirt-engine-3.6.9.2 skips the engine VM ("The
    Hosted Engine vm is migrated by the HA agent"): the engine only sets HA LOCAL maintenance;
    HA 1.x's EngineUp then goes LocalMaintenanceMigrateVm and migrates it itself (agent/states.py
    @v1.3.5.8). So no engine migration events (62, 67, 63), and the 600 of 3.6 always names a
    reason: AuditLogDirector's UNKNOWN_REASON_VALUE when none was given (AuditLogMessages
    .properties, AuditLogDirector.java @ovirt-engine-3.6.9.2; 620 does not exist there)."""
    vm_host = lab36.state()["engine_vm"]["host"]
    lab36.admin("host-maintenance", host=vm_host)
    lab36.wait_for(lambda s: s["engine"]["hosts"][vm_host]["status"] == "maintenance",
                   sim_seconds=900)
    state = lab36.state()
    assert state["engine_vm"]["host"] != vm_host
    assert any(t.startswith("EngineUp-LocalMaintenanceMigrateVm")
               for t in state["hosts"][vm_host]["transitions"])
    assert not any(events(lab36, code) for code in (62, 63, 67))
    [announced] = events(lab36, 600)
    assert announced.findtext("description") == (
        f"Host {vm_host} was switched to Maintenance mode by admin@internal-authz "
        f"(Reason: {UNKNOWN_REASON}).")
    assert not events(lab36, 620)


def test_3_5_deactivation_with_no_host_for_the_engine_vm_hangs_preparing(lab35):
    """MaintenanceNumberOfVdssCommand @ovirt-engine-3.5.6.2 has no hosted-engine validation: it
    sets PreparingForMaintenance and runs MaintenanceVds, whose migrateAllVms finds no host the
    scheduler accepts for the engine VM and fails: USER_VDS_MAINTENANCE_MIGRATION_FAILED (602,
    AuditLogMessages.properties). The LOCAL maintenance it set sends HA 1.2's agent to
    LocalMaintenanceMigrateVm, which has no destination: EngineStop, whose local-maintenance
    check leaves it in LocalMaintenance with the VM running (agent/states.py
    @ovirt-hosted-engine-ha-1.2.10). The host stays PreparingForMaintenance; activating it is
    the way out."""
    state = lab35.state()
    vm_host = state["engine_vm"]["host"]
    other = next(name for name in state["engine"]["hosts"] if name != vm_host)
    lab35.admin("host-maintenance", host=other)
    lab35.wait_for(lambda s: s["engine"]["hosts"][other]["status"] == "maintenance",
                   sim_seconds=600)
    lab35.admin("host-maintenance", host=vm_host)
    lab35.wait_for(lambda s: s["hosts"][vm_host]["agent_state"] == "LocalMaintenance",
                   sim_seconds=300)
    time.sleep(2)  # two more simulated minutes: nothing moves
    state = lab35.state()
    assert state["engine"]["hosts"][vm_host]["status"] == "preparing_for_maintenance"
    assert state["engine_vm"]["host"] == vm_host and state["engine_vm"]["status"] == "up"
    transitions = state["hosts"][vm_host]["transitions"]
    assert any(t.startswith("LocalMaintenanceMigrateVm-") for t in transitions), transitions
    [failed] = events(lab35, 602)
    assert failed.findtext("severity") == "warning"
    assert failed.findtext("description") == (
        f"Host {vm_host} cannot change into maintenance mode - not all Vms have been migrated "
        "successfully. Consider manual intervention: stopping/migrating Vms: HostedEngine "
        "(User: admin@internal-authz).")
    host_id = next(h.get("id") for h in v3(lab35, "/hosts") if h.findtext("name") == vm_host)
    assert post(lab35, f"/hosts/{host_id}/activate") == 200
    lab35.wait_for(lambda s: s["engine"]["hosts"][vm_host]["status"] == "up", sim_seconds=300)
    [announced] = events(lab35, 600)  # the other host's, 3.5's text has no reason
    assert announced.findtext("description") == (
        f"Host {other} was switched to Maintenance mode by admin@internal-authz.")
