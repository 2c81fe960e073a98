"""The cluster, launch and run pages as the Django client sees them: what
each role is offered, what the interlocks disable, and that refused or bad
input gets a clear message and changes nothing. The HA state is what the
poller would have stored (the browser tests use the real poller and lab)."""
import pytest
from django.urls import reverse
from django.utils import timezone

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.factories import make_polled_cluster
from upgrades import services
from upgrades.models import Approval, AuditEvent, RunStatus, StepStatus, UpgradeRun
from upgrades.output import insert_rows

pytestmark = pytest.mark.django_db

HOSTS = ("he1.lab.local", "he2.lab.local", "he3.lab.local")


@pytest.fixture
def cluster():
    """Three hosts as the HA poller leaves them: he1 runs the engine VM, all scores 3400."""
    return make_polled_cluster(HOSTS)


def in_local_maintenance(cluster, *names):
    cluster.hosts.filter(name__in=names).update(local_maintenance=True, ha_score=0, ha_state="LocalMaintenance")


def page_of(client, user, url):
    """The page's HTML with each run of white space as one space."""
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return squashed(response)


def squashed(response):
    return " ".join(response.content.decode().split())


def launch_url(cluster, slug, **query):
    from urllib.parse import urlencode

    url = reverse("runbook-launch", args=[cluster.pk, slug])
    return f"{url}?{urlencode(query)}" if query else url


# The cluster page --------------------------------------------------------------

def test_the_last_host_able_to_run_the_engine_vm_has_its_local_maintenance_disabled_with_the_reason(
        client, cluster, make_user):
    in_local_maintenance(cluster, "he2.lab.local", "he3.lab.local")
    he1, he2 = cluster.hosts.get(name="he1.lab.local"), cluster.hosts.get(name="he2.lab.local")
    page = page_of(client, make_user("operator"), reverse("cluster-detail", args=[cluster.pk]))
    assert (f'id="maintenance-local-{he1.pk}" class="maintenance-local" disabled '
            f'aria-describedby="why-maintenance-local-{he1.pk} "') in page
    assert (f'<span class="interlock" id="why-maintenance-local-{he1.pk}">he1.lab.local is the last host able '
            "to run the engine VM: no other live host out of local maintenance has a positive score.</span>") in page
    # The others stay usable: leaving local maintenance, and global maintenance.
    assert f'id="maintenance-none-{he2.pk}" class="maintenance-none">' in page
    assert 'id="maintenance-global-cluster" class="maintenance-global">' in page


def test_without_a_poll_only_local_maintenance_is_disabled_and_the_reason_is_said_once(client, cluster, make_user):
    """The emergency lane: global and no maintenance never wait for the poller; local
    maintenance needs to know another host can take the engine VM."""
    cluster.polled_at = None
    cluster.save()
    page = page_of(client, make_user("operator"), reverse("cluster-detail", args=[cluster.pk]))
    assert page.count("The cluster&#x27;s HA state is unknown: the HA poller has not read this cluster yet.") == 1
    assert "Some maintenance is blocked: The cluster&#x27;s HA state is unknown" in page
    assert page.count(" disabled ") == len(HOSTS)
    assert 'id="maintenance-global-cluster" class="maintenance-global">' in page
    assert 'id="maintenance-none-cluster" class="maintenance-none">' in page


def test_an_active_emergency_run_is_linked_and_blocks_the_buttons(client, cluster, make_user):
    """One maintenance action or diagnostic at a time (the emergency lane's own lock)."""
    operator = make_user("operator")
    run = services.start_run(cluster=cluster, slug="diagnostic", params={"host": "he2.lab.local"}, user=operator)
    page = page_of(client, operator, reverse("cluster-detail", args=[cluster.pk]))
    assert f'Emergency lane: run <a href="/runs/{run.pk}/">#{run.pk} Diagnostic</a> is pending.' in page
    assert page.count(' disabled aria-describedby="emergency-run"') == 2 + 2 * len(HOSTS)


def test_an_active_procedure_is_linked_and_leaves_the_buttons_enabled(client, cluster, make_user):
    operator = make_user("operator")
    run = services.start_run(cluster=cluster, slug="test-steps", user=operator,
                             params={"host": "he2.lab.local", "sim_seconds": 0, "marker": "/tmp/steps"})
    page = page_of(client, operator, reverse("cluster-detail", args=[cluster.pk]))
    assert f'<a href="/runs/{run.pk}/">#{run.pk} Test: steps</a>' in page
    assert "The maintenance buttons and the diagnostic stay available; a maintenance action pauses it." in page
    assert page.count(" disabled") == 0 and "Maintenance is blocked" not in page


def test_a_viewer_sees_the_table_but_no_buttons(client, cluster, make_user):
    page = page_of(client, make_user("viewer"), reverse("cluster-detail", args=[cluster.pk]))
    assert "he2.lab.local" in page and "EngineDown" in page
    assert "maintenance-local" not in page and "start-diagnostic" not in page


def test_the_live_fragment_is_the_table_and_buttons_alone(client, cluster, make_user):
    fragment = page_of(client, make_user("operator"), reverse("cluster-live", args=[cluster.pk]))
    assert fragment.lstrip().startswith('<div id="cluster-live">') and "<html" not in fragment
    assert 'id="maintenance-global-cluster"' in fragment


# The launch page ----------------------------------------------------------------

def test_the_launch_page_shows_the_exact_command_the_host_and_the_preflight(client, cluster, make_user):
    page = page_of(client, make_user("operator"), launch_url(cluster, "maintenance-local", host="he2.lab.local"))
    assert '<code class="command">hosted-engine --set-maintenance --mode=local</code>' in page
    assert '<strong class="plan-title">Set local maintenance on he2.lab.local</strong> · command ' \
           'on <span class="plan-host">he2.lab.local</span>' in page
    assert ("Checked again right before it: another host can run the engine VM while he2.lab.local is in local "
            "maintenance.") in page
    assert "wait until he2.lab.local shows local maintenance on in vm-status (at most 300 s)" in page
    assert '<td>not-last-engine-host</td><td class="level">ok</td>' \
           "<td>Other hosts can run the engine VM: he1.lab.local, he3.lab.local.</td>" in page
    assert "Planned on: no global maintenance; he1.lab.local: EngineUp score 3400 engine VM;" in page
    assert 'name="acknowledge"' not in page  # no warnings
    assert '<input type="hidden" name="host" value="he2.lab.local">' in page


def test_a_cluster_command_names_the_host_it_will_run_on(client, cluster, make_user):
    in_local_maintenance(cluster, "he1.lab.local")
    page = page_of(client, make_user("operator"), launch_url(cluster, "maintenance-global"))
    # No host given: the first live host out of local maintenance, pinned in the confirmation.
    assert 'on <span class="plan-host">he2.lab.local</span>' in page
    assert '<input type="hidden" name="host" value="he2.lab.local">' in page


def test_bad_parameters_get_a_message_per_field_keep_what_was_typed_and_plan_nothing(client, cluster, make_user):
    page = page_of(client, make_user("operator"),
                   launch_url(cluster, "test-steps", host="he1.lab.local", sim_seconds="soon", marker="/tmp/../etc"))
    assert "Enter a whole number." in page
    assert "Enter an absolute path of letters, digits and ._+@%=:,/- (no &#x27;..&#x27;)." in page
    assert 'value="soon"' in page and 'value="/tmp/../etc"' in page
    assert 'class="plan"' not in page and 'class="start-run"' not in page


def test_warnings_must_be_acknowledged_before_anything_is_saved(client, cluster, make_user):
    client.force_login(make_user("operator"))
    url = launch_url(cluster, "maintenance-local", host="he1.lab.local")
    page = squashed(client.get(url))
    # The release not detected yet: whether hosted-engine refuses is not known, so a warning.
    assert ("The engine VM runs on he1.lab.local and the cluster&#x27;s release is not detected yet: "
            "hosted-engine-setup 2.3.11 and later (oVirt 4.3 up to date, 4.4, 4.5) refuse local maintenance there.") \
        in page
    assert f'<a class="remedy" href="{launch_url(cluster, "engine-vm-migrate")}">Move the engine VM to another host ' \
           'first</a>' in page
    assert '<input type="checkbox" name="acknowledge" required> I have read the warnings' in page
    refused = client.post(url, {"host": "he1.lab.local"})
    assert refused.status_code == 409
    assert "Not started: acknowledge the warnings first" in squashed(refused)
    assert not UpgradeRun.objects.exists()
    started = client.post(url, {"host": "he1.lab.local", "acknowledge": "on"})
    run = UpgradeRun.objects.get()
    assert started.status_code == 302 and started["Location"] == reverse("run-detail", args=[run.pk])
    assert run.params == {"host": "he1.lab.local"} and run.runbook.slug == "maintenance-local"
    assert AuditEvent.objects.get(action="run.start").details["acknowledged"][0].startswith("The engine VM runs")


def test_an_inhibitor_disables_the_confirmation_and_a_forced_start_saves_nothing(client, cluster, make_user):
    in_local_maintenance(cluster, "he2.lab.local", "he3.lab.local")
    client.force_login(make_user("operator"))
    url = launch_url(cluster, "maintenance-local", host="he1.lab.local")
    page = squashed(client.get(url))
    assert '<button type="submit" class="start-run" disabled aria-describedby="blocked">' in page
    assert '<p class="interlock" id="blocked">Cannot start: he1.lab.local is the last host able' in page
    refused = client.post(url, {"host": "he1.lab.local", "acknowledge": "on"})
    assert refused.status_code == 409
    assert "Nothing was started." in squashed(refused)
    assert not UpgradeRun.objects.exists()


def test_a_viewer_may_read_the_plan_but_not_start_it(client, cluster, make_user):
    client.force_login(make_user("viewer"))
    url = launch_url(cluster, "maintenance-global")
    page = squashed(client.get(url))
    assert "hosted-engine --set-maintenance --mode=global" in page and 'class="start-run"' not in page
    refused = client.post(url, {"host": "he1.lab.local"})
    assert refused.status_code == 403 and "Only operators can start runs." in squashed(refused)
    assert not UpgradeRun.objects.exists()


def test_a_second_run_on_the_cluster_is_refused_with_who_holds_it(client, cluster, make_user):
    operator = make_user("operator")
    first = services.start_run(cluster=cluster, slug="diagnostic", params={"host": "he1.lab.local"}, user=operator)
    client.force_login(operator)
    refused = client.post(launch_url(cluster, "maintenance-global"), {"host": "he1.lab.local"})
    assert refused.status_code == 409
    assert f"already has an emergency-lane run: #{first.pk} Diagnostic (pending)" in squashed(refused)
    assert UpgradeRun.objects.get() == first


def test_an_unknown_runbook_is_a_404_that_says_so(client, cluster, make_user):
    client.force_login(make_user("operator"))
    response = client.get(launch_url(cluster, "maintenance-everything"))
    assert response.status_code == 404
    assert "There is no runbook &#x27;maintenance-everything&#x27;." in squashed(response)


@pytest.mark.django_db(transaction=True)  # committed, as in production: the job is queued after the commit
def test_a_run_started_while_the_queue_is_down_is_saved_and_the_operator_told(
        client, cluster, make_user, redis_server):
    client.force_login(make_user("operator"))
    redis_server.stop()
    response = client.post(launch_url(cluster, "maintenance-local"), {"host": "he2.lab.local"}, follow=True)
    run = UpgradeRun.objects.get()
    assert run.queued_at is None
    assert (f"The job queue is unreachable right now. Run #{run.pk} is saved and starts as soon as the queue "
            "answers again.") in squashed(response)


# The run page --------------------------------------------------------------------

def start(cluster, slug, user, **params):
    return services.start_run(cluster=cluster, slug=slug, params=params, user=user, acknowledge=True)


def as_worker_left_it(run, run_status, step_status, **step_fields):
    """The run and its first step as a worker leaves them (none runs in these tests)."""
    UpgradeRun.objects.filter(pk=run.pk).update(status=run_status)
    step = run.steps.order_by("order").first()
    for name, value in {"status": step_status, "started_at": timezone.now(), **step_fields}.items():
        setattr(step, name, value)
    step.save()
    run.refresh_from_db()
    return step


def test_an_approval_is_offered_to_another_approver_and_refused_to_the_requester(client, cluster, make_user):
    alice = make_user("admin", "alice")  # an admin, and so an approver too
    run = start(cluster, "test-approval", alice, host="he1.lab.local")
    step = as_worker_left_it(run, RunStatus.AWAITING_APPROVAL, StepStatus.WAITING)
    url = reverse("run-detail", args=[run.pk])

    page = page_of(client, alice, url)
    assert "You requested this run: another approver must decide (four eyes)." in page
    assert "step-approve" not in page
    refused = client.post(reverse("step-approve", args=[run.pk, step.pk]), {"comment": "fine by me"})
    assert refused.status_code == 403
    assert f"You requested run #{run.pk}: another approver must decide (four eyes)." in squashed(refused)
    assert not Approval.objects.exists()

    viewer_page = page_of(client, make_user("viewer"), url)
    assert 'class="actions"' not in viewer_page

    bob = make_user("approver", "bob")
    page = page_of(client, bob, url)
    assert 'class="step-approve">Approve</button>' in page and 'class="step-reject"' in page
    response = client.post(reverse("step-reject", args=[run.pk, step.pk]), {"comment": "not this week"}, follow=True)
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.FAILED, "Rejected by bob: not this week")
    page = squashed(response)
    assert "Step 1 (Sign-off) rejected: the run ends here." in page
    assert '<td class="actor">bob</td> <td>rejected step 1. Sign-off</td><td>comment: not this week</td>' in page


def test_a_waiting_manual_step_is_confirmed_with_a_comment(client, cluster, make_user):
    operator = make_user("operator")
    run = start(cluster, "test-manual", operator, host="he2.lab.local")
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.WAITING)
    first, reinstall, _ = run.steps.order_by("order")
    first.status = StepStatus.SUCCEEDED
    first.save()
    reinstall.status, reinstall.started_at = StepStatus.WAITING, timezone.now()
    reinstall.save()
    page = page_of(client, operator, reverse("run-detail", args=[run.pk]))
    assert "Step 2 waits for an operator: Reinstall he2.lab.local as el7, then confirm." in page
    assert 'class="step-confirm">Confirm step 2 is done</button>' in page
    response = client.post(reverse("step-confirm", args=[run.pk, reinstall.pk]), {"comment": "reinstalled from PXE"})
    assert response.status_code == 302
    reinstall.refresh_from_db()
    assert (reinstall.status, reinstall.note) == (StepStatus.SUCCEEDED, "reinstalled from PXE")


def test_a_skip_without_a_reason_is_refused_and_a_too_long_one_is_kept_to_edit(client, cluster, make_user):
    operator = make_user("operator")
    run = start(cluster, "test-failing", operator, host="he2.lab.local")
    step = as_worker_left_it(run, RunStatus.FAILED, StepStatus.FAILED, exit_code=1, error="exited with 1")
    client.force_login(operator)
    url = reverse("step-skip", args=[run.pk, step.pk])
    response = client.post(url, {"reason": "   "})
    assert response.status_code == 400 and "Say why the step is skipped." in squashed(response)
    too_long = "checked by hand " * 200
    response = client.post(url, {"reason": too_long})
    page = response.content.decode()  # as it is: the textarea keeps the text exactly
    assert response.status_code == 400 and "The reason is too long" in page
    assert f">{too_long}</textarea>" in page and '<details class="action" id="skip-details" open>' in page
    step.refresh_from_db()
    assert step.status == StepStatus.FAILED and not AuditEvent.objects.filter(action="step.skip").exists()


def test_an_action_that_no_longer_applies_says_why(client, cluster, make_user):
    operator = make_user("operator")
    run = start(cluster, "diagnostic", operator, host="he1.lab.local")
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    client.force_login(operator)
    response = client.post(reverse("run-pause", args=[run.pk]))
    assert response.status_code == 409
    assert f"Run #{run.pk} is succeeded: only a running run can be paused." in squashed(response)
    viewer = make_user("viewer")
    client.force_login(viewer)
    response = client.post(reverse("run-cancel", args=[run.pk]), {"reason": "x"})
    assert response.status_code == 403 and "Only operators can cancel runs." in squashed(response)


def test_a_failed_command_shows_the_hosts_own_words_and_the_way_on(client, cluster, make_user):
    operator = make_user("operator")
    run = start(cluster, "test-failing", operator, host="he2.lab.local")
    step = as_worker_left_it(run, RunStatus.FAILED, StepStatus.FAILED, exit_code=1, error="exited with 1",
                             finished_at=timezone.now())
    insert_rows([(step.pk, 1, "stdout", "starting"), (step.pk, 2, "stderr", "first try: busy"),
                 (step.pk, 3, "system", "--- retried by operator ---"),
                 (step.pk, 4, "stderr", "Unable to do it: the host says no.")])
    page = page_of(client, operator, reverse("run-detail", args=[run.pk]))
    assert "Step 1 (Flaky) on he2.lab.local failed: exited with 1." in page
    assert '<pre class="host-said">Unable to do it: the host says no.</pre>' in page  # the latest attempt only
    assert 'class="step-retry"' in page and 'class="step-skip"' in page
    assert 'class="run-resume"' not in page  # a failed step is retried or skipped first
    live = page_of(client, operator, reverse("run-live", args=[run.pk]))
    assert "<html" not in live and live.count('<section id="run-') == 4  # panel, versions, preflight, history


def test_a_run_its_start_preflight_stopped_is_offered_a_resume(client, cluster, make_user):
    """No step has run, so the engine checks the preflight again before the first one."""
    operator = make_user("operator")
    run = start(cluster, "maintenance-local", operator, host="he2.lab.local")
    blocked = {"check": "not-last-engine-host", "level": "inhibitor", "message": "he2.lab.local is the last host."}
    UpgradeRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, preflight={**run.preflight, "start": [blocked]},
        error="Preflight when the run started: he2.lab.local is the last host.")
    page = page_of(client, operator, reverse("run-detail", args=[run.pk]))
    assert "Preflight when the run started: he2.lab.local is the last host." in page
    assert 'class="run-resume"' in page and 'class="step-skip"' in page
