"""`hosted-engine`'s command line per release, as src/bin/hosted-engine.in and the Python
modules it runs have it at each ovirt-hosted-engine-setup tag (1.2.6.1, 1.3.7.3, 2.3.13,
2.7.1), and the HA agent's parts the commands reach (ovirt-hosted-engine-ha 1.2.10, 1.3.5.6,
2.3.6, 2.5.1). One lab per release, shared by the module."""

import pytest

from conftest import module_shell, release_lab

lab35 = release_lab(hosts=2, engine_version="3.5", os="el6")
ssh35 = module_shell("lab35")
lab36 = release_lab(hosts=2, engine_version="3.6")
ssh36 = module_shell("lab36")
lab43 = release_lab(hosts=2, engine_version="4.3")
ssh43 = module_shell("lab43")
lab45 = release_lab(hosts=2, engine_version="4.x")
ssh45 = module_shell("lab45")

ALL_2X = ["--deploy", "--vm-start", "--vm-start-paused", "--vm-shutdown", "--vm-poweroff",
          "--vm-status", "--add-console-password", "--check-deployed", "--check-liveliness",
          "--connect-storage", "--disconnect-storage", "--console", "--set-maintenance",
          "--set-shared-config", "--get-shared-config", "--reinitialize-lockspace",
          "--clean-metadata"]


def listed(usage):
    """The commands a usage text lists."""
    return [line.split()[0] for line in usage.splitlines() if line.startswith("        --")]


def test_setup_1_2_lists_and_knows_its_own_commands(ssh35):
    """hosted-engine.in@ovirt-hosted-engine-setup-1.2.6.1: --start-pool, no lockspace,
    metadata, shared-config or storage-disconnect commands; --help exits 0, no command 1."""
    result = ssh35("he2", "hosted-engine --help")
    assert result.rc == 0
    assert listed(result.out) == ["--deploy", "--vm-start", "--vm-start-paused", "--vm-shutdown",
                                  "--vm-poweroff", "--vm-status", "--add-console-password",
                                  "--check-liveliness", "--connect-storage", "--start-pool",
                                  "--console", "--set-maintenance"]
    assert "            Open the configured console using remote-viewer on localhost\n" in result.out
    assert result.out.endswith("    For additional information about a specific command try:\n"
                               "         <command> --help\n\n")
    assert ssh35("he2", "hosted-engine").rc == 1
    for option in ("--get-shared-config", "--disconnect-storage", "--check-deployed"):
        refused = ssh35("he2", f"hosted-engine {option} fqdn")
        assert (refused.rc, refused.err) == (1, f"Invalid option '{option}'\n")
        assert refused.out == result.out
    pool = ssh35("he2", "hosted-engine --start-pool")
    assert (pool.rc, pool.out) == (0, "Connecting Storage Pool\nStarting SPM\nActivating Storage Domain\n")
    storage = ssh35("he2", "hosted-engine --connect-storage")
    assert (storage.rc, storage.out) == (0, "Connecting Storage Server\n")
    # 1.2's `--help CMD` is the plain usage; `CMD --help` the command's own, without "--"
    assert ssh35("he2", "hosted-engine --help --vm-status").out == result.out
    assert ssh35("he2", "hosted-engine --vm-status --help").out.startswith(
        "Usage: /usr/sbin/hosted-engine vm-status\n")


def test_setup_1_3_drops_start_pool_and_adds_lockspace_and_metadata(ssh36):
    """hosted-engine.in@ovirt-hosted-engine-setup-1.3.7.3: cli_broker; `--help CMD` shows
    the command's help (exit 0)."""
    result = ssh36("he2", "hosted-engine --help")
    assert listed(result.out) == ["--deploy", "--vm-start", "--vm-start-paused", "--vm-shutdown",
                                  "--vm-poweroff", "--vm-status", "--add-console-password",
                                  "--check-liveliness", "--connect-storage", "--console",
                                  "--set-maintenance", "--reinitialize-lockspace", "--clean-metadata"]
    for option in ("--start-pool", "--set-shared-config", "--check-deployed", "--disconnect-storage"):
        assert ssh36("he2", f"hosted-engine {option}").err == f"Invalid option '{option}'\n"
    cmd_help = ssh36("he2", "hosted-engine --help --clean-metadata")
    assert cmd_help.rc == 0
    assert cmd_help.out.startswith("Usage: /usr/sbin/hosted-engine --clean_metadata [--force-cleanup] "
                                   "[--host-id=<id>]\n")
    # the HA client's connect_storage_server, silent on success
    connect = ssh36("he2", "hosted-engine --connect-storage")
    assert (connect.rc, connect.out, connect.err) == (0, "", "")


def test_setup_2_3_and_2_7_list_the_full_surface(ssh43, ssh45):
    """hosted-engine.in@ovirt-hosted-engine-setup-2.3.13 and -2.7.1: the same commands;
    2.4.1 (commit 43c2a03) ended the descriptions with a period and dropped the
    "For additional information" lines."""
    old, new = ssh43("he2", "hosted-engine --help").out, ssh45("he2", "hosted-engine --help").out
    assert listed(old) == ["--deploy", "--vm-start", "--vm-start-paused", "--vm-shutdown",
                           "--vm-poweroff", "--vm-status", "--add-console-password",
                           "--config-append=file", "--check-deployed", "--check-liveliness",
                           "--connect-storage", "--disconnect-storage", "--console", "--set-maintenance",
                           "--set-shared-config", "--get-shared-config", "--reinitialize-lockspace",
                           "--clean-metadata"]
    assert "For additional information" in old and "For additional information" not in new
    assert "            Open the configured serial console.\n" in new
    for option in ALL_2X:
        assert option in listed(new) or option + "." in listed(new)
    refused = ssh45("he2", "hosted-engine --start-pool")
    assert (refused.rc, refused.err) == (1, "Invalid option '--start-pool'\n")


def test_check_deployed_says_so_from_2_4_9(ssh43, ssh45):
    """cmd_check_deployed: silent at 2.3.13, "The hosted engine has been deployed" from
    2.4.9 (commit f27d727)."""
    old, new = ssh43("he2", "hosted-engine --check-deployed"), ssh45("he2", "hosted-engine --check-deployed")
    assert (old.rc, old.out) == (0, "")
    assert (new.rc, new.out) == (0, "The hosted engine has been deployed\n")


def test_get_and_set_shared_config(ssh43):
    """get_shared_config.py/set_shared_config.py@2.3.13 over env/config.py@ovirt-hosted-engine-ha
    v2.3.6: a key in both hosted-engine.conf copies needs --type; the answer's layout; an
    unknown key lists the keys per type on stderr."""
    dup = ssh43("he2", "hosted-engine --get-shared-config gateway")
    assert (dup.rc, dup.err) == (1, "Duplicate key gateway, please specify the key type. Available "
                                    "types are: ['he_local', 'he_shared']\n")
    got = ssh43("he2", "hosted-engine --get-shared-config gateway --type=he_shared")
    assert (got.rc, got.out) == (0, "\ngateway : 192.168.122.1, type : he_shared\n\n")
    assert ssh43("he2", "hosted-engine --set-shared-config gateway 192.168.122.254 --type=he_shared").rc == 0
    got = ssh43("he2", "hosted-engine --get-shared-config gateway --type=he_shared")
    assert got.out == "\ngateway : 192.168.122.254, type : he_shared\n\n"
    local = ssh43("he2", "hosted-engine --get-shared-config gateway --type=he_local")
    assert local.out == "\ngateway : 192.168.122.1, type : he_local\n\n"
    unknown = ssh43("he2", "hosted-engine --get-shared-config no_such_key")
    assert unknown.rc == 1
    assert unknown.err.startswith("Invalid configuration key no_such_key.\nAvailable keys are:\nhe_local : [")
    missing = ssh43("he2", "hosted-engine --set-shared-config gateway")
    assert (missing.rc, missing.out) == (1, "You must specify a new value to set\n")
    assert ssh43("he2", "hosted-engine --set-shared-config gateway 192.168.122.1 --type=he_shared").rc == 0


def test_console_and_console_password(ssh43, ssh45, lab45):
    """cmd_console@2.3.13 and @2.7.1 (virsh console needs a terminal), vdsm_helper.py
    setVmTicket (the VNC address), on the engine VM's host and elsewhere."""
    vm_host = lab45.wait_for(lambda s: s["engine_vm"]["status"] == "up" and s["engine_vm"]["host"],
                             sim_seconds=600).split(".")[0]
    other = "he2" if vm_host == "he1" else "he1"
    here = ssh45(vm_host, "hosted-engine --console")
    assert here.rc == 1
    assert here.out == "The engine VM is running on this host\nEscape character is ^]\n"
    elsewhere = ssh45(other, "hosted-engine --console")
    assert (elsewhere.rc, elsewhere.out) == (0, "The engine VM is not on this host\n")
    password = ssh45(vm_host, "hosted-engine --add-console-password --password=secret")
    assert password.rc == 0
    assert password.out.startswith("You can now connect the hosted-engine VM with VNC at ")
    refused = ssh45(other, "hosted-engine --add-console-password", stdin="secret\n")
    assert refused.rc == 1
    assert "Enter password: " in refused.err
    assert "message=Virtual machine does not exist" in refused.err


def test_vm_start_paused_leaves_qemu_paused(ssh36, lab36):
    """cmd_vm_start_paused@1.3.7.3: vm.conf plus launchPaused=true; vdsm then reports the VM
    Paused, which the broker reads as up with bad health ("bad vm status")."""
    vm_host = lab36.wait_for(lambda s: s["engine_vm"]["status"] == "up" and s["engine_vm"]["host"],
                             sim_seconds=600).split(".")[0]
    other = "he2" if vm_host == "he1" else "he1"
    busy = ssh36(vm_host, "hosted-engine --vm-start-paused")
    assert (busy.rc, busy.out) == (1, "VM exists and its status is Up\n")
    assert ssh36("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
    assert ssh36(vm_host, "hosted-engine --vm-poweroff").rc == 0
    started = ssh36(other, "hosted-engine --vm-start-paused")
    assert (started.rc, started.out) == (0, "VM in WaitForLaunch\n")
    state = lab36.wait_for(lambda s: s["hosts"][f"{other}.lab.local"]["vm"] == "Paused" and s, sim_seconds=60)
    assert state["hosts"][f"{other}.lab.local"]["engine_status"] == {
        "reason": "bad vm status", "health": "bad", "vm": "up", "detail": "Paused"}
    assert ssh36(other, "hosted-engine --vm-poweroff").rc == 0
    assert ssh36("he1", "hosted-engine --set-maintenance --mode=none").rc == 0


def test_clean_metadata_parses_as_the_agents_optparse(ssh43):
    """hosted-engine.in@2.3.13 execs `ovirt-ha-agent --cleanup "$@"`; agent/agent.py@v2.3.6
    parses with optparse: `--host-id 3` takes the next word, a unique prefix names an option
    (`--force` is --force-cleanup), errors are optparse's, exit 2; clean() in
    agent/hosted_engine.py@v2.3.6 exits 0 whatever it decides about the block."""
    unclean = ssh43("he1", "hosted-engine --clean-metadata --host-id 2")
    assert unclean.rc == 0
    assert "ERROR:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:Cannot clean unclean metadata " \
           "block. Consider --force-clean.\n" in unclean.err
    missing = ssh43("he1", "hosted-engine --clean-metadata --host-id 7 --force")
    assert missing.rc == 0
    assert "Metadata for current host missing." in missing.err
    usage = "Usage: ovirt-ha-agent [options]\n\novirt-ha-agent: error: "
    for args, problem in (("--host-id=two", "option --host-id: invalid integer value: 'two'"),
                          ("--host-id", "--host-id option requires an argument"),
                          ("--h 2", "ambiguous option: --h (--help, --host-id?)"),
                          ("--no-daemon", "no such option: --no-daemon"),
                          ("--pdb=yes", "--pdb option does not take a value")):
        result = ssh43("he1", f"hosted-engine --clean-metadata {args}")
        assert (result.rc, result.out, result.err) == (2, "", usage + problem + "\n"), args


def test_clean_metadata_force_prefix_cleans_a_live_block(ssh36, lab36):
    """agent/agent.py@ovirt-hosted-engine-ha-1.3.5.6 (optparse, with --no-daemon): `--force`
    is --force-cleanup, so even a running agent's block is wiped; its agent writes it again."""
    result = ssh36("he1", "hosted-engine --clean-metadata --no-daemon --host-id 2 --force")
    assert result.rc == 0
    assert "INFO:ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:Cleaning the metadata block!\n" \
        in result.err
    assert result.err.startswith("INFO:ovirt_hosted_engine_ha.agent.agent.Agent:ovirt-hosted-engine-ha "
                                 "agent 1.3.5.8 started\n")
    lab36.wait_for(lambda s: s["hosts"]["he2.lab.local"]["score"] > 0, sim_seconds=120)


@pytest.mark.parametrize("shell, lines", [("ssh36", (312, 316)), ("ssh43", (301, 305)), ("ssh45", (301, 305))])
def test_reinitialize_lockspace_refuses_with_a_traceback(request, shell, lines):
    """reinitialize_lockspace.py (line 30 at setup 1.3.7.3, 2.3.13, 2.7.1) calls the HA
    client's reset_lockspace bare, which raises Exception (client/client.py at v1.3.5.8 and
    v2.3.6/v2.5.1, lines `lines`): a traceback and exit 1; --force only as the first word."""
    ssh = request.getfixturevalue(shell)
    result = ssh("he2", "hosted-engine --reinitialize-lockspace")
    assert result.rc == 1
    err = result.err.splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == "Exception: Lockfile reset can be performed in global maintenance mode only."
    assert err[-3].endswith(f'/ovirt_hosted_engine_ha/client/client.py", line {lines[0]}, in reset_lockspace')
    assert err[-5].endswith('/ovirt_hosted_engine_setup/reinitialize_lockspace.py", line 30, in <module>')
    late = ssh("he2", "hosted-engine --reinitialize-lockspace --verbose --force")
    assert late.rc == 1 and late.err.endswith("global maintenance mode only.\n")
    assert ssh("he2", "hosted-engine --set-maintenance --mode=global").rc == 0
    try:
        result = ssh("he2", "hosted-engine --reinitialize-lockspace")
        assert result.rc == 1
        assert result.err.splitlines()[-1] == "Exception: Lockfile reset cannot be performed with an active agent."
        assert f'client.py", line {lines[1]}, in reset_lockspace' in result.err
    finally:
        assert ssh("he2", "hosted-engine --set-maintenance --mode=none").rc == 0


def test_agents_on_a_corrupted_lockspace_never_say_stopped(lab36, ssh36):
    """HA 1.3.5.6: the agent publishes "stopped" only when its monitoring loop ends cleanly;
    on a corrupted lockspace it dies at start-up, so after `service ovirt-ha-agent stop`
    --reinitialize-lockspace still refuses and --force is needed (ovirt-releases.md)."""
    lab36.fault("corrupt-lockspace")
    lab36.wait_for(lambda s: not any(h["live"] for h in s["hosts"].values()), sim_seconds=120)
    assert ssh36("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
    for host in ("he1", "he2"):
        assert ssh36(host, "systemctl stop ovirt-ha-agent").rc == 0
    refused = ssh36("he1", "hosted-engine --reinitialize-lockspace")
    assert refused.err.splitlines()[-1] == "Exception: Lockfile reset cannot be performed with an active agent."
    assert ssh36("he1", "hosted-engine --reinitialize-lockspace --force").rc == 0
    for host in ("he1", "he2"):
        assert ssh36(host, "systemctl start ovirt-ha-agent").rc == 0
    assert ssh36("he1", "hosted-engine --set-maintenance --mode=none").rc == 0
    lab36.wait_for(lambda s: all(h["live"] and h["score"] > 0 for h in s["hosts"].values()), sim_seconds=300)


def extra_lines(plain, host_id):
    block = plain.split(f"--== Host {host_id} status ==--")[1].split("--== Host")[0]
    extra = block.split("Extra metadata (valid at timestamp):\n")[1]
    return [line[1:].split("=")[0] for line in extra.splitlines() if line.startswith("\t")]


def test_ha_1_x_extra_blocks_hold_what_1_2_and_1_3_wrote(ssh35, ssh36):
    """agent/hosted_engine.py `_generate_local_blocks` at 1.2.10 and 1.3.5.8: five header
    lines and the state's metadata() sorted by key; 1.2.10's metadata() has no `stopped`, and
    vm_conf_refresh_time/conf_on_shared_storage came with 2.0."""
    header = ["metadata_parse_version", "metadata_feature_version", "timestamp", "host-id", "score"]
    assert extra_lines(ssh35("he1", "hosted-engine --vm-status").out, 2) == header + ["maintenance", "state"]
    assert extra_lines(ssh36("he1", "hosted-engine --vm-status").out, 2) == header + [
        "maintenance", "state", "stopped"]


def test_setup_1_x_prints_the_global_maintenance_banner_once(ssh36):
    """vm_status.py@ovirt-hosted-engine-setup-1.3.7.3 prints the banner before the hosts only;
    2.0.0 (commit 35dd496) prints it after them again."""
    assert ssh36("he1", "hosted-engine --set-maintenance --mode=global").rc == 0
    try:
        out = ssh36("he1", "hosted-engine --vm-status").out
        assert out.startswith("\n\n!! Cluster is in GLOBAL MAINTENANCE mode !!\n\n")
        assert out.count("!! Cluster is in GLOBAL MAINTENANCE mode !!") == 1
    finally:
        assert ssh36("he1", "hosted-engine --set-maintenance --mode=none").rc == 0


def test_ha_1_2_has_no_agent_stopped(lab35, ssh35):
    """agent/states.py@ovirt-hosted-engine-ha-1.2.10 has no AgentStopped state and no
    `stopped` in its metadata: a stopped 1.2 agent's block keeps its last state, then goes
    stale."""
    before = [line for line in ssh35("he1", "hosted-engine --vm-status").out.split("--== Host 2")[1]
              .splitlines() if line.startswith("\tstate=")]
    assert ssh35("he2", "service ovirt-ha-agent stop").rc == 0
    try:
        lab35.wait_for(lambda s: not s["hosts"]["he2.lab.local"]["live"], sim_seconds=180)
        out = ssh35("he1", "hosted-engine --vm-status").out.split("--== Host 2")[1]
        assert "AgentStopped" not in out
        assert [line for line in out.splitlines() if line.startswith("\tstate=")] == before
    finally:
        assert ssh35("he2", "service ovirt-ha-agent start").rc == 0


@pytest.mark.parametrize("state_fn", ["engine_start", "engine_stop", "engine_force_stop"])
@pytest.mark.parametrize("version", ["1.2.10-1", "1.3.5.8-1", "2.3.6-1", "2.5.1-1"])
def test_every_release_checks_maintenance_first_on_start_and_stop(state_fn, version):
    """agent/states.py at 1.2.10, 1.3.5.6, v2.3.6 and v2.5.1: EngineStart, EngineStop and
    EngineForceStop carry check_global_maintenance, check_local_maintenance and
    check_local_vm_unknown, so under global maintenance they go to GlobalMaintenance before
    touching the VM (the lab's state functions, called as the agent loop calls them)."""
    from types import SimpleNamespace

    from lab import ha

    def untouched(*args):
        raise AssertionError("the VM was touched under global maintenance")

    agent = SimpleNamespace(version=version, v25=version.startswith("2.5"), legacy=version.startswith("1."),
                            start_vm=untouched, shutdown_vm=untouched, poweroff_vm=untouched,
                            timed_out=lambda now, seconds: False, stop_requested=False)
    view = SimpleNamespace(global_maintenance=True, local_maintenance=False, now=0, vm="up",
                           status={"vm": "up", "health": "good", "detail": "Up"})
    assert getattr(ha, state_fn)(agent, view) == ("GlobalMaintenance", False)
    view.global_maintenance, view.local_maintenance = False, True
    assert getattr(ha, state_fn)(agent, view) == ("LocalMaintenance", False)


def test_ha_1_2_publishes_timeout_on_the_monotonic_clock(lab35, ssh35):
    """EngineUnexpectedlyDown.metadata() at 1.2.10: time.ctime(timeout_start_time + 600),
    the start taken from monotonic.time() (state_machine.py `refresh`): an early date."""
    lab35.wait_for(lambda s: s["engine_vm"]["healthy"], sim_seconds=600)
    vm_host = lab35.state()["engine_vm"]["host"]
    lab35.fault("kill-engine-vm")
    lab35.wait_for(lambda s: s["hosts"][vm_host]["agent_state"] == "EngineUnexpectedlyDown", sim_seconds=120)
    host_id = int(vm_host[2])
    out = ssh35("he1", "hosted-engine --vm-status").out
    block = out.split(f"--== Host {host_id} status ==--")[1].split("--== Host")[0]
    timeouts = [line for line in block.splitlines() if line.startswith("\ttimeout=")]
    assert len(timeouts) == 1 and timeouts[0].endswith(" 1970"), block


lab43_outdated = release_lab(hosts=2, engine_version="4.3", outdated=True)
ssh43_outdated = module_shell("lab43_outdated")


def test_the_previous_4_3_build_refuses_local_maintenance_on_the_vm_host_too(lab43_outdated, ssh43_outdated):
    """An --outdated 4.3 lab runs setup 2.3.12, which has commit 4a36099 (first in 2.3.11:
    set_maintenance.py@ovirt-hosted-engine-setup-2.3.12 asks vdsm Host.getVMList()): the
    refusal follows the installed build, whatever other host could take the VM."""
    assert ssh43_outdated("he1", "rpm -q ovirt-hosted-engine-setup").out.startswith(
        "ovirt-hosted-engine-setup-2.3.12")
    vm_host = lab43_outdated.wait_for(lambda s: s["engine_vm"]["host"], sim_seconds=600).split(".")[0]
    other = "he2" if vm_host == "he1" else "he1"
    lab43_outdated.wait_for(lambda s: s["hosts"][f"{other}.lab.local"]["score"] > 0, sim_seconds=300)
    refused = ssh43_outdated(vm_host, "hosted-engine --set-maintenance --mode=local")
    assert (refused.rc, refused.out) == (1, "")
    assert refused.err == ("Unable to enter local maintenance mode: the engine VM is running on the current "
                           "host, please migrate it before entering local maintenance mode.\n")
    assert ssh43_outdated(other, "hosted-engine --set-maintenance --mode=local").rc == 0
    assert ssh43_outdated(other, "hosted-engine --set-maintenance --mode=none").rc == 0


def test_vm_start_cleans_up_a_paused_vm_from_2_4_4_only(ssh43, lab43, ssh45, lab45):
    """cmd_vm_start: 2.3.13 refuses a Paused VM ("VM exists and its status is Paused", echoed,
    exit 1); 2.4.4 (commit 42a2cf6, so 2.7.1) destroys it and starts again."""
    for ssh, lab, release in ((ssh43, lab43, "4.3"), (ssh45, lab45, "4.5")):
        vm_host = lab.wait_for(lambda s: s["engine_vm"]["host"], sim_seconds=600).split(".")[0]
        assert ssh(vm_host, "hosted-engine --set-maintenance --mode=global").rc == 0
        try:
            assert ssh(vm_host, "hosted-engine --vm-poweroff").rc == 0
            assert ssh(vm_host, "hosted-engine --vm-start-paused").rc == 0
            lab.wait_for(lambda s: s["engine_vm"]["status"] == "paused", sim_seconds=60)
            again = ssh(vm_host, "hosted-engine --vm-start")
            if release == "4.3":
                assert (again.rc, again.out, again.err) == (1, "VM exists and its status is Paused\n", "")
                assert ssh(vm_host, "hosted-engine --vm-poweroff").rc == 0
                assert ssh(vm_host, "hosted-engine --vm-start").rc == 0
            else:
                assert (again.rc, again.out) == (0, "VM exists and is Paused, cleaning up and restarting\n"
                                                    "VM in WaitForLaunch\n")
            lab.wait_for(lambda s: s["engine_vm"]["status"] in ("powering_up", "up"), sim_seconds=60)
        finally:
            assert ssh(vm_host, "hosted-engine --set-maintenance --mode=none").rc == 0


def test_vm_status_without_any_block_exits_1(lab36, ssh36):
    """vm_status.py@1.3.7.3 (and 2.x): `if not status_checker.print_status(): sys.exit(1)`,
    and print_status returns the host stats, empty when no block is on the whiteboard."""
    lab36.wait_for(lambda s: all(h["live"] for h in s["hosts"].values()), sim_seconds=300)
    assert ssh36("he1", "hosted-engine --vm-status").rc == 0
    for host in ("he1", "he2"):
        assert ssh36(host, "systemctl stop ovirt-ha-agent").rc == 0
    try:
        for host_id in (1, 2):
            cleaned = ssh36("he1", f"hosted-engine --clean-metadata --host-id={host_id}")
            assert "Cleaning the metadata block!" in cleaned.err
        empty = ssh36("he1", "hosted-engine --vm-status")
        assert (empty.rc, empty.out) == (1, "")
    finally:
        for host in ("he1", "he2"):
            assert ssh36(host, "systemctl start ovirt-ha-agent").rc == 0


def test_set_maintenance_reads_only_its_first_word(ssh43, ssh35):
    """cmd_set_maintenance (hosted-engine.in@1.2.6.1 and @2.3.13) tests `$1` only: a
    --mode=... after another word is not seen."""
    for ssh in (ssh43, ssh35):
        result = ssh("he2", "hosted-engine --set-maintenance --json --mode=global")
        assert (result.rc, result.out) == (1, "You must specify a maintenance mode with --mode\n")


def test_local_maintenance_on_a_host_whose_vdsm_is_down(lab43, ssh43):
    """set_maintenance.py@2.3.13 asks vdsm Host.getVMList() first; lib/util.py@v2.3.6
    retries the connection 60 times a second apart, then raises RuntimeError: a traceback,
    exit 1, nothing written."""
    assert ssh43("he2", "systemctl stop vdsmd").rc == 0
    try:
        result = ssh43("he2", "hosted-engine --set-maintenance --mode=local", timeout=120)
        assert result.rc == 1
        assert result.err.splitlines()[-1] == "RuntimeError: Couldn't  connect to VDSM within 60 seconds"
        assert lab43.state()["hosts"]["he2.lab.local"]["local_maintenance"] is False
    finally:
        assert ssh43("he2", "systemctl start vdsmd").rc == 0
