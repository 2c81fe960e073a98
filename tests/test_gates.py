"""Gates that gate (issue 16, section 4): a wait that follows a change passes only on data
the agent published after it, and local maintenance is refused up front where the
engine VM's host would refuse it. Real RQ workers, the HA poller and labs over SSH; the
agent is kept down with the lab's own fault."""
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
