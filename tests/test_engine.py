"""The runbook engine end to end: real worker processes, the HA poller (and
its sweeper), the lab over SSH and its engine API; test-only runbooks
exercise every kind of step and every action a person takes."""
import os
import signal
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.conftest import wait_until
from tests.test_live_output import wait_for_lines
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.models import Approval, AuditEvent, RunStatus, StepOutput, UpgradeRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start(cluster, slug, user, **params):
    return services.start_run(cluster=cluster, slug=slug, params=params, user=user, acknowledge=True)


def texts(step):
    return list(StepOutput.objects.filter(step=step).order_by("seq").values_list("text", flat=True))


def steps_of(run):
    return {step.key: step for step in run.steps.order_by("order")}


def wait_for_polled(cluster, timeout=30):
    """The poller has read the cluster (what the plan's interlocks look at)."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.refresh_from_db()
        if cluster.polled_at and all(cluster.hosts.values_list("ha_live", flat=True)):
            return cluster
        assert time.monotonic() < deadline, "the HA poller did not read the cluster"
        time.sleep(0.2)


@pytest.fixture
def polled(ha_poller, lab_cluster):
    """The shared lab's cluster as the HA poller has read it (plans of changing runbooks need that)."""
    return wait_for_polled(lab_cluster)


def lab_exec(lab, host, command):
    client = lab.connect(host)
    try:
        _, out, _ = client.exec_command(command)
        return out.read().decode()
    finally:
        client.close()


def test_a_wait_step_holds_and_says_what_it_saw(rq_worker, lab_cluster, make_user):
    run = start(lab_cluster, "test-wait", make_user("operator"), host="he1.lab.local")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert run.status == RunStatus.SUCCEEDED
    lines = texts(run.steps.get())
    assert lines[0] == "waiting until the engine VM is up and healthy on a host other than "
    assert lines[-1].startswith("seen: the engine VM runs on he1.lab.local")


def test_a_wait_step_times_out_with_the_last_values_it_saw(rq_worker, lab_cluster, make_user):
    run = start(lab_cluster, "test-wait-timeout", make_user("operator"), host="he1.lab.local")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    step = run.steps.get()
    assert (run.status, step.status) == (RunStatus.FAILED, "failed")
    assert step.error == "timed out after 3 s; last seen: global maintenance off"


def test_a_manual_step_waits_for_an_operator_and_the_run_goes_on(rq_worker, lab_cluster, polled, make_user):
    operator = make_user("operator")
    run = start(lab_cluster, "test-manual", operator, host="he2.lab.local")
    wait_for_status(run, [RunStatus.WAITING, RunStatus.FAILED], 60)
    steps = steps_of(run)
    assert steps["reinstall"].status == "waiting" and steps["reinstall"].command == \
        "Reinstall he2.lab.local as el7, then confirm."
    assert steps["after"].status == "pending"
    with pytest.raises(PermissionDenied):
        services.confirm_step(step=steps["reinstall"], user=make_user("viewer"))
    services.confirm_step(step=steps["reinstall"], user=operator, comment="reinstalled from PXE")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED
    assert (steps["reinstall"].status, steps["reinstall"].note) == ("succeeded", "reinstalled from PXE")
    assert texts(steps["after"]) == ["after"]
    assert AuditEvent.objects.filter(action="step.confirm", actor=operator).exists()


def test_an_approval_from_another_approver_lets_the_run_go_on(rq_worker, lab_cluster, make_user):
    requester = make_user("admin", "alice")  # an admin, and so an approver too
    run = start(lab_cluster, "test-approval", requester, host="he1.lab.local")
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 60)
    sign_off = steps_of(run)["sign-off"]
    # Four eyes: never the requester, not even an admin.
    with pytest.raises(PermissionDenied, match="another approver must decide"):
        services.approve_step(step=sign_off, user=requester)
    with pytest.raises(PermissionDenied, match="Only approvers"):
        services.approve_step(step=sign_off, user=make_user("operator"))
    approver = make_user("approver")
    services.approve_step(step=sign_off, user=approver, comment="window agreed")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert run.status == RunStatus.SUCCEEDED
    approval = Approval.objects.get(run=run)
    assert (approval.user, approval.decision, approval.comment) == (approver, "approved", "window agreed")


def test_a_rejection_ends_the_run_and_nothing_after_it_runs(rq_worker, lab_cluster, make_user):
    run = start(lab_cluster, "test-approval", make_user("operator"), host="he1.lab.local")
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 60)
    services.reject_step(step=steps_of(run)["sign-off"], user=make_user("approver"), comment="not this week")
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == RunStatus.FAILED and run.error == "Rejected by approver: not this week"
    assert (steps["sign-off"].status, steps["after"].status) == ("rejected", "pending")
    with pytest.raises(services.Refused, match="rejected: start a new run"):
        services.resume_run(run=run, user=make_user("operator", "op2"))
    time.sleep(1)
    assert texts(steps["after"]) == []


def test_for_each_host_puts_the_engine_vm_host_last(rq_worker, lab_cluster, polled, make_user):
    run = start(lab_cluster, "test-for-each", make_user("operator"))
    assert list(run.steps.order_by("order").values_list("key", flat=True)) == [
        "hosts.he2.lab.local.name", "hosts.he3.lab.local.name", "hosts.he1.lab.local.name"]
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert [texts(step) for step in run.steps.order_by("order")] == [
        ["he2.lab.local"], ["he3.lab.local"], ["he1.lab.local"]]


def test_pause_waits_for_the_current_step_and_resume_goes_on(rq_worker, lab, lab_cluster, polled, make_user):
    operator = make_user("operator")
    lab_exec(lab, "he1", "rm -f /tmp/pause-test")
    run = start(lab_cluster, "test-steps", operator, host="he1.lab.local", sim_seconds=180,
                marker="/tmp/pause-test")
    deadline = time.monotonic() + 30
    while steps_of(run)["one"].status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    services.pause_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.PAUSED, RunStatus.FAILED, RunStatus.SUCCEEDED], 60)
    steps = steps_of(run)
    assert (run.status, steps["one"].status, steps["two"].status) == ("paused", "succeeded", "pending")
    services.resume_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert run.status == RunStatus.SUCCEEDED
    assert lab_exec(lab, "he1", "cat /tmp/pause-test") == "one\ntwo\nthree\n"


def test_cancel_stops_the_command_on_the_host(rq_worker, lab, lab_cluster, polled, make_user):
    operator = make_user("operator")
    run = start(lab_cluster, "test-long", operator, host="he3.lab.local")
    ticks = steps_of(run)["ticks"]
    wait_for_lines(ticks, 3, timeout=30)
    services.cancel_run(run=run, user=operator, reason="wrong window")
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED], 30)
    steps = steps_of(run)
    assert (run.status, steps["ticks"].status, steps["last"].status) == ("cancelled", "cancelled", "cancelled")
    assert "stopped" in steps["ticks"].error
    # The loop wrote a tick every 0.5 s; stopped, the file stays as it is.
    first = lab_exec(lab, "he3", "cat /tmp/ticks")
    time.sleep(2)
    assert lab_exec(lab, "he3", "cat /tmp/ticks") == first
    assert AuditEvent.objects.filter(action="run.cancel_request", actor=operator).exists()


def test_retry_after_an_injected_failure_completes_the_run(rq_worker, lab, lab_cluster, polled, make_user):
    operator = make_user("operator")
    lab.fault("fail-next-command", host="he2.lab.local", pattern="retry-me")
    run = start(lab_cluster, "test-failing", operator, host="he2.lab.local")
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 60)
    flaky = steps_of(run)["flaky"]
    assert (run.status, flaky.status, flaky.exit_code) == ("failed", "failed", 1)
    with pytest.raises(services.Refused, match="retry it, or skip it with a reason, first"):
        services.resume_run(run=run, user=operator)
    services.retry_step(step=flaky, user=operator)
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    flaky.refresh_from_db()
    assert (run.status, flaky.status) == ("succeeded", "succeeded")
    lines = texts(flaky)
    assert lines[-2:] == ["--- retried by operator ---", "retry-me"]
    assert "injected failure" in lines[0]


def test_skip_needs_a_reason_and_the_run_goes_on_without_the_step(rq_worker, lab, lab_cluster, polled, make_user):
    operator = make_user("operator")
    lab.fault("fail-next-command", host="he2.lab.local", pattern="retry-me")
    run = start(lab_cluster, "test-failing", operator, host="he2.lab.local")
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 60)
    flaky = steps_of(run)["flaky"]
    with pytest.raises(ValidationError):
        services.skip_step(step=flaky, user=operator, reason="  ")
    services.skip_step(step=flaky, user=operator, reason="done by hand on the console")
    services.resume_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED
    assert (steps["flaky"].status, steps["flaky"].note) == ("skipped", "done by hand on the console")
    assert texts(steps["after"]) == ["after"]
    assert AuditEvent.objects.get(action="step.skip").details["reason"] == "done by hand on the console"


def _kill_executor(run):
    run.refresh_from_db()
    os.kill(int(run.executor.split(":")[1]), signal.SIGKILL)


def test_a_killed_worker_then_resume_never_runs_a_finished_step_again(rq_worker, polled, lab, lab_cluster,
                                                                     make_user):
    operator = make_user("operator")
    lab_exec(lab, "he2", "rm -f /tmp/long-first")
    run = start(lab_cluster, "test-long", operator, host="he2.lab.local")
    ticks = steps_of(run)["ticks"]
    wait_for_lines(ticks, 2, timeout=30)
    _kill_executor(run)
    wait_for_status(run, [RunStatus.INTERRUPTED], 40)
    assert steps_of(run)["ticks"].status == "interrupted"
    # A read-only step that was cut off simply runs again on resume.
    services.resume_run(run=run, user=operator)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    ticks = steps_of(run)["ticks"]
    deadline = time.monotonic() + 30
    while "--- runs again on resume (read-only or a wait) by operator ---" not in texts(ticks):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    services.cancel_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.CANCELLED], 30)
    assert lab_exec(lab, "he2", "cat /tmp/long-first") == "first\n"  # step one ran once
    assert steps_of(run)["first"].status == "succeeded"


def test_a_changing_step_cut_off_must_be_retried_or_marked_done(rq_worker, polled, lab_cluster, make_user):
    operator = make_user("operator")
    run = start(lab_cluster, "test-long-changing", operator, host="he3.lab.local")
    ticks = steps_of(run)["ticks"]
    wait_for_lines(ticks, 2, timeout=30)
    _kill_executor(run)
    wait_for_status(run, [RunStatus.INTERRUPTED], 40)
    with pytest.raises(services.Refused, match="changes the system and was cut off"):
        services.resume_run(run=run, user=operator)
    services.mark_step_done(step=ticks, user=operator, reason="checked on the host: it finished")
    services.resume_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED
    assert steps["ticks"].note == "marked done: checked on the host: it finished"
    assert texts(steps["last"]) == ["last"]


def test_engine_steps_move_a_host_to_maintenance_and_back(rq_worker, ha_poller, fresh_lab_cluster, make_user):
    wait_for_polled(fresh_lab_cluster)
    run = start(fresh_lab_cluster, "test-engine", make_user("operator"), host="he2.lab.local")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 120)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in steps.values()]
    assert steps["deactivate"].command == "engine API: deactivate_host(host=he2.lab.local)"
    state = fresh_lab_cluster.lab.state()
    assert state["hosts"]["he2.lab.local"]["agent_state"] != "LocalMaintenance"


def waiting_for_the_engine(step):
    """The step has said it waits for the engine and will try again."""
    def said():
        return any("is not available" in t and "Trying again every" in t for t in texts(step))
    try:
        wait_until(said, 60, f"step {step.key} saying it waits for the engine")
    except AssertionError:
        step.refresh_from_db()
        raise AssertionError((step.status, step.error, texts(step), step.run.status, step.run.error)) from None


def test_an_engine_step_begun_while_the_engine_restarts_waits_for_it_and_goes_on(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    # The HA agents may restart the engine VM when global maintenance is left: a step
    # that begins then must wait for the engine, not fail on Apache's 503 page.
    wait_for_polled(fresh_lab_cluster)
    lab = fresh_lab_cluster.lab
    run = start(fresh_lab_cluster, "test-engine-restarting", make_user("operator"), host="he2.lab.local")
    waiting_for_the_engine(steps_of(run)["deactivate"])
    assert UpgradeRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert lab_exec(lab, "engine", "systemctl start ovirt-engine; echo rc=$?") == "rc=0\n"
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 120)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in steps.values()]
    said = texts(steps["deactivate"])
    waits = [t for t in said if "is not available" in t]
    # Said once (then once a minute), not at each try 5 s apart; and its end.
    assert len(waits) == 1 and "the engine VM or the ovirt-engine service is down, starting or restarting" \
        in waits[0], said
    assert any(t.startswith("the engine answers again") for t in said), said
    assert lab.state()["hosts"]["he2.lab.local"]["agent_state"] != "LocalMaintenance"


def test_a_cancel_ends_an_engine_step_waiting_for_the_engine_at_once(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    wait_for_polled(fresh_lab_cluster)
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    run = start(fresh_lab_cluster, "test-engine-restarting", operator, host="he2.lab.local")
    waiting_for_the_engine(steps_of(run)["deactivate"])
    asked = time.monotonic()
    services.cancel_run(run=run, user=operator, reason="engine down")
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED], 30)
    # Well before the step's 120 s of waiting for the engine were over.
    assert time.monotonic() - asked < 20
    steps = steps_of(run)
    assert (run.status, steps["deactivate"].status) == ("cancelled", "cancelled"), steps["deactivate"].error
    assert "stopped while waiting for the engine" in steps["deactivate"].error


def test_plan_refuses_bad_parameters_with_a_message_per_field(lab_cluster, make_user):
    with pytest.raises(ValidationError) as refused:
        start(lab_cluster, "test-steps", make_user("operator"), host="nope", sim_seconds="x", marker="../etc")
    errors = refused.value.message_dict
    assert errors["host"] == ["Select a valid choice. nope is not one of the available choices."]
    assert errors["sim_seconds"] == ["Enter a whole number."]
    assert errors["marker"][0].startswith("Enter an absolute path")
    assert not UpgradeRun.objects.exists()


@pytest.mark.lab(engine_version="4.5")
def test_local_maintenance_where_the_engine_vm_runs_is_refused_up_front_with_the_hosts_own_words(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    lab_cluster = wait_for_polled(fresh_lab_cluster)  # oVirt 4.5: hosted-engine-setup 2.7 refuses
    deadline = time.monotonic() + 60
    while not lab_cluster.detected_release:  # the setup version decides
        assert time.monotonic() < deadline, "the HA poller did not detect the release"
        time.sleep(0.2)
        lab_cluster.refresh_from_db()
    plan = services.plan_run(cluster=lab_cluster, slug="maintenance-local", params={"host": "he1.lab.local"})
    assert [c.message for c in plan.inhibitors] == [
        "The engine VM runs on he1.lab.local: hosted-engine-setup 2.7.1 refuses local maintenance there "
        "(\"Unable to enter local maintenance mode: the engine VM is running on the current host, please "
        "migrate it before entering local maintenance mode.\"; 2.3.11 and later). Move the engine VM to another "
        "host first."]
    with pytest.raises(services.Blocked, match="Nothing was started"):
        start(lab_cluster, "maintenance-local", make_user("operator"), host="he1.lab.local")
    assert not UpgradeRun.objects.exists()


def test_the_last_host_able_to_run_the_engine_vm_cannot_go_to_local_maintenance(ha_poller, fresh_lab_cluster,
                                                                               make_user):
    lab = fresh_lab_cluster.lab
    for host in ("he2", "he3"):
        assert lab_exec(lab, host, "hosted-engine --set-maintenance --mode=local; echo rc=$?") == "rc=0\n"
    deadline = time.monotonic() + 60
    while sorted(fresh_lab_cluster.hosts.filter(local_maintenance=True).values_list("name", flat=True)) != [
            "he2.lab.local", "he3.lab.local"]:
        assert time.monotonic() < deadline, "the poller did not see the local maintenance"
        time.sleep(0.2)
    wait_for_polled(fresh_lab_cluster)
    with pytest.raises(services.Blocked) as blocked:
        start(fresh_lab_cluster, "maintenance-local", make_user("operator"), host="he1.lab.local")
    assert str(blocked.value).startswith(
        "he1.lab.local is the last host able to run the engine VM: no other live host out of local maintenance "
        "has a positive score.")
    assert not UpgradeRun.objects.exists()
