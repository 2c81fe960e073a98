"""The emergency lane (issue 16, §1): the three maintenance modes and the diagnostic
are never locked out — not by a dead host, not by another run (awaiting approval,
paused, or running a long step), not by the two-person rule — and an emergency
action that changes the cluster pauses the active procedure, with its reason on
both pages, until an operator resumes it knowingly. Approval mail goes to the
approvers who have an address, the launch page names them, and the approvals
count in the header is live over a websocket."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from playwright.sync_api import expect

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.conftest import wait_until
from tests import conftest
from tests.factories import make_polled_cluster
from tests.test_browser import browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_engine import lab_exec, steps_of, wait_for_polled
from tests.test_pages import launch_url, squashed
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.models import ApprovalPolicy, AuditEvent, Cluster, Host, RunStatus, UpgradeRun
from upgrades.services import approvals

HOSTS = ("he1.lab.local", "he2.lab.local", "he3.lab.local")
STEPS = {"host": "he2.lab.local", "sim_seconds": 0, "marker": "/tmp/steps"}


def host_row(page, name):
    return page.locator("#ha-hosts tbody tr", has_text=name)


def with_address(user, address):
    user.email = address
    user.save()
    return user


# Without the lab: the rules, the pages, the mail ---------------------------------

@pytest.mark.django_db
def test_by_default_the_emergency_lane_needs_no_approver_and_a_procedure_that_changes_hosts_does(settings):
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True  # production's default (tests/conftest.py turns it off)
    cluster = make_polled_cluster(HOSTS)
    lane = (("maintenance-global", {}), ("maintenance-none", {}), ("maintenance-local", {"host": "he2.lab.local"}),
            ("diagnostic", {"host": "he2.lab.local"}))
    for slug, params in lane:
        plan = services.plan_run(cluster=cluster, slug=slug, params=params)
        assert (plan.start_approvers, plan.inhibitors) == (0, []), slug
    policy = approvals.policy_for(cluster, "he-upgrade")
    assert (policy.before_start, policy.approvers) == ("changes", 1)
    assert services.plan_run(cluster=cluster, slug="test-steps", params=STEPS).start_approvers == 1
    # A policy for every runbook does not reach the emergency lane; one naming its runbook does.
    ApprovalPolicy.objects.create(before_start="always", approvers=2)
    assert services.plan_run(cluster=cluster, slug="maintenance-global", params={}).start_approvers == 0
    assert services.plan_run(cluster=cluster, slug="test-steps", params=STEPS).start_approvers == 2
    ApprovalPolicy.objects.create(runbook="maintenance-global", before_start="always")
    assert services.plan_run(cluster=cluster, slug="maintenance-global", params={}).start_approvers == 1


@pytest.mark.django_db
def test_a_stale_host_blocks_neither_global_nor_no_maintenance_and_the_command_runs_on_a_live_host(
        client, make_user):
    cluster = make_polled_cluster(HOSTS)
    Host.objects.filter(name="he1.lab.local").update(ha_live=False, engine_vm_here=False)  # he1 died
    for slug in ("maintenance-global", "maintenance-none"):
        plan = services.plan_run(cluster=cluster, slug=slug, params={})
        assert plan.inhibitors == [] and plan.steps[0].host.name == "he2.lab.local", slug
    # Local maintenance: another live host out of local maintenance with a score takes the engine VM.
    assert services.plan_run(cluster=cluster, slug="maintenance-local", params={"host": "he2.lab.local"}).inhibitors == []
    Host.objects.filter(name="he3.lab.local").update(local_maintenance=True, ha_score=0)
    blocked = services.plan_run(cluster=cluster, slug="maintenance-local", params={"host": "he2.lab.local"})
    assert [c.check for c in blocked.inhibitors] == ["not-last-engine-host"]  # the stale he1 does not count
    client.force_login(make_user("operator"))
    page = squashed(client.get(reverse("cluster-detail", args=[cluster.pk])))
    assert "HA data is not up to date" not in page and "Maintenance is blocked" not in page
    assert 'id="maintenance-global-cluster" class="maintenance-global">' in page
    assert 'id="maintenance-none-cluster" class="maintenance-none">' in page


@pytest.mark.django_db
def test_the_launch_page_names_who_is_told_and_only_approvers_with_an_address_get_mail(
        client, make_user, settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True
    cluster = make_polled_cluster(HOSTS)
    client.force_login(make_user("operator", "olga"))
    url = launch_url(cluster, "test-steps", **STEPS)

    def notice():
        page = squashed(client.get(url))
        assert "Approvers are notified by mail" not in page
        return page.split('id="approval-notice">')[1].split("</p>")[0]

    assert notice() == ("Nobody can be told: nobody but you may approve on this cluster. The request waits until "
                        "an admin gives someone the approver role.")
    make_user("approver", "bert")
    assert notice() == ("Nobody can be told by mail: no approver has an address (bert). Tell them yourself; the "
                        "request waits under Approvals.")
    with_address(make_user("approver", "anna"), "anna@example.com")
    assert notice() == ("Told by mail when approval is asked: anna (anna@example.com). Not mailed (no address): "
                        "bert; they see the request under Approvals.")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**STEPS, "acknowledge": "on"})
    run = UpgradeRun.objects.get()
    assert response.status_code == 302 and run.status == RunStatus.AWAITING_APPROVAL
    assert [mail.to for mail in mailoutbox] == [["anna@example.com"]]
    # The maintenance modes ask nobody: the page says nothing of approvers.
    assert 'id="approval-notice"' not in squashed(client.get(launch_url(cluster, "maintenance-global")))


@pytest.mark.django_db
def test_global_maintenance_holds_a_procedure_awaiting_approval_and_it_goes_on_only_knowingly(
        client, make_user, settings):
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True
    cluster = make_polled_cluster(HOSTS)
    olga, anna = make_user("operator", "olga"), make_user("approver", "anna")
    procedure = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=olga, acknowledge=True)
    assert procedure.status == RunStatus.AWAITING_APPROVAL
    client.force_login(olga)
    page = squashed(client.get(launch_url(cluster, "maintenance-global")))
    assert (f'<p class="banner pauses-procedure" id="pauses-procedure">Run #{procedure.pk} Test: steps is awaiting '
            "approval: this pauses it") in page
    assert '<textarea id="emergency-reason" name="reason" maxlength="2000" required>' in page
    with pytest.raises(ValidationError, match="Say why: this pauses the active procedure"):
        services.start_run(cluster=cluster, slug="maintenance-global", params={}, user=olga, acknowledge=True)
    with pytest.raises(services.Blocked, match="acknowledge the warnings first: Run #"):
        services.start_run(cluster=cluster, slug="maintenance-global", params={}, user=olga, reason="he2 died")
    emergency = services.start_run(cluster=cluster, slug="maintenance-global", params={}, user=olga,
                                   acknowledge=True, reason="he2 died at 3 a.m.")
    assert (emergency.emergency, emergency.status) == (True, RunStatus.PENDING)  # no approver, not refused
    procedure.refresh_from_db()
    assert procedure.status == RunStatus.AWAITING_APPROVAL
    assert procedure.hold_reason.startswith(f"olga started Global maintenance (run #{emergency.pk}) at ")
    assert procedure.hold_reason.endswith(": he2 died at 3 a.m.")
    assert AuditEvent.objects.get(action="run.start", target_id=str(emergency.pk)).details["reason"] == \
        "he2 died at 3 a.m."
    hold = AuditEvent.objects.get(action="run.hold", target_id=str(procedure.pk))
    assert (hold.actor, hold.details["reason"], hold.details["by_run"]) == (olga, "he2 died at 3 a.m.", emergency.pk)
    # Both pages say so.
    run_page = squashed(client.get(reverse("run-detail", args=[procedure.pk])))
    assert "Pauses once the person or approver it waits for has acted by an emergency action: olga started " \
           f"Global maintenance (run #{emergency.pk})" in run_page
    cluster_page = squashed(client.get(reverse("cluster-detail", args=[cluster.pk])))
    assert "It pauses once the person or approver it waits for has acted, by an emergency action: olga started" \
        in cluster_page and "he2 died at 3 a.m." in cluster_page
    # Approved meanwhile: it pauses instead of starting, and resumes only with the reason acknowledged.
    services.approve_run(run=procedure, user=anna, comment="fine")
    procedure.refresh_from_db()
    assert (procedure.status, procedure.queued_at) == (RunStatus.PAUSED, None)
    with pytest.raises(services.Refused, match="was paused by an emergency action: olga started Global"):
        services.resume_run(run=procedure, user=olga)
    refused = client.post(reverse("run-resume", args=[procedure.pk]))
    assert refused.status_code == 409 and "acknowledge it to go on" in squashed(refused)
    assert 'name="acknowledge_hold" id="acknowledge-hold" required' in squashed(refused)
    assert client.post(reverse("run-resume", args=[procedure.pk]), {"acknowledge_hold": "on"}).status_code == 302
    procedure.refresh_from_db()
    assert (procedure.status, procedure.hold_reason) == (RunStatus.RUNNING, "")
    resumed = AuditEvent.objects.get(action="run.resume", target_id=str(procedure.pk))
    assert resumed.details["acknowledged_hold"].endswith("he2 died at 3 a.m.")


# Against a lab of its own, with the real worker, poller and daphne ------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
@pytest.mark.slow
def test_with_a_host_killed_global_no_and_local_maintenance_are_enabled_and_set_the_mode_on_the_lab(
        live_portal, ha_poller, fresh_lab_cluster, page, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    he3 = cluster.hosts.get(name="he3.lab.local")
    cluster_url = f"{live_portal}/clusters/{cluster.pk}/"
    make_user("operator")
    log_in(page, live_portal, "operator")
    wait_for_polled(cluster)
    lab.fault("kill-host", host="he2.lab.local")
    page.goto(cluster_url)
    expect(host_row(page, "he2.lab.local")).to_have_class("stale", timeout=90_000)
    for button in ("#maintenance-global-cluster", "#maintenance-none-cluster", f"#maintenance-local-{he3.pk}"):
        expect(page.locator(button)).to_be_enabled()
    expect(page.locator("#cluster-blockers")).to_have_count(0)

    def press(button, host, mode):
        wait_until(lambda: Host.objects.get(name="he2.lab.local", cluster=cluster).ha_live is False, 60, "he2 is stale")
        page.goto(cluster_url)
        page.click(button)
        plan = page.locator("section.plan")
        expect(plan.locator("code.command").first).to_have_text(f"hosted-engine --set-maintenance --mode={mode}")
        expect(plan.locator(".plan-host").first).to_have_text(host)
        expect(plan.locator("table.checks")).not_to_contain_text("ha-fresh")
        if page.locator("input[name=acknowledge]").count():
            page.check("input[name=acknowledge]")
        page.click("button.start-run")
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=90_000)

    press("#maintenance-global-cluster", "he1.lab.local", "global")  # the default host: a live one
    assert lab.state()["global_maintenance"] is True
    wait_until(lambda: Cluster.objects.get(pk=cluster.pk).maintenance_mode == "global", 60, "polled")
    press("#maintenance-none-cluster", "he1.lab.local", "none")
    assert lab.state()["global_maintenance"] is False
    wait_until(lambda: Cluster.objects.get(pk=cluster.pk).maintenance_mode == "none", 60, "polled")
    press(f"#maintenance-local-{he3.pk}", "he3.lab.local", "local")  # he1 can take the engine VM
    assert lab.state()["hosts"]["he3.lab.local"]["local_maintenance"] is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_with_a_procedure_awaiting_approval_or_paused_the_maintenance_modes_and_the_diagnostic_run(
        rq_worker, ha_poller, fresh_lab_cluster, make_user, settings):
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    operator, anna = make_user("operator", "olga"), make_user("approver", "anna")
    wait_for_polled(cluster)

    def emergency(slug, reason="", **params):
        run = services.start_run(cluster=cluster, slug=slug, params=params, user=operator, acknowledge=True,
                                 reason=reason)
        assert run.status == RunStatus.PENDING  # no approver needed
        wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 90)
        assert run.status == RunStatus.SUCCEEDED, run.error
        return run

    waiting = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, acknowledge=True)
    assert waiting.status == RunStatus.AWAITING_APPROVAL
    emergency("diagnostic", host="he3.lab.local")
    emergency("maintenance-global", reason="storage alarm")
    assert lab.state()["global_maintenance"] is True
    waiting.refresh_from_db()
    assert waiting.status == RunStatus.AWAITING_APPROVAL and waiting.hold_reason.endswith(": storage alarm")
    services.reject_run(run=waiting, user=anna, comment="not today")

    settings.APPROVAL_REQUIRED_BY_DEFAULT = False
    paused = services.start_run(cluster=cluster, slug="test-steps", params=STEPS, user=operator, queue=False)
    services.pause_run(run=paused, user=operator)
    paused.refresh_from_db()
    assert paused.status == RunStatus.PAUSED
    wait_until(lambda: Cluster.objects.get(pk=cluster.pk).maintenance_mode == "global", 60, "polled")
    emergency("maintenance-none", reason="storage is back")
    assert lab.state()["global_maintenance"] is False
    emergency("diagnostic", host="he1.lab.local")
    paused.refresh_from_db()
    assert paused.status == RunStatus.PAUSED and paused.hold_reason.endswith(": storage is back")


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
@pytest.mark.slow
def test_global_maintenance_during_a_procedures_long_step_pauses_it_after_that_step_and_both_pages_say_why(
        live_portal, ha_poller, fresh_lab_cluster, page, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    operator = make_user("operator")
    wait_for_polled(cluster)
    lab_exec(lab, "he2", "rm -f /tmp/held")
    # Step one sleeps 2400 simulated seconds: 40 s at the lab's speed.
    procedure = services.start_run(cluster=cluster, slug="test-steps", user=operator, acknowledge=True,
                                   params={**STEPS, "sim_seconds": 2400, "marker": "/tmp/held"})
    wait_until(lambda: steps_of(procedure)["one"].status == "running", 60, "step one runs")
    log_in(page, live_portal, "operator")
    watcher = page.context.new_page()  # the procedure's page, never reloaded
    watcher.goto(f"{live_portal}/runs/{procedure.pk}/")
    expect(watcher.locator("#run-status")).to_have_text("running")
    page.goto(f"{live_portal}/clusters/{cluster.pk}/")
    expect(page.locator("#active-run")).to_contain_text("The maintenance buttons and the diagnostic stay available")
    page.click("#maintenance-global-cluster")
    expect(page.locator("#pauses-procedure")).to_contain_text(
        f"Run #{procedure.pk} Test: steps is running: this pauses it (after its current step)")
    page.check("input[name=acknowledge]")
    page.click("button.start-run")  # no reason: the browser does not send the form
    expect(page.locator("section.plan")).to_be_visible()
    assert not UpgradeRun.objects.filter(emergency=True).exists()
    page.fill("#emergency-reason", "storage alarm on he2: nothing more is touched")
    page.click("button.start-run")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=90_000)
    assert lab.state()["global_maintenance"] is True
    # The emergency lane's worker ran it while the procedure's step was still running.
    emergency = UpgradeRun.objects.get(emergency=True)
    one = steps_of(procedure)["one"]
    assert one.finished_at is None or emergency.finished_at < one.finished_at
    held = watcher.locator("#run-held")
    expect(held).to_contain_text(f"by an emergency action: operator started Global maintenance (run #{emergency.pk})")
    expect(held).to_contain_text("storage alarm on he2: nothing more is touched")
    page.goto(f"{live_portal}/clusters/{cluster.pk}/")
    expect(page.locator("#run-held")).to_contain_text("storage alarm on he2: nothing more is touched")

    wait_for_status(procedure, [RunStatus.PAUSED, RunStatus.FAILED, RunStatus.SUCCEEDED], 120)
    steps = steps_of(procedure)
    assert (procedure.status, steps["one"].status, steps["two"].status) == ("paused", "succeeded", "pending")
    expect(watcher.locator("#run-status")).to_have_text("paused", timeout=30_000)
    expect(held).to_contain_text("Paused by an emergency action")
    page.reload()
    expect(page.locator("#run-held")).to_contain_text("It is paused, by an emergency action")
    # The operator resumes knowingly: unticked, the browser does not send it.
    watcher.click("button.run-resume")
    procedure.refresh_from_db()
    assert procedure.status == RunStatus.PAUSED
    watcher.check("#acknowledge-hold")
    watcher.click("button.run-resume")
    expect(watcher.locator("#run-held")).to_have_count(0, timeout=30_000)
    procedure.refresh_from_db()
    assert procedure.hold_reason == "" and procedure.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)
    assert AuditEvent.objects.get(action="run.resume", target_id=str(procedure.pk)).details[
        "acknowledged_hold"].endswith("storage alarm on he2: nothing more is touched")
    services.cancel_run(run=procedure, user=operator, reason="test over")


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
def test_the_approvals_count_is_live_over_the_websocket_and_the_mail_reaches_approvers_with_an_address(
        live_portal, lab_cluster, browser, make_user):
    ApprovalPolicy.objects.create(runbook="diagnostic", before_start="always")  # read by daphne too
    make_user("operator", "olga")
    anna = with_address(make_user("approver", "anna"), "anna@example.com")
    make_user("approver", "bert")  # no address
    approver = browser.new_context().new_page()
    operator = browser.new_context().new_page()
    polled = []
    approver.on("request", lambda request: polled.append(request.url) if "/approvals/count/" in request.url else None)
    try:
        log_in(approver, live_portal, "anna")
        expect(approver.locator("#pending-approvals[data-live]")).to_have_text("0")  # joined its websocket
        log_in(operator, live_portal, "olga")
        operator.goto(live_portal + launch_url(lab_cluster, "diagnostic", host="he1.lab.local"))
        expect(operator.locator("#approval-notice")).to_have_text(
            "Told by mail when approval is asked: anna (anna@example.com). Not mailed (no address): bert; they "
            "see the request under Approvals.")
        operator.click("button.start-run")
        expect(operator.locator("#run-status")).to_be_visible()
        run = UpgradeRun.objects.get()
        assert run.status == RunStatus.AWAITING_APPROVAL
        # Well within the 15 s the header used to poll at, and without asking.
        expect(approver.locator("#pending-approvals")).to_have_text("1", timeout=8_000)
        # daphne's process wrote the mail (the file backend, as in make demo).
        wait_until(lambda: any(f"run #{run.pk} " in p.read_text() for p in conftest.MAIL_DIR.glob("*.log")), 30,
                   "the approval mail is written")
        mail = next(p.read_text() for p in conftest.MAIL_DIR.glob("*.log") if f"run #{run.pk} " in p.read_text())
        assert "\nTo: anna@example.com\n" in mail and "bert" not in mail
        services.reject_run(run=run, user=anna, comment="not now")
        expect(approver.locator("#pending-approvals")).to_have_text("0", timeout=8_000)
        assert polled == []
    finally:
        approver.context.close()
        operator.context.close()
