"""Clean-up always runs: a run's ``always`` steps (a runbook's finally) run on every
end that is not success, checked against the lab engine's scheduling policy: cancelled
while running, paused, waiting for a person or awaiting a mid-run approval; a mid-run
approval rejected or expired; a failed or interrupted run that is abandoned; a cancel
while Redis is down. Real rq worker, HA poller (its sweeper), lab over SSH and its engine."""
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import django_rq
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect
from rq.worker import Worker, WorkerStatus

from tests.netproxy import CuttableProxy
from tests.factories import make_polled_cluster
from tests.test_browser import browser, log_in, page  # noqa: F401  (the Chromium fixtures)
from tests.test_cli import cli
from tests.test_engine import _kill_executor, lab_exec, start, steps_of, texts, wait_for_polled
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import drive, engine_cluster, polled_release
from upgrades import services
from upgrades.models import ApprovalPolicy, AuditEvent, RunStatus, RunStep, StepStatus, UpgradeRun
from upgrades.runbooks import register
from upgrades.runbooks.base import Approval, Engine, Manual, Param, Runbook, Ssh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GATE = "/tmp/cleanup-gate"
MAINTENANCE = Engine("policy", "Scheduling policy cluster_maintenance", "set_scheduling_policy",
                     {"cluster": "Default", "policy": "cluster_maintenance"})
RESTORE = Engine("restore", "Scheduling policy none again (also on failure)", "set_scheduling_policy",
                 {"cluster": "Default", "policy": "none"}, always=True)
AFTER = Ssh("after", "After", "echo after >> /tmp/cleanup-after", on="he2.lab.local")


def runbook(slug, middle, params=()):
    return register(Runbook(slug=slug, name=f"Test: {slug}", description="A finally step after a middle one.",
                            params=params, steps=(MAINTENANCE, middle, AFTER, RESTORE)))


# The middle step holds until the test opens the gate, then exits with {code}.
runbook("test-cleanup-gate", Ssh("gate", "Gate", "while [ ! -e {gate} ]; do sleep 1; done; rm -f {gate}; exit {code}",
                                 on="he2.lab.local"),
        params=(Param("gate", "Gate file", kind="path"), Param("code", "Exit status", kind="int")))
register(Runbook(slug="test-cleanup-ssh", name="Test: cleanup over SSH", description="Commands and a finally.",
                 steps=(Ssh("one", "One", "echo one", on="he2.lab.local"),
                        Ssh("restore", "Restore", "echo restored", on="he2.lab.local", always=True))))
runbook("test-cleanup-manual", Manual("person", "A person checks", "Check the hosts, then confirm."))
runbook("test-cleanup-approval", Approval("sign-off", "Sign-off", "the rest of the run"))


@pytest.fixture
def lab_policy(lab):
    """The shared lab's engine policy, none before and after each test (whatever the test left)."""
    lab.admin("set-scheduling-policy", cluster="Default", policy="none")
    lab_exec(lab, "he2", f"rm -f {GATE} /tmp/cleanup-after")
    yield lambda: engine_cluster(lab)["scheduling_policy"]
    lab_exec(lab, "he2", f"touch {GATE}")  # a gate still waiting (a killed worker's command) ends
    lab.admin("set-scheduling-policy", cluster="Default", policy="none")


@pytest.fixture
def cluster(ha_poller, lab_cluster):
    """The shared lab as the HA poller (which also runs the sweeper) has read it."""
    return wait_for_polled(lab_cluster, timeout=120)  # generous: the machine is shared


@pytest.fixture
def operator(make_user):
    return make_user("operator")


def wait_for_step(run, key, statuses, timeout=120):
    step = steps_of(run)[key]
    deadline = time.monotonic() + timeout
    while True:
        step.refresh_from_db()
        if step.status in statuses:
            return step
        assert time.monotonic() < deadline, f"step {step.key} still {step.status} after {timeout} s"
        time.sleep(0.2)


def run_page(run, user):
    client = Client()
    client.force_login(user)
    return client.get(reverse("run-detail", args=[run.pk])).content.decode()


def wait_for_idle_workers(timeout=60):
    """Every RQ worker is back to waiting for jobs (its state in Redis)."""
    connection = django_rq.get_connection("default")
    deadline = time.monotonic() + timeout
    while True:
        workers = Worker.all(connection=connection)
        if workers and all(w.get_state() == WorkerStatus.IDLE for w in workers):
            return
        assert time.monotonic() < deadline, f"RQ workers still busy after {timeout} s"
        time.sleep(0.2)


def open_gate(lab):
    lab_exec(lab, "he2", f"touch {GATE}")


def start_gate(cluster, operator, code=0):
    run = start(cluster, "test-cleanup-gate", operator, gate=GATE, code=code)
    wait_for_step(run, "gate", [StepStatus.RUNNING])
    return run


def assert_cleaned_up(run, policy, status=RunStatus.CANCELLED, why="the run was cancelled"):
    """The run ended, its finally step ran (and keeps that) and the engine's policy is none again."""
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED], 120)
    steps = steps_of(run)
    restore = steps["restore"]
    assert (run.status, restore.status) == (status, StepStatus.SUCCEEDED), [
        (s.key, s.status, s.error) for s in steps.values()]
    lines = texts(restore)
    assert f"--- runs now because {why} ---" in lines
    assert "scheduling policy of Default: was cluster_maintenance, now none" in lines
    assert policy() == "none"
    assert steps["after"].status in (StepStatus.CANCELLED, StepStatus.PENDING)  # never ran
    assert not run.cancel_requested and not run.executor
    return steps


def test_cancel_while_paused_runs_the_always_step(rq_worker, lab, cluster, operator, lab_policy):
    run = start_gate(cluster, operator)
    services.pause_run(run=run, user=operator)
    open_gate(lab)
    wait_for_status(run, [RunStatus.PAUSED, RunStatus.FAILED, RunStatus.SUCCEEDED], 120)
    assert run.status == RunStatus.PAUSED and lab_policy() == "cluster_maintenance"
    assert ("Cancel the run (nothing more runs, then runs its clean-up steps: Scheduling policy none again "
            "(also on failure))") in run_page(run, operator)
    run = services.cancel_run(run=run, user=operator, reason="wrong window")
    # Not ended in the request: handed to a worker that runs the clean-up first.
    assert (run.status, run.cancel_requested, run.error) == (RunStatus.RUNNING, True, "Cancelled by operator")
    assert AuditEvent.objects.filter(action="run.cancel_request", run_ref=run.pk,
                                     details__reason="wrong window").exists()
    steps = assert_cleaned_up(run, lab_policy)
    assert steps["gate"].status == StepStatus.SUCCEEDED and run.error == "Cancelled by operator"
    assert AuditEvent.objects.filter(action="run.cancelled", run_ref=run.pk).exists()


def test_cancel_while_waiting_for_a_person(rq_worker, cluster, operator, lab_policy):
    run = start(cluster, "test-cleanup-manual", operator)
    wait_for_status(run, [RunStatus.WAITING, RunStatus.FAILED], 120)
    assert run.status == RunStatus.WAITING and lab_policy() == "cluster_maintenance"
    services.cancel_run(run=run, user=operator, reason="not today")
    steps = assert_cleaned_up(run, lab_policy)
    person = steps["person"]
    assert (person.status, person.error, person.note) == (StepStatus.CANCELLED, "cancelled by operator", "not today")


def test_cancel_while_awaiting_a_mid_run_approval(rq_worker, cluster, operator, lab_policy):
    run = start(cluster, "test-cleanup-approval", operator)
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 120)
    assert run.status == RunStatus.AWAITING_APPROVAL and lab_policy() == "cluster_maintenance"
    services.cancel_run(run=run, user=operator)
    steps = assert_cleaned_up(run, lab_policy)
    assert steps["sign-off"].status == StepStatus.CANCELLED


def test_a_rejected_mid_run_approval_runs_the_always_step_and_fails_the_run(rq_worker, cluster, operator,
                                                                           make_user, lab_policy):
    run = start(cluster, "test-cleanup-approval", operator)
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 120)
    assert lab_policy() == "cluster_maintenance"
    services.reject_step(step=steps_of(run)["sign-off"], user=make_user("approver", "anna"), comment="no")
    steps = assert_cleaned_up(run, lab_policy, status=RunStatus.FAILED, why="the approval was rejected or expired")
    assert steps["sign-off"].status == StepStatus.REJECTED and run.error == "Rejected by anna: no"
    with pytest.raises(services.Refused, match="rejected"):
        services.resume_run(run=run, user=operator)


def test_an_expired_mid_run_approval_runs_the_always_step(rq_worker, cluster, operator, lab_policy):
    ApprovalPolicy.objects.create(cluster=cluster, runbook="test-cleanup-approval", before_start="never",
                                  step_markers="", approvers=1, expiry_hours=1)
    run = start(cluster, "test-cleanup-approval", operator)
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 120)
    assert lab_policy() == "cluster_maintenance"
    sign_off = steps_of(run)["sign-off"]
    assert sign_off.spec["expiry_hours"] == 1
    # The request was made two hours ago: the sweeper (in the HA poller) closes it.
    RunStep.objects.filter(pk=sign_off.pk).update(started_at=timezone.now() - timedelta(hours=2))
    steps = assert_cleaned_up(run, lab_policy, status=RunStatus.FAILED, why="the approval was rejected or expired")
    assert steps["sign-off"].error == "approval request expired"
    assert run.error == "The approval request expired."


def test_cancel_while_running_stops_the_command_then_runs_the_always_step(rq_worker, cluster, operator,
                                                                         lab_policy):
    run = start_gate(cluster, operator)
    assert lab_policy() == "cluster_maintenance"
    run = services.cancel_run(run=run, user=operator)
    assert run.executor and run.cancel_requested
    steps = assert_cleaned_up(run, lab_policy)
    assert steps["gate"].status == StepStatus.CANCELLED


def test_abandon_a_failed_run_whose_clean_up_could_not_reach_the_engine(rq_worker, lab, cluster, operator,
                                                                       lab_policy):
    # The engine through a proxy the test cuts: the run fails while the engine is unreachable.
    url = urlsplit(cluster.engine_url)
    proxy = CuttableProxy(url.hostname, url.port)
    try:
        cluster.engine_url = urlunsplit(url._replace(netloc=f"{url.hostname}:{proxy.port}"))
        cluster.save(update_fields=["engine_url"])
        run = start_gate(cluster, operator, code=3)
        assert lab_policy() == "cluster_maintenance"
        proxy.cut()
        open_gate(lab)
        wait_for_status(run, [RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SUCCEEDED], 120)
        steps = steps_of(run)
        assert (run.status, steps["gate"].status, steps["gate"].exit_code) == (RunStatus.FAILED, "failed", 3)
        # The clean-up ran at the failure but could not reach the engine: the policy stayed.
        assert "--- runs now because the run failed ---" in texts(steps["restore"])
        assert steps["restore"].status == StepStatus.PENDING and lab_policy() == "cluster_maintenance"
        proxy.restore()
        # The run page offers to abandon it, and says what that runs.
        page = run_page(run, operator)
        assert ("Abandon the run (runs its clean-up steps: Scheduling policy none again (also on failure), "
                "then ends it cancelled)") in page
        client = Client()
        client.force_login(operator)
        response = client.post(reverse("run-abandon", args=[run.pk]), {"reason": "giving up for today"})
        assert response.status_code == 302
        assert AuditEvent.objects.filter(action="run.abandon", run_ref=run.pk,
                                         details__reason="giving up for today").exists()
        steps = assert_cleaned_up(run, lab_policy)
        assert steps["gate"].status == StepStatus.FAILED  # how it ended stays
        assert run.error == "Abandoned by operator: giving up for today"
    finally:
        proxy.close()


def test_abandon_an_interrupted_run(rq_worker, lab, cluster, operator, lab_policy):
    run = start_gate(cluster, operator)
    _kill_executor(run)
    wait_for_status(run, [RunStatus.INTERRUPTED], 90)  # the sweeper sees the heartbeat stop
    steps = steps_of(run)
    assert steps["gate"].status == StepStatus.INTERRUPTED and steps["restore"].status == StepStatus.PENDING
    assert lab_policy() == "cluster_maintenance"  # a killed worker runs no clean-up
    with pytest.raises(services.Refused, match="Abandon it"):
        services.cancel_run(run=run, user=operator)
    assert cli("abandon", str(run.pk), "--user", "operator", "--comment", "host checked")[:2] == (
        0, f"Run #{run.pk} abandoned: a worker runs its clean-up steps, then it ends cancelled.\n")
    steps = assert_cleaned_up(run, lab_policy)
    assert run.error == "Abandoned by operator: host checked"
    assert steps["gate"].status == StepStatus.INTERRUPTED


def test_a_cancel_while_redis_is_down_is_executed_once_it_is_back(rq_worker, cluster, operator,
                                                                 lab_policy, redis_server):
    run = start(cluster, "test-cleanup-manual", operator)
    wait_for_status(run, [RunStatus.WAITING, RunStatus.FAILED], 120)
    wait_for_idle_workers()  # RQ's parent quits if Redis goes while it files a job's result
    redis_server.stop()
    try:
        run = services.cancel_run(run=run, user=operator)
        assert (run.status, run.cancel_requested, run.queued_at) == (RunStatus.RUNNING, True, None)
        page = run_page(run, operator)
        assert "Cancelling: running clean-up steps (step 4, Scheduling policy none again (also on failure))." in page
        assert 'class="run-cancel"' not in page and 'class="run-pause"' not in page
        assert 'class="step-confirm"' not in page  # the manual step was closed
    finally:
        redis_server.start()
    # The sweeper queues it once Redis answers; a worker runs the clean-up.
    assert_cleaned_up(run, lab_policy)


@pytest.mark.lab(engine_version="4.5", os="el9", outdated=True)
def test_he_upgrade_paused_after_the_policy_step_then_cancelled_restores_the_policy(
        rq_worker, ha_poller, fresh_lab_cluster, operator):
    lab = fresh_lab_cluster.lab
    polled_release(fresh_lab_cluster)
    run = start(fresh_lab_cluster, "he-upgrade", operator)
    drive(run, lab, operator, timeout=900, stop_at="policy")
    services.pause_run(run=run, user=operator)
    wait_for_status(run, [RunStatus.PAUSED, RunStatus.FAILED, RunStatus.SUCCEEDED], 600)
    steps = steps_of(run)
    assert run.status == RunStatus.PAUSED and steps["policy"].status == StepStatus.SUCCEEDED
    assert engine_cluster(lab)["scheduling_policy"] == "cluster_maintenance"
    services.cancel_run(run=run, user=operator, reason="wrong window")
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED], 600)
    restore = steps_of(run)["policy-restore"]
    assert (run.status, restore.status) == (RunStatus.CANCELLED, StepStatus.SUCCEEDED)
    assert "scheduling policy of Default: was cluster_maintenance, now none" in texts(restore)
    assert engine_cluster(lab)["scheduling_policy"] == "none"


def test_abandon_waits_for_the_clusters_other_active_run_and_a_run_that_ran_nothing_needs_no_clean_up(make_user):
    cluster = make_polled_cluster()
    operator = make_user("operator")
    run = services.start_run(cluster=cluster, slug="test-cleanup-ssh", params={}, user=operator, queue=False)
    # As a worker leaves it when its first step failed (no worker here: nothing executes).
    RunStep.objects.filter(run=run, key="one").update(status=StepStatus.FAILED, started_at=timezone.now())
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_at=timezone.now())
    other = services.start_run(cluster=cluster, slug="test-cleanup-ssh", params={}, user=operator, queue=False)
    with pytest.raises(services.RunConflict, match=f"already has an active run: #{other.pk}"):
        services.abandon_run(run=run, user=operator)
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == (RunStatus.FAILED, False)
    # The other run ran nothing: cancelled at once, its finally step too.
    other = services.cancel_run(run=other, user=operator)
    assert (other.status, steps_of(other)["restore"].status) == (RunStatus.CANCELLED, StepStatus.CANCELLED)
    run = services.abandon_run(run=run, user=operator)
    assert (run.status, run.cancel_requested, run.executor) == (RunStatus.RUNNING, True, "")
    with pytest.raises(services.Refused, match="being cancelled"):
        services.pause_run(run=run, user=operator)


@pytest.mark.browser
def test_in_the_browser_cancelling_a_waiting_run_says_what_it_runs_and_shows_the_clean_up(
        rq_worker, live_portal, cluster, operator, lab_policy, page):
    run = start(cluster, "test-cleanup-manual", operator)
    wait_for_status(run, [RunStatus.WAITING, RunStatus.FAILED], 120)
    assert lab_policy() == "cluster_maintenance"
    restore = steps_of(run)["restore"]
    log_in(page, live_portal, "operator")
    page.goto(f"{live_portal}/runs/{run.pk}/")
    page.click("#cancel-details summary")
    page.fill("#cancel-reason", "not in this window")
    button = page.locator("button.run-cancel")
    expect(button).to_have_text("Cancel the run (nothing more runs, then runs its clean-up steps: "
                                "Scheduling policy none again (also on failure))")
    button.click()
    expect(page.locator(".message.success")).to_contain_text(f"Run #{run.pk} is being cancelled: its clean-up "
                                                             "steps run first.", timeout=30_000)
    # Live, without a reload: the finally step ran and the run ended cancelled.
    expect(page.locator(f'section.step[data-step="{restore.pk}"] .step-status')).to_have_class(
        re.compile(r"\bstatus-succeeded\b"), timeout=60_000)
    expect(page.locator("#run-status")).to_have_class(re.compile(r"\bstatus-cancelled\b"), timeout=60_000)
    expect(page.locator("button.run-cancel")).to_have_count(0)
    assert lab_policy() == "none"
