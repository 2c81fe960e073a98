"""The recovery runbooks of the howto (lockspace-recovery, clean-metadata,
failed-install-cleanup, resume-deploy): their plans and preflight on a
given HA state, then each end to end through the portal's services, a real
worker and a lab that went through the fault it repairs."""
import io
import re
import socket
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from tests.conftest import wait_until
from tests.factories import make_cluster, make_host
from tests.test_engine import lab_exec, start, steps_of, texts, wait_for_polled
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.models import RunStatus
from upgrades.runbooks import OUT_OF_SCOPE
from upgrades.remote.ssh import build_command
from upgrades.runbooks.install_cleanup import CLEANUP_SCRIPT
from upgrades.runbooks.metadata import NOT_LIVE
from upgrades.state import ClusterState, HostState

pytestmark = pytest.mark.django_db


def cluster_of(release="oVirt 4.3 (ovirt-hosted-engine-setup-2.3.13)", hosts=3, name="Ops"):
    cluster = make_cluster(name=name, detected_release=release, engine_url="https://engine.example.com/api")
    for n in range(1, hosts + 1):
        make_host(cluster, name=f"he{n}.example.com", he_host_id=n)
    return cluster


def state_of(cluster, live=True, vm_on="he1.example.com", **overrides):
    """Every host live with 3400 (or stale), the engine VM on ``vm_on``; ``he2=dict(live=False)`` changes one."""
    hosts = []
    for host in cluster.hosts.order_by("he_host_id"):
        values = dict(name=host.name, he_host_id=host.he_host_id, live=live, score=3400,
                      state="EngineUp" if host.name == vm_on else "EngineDown", local_maintenance=False,
                      engine_vm_here=live and host.name == vm_on)
        values.update(overrides.get(host.name.split(".")[0], {}))
        hosts.append(HostState(**values))
    return ClusterState(hosts=hosts, global_maintenance=False, source="fresh")


def plan(cluster, slug, state, **params):
    return services.plan_run(cluster=cluster, slug=slug, params=params, state=state)


def commands(the_plan):
    return [(step.key, step.host.name if step.host else None, step.command) for step in the_plan.steps]


def levels(the_plan):
    return {result.check: result.level for result in the_plan.checks}


# -- lockspace-recovery ----------------------------------------------------------------------

def test_lockspace_recovery_plans_every_command_per_host_and_ignores_stale_ha_data():
    cluster = cluster_of()
    the_plan = plan(cluster, "lockspace-recovery", state_of(cluster, live=False))
    hosts = [f"he{n}.example.com" for n in (1, 2, 3)]
    assert commands(the_plan) == [
        ("global", "he1.example.com", "hosted-engine --set-maintenance --mode=global"),
        *[(f"stop-agent.{h}.stop", h, "systemctl stop ovirt-ha-agent") for h in hosts],
        ("broker", "he1.example.com", "systemctl is-active ovirt-ha-broker"),
        ("reinitialize", "he1.example.com", "hosted-engine --reinitialize-lockspace"),
        *[(f"start-agent.{h}.start", h, "systemctl start ovirt-ha-agent") for h in hosts],
        ("none", "he1.example.com", "hosted-engine --set-maintenance --mode=none"),
        *[(f"score.{h}.wait-score", h, f"wait until {h} is live with a score of at least 0, in data its agent published after "
                                            "this wait began (at most 900 s)")
          for h in hosts]]
    assert all(step.rerun_safe for step in the_plan.steps)
    # What it repairs leaves every host stale: that must not block it.
    assert "ha-fresh" not in levels(the_plan) and not the_plan.inhibitors
    assert the_plan.notes[0] == "oVirt 4.3: daemons with systemctl (el7 hosts and newer)."
    # Agents on a corrupted lockspace never publish "stopped": the plan says --force may be needed.
    assert the_plan.notes[1].startswith("Without --force the re-initialisation needs every agent to have published")
    assert len(the_plan.notes) == 2


def test_lockspace_recovery_with_force_waits_for_an_approver_first():
    cluster = cluster_of()
    the_plan = plan(cluster, "lockspace-recovery", state_of(cluster, live=False), force=True, host="he2.example.com")
    keys = [step.key for step in the_plan.steps]
    assert keys.index("approve-force") == keys.index("reinitialize") - 1
    assert the_plan.steps[keys.index("reinitialize")].command == "hosted-engine --reinitialize-lockspace --force"
    assert the_plan.steps[keys.index("reinitialize")].host.name == "he2.example.com"


def test_lockspace_recovery_warns_when_every_agent_publishes_and_is_blocked_on_3_5():
    cluster = cluster_of()
    the_plan = plan(cluster, "lockspace-recovery", state_of(cluster))
    assert levels(the_plan)["lockspace-suspect"] == "warning"
    old = cluster_of(release="oVirt 3.5 (ovirt-hosted-engine-setup-1.2.6.1)", name="Old")
    the_plan = plan(old, "lockspace-recovery", state_of(old, live=False))
    assert [c.message for c in the_plan.inhibitors] == [
        "The cluster runs oVirt 3.5: hosted-engine --reinitialize-lockspace needs oVirt 3.6 or later."]
    assert "service ovirt-ha-agent stop" in [step.command for step in the_plan.steps]


# -- clean-metadata --------------------------------------------------------------------------

def test_clean_metadata_stops_the_agent_cleans_and_always_starts_it_again():
    cluster = cluster_of(hosts=2)
    the_plan = plan(cluster, "clean-metadata", state_of(cluster), host_id=3)
    assert [(key, host) for key, host, _ in commands(the_plan)] == [
        ("check-id", "he1.example.com"), ("stop-agent", "he1.example.com"), ("clean", "he1.example.com"), ("agent-back", "he1.example.com"),
        ("verify", "he1.example.com")]
    clean = the_plan.steps[2]
    assert clean.command == ("hosted-engine --clean-metadata --host-id=3; rc=$?; systemctl start ovirt-ha-agent; "
                             "exit $rc")
    assert clean.spec["output_check"] == "Cleaning the metadata block!|Metadata for current host missing"
    assert the_plan.steps[1].spec["guards"] == [{"name": "metadata-host-id",
                                                 "args": {"host_id": "3", "host": "he1.example.com"}}]
    assert levels(the_plan)["metadata-host-id"] == "ok" and not the_plan.warnings


def test_clean_metadata_refuses_a_live_host_and_the_runner_and_warns_for_a_stale_one():
    cluster = cluster_of()
    refused = plan(cluster, "clean-metadata", state_of(cluster), host_id=2)
    assert [c.message for c in refused.inhibitors] == [
        "Host id 2 is he2.example.com, whose agent publishes up-to-date data: it still exists."]
    own = plan(cluster, "clean-metadata", state_of(cluster), host_id=3, host="he3.example.com")
    assert "he3.example.com's own id" in own.inhibitors[0].message
    stale = plan(cluster, "clean-metadata", state_of(cluster, he3={"live": False}), host_id=3)
    assert not stale.inhibitors and levels(stale)["metadata-host-id"] == "warning"


def test_clean_metadata_with_force_cleanup_needs_an_approver():
    cluster = cluster_of(hosts=2)
    the_plan = plan(cluster, "clean-metadata", state_of(cluster), host_id=3, force_cleanup=True)
    assert the_plan.steps[0].kind == "approval"
    assert the_plan.steps[3].command.startswith("hosted-engine --clean-metadata --host-id=3 --force-cleanup;")


# -- failed-install-cleanup ------------------------------------------------------------------

def test_failed_install_cleanup_shows_the_exact_path_and_the_whole_corrected_script():
    cluster = cluster_of()
    unknown = ClusterState(hosts=[], global_maintenance=None, source="fresh", error="no host answered")
    the_plan = plan(cluster, "failed-install-cleanup", unknown, host="he1.example.com",
                    storage_path="/export/ovirt/hosted-engine")
    kinds = [(step.key, step.kind) for step in the_plan.steps]
    assert kinds == [("approve", "approval"), ("purge-storage", "manual"), ("cleanup", "ssh"), ("verify", "ssh")]
    assert "rm -fR /export/ovirt/hosted-engine/*" in the_plan.steps[1].command
    assert "exactly as the operator gave it: /export/ovirt/hosted-engine" in the_plan.steps[1].command
    assert the_plan.steps[2].command == CLEANUP_SCRIPT
    assert "yum remove -y" in CLEANUP_SCRIPT and "[ ! -d $d ]" in CLEANUP_SCRIPT
    assert 'FILES+=" etc/' not in CLEANUP_SCRIPT
    assert not the_plan.inhibitors


@pytest.mark.parametrize("path", ["export/ovirt", "/export/../etc", "/export/x; rm -rf /", "/export/$(id)", ""])
def test_failed_install_cleanup_takes_only_a_plain_absolute_path(path):
    cluster = cluster_of()
    with pytest.raises(ValidationError):
        plan(cluster, "failed-install-cleanup", state_of(cluster), host="he1.example.com", storage_path=path)


def test_failed_install_cleanup_refuses_a_working_he_host():
    cluster = cluster_of()
    the_plan = plan(cluster, "failed-install-cleanup", state_of(cluster), host="he2.example.com",
                    storage_path="/export/he")
    assert "he2.example.com is a working hosted-engine host" in the_plan.inhibitors[0].message


def test_the_launch_page_shows_the_whole_script_the_exact_path_and_the_notes(client, make_user):
    cluster = cluster_of()
    client.force_login(make_user("operator"))
    page = client.get(f"/clusters/{cluster.pk}/runbooks/failed-install-cleanup/",
                      {"host": "he1.example.com", "storage_path": "/export/ovirt/hosted-engine"}).content.decode()
    assert "yum remove -y \\*ovirt\\* \\*vdsm\\* \\*libvirt\\*" in page
    assert "[ ! -d $d ] &amp;&amp; echo &quot;? $d already missing&quot;" in page
    assert "`rm -fR /export/ovirt/hosted-engine/*`" in page
    page = client.get(f"/clusters/{cluster.pk}/runbooks/lockspace-recovery/", {"force": "on"}).content.decode()
    assert '<ul class="plan-notes"><li>oVirt 4.3: daemons with systemctl (el7 hosts and newer).</li>' in page


# -- resume-deploy ---------------------------------------------------------------------------

def test_resume_deploy_looks_the_answer_file_up_on_the_host_for_either_branch():
    cluster = cluster_of()
    unknown = ClusterState(hosts=[], global_maintenance=None, source="fresh", error="no host answered")
    installed = plan(cluster, "resume-deploy", unknown, host="he1.example.com", vm_os="installed")
    assert [step.key for step in installed.steps] == ["answers", "deploy", "wait-score"]
    rerun = installed.steps[1].command
    assert "ls -1 /var/lib/ovirt-hosted-engine-setup/answers/answers-*.conf" in rerun
    assert rerun.endswith("printf '1\\n\\n' | hosted-engine --deploy --config-append=\"$answers\"")
    assert "(hidden)" in installed.steps[0].command  # passwords in the answer file are masked
    by_hand = plan(cluster, "resume-deploy", unknown, host="he1.example.com", vm_os="not-installed")
    assert [step.kind for step in by_hand.steps] == ["ssh", "manual", "ssh", "wait"]
    assert "(1) Continue setup - VM installation is complete" in by_hand.steps[1].command


# -- item 8: not a runbook -------------------------------------------------------------------

def test_the_runbook_lists_say_migrating_an_engine_is_out_of_scope(client, make_user):
    out = io.StringIO()
    call_command("runbook", "list", stdout=out)
    assert "(not a runbook)        Migrate an existing engine into a hosted engine\n" in out.getvalue()
    assert "Migrate_to_Hosted_Engine" in OUT_OF_SCOPE[0][1]
    cluster = cluster_of()
    client.force_login(make_user("operator"))
    page = client.get(f"/clusters/{cluster.pk}/").content.decode()
    assert "Migrate an existing engine into a hosted engine · not a runbook" in page
    assert f'href="/clusters/{cluster.pk}/runbooks/lockspace-recovery/"' in page
    assert f'href="/clusters/{cluster.pk}/runbooks/clean-metadata/"' in page


# -- end to end: the portal's services, a real worker, a lab after the fault --------------------

def polled_after(cluster, since):
    """The HA poller has read the cluster since ``since`` (and detected its release)."""
    def done():
        cluster.refresh_from_db()
        return cluster.polled_at and cluster.polled_at > since and cluster.detected_release
    return wait_until(done, 60, "a poll of the cluster")


def approve(run, key, approver):
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 120)
    assert run.status == RunStatus.AWAITING_APPROVAL, run.error
    services.approve_step(step=steps_of(run)[key], user=approver, comment="checked")


def finished(run, timeout=240):
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED], timeout)
    return run


def all_live(state):
    return all(h["live"] for h in state["hosts"].values()) and state


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.parametrize("release", [
    pytest.param("4.3", marks=pytest.mark.lab(engine_version="4.3")),
    pytest.param("4.5", marks=pytest.mark.lab(engine_version="4.5"))])
def test_lockspace_recovery_after_a_corrupted_lockspace_with_force_and_an_approver(
        release, rq_worker, ha_poller, fresh_lab_cluster, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    wait_for_polled(cluster)
    lab.fault("corrupt-lockspace")
    lab.wait_for(lambda s: not any(h["live"] for h in s["hosts"].values()), sim_seconds=120)
    polled_after(cluster, timezone.now())
    operator = make_user("operator")
    run = start(cluster, "lockspace-recovery", operator, force=True)
    steps = steps_of(run)
    assert steps["reinitialize"].command == "hosted-engine --reinitialize-lockspace --force"
    assert run.preflight["notes"][0] == f"oVirt {release}: daemons with systemctl (el7 hosts and newer)."
    assert run.preflight["notes"][1].startswith("--force: the lockspace is wiped")
    approve(run, "approve-force", make_user("approver"))
    finished(run)
    assert run.status == RunStatus.SUCCEEDED, run.error or list(run.steps.values_list("key", "status", "error"))
    state = lab.wait_for(all_live, sim_seconds=300)
    assert state["global_maintenance"] is False
    assert {name: h["services"]["ovirt-ha-agent"] for name, h in state["hosts"].items()} == {
        "he1.lab.local": True, "he2.lab.local": True, "he3.lab.local": True}
    assert lab.wait_for(lambda s: s["engine_vm"]["healthy"] and s, sim_seconds=600)["engine_vm"]["host"]
    assert texts(steps_of(run)["broker"]) == ["active"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_lockspace_recovery_after_a_power_outage_without_force(rq_worker, ha_poller, fresh_lab_cluster, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    wait_for_polled(cluster)
    lab.fault("power-outage")
    # every host back with its daemons (the agent starts 30 s after the broker)
    lab.wait_for(lambda s: all(h["power"] == "on" and h["services"]["ovirt-ha-agent"]
                               for h in s["hosts"].values()), sim_seconds=400)
    polled_after(cluster, timezone.now())
    run = start(cluster, "lockspace-recovery", make_user("operator"))
    assert "approve-force" not in steps_of(run)
    finished(run)
    assert run.status == RunStatus.SUCCEEDED, run.error or list(run.steps.values_list("key", "status", "error"))
    state = lab.wait_for(lambda s: s["engine_vm"]["healthy"] and all_live(s), sim_seconds=900)
    assert state["global_maintenance"] is False
    assert texts(steps_of(run)["reinitialize"]) == []  # it says nothing when it works


def he3_gone_for_good(cluster, admin):
    """he3 dies for good and the admin removes it from the portal's inventory; its block
    stays on the whiteboard, stale, and never said "stopped"."""
    lab = cluster.lab
    wait_for_polled(cluster)
    lab.fault("kill-host", host="he3")
    lab.wait_for(lambda s: not s["hosts"]["he3.lab.local"]["live"], sim_seconds=120)
    # The lab's "live" drops with the power; the hosts' brokers see its block up to date until
    # its timestamp is HOST_ALIVE_TIMEOUT old (60 s of lab time).
    check = build_command(NOT_LIVE, host_id=3)
    for name in ("he1", "he2"):
        wait_until(lambda: "is not live" in lab_exec(lab, name, check), 30, f"host 3 stale on {name}")
    services.remove_hosts(user=admin, cluster=cluster, host_ids=[cluster.hosts.get(name="he3.lab.local").pk])
    polled_after(cluster, timezone.now())
    return cluster, lab


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_clean_metadata_of_a_removed_host_refuses_without_force_and_cleans_with_it(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    cluster, lab = he3_gone_for_good(fresh_lab_cluster, make_user("admin"))
    assert '"3"' in lab_exec(lab, "he1", "hosted-engine --vm-status --json")
    operator = make_user("operator")

    # A host the portal no longer knows but whose agent publishes is refused on the host itself.
    cluster.hosts.get(name="he2.lab.local").delete()
    run = finished(start(cluster, "clean-metadata", operator, host_id=2))
    steps = steps_of(run)
    assert (run.status, steps["check-id"].status, steps["stop-agent"].status) == (RunStatus.FAILED, "failed", "pending")
    assert texts(steps["check-id"]) == ["host id 2 is live in vm-status: its agent publishes"]

    run = finished(start(cluster, "clean-metadata", operator, host_id=3))
    steps = steps_of(run)
    assert (run.status, steps["clean"].status) == (RunStatus.FAILED, "failed")
    assert steps["clean"].error == \
        "the output does not show 'Cleaning the metadata block!|Metadata for current host missing'"
    assert any("Cannot clean unclean metadata block. Consider --force-clean." in line for line in texts(steps["clean"]))
    # the refusal did not leave he1 without its agent
    assert lab.state()["hosts"]["he1.lab.local"]["services"]["ovirt-ha-agent"] is True

    run = start(cluster, "clean-metadata", operator, host_id=3, force_cleanup=True)
    approve(run, "approve-force", make_user("approver"))
    finished(run)
    assert run.status == RunStatus.SUCCEEDED, run.error or list(run.steps.values_list("key", "status", "error"))
    assert texts(steps_of(run)["check-id"]) == ["host id 3 is not live in vm-status"]
    assert texts(steps_of(run)["verify"]) == ["host id 3 is not in vm-status"]
    assert '"3"' not in lab_exec(lab, "he1", "hosted-engine --vm-status --json")
    state = lab.state()
    assert state["hosts"]["he1.lab.local"]["services"]["ovirt-ha-agent"] is True
    assert state["engine_vm"]["healthy"]


class Deploy:
    """``hosted-engine --deploy`` on a real SSH channel, answered prompt by prompt."""

    def __init__(self, lab, host):
        self.client = lab.connect(host)
        self.channel = self.client.get_transport().open_session()
        self.channel.settimeout(0.1)
        self.channel.exec_command("hosted-engine --deploy")
        self.out = ""

    def expect(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while text not in self.out:
            assert time.monotonic() < deadline, f"{text!r} never came; output:\n{self.out[-2000:]}"
            try:
                self.out += self.channel.recv(65536).decode()
            except socket.timeout:
                pass

    def answer(self, prompt, line):
        self.expect(prompt)
        self.out = self.out[self.out.index(prompt) + len(prompt):]
        self.channel.sendall(line + "\n")

    def first_host(self, storage):
        """A fresh first-host deployment's questions, up to the OS installation."""
        for prompt, line in (("Are you sure you want to continue?", ""), ("nfs3, nfs4)[nfs3]: ", ""),
                             ("(example: host:/path): ", storage), ("(eth0) [eth0]: ", ""),
                             ("[192.168.122.1]: ", ""), ("(cdrom, disk, pxe)[cdrom]: ", ""),
                             ("installation media you would like to use [None]: ", "/tmp/CentOS-7.iso"),
                             ("[Defaults to minimum requirement: 4096]: ", ""),
                             ("[Defaults to minimum requirement: 2]: ", ""), ("[hosted_engine_1]: ", ""),
                             ("accessing the Administrator Portal: ", DEPLOY_PASSWORD),
                             ("Confirm 'admin@internal' user password: ", DEPLOY_PASSWORD),
                             ("Engine FQDN: ", "engine.lab.local"),
                             ("Please confirm installation settings (Yes, No)[Yes]: ", "")):
            self.answer(prompt, line)
        self.expect("Has the OS installation been completed successfully?")

    def cut_off(self):
        """The admin's SSH session drops mid-deployment."""
        self.client.close()


DEPLOY_PASSWORD = "resume-pw"
ANSWERS = "/var/lib/ovirt-hosted-engine-setup/answers"


def answer_files(lab, host):
    return lab_exec(lab, host, f"ls {ANSWERS} 2>/dev/null").split()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.lab(undeployed=True)
def test_failed_install_cleanup_after_an_interrupted_first_deploy(rq_worker, fresh_lab_cluster, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    assert "Complete!" in lab_exec(lab, "he1", "yum install -y ovirt-hosted-engine-setup")
    deploy = Deploy(lab, "he1")
    deploy.first_host("nfs.lab.local:/exports/he-failed")
    deploy.cut_off()
    wait_until(lambda: answer_files(lab, "he1"), 30, "the answer file of the broken deployment")
    operator = make_user("operator")

    run = start(cluster, "failed-install-cleanup", operator, host="he1.lab.local",
                storage_path="/exports/he-failed")
    approve(run, "approve", make_user("approver"))
    wait_for_status(run, [RunStatus.WAITING, RunStatus.FAILED], 60)
    purge = steps_of(run)["purge-storage"]
    assert "rm -fR /exports/he-failed/*" in purge.command
    assert "exactly as the operator gave it: /exports/he-failed" in purge.command
    services.confirm_step(step=purge, user=operator, comment="purged on the NFS server")
    finished(run)
    assert run.status == RunStatus.SUCCEEDED, run.error or list(run.steps.values_list("key", "status", "error"))
    steps = steps_of(run)
    assert steps["cleanup"].command == CLEANUP_SCRIPT
    out = texts(steps["cleanup"])
    assert "- removing /var/lib/ovirt-hosted-engine-setup" in out and "Complete!" in out
    assert texts(steps["verify"]) == ["no ovirt, vdsm or libvirt package and no hosted-engine configuration left"]
    packages = lab.state()["hosts"]["he1.lab.local"]["packages"]
    assert not [name for name in packages if re.search("ovirt|vdsm|libvirt", name)]
    assert answer_files(lab, "he1") == []
    assert lab_exec(lab, "he1", "hosted-engine --help 2>&1; echo rc=$?").endswith("command not found\nrc=127\n")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.lab(undeployed=True)
def test_resume_deploy_after_a_deploy_cut_off_once_the_engine_was_set_up(rq_worker, fresh_lab_cluster, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    assert "Complete!" in lab_exec(lab, "he1", "yum install -y ovirt-hosted-engine-setup")
    deploy = Deploy(lab, "he1")
    deploy.first_host("nfs.lab.local:/exports/he-resume")
    deploy.answer("Has the OS installation been completed successfully? (Yes, No)[Yes]? ", "Yes")
    deploy.expect("Please install the engine in the VM, hit enter when finished.")
    # the admin sets the engine up in the VM ... and loses the host's session before Enter
    lab.wait_for(lambda s: s["engine_vm"]["status"] == "up", sim_seconds=120)
    assert "Complete!" in lab_exec(lab, "engine", "yum install -y ovirt-engine")
    client = lab.connect("engine")
    stdin, stdout, _ = client.exec_command("engine-setup")
    stdin.write(f"\n{DEPLOY_PASSWORD}\n{DEPLOY_PASSWORD}\n\n")
    stdin.channel.shutdown_write()
    assert stdout.channel.recv_exit_status() == 0
    client.close()
    deploy.cut_off()
    wait_until(lambda: answer_files(lab, "he1"), 30, "the answer file of the broken deployment")

    run = start(cluster, "resume-deploy", make_user("operator"), host="he1.lab.local", vm_os="installed")
    finished(run, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, run.error or list(run.steps.values_list("key", "status", "error"))
    steps = steps_of(run)
    shown = texts(steps["answers"])
    assert shown[0].startswith(f"latest answer file: {ANSWERS}/answers-")
    assert "OVEHOSTED_ENGINE/adminPassword=str:(hidden)" in shown
    assert not any(DEPLOY_PASSWORD in line for step in steps.values() for line in texts(step))
    out = texts(steps["deploy"])
    assert out[0] == f"hosted-engine --deploy --config-append={shown[0].split(': ', 1)[1]}"
    assert "          (1) Continue setup - VM installation is complete" in out
    assert "[ INFO  ] Hosted Engine successfully set up" in out
    state = lab.wait_for(lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUp" and s, sim_seconds=300)
    assert state["engine_vm"]["host"] == "he1.lab.local"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.lab(engine_version="3.6")
def test_clean_metadata_on_3_6_reads_the_plain_vm_status_of_setup_1_3(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    cluster, lab = he3_gone_for_good(fresh_lab_cluster, make_user("admin"))
    assert cluster.detected_release.startswith("oVirt 3.6")
    assert "--== Host 3 status ==--" in lab_exec(lab, "he1", "hosted-engine --vm-status")
    run = start(cluster, "clean-metadata", make_user("operator"), host_id=3, force_cleanup=True)
    approve(run, "approve-force", make_user("approver"))
    finished(run)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, (run.error, [(s.key, s.status, s.error) for s in steps.values()],
                                               texts(steps["check-id"]))
    assert texts(steps["check-id"]) == ["host id 3 is not live in vm-status"]
    assert texts(steps["verify"]) == ["host id 3 is not in vm-status"]
    assert "--== Host 3 status ==--" not in lab_exec(lab, "he1", "hosted-engine --vm-status")
    # 1.3 prints "Status up-to-date" before "Host ID": the check reads each block whole. (he1's
    # agent was just restarted: it sees he2 stale for its first 60 s.)
    check = build_command(NOT_LIVE, host_id=2) + "; echo rc=$?"
    assert wait_until(lambda: "rc=1" in (out := lab_exec(lab, "he1", check)) and out, 30, "he2 live on he1") == \
        "host id 2 is live in vm-status: its agent publishes\nrc=1\n"
