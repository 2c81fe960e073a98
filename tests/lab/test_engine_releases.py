"""The lab engine's answers per release, each test citing the ovirt-engine source it follows
(the release tags of oVirt/ovirt-engine)."""
import json
import time

import pytest

from lab.errors import LabError
from tests.lab.conftest import engine_request, release_lab

lab35 = release_lab(hosts=3, engine_version="3.5")
lab43 = release_lab(hosts=3, engine_version="4.3")
lab45 = release_lab(hosts=3, engine_version="4.5")
lab36 = release_lab(hosts=1, engine_version="3.6")

OLD_TEXT = ("Cannot switch the Host(s) to Maintenance mode.\n"
            "There are no available hosts capable of running the engine VM.")
NEW_TEXT = ("Cannot switch the Host(s) to Maintenance mode.\n"
            "None of the hosts capable of running the engine VM has score more than 0 and is in "
            "Up state.")


def engine_status(lab, host):
    return lab.state()["engine"]["hosts"][host]["status"]


def others_to_maintenance(lab):
    """Every host but the engine VM's into maintenance; returns the engine VM's host."""
    vm_host = lab.state()["engine_vm"]["host"]
    for name in lab.state()["engine"]["hosts"]:
        if name != vm_host:
            lab.admin("host-maintenance", host=name)
            lab.wait_for(lambda s, n=name: s["engine"]["hosts"][n]["status"] == "maintenance",
                         sim_seconds=600)
    return vm_host


@pytest.mark.parametrize("lab_name, text", [("lab43", OLD_TEXT), ("lab45", NEW_TEXT)])
def test_no_host_can_run_the_engine_vm_is_refused_with_the_release_text(request, lab_name, text):
    """VDS_CANNOT_MAINTENANCE_NO_ALTERNATE_HOST_FOR_HOSTED_ENGINE, AppErrors.properties
    (frontend/webadmin/modules/frontend/src/main/resources/org/ovirt/engine/ui/frontend/):
    "There are no available hosts ..." @ovirt-engine-4.3.10.4 (and 4.0.7, 4.1.9),
    "None of the hosts ... score more than 0 ..." @ovirt-engine-4.4.10 and @ovirt-engine-4.5.6;
    both raised by MaintenanceNumberOfVdssCommand.java as a 409 (ErrorType.CONFLICT)."""
    lab = request.getfixturevalue(lab_name)
    vm_host = others_to_maintenance(lab)
    with pytest.raises(LabError) as refused:
        lab.admin("host-maintenance", host=vm_host)
    assert text in str(refused.value)
    other = OLD_TEXT if text == NEW_TEXT else NEW_TEXT
    assert other.split("\n")[1] not in str(refused.value)
    assert engine_status(lab, vm_host) == "up"


def test_a_3x_engine_does_not_refuse_and_the_host_hangs_preparing(lab35):
    """ovirt-engine @ovirt-engine-3.6.9.2 has no VDS_CANNOT_MAINTENANCE_NO_ALTERNATE_HOST_FOR_
    HOSTED_ENGINE: the deactivation is accepted and, with nowhere to migrate the engine VM,
    the host stays in PreparingForMaintenance (MaintenanceVdsCommand.migrateAllVms
    @ovirt-engine-3.5.6.2; event 602 and the agent's side: tests/lab/test_engine_v3.py)."""
    vm_host = others_to_maintenance(lab35)
    lab35.admin("host-maintenance", host=vm_host)
    time.sleep(2)  # 2 simulated minutes at the fixture's speed
    assert engine_status(lab35, vm_host) == "preparing_for_maintenance"
    assert lab35.state()["engine_vm"]["host"] == vm_host


def v3_request(lab, path, version_header=False, method="GET"):
    """A request with basic auth, `Version: 3` if asked; (status, text)."""
    import base64
    import ssl
    import urllib.error
    import urllib.request

    engine = lab.manifest["engine"]
    token = base64.b64encode(f"{engine['username']}:{engine['password']}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/xml"}
    if version_header:
        headers["Version"] = "3"
    request = urllib.request.Request(engine["url"] + path, headers=headers, method=method,
                                     data=b"<action/>" if method == "POST" else None)
    context = ssl.create_default_context(cafile=engine["ca_file"])
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def host_id(text):
    import re
    return re.search(r'<host href="[^"]+" id="([^"]+)"', text).group(1)


def test_a_3_5_engine_answers_api_v3_documents(lab35):
    """API v3 @ovirt-engine-3.5.6.2 (restapi api.xsd): `Status` is `<status><state>`; no
    `update_available` in Host; no `upgrade` or `upgradecheck` action (rsdl_metadata.yaml)."""
    status, text = v3_request(lab35, "/hosts")
    assert status == 200
    import re
    states = re.findall(r"<status>\s*<state>(\w+)</state>\s*</status>", text)
    assert len(states) == 6 and "<status>up</status>" not in text  # host and spm status
    assert "update_available" not in text and "upgrade" not in text
    assert v3_request(lab35, f"/hosts/{host_id(text)}/upgradecheck", method="POST")[0] == 404
    assert v3_request(lab35, f"/hosts/{host_id(text)}/upgrade", method="POST")[0] == 404
    assert v3_request(lab35, "/v3/hosts")[0] == 404  # 3.x has no /v3 path: v3 is all it has
    status, text = v3_request(lab35, "/vms?search=name%3DHostedEngine")
    assert "<state>up</state>" in text


def test_a_3_6_engine_has_update_available_and_only_upgrade(lab36):
    """API v3 @ovirt-engine-3.6.9.2: Host has `update_available` (api.xsd, HostMapper.java)
    and the `upgrade` action, no `upgradecheck` (rsdl_metadata.yaml)."""
    status, text = v3_request(lab36, "/hosts")
    assert status == 200 and "<state>up</state>" in text
    assert "<update_available>false</update_available>" in text
    assert 'rel="upgrade"' in text and "upgradecheck" not in text
    assert v3_request(lab36, f"/hosts/{host_id(text)}/upgradecheck", method="POST")[0] == 404


def test_4_3_serves_v3_when_asked_and_4_5_does_not(lab43, lab45):
    """VersionFilter.java and ENGINE_API_SUPPORTED_VERSIONS="3, 4" (ovirt-engine.conf.in)
    @ovirt-engine-4.3.10.4: `/ovirt-engine/api/v3/...` or `Version: 3` answers v3, the default
    is v4; @ovirt-engine-4.5.6 has no v3 server (org/ovirt/engine/api/v3 is gone)."""
    status, text = v3_request(lab43, "/hosts")
    assert status == 200 and "<status>up</status>" in text
    for path, header in (("/v3/hosts", False), ("/hosts", True)):
        status, text = v3_request(lab43, path, version_header=header)
        assert status == 200 and "<state>up</state>" in text and "<status>up</status>" not in text
    status, text = v3_request(lab43, "/v3")
    assert 'major="4" minor="3"' in text  # v3's entry point: the version as attributes
    for path, header in (("/v3/hosts", False), ("/hosts", True)):
        assert v3_request(lab45, path, version_header=header)[0] == 404
    assert v3_request(lab45, "/hosts")[0] == 200


def test_every_document_answers_json(lab43):
    """`Accept: application/json`: the engine's JSON shapes (a collection is an object holding
    the list under the singular name, e.g. {"host": [...]})."""
    import base64
    import ssl
    import urllib.request

    engine = lab43.manifest["engine"]
    token = base64.b64encode(f"{engine['username']}:{engine['password']}".encode()).decode()
    context = ssl.create_default_context(cafile=engine["ca_file"])

    def get(path):
        request = urllib.request.Request(engine["url"] + path, headers={
            "Authorization": f"Basic {token}", "Accept": "application/json"})
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            return json.loads(response.read())

    hosts = get("/hosts")["host"]
    assert {h["name"] for h in hosts} == {"he1.lab.local", "he2.lab.local", "he3.lab.local"}
    assert hosts[0]["status"] == "up" and hosts[0]["spm"]["status"] in ("spm", "none")
    domains = get("/storagedomains")["storage_domain"]
    assert "hosted_storage" in {d["name"] for d in domains}
    vm = get("/vms?search=name%3DHostedEngine")["vm"][0]
    assert {link["rel"] for link in vm["link"]} >= {"diskattachments", "nics", "statistics"}
    assert get("/tags")["tag"][0]["name"] == "root"
    status, text = engine_request(lab43, "GET", "/hosts")
    assert status == 200 and text.lstrip().startswith("<?xml")
