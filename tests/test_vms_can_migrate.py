"""The "vms-can-migrate" preflight check against the lab's engine, end to end: the plan
reads the engine's view the HA poller stored (tests/test_left_behind.py shows a pinned VM
there as an inhibitor); a guest VM pinned after the plan, while the run waits for its
approval, stops he-upgrade when the run starts (the check asks the engine through
ovirtsdk4 again), before any step; once the VM may migrate, the same run goes on."""
import time

import pytest

from tests.test_engine import start, steps_of
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import engine_cluster, polled_release
from tests.test_left_behind import wait_for_engine_view
from upgrades import services
from upgrades.models import ApprovalPolicy, RunStatus, StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BLOCKED = ("These VMs cannot migrate, so their hosts cannot go to maintenance: "
           "db1 on he2.lab.local.")


def started_checks(run):
    return {c["check"]: c for c in run.preflight.get("start", [])}


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_a_pinned_vm_blocks_he_upgrade_at_its_start_until_it_may_migrate(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    wait_for_engine_view(fresh_lab_cluster, lambda v: v["api"] == "v4")
    ApprovalPolicy.objects.create(cluster=fresh_lab_cluster, runbook="he-upgrade", before_start="always")

    # Planned with no VM pinned (the engine's view says so), then the VM is pinned while
    # the run waits for its approval: the run's start asks the engine again.
    plan = services.plan_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={})
    planned = {c.check: c for c in plan.checks}
    assert planned["vms-can-migrate"].level == "ok"
    run = start(fresh_lab_cluster, "he-upgrade", operator)
    assert run.status == RunStatus.AWAITING_APPROVAL
    lab.admin("add-vm", vm="db1", host="he2", affinity="pinned")
    services.approve_run(run=run, user=make_user("approver"), comment="planned before the VM was pinned")
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.CANCELLED], 300)
    assert run.status == RunStatus.FAILED
    assert BLOCKED in run.error
    assert started_checks(run)["vms-can-migrate"] == {
        "check": "vms-can-migrate", "level": "inhibitor", "message": BLOCKED}
    # Nothing ran: every step pending, the cluster as it was.
    assert {s.status for s in steps_of(run).values()} == {StepStatus.PENDING}
    state = lab.state()
    assert engine_cluster(lab)["scheduling_policy"] == "none"
    assert {h["status"] for h in state["engine"]["hosts"].values()} == {"up"}
    assert state["engine"]["vms"]["db1"]["host"] == "he2.lab.local"

    # Migratable now: resumed, the run passes its start preflight and its steps begin.
    lab.admin("set-vm-affinity", vm="db1", affinity="migratable")
    services.resume_run(run=run, user=operator)
    deadline = time.monotonic() + 300
    while all(s.status == StepStatus.PENDING for s in steps_of(run).values()):
        run.refresh_from_db()
        assert run.status in (RunStatus.PENDING, RunStatus.RUNNING), (run.status, run.error)
        assert time.monotonic() < deadline, "no step started after the resume"
        time.sleep(0.1)
    run.refresh_from_db()
    assert started_checks(run)["vms-can-migrate"] == {
        "check": "vms-can-migrate", "level": "ok",
        "message": "Every VM can migrate (or none runs besides the engine VM)."}
    services.cancel_run(run=run, user=operator, reason="the check is what this test is about")
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED], 300)
    assert run.status == RunStatus.CANCELLED
