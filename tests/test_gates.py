"""Gates that gate (issue 16, section 4): a wait that follows a change passes only on data
the agent published after it, and local maintenance is refused up front where the
engine VM's host would refuse it. Real RQ workers, the HA poller and labs over SSH; the
agent is kept down with the lab's own fault."""
import time

import pytest

from tests.test_engine import start, steps_of, texts
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import engine_cluster, polled_release
from upgrades.models import RunStatus, RunStep, StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

NOT_RUN = (StepStatus.PENDING, StepStatus.CANCELLED)


def shorten_wait(run, key, seconds):
    """A wait's stored timeout, shortened before the run reaches it: the lab runs 60 times
    faster than real time, the portal's waits count real seconds."""
    step = run.steps.get(key=key)
    assert step.status == StepStatus.PENDING
    RunStep.objects.filter(pk=step.pk).update(spec={**step.spec, "timeout": seconds})


@pytest.mark.lab(engine_version="4.5", os="el9", outdated=True)
def test_he_upgrade_stops_at_the_score_gate_of_a_host_whose_agent_stays_down_before_the_next_host(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    lab = fresh_lab_cluster.lab
    polled_release(fresh_lab_cluster)
    before = lab.state()["hosts"]["he3.lab.local"]
    lab.fault("agent-stays-down", host="he2.lab.local")
    run = start(fresh_lab_cluster, "he-upgrade", make_user("operator"))
    gate = run.steps.get(key="hosts.he2.lab.local.score")
    # The plan says what the gate waits for: the full score, from the restarted agent.
    assert gate.command == (
        "wait until he2.lab.local is live with a score of at least 3400, its agent settled (EngineDown or "
        "EngineUp; GlobalMaintenance while that is set), in data its agent published after this wait began "
        "(at most 900 s)")
    shorten_wait(run, gate.key, 40)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 600)
    steps = steps_of(run)
    gate = steps[gate.key]
    assert (run.status, gate.status) == (RunStatus.FAILED, StepStatus.FAILED), \
        [(s.key, s.status, s.error) for s in steps.values() if s.status != StepStatus.SUCCEEDED]
    assert gate.error.startswith("timed out after 40 s; last seen: he2.lab.local: score 0, state AgentStopped")
    assert gate.error.endswith("; nothing published since the wait began")
    assert steps["hosts.he2.lab.local.ha"].status == StepStatus.SUCCEEDED
    # Nothing after the gate ran: not the engine VM's move to he2, not one step of the next hosts.
    after = [s for s in steps.values() if s.order > gate.order and not s.spec.get("always")]
    assert after and {s.status for s in after} <= set(NOT_RUN), [(s.key, s.status) for s in after]
    assert any(s.key.startswith("hosts.he3.lab.local.") for s in after)
    # The lab agrees: he3 is as it was (outdated packages, its agent never restarted, up in
    # the engine), he2's agent is still down, the engine VM did not move; the policy is back.
    state = lab.state()
    he3 = state["hosts"]["he3.lab.local"]
    assert he3["packages"] == before["packages"] and he3["packages"]["vdsm"] == "4.50.3.3-1"
    assert he3["transitions"] == before["transitions"] or he3["agent_state"] in ("EngineDown", "GlobalMaintenance")
    assert he3["local_maintenance"] is False
    assert state["engine"]["hosts"]["he3.lab.local"]["status"] == "up"
    assert state["hosts"]["he2.lab.local"]["agent_state"] == "StartState"
    assert state["engine_vm"]["host"] == "he1.lab.local"
    assert engine_cluster(lab)["scheduling_policy"] == "none"


@pytest.mark.lab(engine_version="4.5", os="el9", speed=5)
def test_a_wait_after_an_agent_restart_does_not_pass_on_what_the_agent_said_before(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    """clean-metadata stops the agent of the host it runs on, cleans a block and starts the
    agent again, then waits until the agent publishes. he1's agent does not come back: its
    last word, AgentStopped published as it stopped, is still up to date (for 60 s of the
    agents' time, 12 s here) when the wait starts, and must not count as publishing again."""
    lab = fresh_lab_cluster.lab
    polled_release(fresh_lab_cluster)
    lab.fault("agent-stays-down", host="he1.lab.local")
    run = start(fresh_lab_cluster, "clean-metadata", make_user("operator"), host_id=7, host="he1.lab.local")
    shorten_wait(run, "agent-back", 20)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 300)
    steps = steps_of(run)
    gate = steps["agent-back"]
    assert (run.status, gate.status) == (RunStatus.FAILED, StepStatus.FAILED), \
        [(s.key, s.status, s.error) for s in steps.values()]
    seen = [line for line in texts(gate) if line.startswith("seen: ")]
    # What it saw first was the stopped agent's own block, still up to date: not new.
    assert seen[0] == "seen: he1.lab.local: score 0, state AgentStopped; nothing published since the wait began"
    assert steps["clean"].status == StepStatus.SUCCEEDED
    assert steps["verify"].status == StepStatus.PENDING
    assert lab.state()["hosts"]["he1.lab.local"]["agent_state"] == "StartState"


# -- local maintenance on the engine VM's host ------------------------------------------

REFUSAL = ("Unable to enter local maintenance mode: the engine VM is running on the current host, please "
           "migrate it before entering local maintenance mode.")
RELEASES = {
    "3.6": "oVirt 3.6 (ovirt-hosted-engine-ha 1.3.5.8, ovirt-hosted-engine-setup 1.3.7.4)",
    "4.3-old": "oVirt 4.3 (ovirt-hosted-engine-ha 2.3.1, ovirt-hosted-engine-setup 2.3.10)",
    "4.3": "oVirt 4.3 (ovirt-hosted-engine-ha 2.3.6, ovirt-hosted-engine-setup 2.3.11)",
    "4.4": "oVirt 4.4 (from the vm-status layout)",
    "4.5": "oVirt 4.5 (ovirt-hosted-engine-ha 2.5.1, ovirt-hosted-engine-setup 2.7.1)",
}


def local_on_engine_vm_host(release):
    from tests.factories import make_polled_cluster
    from upgrades import services

    cluster = make_polled_cluster()
    cluster.detected_release = RELEASES.get(release, "")
    cluster.save()
    plan = services.plan_run(cluster=cluster, slug="maintenance-local", params={"host": "he1.lab.local"})
    return next(c for c in plan.checks if c.check == "engine-vm-elsewhere")


@pytest.mark.parametrize("release", ["4.3", "4.4", "4.5"])
def test_local_maintenance_where_the_engine_vm_runs_is_an_inhibitor_where_hosted_engine_refuses_it(release):
    check = local_on_engine_vm_host(release)
    assert check.level == "inhibitor"
    assert check.message.startswith("The engine VM runs on he1.lab.local: hosted-engine-setup ")
    assert f'refuses local maintenance there ("{REFUSAL}"; 2.3.11 and later).' in check.message
    assert check.remedy == {"slug": "engine-vm-migrate", "label": "Move the engine VM to another host first"}


@pytest.mark.parametrize("release, says", [
    ("3.6", "the HA agent of oVirt 3.6 accepts local maintenance there and migrates the engine VM"),
    ("4.3-old", "hosted-engine-setup 2.3.10 accepts local maintenance there, but no agent moves the engine VM"),
    ("unknown", "the cluster's release is not detected yet: hosted-engine-setup 2.3.11 and later"),
])
def test_where_the_release_accepts_it_or_is_not_known_it_is_a_warning_that_says_why(release, says):
    check = local_on_engine_vm_host(release)
    assert check.level == "warning" and says in check.message
    assert (check.remedy is None) == (release == "3.6")  # 1.x moves the VM itself


def test_the_4_3_lab_refuses_local_maintenance_where_the_engine_vm_runs_as_setup_2_3_11_and_later_do(fresh_lab):
    from tests.test_engine import lab_exec

    assert lab_exec(fresh_lab, "he1", "rpm -q ovirt-hosted-engine-setup").startswith("ovirt-hosted-engine-setup-2.3.13-1")
    out = lab_exec(fresh_lab, "he1", "hosted-engine --set-maintenance --mode=local 2>&1; echo rc=$?")
    assert out == REFUSAL + "\nrc=1\n"
    assert fresh_lab.state()["hosts"]["he1.lab.local"]["local_maintenance"] is False
    # Elsewhere it is accepted, whatever the other hosts (no "no available hosts" check since 2.3.11).
    assert lab_exec(fresh_lab, "he2", "hosted-engine --set-maintenance --mode=local; echo rc=$?") == "rc=0\n"


def test_a_local_maintenance_run_refused_by_the_host_fails_at_once(rq_worker, ha_poller, fresh_lab_cluster,
                                                                  make_user):
    """The release not detected (yet): a warning only, so the run goes; hosted-engine on the
    4.3 lab refuses, and the run fails on its exit status instead of waiting 300 s for a
    local maintenance that never comes."""
    polled_release(fresh_lab_cluster)
    fresh_lab_cluster.detected_release = ""  # the poller checks it again only in 10 minutes
    fresh_lab_cluster.save(update_fields=["detected_release"])
    began = time.monotonic()
    run = start(fresh_lab_cluster, "maintenance-local", make_user("operator"), host="he1.lab.local")
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 120)
    step = steps_of(run)["set-mode"]
    assert (run.status, step.status, step.exit_code) == (RunStatus.FAILED, StepStatus.FAILED, 1)
    assert REFUSAL in texts(step)
    assert steps_of(run)["wait-mode"].status == StepStatus.PENDING
    assert time.monotonic() - began < 60


@pytest.mark.lab(engine_version="4.5", os="el9")
def test_engine_vm_migrate_moves_the_vm_and_then_local_maintenance_is_possible_there(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    from tests.test_engine import wait_for_polled
    from upgrades import services

    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    blocked = services.plan_run(cluster=fresh_lab_cluster, slug="maintenance-local", params={"host": "he1.lab.local"})
    assert [c.remedy["slug"] for c in blocked.inhibitors if c.remedy] == ["engine-vm-migrate"]

    plan = services.plan_run(cluster=fresh_lab_cluster, slug="engine-vm-migrate", params={})
    assert [s.command for s in plan.steps] == [
        "engine API: migrate_engine_vm(host=he2.lab.local)",
        "wait until the engine VM runs on one of he2.lab.local and its agent sees the engine up (at most 900 s)"]
    run = start(fresh_lab_cluster, "engine-vm-migrate", operator)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 300)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in run.steps.all()]
    assert lab.state()["engine_vm"]["host"] == "he2.lab.local"

    deadline = time.monotonic() + 60
    while services.plan_run(cluster=wait_for_polled(fresh_lab_cluster), slug="maintenance-local",
                            params={"host": "he1.lab.local"}).inhibitors:
        assert time.monotonic() < deadline, "the poller did not see the engine VM move"
        time.sleep(0.2)
    run = start(fresh_lab_cluster, "maintenance-local", operator, host="he1.lab.local")
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 120)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in run.steps.all()]
    assert lab.state()["hosts"]["he1.lab.local"]["local_maintenance"] is True

