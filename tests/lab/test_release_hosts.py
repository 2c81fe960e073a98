"""What a host of each release has and does at the OS level: its interpreters and nothing
the real install lacks, prompting tools that read a piped script as the real ones do, the
sanlock leases and vdsm's capabilities.

Sources: ovirt-releases.md ("Hosts and storage leases"); CPython 2.7/3.6/3.9 reading a
prompt's answer from a pipe (measured, see lab/tools.py STDIN_READ); sanlock, vdsm and
ovirt-hosted-engine-ha at the tags cited per test and in docs/lab.md.
"""

import pytest

from conftest import module_shell, release_lab

lab_el6 = release_lab(hosts=1, engine_version="3.5", os="el6")
lab_el7 = release_lab(hosts=2, engine_version="4.3", os="el7")
lab_el8 = release_lab(hosts=1, engine_version="4.5", os="el8")
lab_el9 = release_lab(hosts=1, engine_version="4.5", os="el9")
ssh_el6 = module_shell("lab_el6")
ssh_el7 = module_shell("lab_el7")
ssh_el8 = module_shell("lab_el8")
ssh_el9 = module_shell("lab_el9")

NOT_FOUND = "bash: {}: command not found\n"


@pytest.mark.parametrize("shell", ["ssh_el6", "ssh_el7"])
def test_el6_and_el7_hosts_have_python_2_and_no_python3_or_jq(request, shell):
    """EL6/EL7: Python 2 as `python`, no python3, no jq (ovirt-releases.md, "Hosts and
    storage leases"). A print statement runs only under Python 2."""
    ssh = request.getfixturevalue(shell)
    result = ssh("he1", "python -c 'import sys; print sys.version_info[0]'")
    assert (result.rc, result.out) == (0, "2\n")
    assert ssh("he1", "python2 -c 'print 2'").out == "2\n"
    for missing in ("python3", "jq", "perl"):
        result = ssh("he1", f"{missing} --version")
        assert (result.rc, result.err) == (127, NOT_FOUND.format(missing))
    assert ssh("he1", "test -e /usr/libexec/platform-python").rc == 1


def test_el8_hosts_have_python_3_6_as_python3_and_platform_python(ssh_el8):
    """EL8: /usr/libexec/platform-python and python3 are Python 3.6; no `python`. An
    f-string with `=` (Python 3.8) is a syntax error there."""
    for python in ("python3", "/usr/libexec/platform-python"):
        result = ssh_el8("he1", f"{python} -c 'import sys; print(sys.version_info[:2])'")
        assert (result.rc, result.out) == (0, "(3, 6)\n")
    assert ssh_el8("he1", "python3 -c 'x = 1; print(f\"{x=}\")'").rc == 1
    for missing in ("python", "python2", "jq"):
        result = ssh_el8("he1", f"{missing} --version")
        assert (result.rc, result.err) == (127, NOT_FOUND.format(missing))


def test_el9_hosts_have_python_3_9_and_no_platform_python(ssh_el9):
    """EL9: python3 is Python 3.9; RHEL 9 dropped platform-python; no `python`."""
    result = ssh_el9("he1", "python3 -c 'import sys; print(sys.version_info[:2])'")
    assert (result.rc, result.out) == (0, "(3, 9)\n")
    assert ssh_el9("he1", "test -e /usr/libexec/platform-python").rc == 1
    for missing in ("python", "jq"):
        result = ssh_el9("he1", f"{missing} --version")
        assert (result.rc, result.err) == (127, NOT_FOUND.format(missing))


def test_base_tools_are_there(ssh_el7):
    """What scripts on a real host rely on: coreutils, grep, sed, awk, find, which, ..."""
    result = ssh_el7("he1", "for t in grep sed awk find xargs which tar gzip ps ip ss curl "
                            "sha256sum df timeout flock logger; do command -v $t >/dev/null "
                            "|| echo missing $t; done; echo done")
    assert result.out == "done\n"


@pytest.mark.parametrize("shell", ["ssh_el7", "ssh_el9"])
def test_a_prompt_swallows_the_rest_of_a_piped_script(request, shell):
    """yum (Python 2's raw_input, EL7) and dnf (Python 3's input(), EL9) without -y read
    their answer a buffer at a time: the lines after the answer are gone, so bash -s
    never runs them (ovirt-releases.md, "Hosts and storage leases")."""
    ssh = request.getfixturevalue(shell)
    result = ssh("he1", "bash -s", stdin="echo before\nyum remove vdsm\nN\necho after\n")
    assert "before\n" in result.out and "Is this ok [y/N]: " in result.out
    assert "after" not in result.out
    assert result.rc == 1  # the last command bash ran was yum, which said No


def test_el7_yum_reads_4096_bytes_and_dnf_8192(ssh_el7, ssh_el9):
    """Python 2's stdio buffer on a pipe is 4096 bytes, Python 3's TextIOWrapper reads
    8192: a line more than 4096 bytes after the prompt survives on EL7 only."""
    script = "yum remove vdsm\nN\n#" + "x" * 5000 + "\necho survived\n"
    assert "survived" in ssh_el7("he1", "bash -s", stdin=script).out
    assert "survived" not in ssh_el9("he1", "bash -s", stdin=script).out


def engine_up_elsewhere(state, dead):
    return any(n != dead and h["agent_state"] == "EngineUp" and h["engine_status"]["health"] == "good"
               for n, h in state["hosts"].items()) and state


@pytest.mark.parametrize("version", ["3.5", "4.3"])
def test_a_dead_hosts_lease_holds_140_s_and_the_agents_retry(tmp_path, version):
    """sanlock frees a dead host's lease after host_dead_seconds = id_renewal_fail_seconds
    (80) + watchdog_fire_timeout (60) = 140 s (sanlock src/timeouts.h). Until then another
    host's start fails with -243 in vdsm.log (the howto's FAQ) and its agent, HA 1.2 as 2.3,
    powers off and tries again; the start that wins comes after 140 s and the engine is up
    about 5-6 minutes after the host died (FAQ: EngineStarting ~2 min, EngineUp ~5 min)."""
    from conftest import SPEED, Shell
    from lab.launcher import start_lab

    dead = "he1.lab.local"
    with start_lab(tmp_path / "lab", hosts=3, speed=SPEED, engine_version=version) as lab:
        ssh = Shell(lab)
        lab.fault("kill-host", host=dead)
        start = lab.state()["now"]
        state = lab.wait_for(
            lambda s: any("EngineStarting-EngineForceStop" in h["transitions"]
                          for n, h in s["hosts"].items() if n != dead) and s, sim_seconds=200)
        assert state["now"] - start < 140
        assert state["engine_vm"]["lease"] == dead
        loser = next(n for n, h in state["hosts"].items()
                     if n != dead and "EngineStarting-EngineForceStop" in h["transitions"])
        failures = ssh(loser.split(".")[0], "grep -c 'Failed to acquire lock: error -243' "
                                            "/var/log/vdsm/vdsm.log")
        assert int(failures.out) >= 1
        state = lab.wait_for(lambda s: s["engine_vm"]["lease"] not in (dead, None) and s,
                             sim_seconds=400)
        assert state["now"] - start >= 140
        state = lab.wait_for(lambda s: engine_up_elsewhere(s, dead), sim_seconds=600)
        assert 140 + 180 <= state["now"] - start <= 400
        ssh.close()


SD = "8a3bcd42-1b2c-4d3e-9f4a-5b6c7d8e9f01"
DOMAIN = f"/rhev/data-center/mnt/nfs.lab.local:_exports_hosted-engine/{SD}"


@pytest.mark.parametrize("shell,run_dir", [("ssh_el6", "/var/run/vdsm"), ("ssh_el7", "/var/run/vdsm"),
                                           ("ssh_el9", "/run/vdsm")])
def test_sanlock_client_status_on_the_vm_host(request, shell, run_dir):
    """sanlock client_cmd.c (3.6.0) lines: the storage domain's `ids` lockspace (vdsm's
    domain monitor), the agents' `hosted-engine` lockspace on the lockspace volume vdsm
    links under its run directory (/var/run/vdsm to vdsm 4.30, /run/vdsm in 4.50:
    configure.ac), and the engine VM disk's volume lease held by qemu (`r`)."""
    ssh = request.getfixturevalue(shell)
    conf = dict(line.split("=", 1) for line in
                ssh("he1", "cat /etc/ovirt-hosted-engine/hosted-engine.conf").out.splitlines()
                if "=" in line)
    lines = ssh("he1", "sanlock client status").out.splitlines()
    assert lines[0].startswith("daemon ") and len(lines[0]) == len("daemon ") + 47
    assert lines[1:3] == ["p -1 helper", "p -1 listener"]
    assert "p 12345 HostedEngine" in lines
    assert f"s {SD}:1:{DOMAIN}/dom_md/ids:0" in lines
    assert (f"s hosted-engine:1:{run_dir}/storage/{SD}/{conf['lockspace_image_UUID']}/"
            f"{conf['lockspace_volume_UUID']}:0") in lines
    lease = [line for line in lines if line.startswith("r ")]
    assert len(lease) == 1
    assert lease[0].startswith(f"r {SD}:") and lease[0].endswith(" p 12345")
    assert f":{DOMAIN}/images/{conf['vm_disk_id']}/" in lease[0] and ".lease:0:" in lease[0]


def test_sanlock_client_status_elsewhere_has_no_vm_lease(ssh_el7):
    """A host not running the VM: its lockspaces with its own host id, no `r` line."""
    lines = ssh_el7("he2", "sanlock client status").out.splitlines()
    assert f"s {SD}:2:{DOMAIN}/dom_md/ids:0" in lines
    assert any(line.startswith("s hosted-engine:2:/var/run/vdsm/storage/") for line in lines)
    assert not [line for line in lines if line.startswith("r ") or "HostedEngine" in line]


# VdsmCapabilities' properties in lib/vdsm/api/vdsm-api.yml (vdsm v4.30.46; v4.50.3.4 adds
# the second list).
CAPS_430 = set("""bondings autoNumaBalancing netConfigDirty nics emulatedMachines cpuFlags
    reservedMem onlineCpus cpuSpeed software_version vmTypes hostdevPassthrough rngSources
    version_name numaNodes memSize supportedENGINEs cpuModel selinux networks kvmEnabled
    liveMerge ISCSIInitiatorName cpuThreads software_revision liveSnapshot bridges
    guestOverhead HBAInventory clusterLevels cpuCores cpuSockets lastClientIface uuid
    operatingSystem vlans supportsIPv6 nameservers numaNodeDistance kdumpStatus packages2 hooks
    additionalFeatures kernelArgs realtimeKernel nestedVirtualization hostedEngineDeployed
    hugepages vncEncrypted connector_info backupEnabled domain_versions
    supported_block_size""".split())
CAPS_450 = CAPS_430 | set("""cpuTopology vdsmToCpusAffinity fipsEnabled tscFrequency tscScaling
    boot_uuid ovnConfigured zerocopy_migrations""".split())


@pytest.mark.parametrize("shell,fields,levels,engines", [
    ("ssh_el7", CAPS_430, ["4.1", "4.2", "4.3"], ["4.1", "4.2", "4.3"]),
    ("ssh_el9", CAPS_450, ["4.2", "4.3", "4.4", "4.5", "4.6", "4.7"], ["4.2", "4.3", "4.4", "4.5"]),
])
def test_vdsm_client_get_capabilities(request, shell, fields, levels, engines):
    """`vdsm-client Host getCapabilities` (vdsm >= 4.19): the JSON of VdsmCapabilities
    (vdsm-api.yml), with the levels of dsaversion.py.in and the installed vdsm in
    software_version and packages2; el7's vdsm-client (Python 2) indents with ', '."""
    ssh = request.getfixturevalue(shell)
    result = ssh("he1", "vdsm-client Host getCapabilities")
    assert result.rc == 0
    caps = result.json
    assert fields <= set(caps)  # caps.get() adds a few more (kernelFeatures, ...)
    assert (caps["clusterLevels"], caps["supportedENGINEs"]) == (levels, engines)
    installed = ssh("he1", "rpm -q vdsm").out.strip()  # vdsm-4.30.46-1.el7.x86_64
    version, release = installed.removeprefix("vdsm-").rsplit(".", 2)[0].rsplit("-", 1)
    assert (caps["software_version"], caps["software_revision"]) == (version, release.split(".")[0])
    assert caps["packages2"]["vdsm"]["version"] == version
    assert caps["hostedEngineDeployed"] is True
    assert caps["memSize"].isdigit() and caps["cpuCores"].isdigit()
    assert ('", \n' in result.out) == (shell == "ssh_el7")


def test_vds_client_get_vds_caps_on_3_5(ssh_el6):
    """`vdsClient -s 0 getVdsCaps` (vdsm 4.16, client/vdsClient.py printDict): one
    `\\tKEY = VALUE` per field, sorted, values pprint'ed; an el6 vdsm offers cluster levels
    3.0 to 3.5 (dsaversion.py.in at v4.16.30)."""
    result = ssh_el6("he1", "vdsClient -s 0 getVdsCaps")
    assert result.rc == 0
    fields = {line[1:].split(" = ", 1)[0]: line.split(" = ", 1)[1]
              for line in result.out.splitlines() if line.startswith("\t") and " = " in line
              and not line.startswith("\t ")}
    assert list(fields) == sorted(fields)
    assert fields["clusterLevels"] == "['3.0', '3.1', '3.2', '3.3', '3.4', '3.5']"
    assert fields["software_version"] == "'4.16.30'"
    assert fields["supportedProtocols"] == "['2.2', '2.3']"
    assert "hostedEngineDeployed" not in fields  # no such field before vdsm 4.18
    assert "\t             'vdsm': {'buildtime': " in result.out  # packages2, pprint'ed
    assert ssh_el6("he1", "vdsm-client Host getCapabilities").rc == 127  # vdsm 4.19 on


def test_vdsm_client_get_vm_list_answers_short_statuses(ssh_el7, ssh_el9):
    """Host.getVMList (vdsm lib/vdsm/API.py at v4.30.46): a ShortStatus dict per VM by
    default, bare UUIDs only with onlyUUID=true; a host without the VM: []."""
    vm_id = "3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70"
    for ssh in (ssh_el7, ssh_el9):
        listed = ssh("he1", "vdsm-client Host getVMList").json
        assert [(v["vmId"], v["status"]) for v in listed] == [(vm_id, "Up")]
        assert listed[0]["statusTime"].isdigit()
        assert ssh("he1", "vdsm-client Host getVMList onlyUUID=true").json == [vm_id]
    assert ssh_el7("he2", "vdsm-client Host getVMList").json == []


def test_el6_hosts_restart_the_ha_daemons_with_service_not_systemctl(ssh_el6):
    """EL6 has upstart and SysV scripts, no systemctl: he-upgrade restarts the HA broker and
    agent with `service` on oVirt 3.5 (upgrades/runbooks/he_upgrade.py)."""
    result = ssh_el6("he1", "systemctl restart ovirt-ha-broker")
    assert (result.rc, result.err) == (127, NOT_FOUND.format("systemctl"))
    from upgrades.runbooks.lockspace import service
    restart = " && ".join(service(type("Ctx", (), {"release": (3, 5)}), "restart", unit)
                          for unit in ("ovirt-ha-broker", "ovirt-ha-agent"))
    assert ssh_el6("he1", restart).rc == 0


def test_el6_coreutils_has_no_realpath_or_numfmt(ssh_el6, ssh_el7):
    """EL6's coreutils is 8.4: realpath came in 8.15 and numfmt in 8.21 (NEWS of
    coreutils/coreutils at v8.22); EL7's 8.22 has both. `readlink -f` is EL6's way."""
    for missing in ("realpath", "numfmt"):
        result = ssh_el6("he1", f"{missing} --version")
        assert (result.rc, result.err) == (127, NOT_FOUND.format(missing))
    assert ssh_el6("he1", "readlink -f /etc/../etc").out == "/etc\n"
    assert ssh_el7("he1", "realpath /etc/../etc").out == "/etc\n"
    assert ssh_el7("he1", "numfmt --to=iec 2048").out == "2.0K\n"
