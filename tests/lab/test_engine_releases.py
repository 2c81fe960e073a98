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
    the host stays in PreparingForMaintenance (ovirt-releases.md, "Engine")."""
    vm_host = others_to_maintenance(lab35)
    lab35.admin("host-maintenance", host=vm_host)
    time.sleep(2)  # 2 simulated minutes at the fixture's speed
    assert engine_status(lab35, vm_host) == "preparing_for_maintenance"
    assert lab35.state()["engine_vm"]["host"] == vm_host


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
