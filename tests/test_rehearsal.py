"""Rehearsals (upgrades/rehearsal.py): the real plan run on a twin of the cluster, against a
lab standing in for the real cluster. The twin is a lab of its own, started from the
portal's snapshot; the real lab must come out of a rehearsal exactly as it went in."""
import io
import re
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tests.test_left_behind import wait_for_engine_view
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import polled_release
from tests.test_vms_can_migrate import BLOCKED
from upgrades import rehearsal as rehearsals
from upgrades import services
from upgrades.models import (ApprovalPolicy, AuditEvent, Rehearsal, RehearsalStatus, RunStatus, StepStatus,
                             UpgradeRun)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def real_state(lab):
    """What a rehearsal must never change on the real cluster."""
    state = lab.state()
    return {"global_maintenance": state["global_maintenance"], "engine_vm": state["engine_vm"]["host"],
            "hosts": {name: {"packages": h["packages"], "local_maintenance": h["local_maintenance"],
                             "services": h["services"], "power": h["power"]}
                      for name, h in state["hosts"].items()},
            "engine": state["engine"]}


def packages_read(cluster, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        cluster.refresh_from_db()
        if cluster.packages_read_at is not None:
            return cluster
        assert time.monotonic() < deadline, "the HA poller did not read the pending updates"
        time.sleep(0.2)


def freshly_polled(cluster, timeout=120):
    """The poller's last read is up to date again (a rehearsal keeps this machine busy)."""
    from django.utils import timezone
    from upgrades.state import from_poll

    deadline = time.monotonic() + timeout
    while True:
        cluster.refresh_from_db()
        state = from_poll(cluster)
        if not state.error and not state.notes and state.engine_vm_host and all(h.live for h in state.hosts) \
                and (timezone.now() - cluster.polled_at).total_seconds() < 5:
            return cluster
        assert time.monotonic() < deadline, state.describe()
        time.sleep(0.2)


def wait_rehearsal(rehearsal, timeout):
    deadline = time.monotonic() + timeout
    while True:
        rehearsal.refresh_from_db()
        if not rehearsal.is_active:
            return rehearsal
        assert time.monotonic() < deadline, f"rehearsal #{rehearsal.pk} still {rehearsal.status}"
        time.sleep(0.5)


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_a_pinned_vm_fails_the_rehearsal_where_and_why_it_stops_the_real_run(
        ha_poller, fresh_lab_cluster, make_user):
    real = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    real.admin("add-vm", vm="db1", host="he2", affinity="pinned")
    wait_for_engine_view(fresh_lab_cluster, lambda v: v["hosts"]["he2.lab.local"]["cannot_migrate"] == ["db1"])
    packages_read(fresh_lab_cluster)
    before = real_state(real)

    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("runbook", "rehearse", "he-upgrade", "--cluster", fresh_lab_cluster.name,
                     "--user", operator.username, "--sync", stdout=out)
    assert exited.value.code == 4  # docs/cli.md: the run (here the twin's) failed
    rehearsal = Rehearsal.objects.get()
    assert rehearsal.status == RehearsalStatus.FAILED
    # The twin's run stopped at its start preflight, before any step, with the real reason.
    twin_run = rehearsal.run
    assert twin_run is not None, rehearsal.error
    assert twin_run.cluster != fresh_lab_cluster and twin_run.status == RunStatus.FAILED
    assert BLOCKED in twin_run.error and BLOCKED in rehearsal.error
    assert {s.status for s in twin_run.steps.all()} == {StepStatus.PENDING}
    assert f"Rehearsal #{rehearsal.pk} failed: " in out.getvalue() and BLOCKED in out.getvalue()
    # The snapshot it rehearsed on saw the VM, and the twin had it pinned too.
    assert {"name": "db1", "host": "he2.lab.local", "status": "up", "affinity": "pinned"} \
        in rehearsal.snapshot["guest_vms"]
    # The real run: refused for the same reason, before any step either.
    freshly_polled(fresh_lab_cluster)
    with pytest.raises(services.Blocked, match=re.escape(BLOCKED.rstrip("."))):
        services.start_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={}, user=operator)
    assert not UpgradeRun.objects.filter(cluster=fresh_lab_cluster).exists()
    assert real_state(real) == before
    assert list(AuditEvent.objects.filter(action__startswith="rehearsal.").order_by("seq")
                .values_list("action", flat=True)) == ["rehearsal.request", "rehearsal.running",
                                                       "rehearsal.run", "rehearsal.failed"]


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_an_outdated_cluster_rehearsed_by_the_workers_then_run_under_the_rehearsal_policy(
        rq_worker, ha_poller, fresh_lab_cluster, make_user, client):
    real = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    wait_for_engine_view(fresh_lab_cluster, lambda v: v["api"] == "v4")
    packages_read(fresh_lab_cluster)
    ApprovalPolicy.objects.create(cluster=fresh_lab_cluster, runbook="he-upgrade", before_start="always",
                                  rehearsal_hours=2)
    # Without a rehearsal the policy refuses the start, and nothing is stored.
    with pytest.raises(ValidationError, match="successful rehearsal of this exact plan"):
        services.start_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={}, user=operator)
    before = real_state(real)

    # The launch page's Rehearse button.
    client.force_login(operator)
    launch = reverse("runbook-launch", args=[fresh_lab_cluster.pk, "he-upgrade"])
    assert 'class="rehearse-run"' in client.get(launch + "?up_to_date_hosts=skip").content.decode()
    response = client.post(reverse("runbook-rehearse", args=[fresh_lab_cluster.pk, "he-upgrade"]))
    rehearsal = Rehearsal.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("rehearsal-detail", args=[rehearsal.pk])
    # One twin at a time: a second request while the first one runs is refused.
    with pytest.raises(rehearsals.RehearsalRefused, match="at most 1 twin"):
        rehearsals.request(cluster=fresh_lab_cluster, slug="he-upgrade", params={}, user=operator)
    wait_rehearsal(rehearsal, 900)
    assert rehearsal.status == RehearsalStatus.SUCCEEDED, (rehearsal.error, rehearsals.result(rehearsal)["steps"])
    result = rehearsals.result(rehearsal)
    assert result["steps"] and {s["status"] for s in result["steps"]} <= {"succeeded", "skipped"}
    # The twin was upgraded: its packages before and after.
    vdsm = {r["machine"]: (r["before"], r["after"]) for r in result["packages"] if r["package"] == "vdsm"}
    assert set(vdsm) == {"he1.lab.local", "he2.lab.local", "he3.lab.local"}
    assert all(b.startswith("4.50.3.3-1") and a.startswith("4.50.3.4-1") for b, a in vdsm.values())
    assert "estimate" in result["estimate"] and rehearsal.simulated_seconds > 0
    page = client.get(reverse("rehearsal-detail", args=[rehearsal.pk])).content.decode()
    assert rehearsal.plan_sha256 in page and "(estimate: the twin" in page
    assert "4.50.3.3-1" in page and "4.50.3.4-1" in page and "the lab&#x27;s model" in page
    # The real cluster: untouched, no run, its lock free; the twin is gone.
    assert real_state(real) == before
    assert not UpgradeRun.objects.filter(cluster=fresh_lab_cluster).exists()
    assert rehearsal.run.cluster == rehearsal.twin != fresh_lab_cluster

    # The same plan: the policy lets it start (awaiting its approver, who sees the rehearsal).
    freshly_polled(fresh_lab_cluster)
    run = services.start_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={}, user=operator)
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert rehearsals.run_plan_hash(run) == rehearsal.plan_sha256
    assert rehearsals.for_run(run) == rehearsal
    approver = make_user("approver")
    client.force_login(approver)
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert f"rehearsal #{rehearsal.pk}</a>" in page and "succeeded" in page
    listed = client.get(reverse("approvals")).content.decode()
    assert f'href="{reverse("rehearsal-detail", args=[rehearsal.pk])}">#{rehearsal.pk} succeeded</a>' in listed
    services.reject_run(run=run, user=approver, comment="the test ends here")
    # A changed parameter makes another plan: refused, the rehearsal was of something else.
    freshly_polled(fresh_lab_cluster)
    with pytest.raises(ValidationError, match="successful rehearsal of this exact plan"):
        services.start_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={"policy_after": "evenly_distributed"},
                           user=operator)


def test_a_rehearsal_needs_bubblewrap_and_says_so(lab_cluster, ha_poller, make_user, monkeypatch):
    """The machine lacks bubblewrap (PATH without it): refused with what to install, nothing stored."""
    polled_release(lab_cluster)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(rehearsals.RehearsalRefused, match="bubblewrap"):
        rehearsals.request(cluster=lab_cluster, slug="he-upgrade", params={}, user=make_user("operator"))
    assert not Rehearsal.objects.exists()


def test_only_operators_rehearse_and_bad_parameters_are_refused(lab_cluster, ha_poller, make_user):
    polled_release(lab_cluster)
    with pytest.raises(PermissionDenied, match="Only operators"):
        rehearsals.request(cluster=lab_cluster, slug="he-upgrade", params={}, user=make_user("viewer"))
    with pytest.raises(ValidationError):
        rehearsals.request(cluster=lab_cluster, slug="he-upgrade", params={"policy_after": "; rm -rf /"},
                           user=make_user("operator"))
    with pytest.raises(CommandError):
        call_command("runbook", "rehearse", "he-upgrade", "--cluster", "nope", "--user", "operator")
    assert not Rehearsal.objects.exists()


@pytest.mark.lab(engine_version="4.5", outdated=True)
def test_a_rehearsal_past_its_time_limit_is_cancelled_and_fails_saying_so(
        fresh_lab_cluster, ha_poller, make_user, settings):
    """REHEARSAL_TIME_LIMIT: a he-upgrade of three hosts cannot finish in 2 s; the twin's
    run is cancelled (its clean-up steps run) and the rehearsal fails saying why. The lab standing in for the cluster is left as it was."""
    settings.REHEARSAL_TIME_LIMIT = 2
    polled_release(fresh_lab_cluster)
    freshly_polled(fresh_lab_cluster)
    packages_read(fresh_lab_cluster)
    before = real_state(fresh_lab_cluster.lab)
    rehearsal = rehearsals.request(cluster=fresh_lab_cluster, slug="he-upgrade", params={},
                                   user=make_user("operator"), queue=False)
    rehearsals.execute(rehearsal.pk)
    rehearsal.refresh_from_db()
    assert rehearsal.status == RehearsalStatus.FAILED
    assert rehearsal.error.startswith("the rehearsal's time limit (2 s) passed, the twin's run was cancelled")
    assert rehearsal.run.status == RunStatus.CANCELLED
    assert real_state(fresh_lab_cluster.lab) == before


@pytest.mark.lab(engine_version="3.5")
def test_a_3_5_upgrade_rehearsed_plays_the_web_admin_steps_with_the_labs_admin_actions(
        ha_poller, fresh_lab_cluster, make_user):
    """3.5 → 3.6, the howto's case: the engine has no v4 API, so host maintenance, activation
    and the compatibility version are steps for a person in the web admin. The rehearsal
    plays each with the lab's admin action, says so, and the twin ends on 3.6."""
    real = fresh_lab_cluster.lab
    polled_release(fresh_lab_cluster)
    freshly_polled(fresh_lab_cluster)
    packages_read(fresh_lab_cluster)
    before = real_state(real)
    out = io.StringIO()
    call_command("runbook", "rehearse", "he-upgrade", "--cluster", fresh_lab_cluster.name, "--param", "target=3.6",
                 "--user", make_user("operator").username, "--sync", stdout=out)
    rehearsal = Rehearsal.objects.get()
    assert rehearsal.status == RehearsalStatus.SUCCEEDED, rehearsal.error
    played = {p["how"] for p in rehearsal.played}
    assert {f"done by the lab's web-admin action {action} on he{n}.lab.local"
            for action in ("host-maintenance", "host-activate") for n in (1, 2, 3)} <= played
    assert "done by the lab's web-admin action set-cluster-version 3.6 on Default" in played
    assert "played: step" in out.getvalue() and f"Rehearsal #{rehearsal.pk} succeeded." in out.getvalue()
    ha = {r["machine"]: r for r in rehearsals.result(rehearsal)["packages"] if r["package"] == "ovirt-hosted-engine-ha"}
    assert ha["he1.lab.local"]["before"].startswith("1.2.10-1") and ha["he1.lab.local"]["after"].startswith("1.3.5.8-1")
    assert real_state(real) == before
