"""he-upgrade end to end: real RQ workers, the HA poller (and its sweeper), labs of the
releases over SSH, the lab's engine; on 3.x the web-admin steps are done with the lab's
`admin` command, as a person would in the web admin, and then confirmed."""
import time

import pytest

from tests.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.test_engine import _kill_executor, lab_exec, start, steps_of, texts, wait_for_polled
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.models import RunStatus, StepStatus
from upgrades.runbooks import register
from upgrades.runbooks.base import Runbook, Ssh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ALWAYS = register(Runbook(
    slug="test-always", name="Test: always", description="A finally step after a long one.",
    steps=(Ssh("ticks", "Ticks", "for i in $(seq 1 600); do echo tick $i; sleep 30; done", on="he2.lab.local"),
           Ssh("never", "Never reached", "echo never > /tmp/always-never", on="he2.lab.local"),
           Ssh("cleanup", "Clean up", "echo cleaned >> /tmp/always-cleanup", on="he2.lab.local",
               always=True)),
))


def polled_release(cluster, timeout=60):
    """Polled, with the release detected (the plan picks its way from it)."""
    deadline = time.monotonic() + timeout
    while True:
        wait_for_polled(cluster, timeout)
        if cluster.detected_release:
            return cluster
        assert time.monotonic() < deadline, "the HA poller did not detect the release"
        time.sleep(0.2)


ADMIN = {"maintenance": "host-maintenance", "activate": "host-activate"}


def drive(run, lab, user, timeout=300, stop_at=None):
    """Run to the end, doing each manual web-admin step with the lab's `admin` command
    and confirming it; returns at the end, or once a step with key `stop_at` is running."""
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        steps = steps_of(run)
        if stop_at and steps[stop_at].status != StepStatus.PENDING:
            return run
        if run.status == RunStatus.WAITING:
            step = next(s for s in steps.values() if s.status == StepStatus.WAITING)
            if step.key == "cluster-version":
                lab.admin("set-cluster-version", cluster="Default", version="3.6")
            else:
                host, action = step.key.removeprefix("hosts.").rsplit(".", 1)  # hosts.NAME.ACTION
                lab.admin(ADMIN[action], host=host)
            services.confirm_step(step=step, user=user, comment="done in the web admin")
        elif run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            return run
        assert time.monotonic() < deadline, (
            f"run {run.status} after {timeout} s: "
            f"{[(s.key, s.status, s.error) for s in steps.values() if s.status != 'succeeded'][:3]}")
        time.sleep(0.1)


def engine_cluster(lab):
    return lab.state()["engine"]["clusters"]["Default"]


@pytest.mark.lab(engine_version="3.5")
def test_3_5_to_3_6_the_howto_case_with_web_admin_steps(rq_worker, ha_poller, fresh_lab_cluster, make_user):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    plan = services.plan_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={"target": "3.6"})
    keys = [s.key for s in plan.steps]
    # The engine VM's host last; web-admin steps are manual, each followed by a wait.
    assert [k.split(".", 1)[1].rsplit(".", 1)[0] for k in keys if k.endswith(".update")] == [
        "he2.lab.local", "he3.lab.local", "he1.lab.local"]
    assert {s.kind for s in plan.steps if s.key.endswith((".maintenance", ".activate"))} == {"manual"}
    assert not any(s.kind == "engine" for s in plan.steps)
    assert any("3.x has no cluster_maintenance" in n for n in plan.notes)

    run = start(fresh_lab_cluster, "he-upgrade", operator, target="3.6")
    backup = steps_of(run)["engine-backup"].spec["command"].split("--file=")[1].split()[0]
    assert any(backup in note for note in run.preflight["notes"])
    drive(run, lab, operator, timeout=900)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in steps.values()]

    state = lab.state()
    assert state["engine_version"] == "3.6"
    assert {h["agent_version"] for h in state["hosts"].values()} == {"1.3.5.8-1"}
    lab.wait_for(lambda s: {h["score"] for h in s["hosts"].values()} == {3400}, sim_seconds=900)
    assert state["global_maintenance"] is False
    assert engine_cluster(lab)["version"] == "3.6"
    # The first upgraded host scored 1000 more: the agents moved the engine VM there.
    assert "seen: the engine VM runs on he2.lab.local" in "\n".join(texts(steps["hosts.he2.lab.local.vm-moved"]))
    assert state["engine_vm"]["host"] != "he1.lab.local"
    assert lab_exec(lab, "engine", f"cat {backup}").startswith("ovirt-engine-backup ")
    assert "[ INFO  ] Execution of setup completed successfully" in texts(steps["engine-setup"])


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_4_5_minor_update_fails_at_a_hosts_yum_update_restores_the_policy_and_retry_completes(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    lab.fault("fail-next-command", host="he3.lab.local", pattern="yum update")
    run = start(fresh_lab_cluster, "he-upgrade", operator)
    steps = steps_of(run)
    assert steps["policy"].command == "engine API: set_scheduling_policy(cluster=Default, policy=cluster_maintenance)"
    assert steps["policy-restore"].spec["always"] is True
    assert "engine-repo" not in steps  # a minor update keeps the repos
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 900)
    steps = steps_of(run)
    failed = steps["hosts.he3.lab.local.update"]
    assert (run.status, failed.status, failed.exit_code) == ("failed", "failed", 1)
    assert steps["hosts.he2.lab.local.update"].status == "succeeded"
    # The finally step ran although the run failed, and waits to run again at its place.
    restore = texts(steps["policy-restore"])
    assert restore[0] == "--- runs now because the run failed ---"
    assert "scheduling policy of Default: was cluster_maintenance, now none" in restore
    assert steps["policy-restore"].status == "pending"
    assert engine_cluster(lab)["scheduling_policy"] == "none"

    started = {c["check"]: c for c in run.preflight["start"]}
    assert started["vms-can-migrate"]["message"] == "Every VM can migrate (or none runs besides the engine VM)."
    services.retry_step(step=failed, user=operator)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 900)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in steps.values()]
    state = lab.state()
    assert {h["packages"]["vdsm"] for h in state["hosts"].values()} == {"4.50.3.4-1"}
    assert {h["agent_version"] for h in state["hosts"].values()} == {"2.5.1-1"}
    assert "ovirt-engine-4.5.7-1" in lab_exec(lab, "engine", "rpm -q ovirt-engine")
    assert engine_cluster(lab)["scheduling_policy"] == "none"
    assert state["global_maintenance"] is False
    # Equal scores: the engine moved the VM to the first upgraded host.
    assert "HostedEngine migrated from he1.lab.local to he2.lab.local" in texts(
        steps["hosts.he2.lab.local.migrate"])
    assert texts(steps["hosts.he3.lab.local.migrate"])[-1].endswith("an upgraded host: nothing to migrate")


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_4_5_a_worker_killed_mid_run_is_interrupted_and_resume_completes(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    run = start(fresh_lab_cluster, "he-upgrade", operator)
    drive(run, lab, operator, timeout=900, stop_at="hosts.he3.lab.local.maintenance-wait")
    assert run.status == RunStatus.RUNNING and run.executor, [
        (s.key, s.status, s.error) for s in steps_of(run).values() if s.status != "succeeded"][:3]
    _kill_executor(run)
    wait_for_status(run, [RunStatus.INTERRUPTED], 60)
    # The kill may land between two steps: then no step was cut off and resume goes on.
    cut = run.steps.filter(status=StepStatus.INTERRUPTED).first()
    try:
        services.resume_run(run=run, user=operator)
    except services.Refused:  # the kill hit a step that changes the system: retry it
        assert cut is not None
        services.retry_step(step=cut, user=operator)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 900)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, [(s.key, s.status, s.error) for s in steps.values()]
    assert {h["packages"]["vdsm"] for h in lab.state()["hosts"].values()} == {"4.50.3.4-1"}
    assert engine_cluster(lab)["scheduling_policy"] == "none"


def test_an_always_step_runs_when_the_run_is_cancelled(rq_worker, lab, lab_cluster, make_user):
    operator = make_user("operator")
    lab_exec(lab, "he2", "rm -f /tmp/always-cleanup /tmp/always-never")
    run = start(lab_cluster, "test-always", operator)
    ticks = steps_of(run)["ticks"]
    deadline = time.monotonic() + 120  # generous: the machine is shared
    while not texts(ticks):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    services.cancel_run(run=run, user=operator, reason="wrong window")
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED], 120)
    steps = steps_of(run)
    assert (run.status, steps["ticks"].status, steps["never"].status) == ("cancelled", "cancelled", "cancelled")
    assert lab_exec(lab, "he2", "cat /tmp/always-cleanup") == "cleaned\n"
    assert lab_exec(lab, "he2", "cat /tmp/always-never 2>/dev/null") == ""
    assert texts(steps["cleanup"])[0] == "--- runs now because the run was cancelled ---"
    assert steps["cleanup"].status == "succeeded"  # a cancelled run never goes on: it keeps that


@pytest.mark.browser
@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_in_the_browser_the_upgrade_runs_to_the_end_with_output_and_scores_live(
        live_portal, ha_poller, fresh_lab_cluster, browser, make_user):
    """From the cluster page's runbook list to the plan and its confirmation, then the
    run page and the cluster page side by side, both updated live, no reload."""
    from playwright.sync_api import expect

    from tests.test_browser import log_in

    make_user("operator")
    cluster = polled_release(fresh_lab_cluster)
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, live_portal, "operator")
        watch = context.new_page()
        watch.goto(f"{live_portal}/clusters/{cluster.pk}/")
        rows = {name: watch.locator("tr", has_text=f"{name}.lab.local") for name in ("he1", "he2", "he3")}
        expect(rows["he1"].locator(".ha-vm")).to_have_text("here", timeout=15_000)
        expect(watch.locator("#maintenance-mode")).to_have_text("none")

        page.goto(f"{live_portal}/clusters/{cluster.pk}/")
        page.locator("#runbooks a", has_text="Hosted-engine upgrade").click()
        expect(page).to_have_url(f"{live_portal}/clusters/{cluster.pk}/runbooks/he-upgrade/")
        page.click("button.show-plan")
        expect(page.locator(".plan-step")).to_have_count(61)
        expect(page.locator(".plan-step", has_text="Scheduling policy none again")).to_contain_text(
            "set_scheduling_policy(cluster=Default, policy=none)")
        page.click("button.start-run")
        expect(page.locator("#run-status")).to_have_text("running", timeout=30_000)

        # The cluster page follows the HA agents as the run drives them.
        expect(watch.locator("#maintenance-mode")).to_have_text("global", timeout=60_000)
        expect(watch.locator("#active-run")).to_contain_text("Hosted-engine upgrade")
        expect(rows["he2"].locator(".ha-state")).to_have_text("GlobalMaintenance", timeout=60_000)
        # The run page shows each step's output as it comes.
        def shows(step, text, timeout):  # the step's terminal view has the line
            page.wait_for_function("([id, text]) => window.heportalRun && window.heportalRun.lines(id).includes(text)",
                                   arg=[step.get_attribute("data-step"), text], timeout=timeout)

        shows(page.locator("section.step", has_text="Engine VM: engine-setup"),
              "[ INFO  ] Execution of setup completed successfully", 60_000)
        shows(page.locator("section.step", has_text="Engine VM to an upgraded host").first,
              "HostedEngine migrated from he1.lab.local to he2.lab.local", 120_000)
        expect(rows["he2"].locator(".ha-vm")).to_have_text("here", timeout=60_000)

        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=240_000)
        expect(page.locator(".step-status.status-succeeded")).to_have_count(61)
        expect(watch.locator("#maintenance-mode")).to_have_text("none", timeout=60_000)
        for row in rows.values():
            expect(row.locator(".ha-score")).to_have_text("3400", timeout=60_000)
        expect(watch.locator("#active-run")).to_have_count(0)
    finally:
        context.close()
