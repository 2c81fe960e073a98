"""Programs written as ovirtsdk4's examples are (tests/lab/sdk_examples/, in the manner of
oVirt/python-ovirt-engine-sdk4 `examples/`), run unmodified as subprocesses with the real
ovirtsdk4 against a 4.3 and a 4.5 lab: what an admin's tooling reads from and does on a
hosted-engine cluster.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import release_lab

EXAMPLES = Path(__file__).parent / "sdk_examples"
HOSTS = ["he1.lab.local", "he2.lab.local", "he3.lab.local"]

lab43 = release_lab(hosts=3, engine_version="4.3")
lab45 = release_lab(hosts=3, engine_version="4.5")


@pytest.fixture(params=["lab43", "lab45"])
def lab(request):
    return request.getfixturevalue(request.param)


def run(lab, program, *args, timeout=120):
    engine = lab.manifest["engine"]
    env = dict(os.environ, OVIRT_URL=engine["url"], OVIRT_USERNAME=engine["username"],
               OVIRT_PASSWORD=engine["password"], OVIRT_CA_FILE=engine["ca_file"])
    done = subprocess.run([sys.executable, str(EXAMPLES / program), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{program} {args}: rc {done.returncode}\n{done.stderr}"
    return done.stdout.splitlines()


def vm_host(lab):
    return next(line.split()[-1] for line in run(lab, "follow_vm_links.py", "HostedEngine")
                if line.startswith("host: "))


def test_list_search_and_page_vms(lab):
    """examples/list_vms.py, search_vms.py, page_vms.py: `page N` with max=1 walks the VMs one
    by one (the engine's search dialect: SearchBackend's `page` keyword)."""
    if "web1" not in lab_vms(lab):
        lab.admin("add-vm", vm="web1", host="he2")
    names = [line.split(":")[0] for line in run(lab, "list_vms.py")]
    assert names[0] == "HostedEngine" and "web1" in names
    assert run(lab, "search_vms.py", "name=hostedengine") == ["HostedEngine: up"]
    assert run(lab, "page_vms.py") == names
    assert run(lab, "search_vms.py", "sortby name desc") == [
        f"{n}: up" for n in sorted(names, reverse=True)]
    assert run(lab, "search_vms.py", "web*") == ["web1: up"]  # free text matches the name


def lab_vms(lab):
    return [line.split(":")[0] for line in run(lab, "list_vms.py")]


def test_follow_the_engine_vm_links(lab):
    """examples/follow_vm_links.py, list_tags_of_vm.py: the engine VM's cluster, host, its
    disk `he_virtio_disk` on `hosted_storage` (the disk alias of
    ovirt-engine StorageConstants.HOSTED_ENGINE_DISKS_ALIASES), a NIC, statistics."""
    out = run(lab, "follow_vm_links.py", "HostedEngine")
    assert "cluster: Default" in out
    assert any(line.startswith("host: he") for line in out)
    disks = [line for line in out if line.startswith("disk: ")]
    assert disks and disks[0].startswith("disk: he_virtio_disk ") and "ok bootable=True" in disks[0]
    assert "disk storage domain: hosted_storage" in out
    assert any(line.startswith("nic: vnet0 00:16:3e:") for line in out)
    stats = {line.split()[1] for line in out if line.startswith("stat: ")}
    assert {"memory.installed", "memory.used", "cpu.current.guest"} <= stats


def test_host_statistics_version_spm_nics(lab):
    """examples/list_host_statistics.py: a host's statistics, `version`, `spm`, NICs, tags."""
    out = run(lab, "list_host_statistics.py", "he1.lab.local")
    assert out[0].startswith(("version: vdsm-4.30.", "version: vdsm-4.50."))
    assert out[1] in ("spm: spm", "spm: none")
    stats = {line.split()[1].rstrip(":") for line in out if line.startswith("stat: ")}
    assert {"memory.total", "memory.used", "cpu.load.avg.5m", "cpu.current.idle"} <= stats
    assert any(line.startswith("nic: ") and "127." in line for line in out)
    spm = [run(lab, "list_host_statistics.py", h)[1] for h in HOSTS]
    assert spm.count("spm: spm") == 1


def test_storage_domains(lab):
    """examples/list_storage_domains.py: the hosted-engine domain and a data domain, and a
    name search."""
    domains = json.loads("\n".join(run(lab, "list_storage_domains.py")))
    by_name = {d["name"]: d for d in domains}
    assert by_name["hosted_storage"]["type"] == "data"
    assert by_name["hosted_storage"]["status"] == "None"  # attached: status is per data center
    assert by_name["hosted_storage"]["external_status"] == "ok"
    assert any(d["type"] == "data" and d["name"] != "hosted_storage" for d in domains)
    assert [d["name"] for d in json.loads("\n".join(
        run(lab, "list_storage_domains.py", "name=hosted*")))] == ["hosted_storage"]


def test_search_hosts_by_ha_score_and_sortby(lab):
    """The hosts' search dialect: `ha_score`, `sortby ... desc`."""
    out = run(lab, "search_hosts.py", "ha_score>0 sortby name desc")
    assert [line.split()[0] for line in out] == list(reversed(HOSTS))
    assert all(line.split()[2] == "3400" for line in out)


def test_update_data_center(lab):
    """A data center's description updated through the SDK and read back."""
    assert run(lab, "update_data_center.py", "Default", "HE cluster DC") == [
        "description: HE cluster DC"]


def test_upgrade_check_events_by_host_name(lab):
    """examples/upgrade_host.py's wait for event 885 with `host.name=` and `from`."""
    out = run(lab, "upgrade_check.py", "he3.lab.local")
    assert out[0] == "Check for upgrade done."


def test_maintenance_and_activation_events(lab):
    """A deactivation without a reason logs 620 (USER_VDS_MAINTENANCE_WITHOUT_REASON, not 600);
    the activation 16 (VDS_ACTIVATE) then 13 (VDS_DETECTED); texts of ovirt-engine's
    AuditLogType.java and AuditLogMessages.properties @ovirt-engine-4.3.10.4 and @4.5.6."""
    out = run(lab, "host_maintenance.py", "he3.lab.local")
    assert out[:2] == ["host: maintenance", "host: up"]
    events = [line.split(" ", 2)[1:] for line in out[2:]]
    codes = [int(code) for code, _ in events]
    assert 620 in codes and 600 not in codes
    text = dict((int(c), t) for c, t in events)
    assert text[620] == "Host he3.lab.local was switched to Maintenance mode by admin@internal-authz."
    assert text[16] == "Activation of host he3.lab.local initiated by admin@internal-authz."
    assert text[13] == "Status of host he3.lab.local was set to Up."


def test_start_stop_shutdown_guest_vm(lab):
    """VM stop, start, shutdown, start through the SDK."""
    if "db1" not in lab_vms(lab):
        lab.admin("add-vm", vm="db1", host="he2")
    assert run(lab, "start_stop_vm.py", "db1") == ["vm: down", "vm: up", "vm: down", "vm: up"]


def test_search_events(lab):
    """Events by `event_host` and by `type`, newest first."""
    out = run(lab, "search_events.py", "event_host=he1.lab.local", "5")
    assert out[0].startswith("last: ")
    assert len(out) > 1


def test_migrate_the_engine_vm(lab):
    """The engine VM migrated to a named host through the SDK."""
    source = vm_host(lab)
    dest = next(h for h in HOSTS if h != source)
    assert run(lab, "migrate_vm.py", "HostedEngine", dest) == [f"vm: up on {dest}"]


def test_tags_on_a_vm_and_a_host(lab):
    """examples/assign_tag_to_vm.py, list_tags_of_vm.py: a tag created, assigned to the engine
    VM by name and to a host by id, listed back; `root` is always there."""
    out = run(lab, "assign_tag.py", "ha-cluster", "HostedEngine", "he2.lab.local")
    assert out == ["tag: ha-cluster", "vm tag: ha-cluster", "host tag: ha-cluster",
                   "all: root, ha-cluster"]
