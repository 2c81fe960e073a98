"""The recovery runbooks of the howto (lockspace-recovery, clean-metadata,
failed-install-cleanup, resume-deploy): their plans and preflight on a
given HA state, then each end to end through the portal's services, a real
worker and a lab that went through the fault it repairs."""
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from tests.factories import make_cluster, make_host
from upgrades import services
from upgrades.runbooks import OUT_OF_SCOPE
from upgrades.runbooks.install_cleanup import CLEANUP_SCRIPT
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
        *[(f"score.{h}.wait-score", h, f"wait until {h} is live with a score of at least 0 (at most 900 s)")
          for h in hosts]]
    assert all(step.rerun_safe for step in the_plan.steps)
    # What it repairs leaves every host stale: that must not block it.
    assert "ha-fresh" not in levels(the_plan) and not the_plan.inhibitors
    assert the_plan.notes == ["oVirt 4.3: daemons with systemctl (el7 hosts and newer)."]


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
        ("stop-agent", "he1.example.com"), ("clean", "he1.example.com"), ("agent-back", "he1.example.com"),
        ("verify", "he1.example.com")]
    clean = the_plan.steps[1]
    assert clean.command == ("hosted-engine --clean-metadata --host-id=3; rc=$?; systemctl start ovirt-ha-agent; "
                             "exit $rc")
    assert clean.spec["output_check"] == "Cleaning the metadata block!|Metadata for current host missing"
    assert the_plan.steps[0].spec["guards"] == [{"name": "metadata-host-id",
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
    assert the_plan.steps[2].command.startswith("hosted-engine --clean-metadata --host-id=3 --force-cleanup;")


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
