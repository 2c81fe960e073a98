"""Approval policies: before the start and before marked steps, N distinct
approvers, expiry, rejection, four eyes for every role, mail to approvers,
the pending-approvals page and the run page's record of decisions."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.factories import grant, make_polled_cluster
from tests.test_browser import browser  # noqa: F401  (the Chromium fixture)
from upgrades import services
from upgrades.models import (Approval, ApprovalPolicy, AuditEvent, RunStatus, StepKind, StepStatus,
                             UpgradeRun)
from upgrades.runbooks import register
from upgrades.runbooks.base import Param, Runbook, Ssh

pytestmark = pytest.mark.django_db

HOSTS = ("he1.lab.local", "he2.lab.local", "he3.lab.local")
FORCED = register(Runbook(
    slug="test-forced", name="Test: forced", description="A lockspace re-initialisation with --force.",
    params=(Param("host", "Host", kind="host"),),
    steps=(Ssh("status", "Status", "hosted-engine --vm-status"),
           Ssh("lockspace", "Re-initialise the lockspace", "hosted-engine --reinitialize-lockspace --force",
               changes=True)),
))


@pytest.fixture(autouse=True)
def default_policy(settings):
    """The production default: changing runbooks need one approver (tests/conftest.py turns it off)."""
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True


@pytest.fixture
def cluster():
    return make_polled_cluster(HOSTS)


@pytest.fixture
def people(make_user, cluster):
    """An operator who requests, approvers with mail, a viewer with mail (never asked)."""
    operator = make_user("operator", "olga")
    operator.email = "olga@example.com"
    operator.save()
    approvers = []
    for name in ("anna", "bert", "carl"):
        user = make_user("approver", name)
        user.email = f"{name}@example.com"
        user.save()
        approvers.append(user)
    viewer = make_user("viewer", "vera")
    viewer.email = "vera@example.com"
    viewer.save()
    return {"operator": operator, "approvers": approvers, "viewer": viewer}


def start(cluster, user, slug="test-steps", **params):
    if slug == "test-steps":
        params = {"sim_seconds": 0, "marker": "/tmp/steps", **params}
    return services.start_run(cluster=cluster, slug=slug, params={"host": "he2.lab.local", **params}, user=user,
                              acknowledge=True)


def test_a_changing_run_waits_for_approval_and_the_approvers_get_the_plan_by_mail(
        cluster, people, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = start(cluster, people["operator"])
    assert (run.status, run.approvals_required, run.queued_at) == (RunStatus.AWAITING_APPROVAL, 1, None)
    assert run.approval_expires_at > timezone.now() + timedelta(hours=23)
    assert set(run.steps.values_list("status", flat=True)) == {StepStatus.PENDING}
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == ["anna@example.com", "bert@example.com", "carl@example.com"]
    assert f"run #{run.pk}" in mail.subject
    assert "echo one >> /tmp/steps; sleep 0" in mail.body and "echo three >> /tmp/steps" in mail.body
    assert f"http://localhost:8000/runs/{run.pk}/" in mail.body
    assert AuditEvent.objects.filter(action="approval.request", run_ref=run.pk).exists()


def test_a_read_only_run_starts_without_approval(cluster, people, mailoutbox):
    run = services.start_run(cluster=cluster, slug="diagnostic", params={"host": "he2.lab.local"},
                             user=people["operator"])
    assert run.status == RunStatus.PENDING and run.approvals_required == 0 and not mailoutbox


def test_n_distinct_approvers_of_m_start_the_run(cluster, people, django_capture_on_commit_callbacks):
    ApprovalPolicy.objects.create(cluster=cluster, approvers=2)
    run = start(cluster, people["operator"])
    anna, bert, _ = people["approvers"]
    run = services.approve_run(run=run, user=anna, comment="looks right")
    assert run.status == RunStatus.AWAITING_APPROVAL
    with pytest.raises(services.Refused, match="already decided"):
        services.approve_run(run=run, user=anna, comment="ok")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.approve_run(run=run, user=bert, comment="go")
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.queued_at is not None
    assert list(run.approvals.values_list("user__username", "decision", "comment")) == [
        ("anna", "approved", "looks right"), ("bert", "approved", "go")]
    partial = AuditEvent.objects.get(action="run.approve", actor_name="anna")
    assert (partial.details["approvals"], partial.details["needed"]) == (1, 2)
    assert AuditEvent.objects.get(action="run.approve", actor_name="bert").details["approvals"] == 2


def test_a_rejection_runs_nothing_and_the_run_page_says_who_when_and_why(client, cluster, people):
    run = start(cluster, people["operator"])
    anna = people["approvers"][0]
    services.reject_run(run=run, user=anna, comment="not during business hours")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.error == "Rejected by anna: not during business hours"
    assert set(run.steps.values_list("status", flat=True)) == {StepStatus.CANCELLED}
    client.force_login(people["viewer"])
    page = " ".join(client.get(reverse("run-detail", args=[run.pk])).content.decode().split())
    decision = Approval.objects.get(run=run)
    assert (f'<tr class="decision-rejected"><td>start</td> <td>anna</td><td>rejected</td> '
            f'<td><time>{timezone.localtime(decision.created_at):%Y-%m-%d %H:%M:%S} UTC</time></td>'
            "<td>not during business hours</td></tr>") in page
    with pytest.raises(services.Refused):
        services.resume_run(run=run, user=people["operator"])


def test_an_expired_request_runs_nothing(client, cluster, people):
    ApprovalPolicy.objects.create(runbook="test-steps", expiry_hours=1)
    run = start(cluster, people["operator"])
    assert run.approval_expires_at < timezone.now() + timedelta(hours=1, minutes=1)
    UpgradeRun.objects.filter(pk=run.pk).update(approval_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(services.Refused, match="expired"):
        services.approve_run(run=run, user=people["approvers"][0], comment="ok")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.error == "The approval request expired."
    assert not Approval.objects.filter(run=run).exists()
    assert AuditEvent.objects.filter(action="approval.expired", run_ref=run.pk).exists()


def test_the_sweep_closes_expired_requests(cluster, people):
    run = start(cluster, people["operator"])
    assert services.expire_approvals(now=timezone.now() + timedelta(hours=25)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


SELF = ("approver+operator", "admin", "superuser", "grant approver+operator", "grant admin")


@pytest.mark.parametrize("role", SELF)
def test_the_requester_never_approves_their_own_request(cluster, people, role, django_user_model):
    if role == "superuser":
        user = django_user_model.objects.create_superuser("self", password="x")
    else:
        user = django_user_model.objects.create_user("self", password="x")
        for name in role.removeprefix("grant ").split("+"):
            if role.startswith("grant"):
                grant(user, cluster, name)
            else:
                user.groups.add(Group.objects.get(name=name))
    run = start(cluster, user)
    with pytest.raises(PermissionDenied, match="four eyes"):
        services.approve_run(run=run, user=user, comment="ok")
    with pytest.raises(PermissionDenied, match="four eyes"):
        services.reject_run(run=run, user=user, comment="no")
    services.approve_run(run=run, user=people["approvers"][0], comment="ok")
    run.refresh_from_db()
    step = run.steps.order_by("order").first()
    step.action, step.status, step.started_at = StepKind.APPROVAL, StepStatus.WAITING, timezone.now()
    step.save()
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL, started_at=timezone.now())
    with pytest.raises(PermissionDenied, match="four eyes"):
        services.approve_step(step=step, user=user, comment="ok")
    assert not Approval.objects.filter(user=user).exists()


def test_marked_steps_get_an_approval_step_with_the_policys_defaults(cluster, people):
    ApprovalPolicy.objects.create(runbook="test-forced", before_start="never", approvers=2, expiry_hours=4)
    run = start(cluster, people["operator"], slug="test-forced")
    assert run.status == RunStatus.PENDING
    steps = list(run.steps.order_by("order").values_list("action", "command"))
    assert [kind for kind, _ in steps] == ["ssh", "approval", "ssh"]
    assert "--reinitialize-lockspace --force" in steps[1][1]
    approval = run.steps.get(action="approval")
    assert (approval.spec["approvers"], approval.spec["expiry_hours"]) == (2, 4)


def test_a_step_approval_needs_n_people_and_mails_them(cluster, people, mailoutbox,
                                                         django_capture_on_commit_callbacks):
    ApprovalPolicy.objects.create(runbook="test-approval", before_start="never", approvers=2)
    run = start(cluster, people["operator"], slug="test-approval")
    step = run.steps.get(action="approval")
    services.wait_for_person(step)  # as the engine does when it reaches the step
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL, started_at=timezone.now())
    assert len(mailoutbox) == 1 and f"step {step.order} (Sign-off)" in mailoutbox[0].body
    anna, bert, _ = people["approvers"]
    services.approve_step(step=step, user=anna, comment="ok")
    step.refresh_from_db()
    assert step.status == StepStatus.WAITING
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_step(step=step, user=bert, comment="ok")
    step.refresh_from_db()
    run.refresh_from_db()
    assert step.status == StepStatus.SUCCEEDED and run.status == RunStatus.RUNNING


def test_a_step_rejection_fails_the_run(cluster, people):
    run = start(cluster, people["operator"], slug="test-approval")
    assert run.status == RunStatus.PENDING  # nothing in it changes a host: no approval before the start
    step = run.steps.get(action="approval")
    services.wait_for_person(step)
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL, started_at=timezone.now())
    services.reject_step(step=step, user=people["approvers"][1], comment="no")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.steps.get(key="after").status == StepStatus.PENDING


def test_the_pending_page_and_the_header_count(client, cluster, people):
    run = start(cluster, people["operator"])
    anna = people["approvers"][0]
    client.force_login(anna)
    page = client.get(reverse("approvals")).content.decode()
    assert f'href="/runs/{run.pk}/">#{run.pk} Test: steps</a>' in page and "the start of the run" in page
    assert 'data-url="/approvals/count/">1</span>' in page
    assert client.get(reverse("approvals-count")).json() == {"pending": 1}
    services.approve_run(run=run, user=anna, comment="ok")
    assert client.get(reverse("approvals-count")).json() == {"pending": 0}
    client.force_login(people["operator"])
    assert client.get(reverse("approvals-count")).json() == {"pending": 0}
    assert client.get(reverse("approvals")).status_code == 403


def test_an_approver_approves_on_the_run_page(client, cluster, people):
    run = start(cluster, people["operator"])
    client.force_login(people["approvers"][1])
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert "0 of 1 approval(s)" in page and 'class="run-approve"' in page
    response = client.post(reverse("run-approve-run", args=[run.pk]), {"comment": "fine"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    client.force_login(people["operator"])
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert 'class="run-approve"' not in page and "<td>bert</td><td>approved</td>" in page


def test_the_cli_asks_the_same_rules(cluster, people):
    """manage.py runbook: the requester is refused, another approver starts the run."""
    from django.core.management import CommandError, call_command
    import io

    run = start(cluster, people["operator"])
    out = io.StringIO()
    call_command("runbook", "status", str(run.pk), stdout=out)
    assert "it waits for approval to start: 0 of 1 approver(s) other than olga" in out.getvalue() or \
        "approval to start: 0 of 1 approver(s) other than olga" in out.getvalue()
    people["operator"].groups.add(Group.objects.get(name="approver"))
    with pytest.raises(CommandError, match="four eyes"):
        call_command("runbook", "approve", str(run.pk), "--user", "olga", stdout=io.StringIO())
    with pytest.raises(CommandError, match="Only approvers"):
        call_command("runbook", "approve", str(run.pk), "--user", "vera", stdout=io.StringIO())
    out = io.StringIO()
    call_command("runbook", "approve", str(run.pk), "--user", "anna", "--comment", "ok", stdout=out)
    assert f"Run #{run.pk} approved by anna; it starts." in out.getvalue()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_the_launch_page_says_the_run_needs_approval(client, cluster, people):
    client.force_login(people["operator"])
    page = client.get(reverse("runbook-launch", args=[cluster.pk, "test-steps"]),
                      {"host": "he2.lab.local", "sim_seconds": 0, "marker": "/tmp/steps"}).content.decode()
    assert "Needs 1 approver(s) other than you before it starts; the request is valid 24 h." in page


def test_a_decision_without_a_comment_is_refused(cluster, people):
    from django.core.exceptions import ValidationError

    run = start(cluster, people["operator"])
    for decide in (services.approve_run, services.reject_run):
        with pytest.raises(ValidationError, match="carries a comment"):
            decide(run=run, user=people["approvers"][0], comment="  ")
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and not Approval.objects.exists()


def test_the_default_policy_guards_the_recovery_runbooks_dangerous_steps():
    """--clean-metadata, --reinitialize-lockspace and the failed-install clean-up get an approval
    step right before them (a runbook's own approval right before one is enough)."""
    from tests.test_runbooks_ops import cluster_of, plan, state_of

    def kinds(the_plan):
        return [(step.key, step.kind) for step in the_plan.steps]

    cluster = cluster_of(hosts=2)
    metadata = kinds(plan(cluster, "clean-metadata", state_of(cluster), host_id=3))
    assert metadata[metadata.index(("clean", "ssh")) - 1] == ("approve.clean", "approval")
    cluster = cluster_of(name="Ops3")
    cleanup = plan(cluster, "failed-install-cleanup", state_of(cluster), host="he1.example.com",
                   storage_path="/export/ovirt/hosted-engine")
    assert kinds(cleanup) == [("approve", "approval"), ("purge-storage", "manual"), ("approve.cleanup", "approval"),
                              ("cleanup", "ssh"), ("verify", "ssh")]
    assert cleanup.start_approvers == 1
    assert all(step.spec["approvers"] == 1 and step.spec["expiry_hours"] == 24
               for step in cleanup.steps if step.kind == "approval")
    lockspace = kinds(plan(cluster, "lockspace-recovery", state_of(cluster, live=False), host="he1.example.com",
                           force=True))
    reinit = next(n for n, (key, _) in enumerate(lockspace) if key.endswith("reinitialize"))
    assert lockspace[reinit - 1][1] == "approval"
    assert [kind for _, kind in lockspace].count("approval") == 1  # the runbook's own, for --force


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
def test_in_the_browser_the_count_goes_up_and_the_approver_starts_the_run(live_portal, lab_cluster, browser,
                                                                           make_user):
    """The header's count follows a new request without a reload; the approver
    approves on the run page with a comment; the worker then runs it."""
    from playwright.sync_api import expect

    from tests.test_browser import log_in

    ApprovalPolicy.objects.create(runbook="diagnostic", before_start="always")  # read by daphne too
    operator, _ = make_user("operator", "olga"), make_user("approver", "anna")
    page = browser.new_context().new_page()
    try:
        log_in(page, live_portal, "anna")
        expect(page.locator("#pending-approvals")).to_have_text("0")
        run = services.start_run(cluster=lab_cluster, slug="diagnostic", params={"host": "he1.lab.local"},
                                 user=operator)
        assert run.status == RunStatus.AWAITING_APPROVAL
        expect(page.locator("#pending-approvals")).to_have_text("1", timeout=30_000)  # over its websocket
        page.goto(f"{live_portal}/approvals/")
        page.click(f"a[href='/runs/{run.pk}/']")
        page.fill("#run-decision-comment", "diagnostics are harmless")
        with page.expect_navigation():
            page.click("button.run-approve")
        assert "your approval is recorded; the run starts." in page.content(), page.content()[-3000:]
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
        expect(page.locator("tr.decision-approved")).to_contain_text("diagnostics are harmless")
        expect(page.locator("#pending-approvals")).to_have_text("0")
    finally:
        page.context.close()
