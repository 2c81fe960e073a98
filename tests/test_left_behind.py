"""What a run that did not succeed left behind, and the engine's view it is read from.

Real parts throughout: the HA poller process reads the lab's engine through ovirtsdk4
(the engine's view), a real RQ worker runs he-upgrade on a 4.5 lab and is killed in the
middle of a host's `yum update`; the run page and the cluster page then list what it
left behind, and the return-to-normal runbook, planned from that, restores it (checked
in the lab's own state)."""
import re
import time
from html import unescape

import pytest
from django.core.exceptions import ValidationError

from tests.conftest import wait_until
from tests.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.test_engine import _kill_executor, start, steps_of
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import drive, engine_cluster, polled_release
from upgrades import leftbehind, services
from upgrades.models import Cluster, RunStatus, StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for_engine_view(cluster, condition, timeout=60):
    """The HA poller has stored an engine view for which ``condition(view)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.refresh_from_db()
        view = cluster.engine_view
        try:
            if view and condition(view):
                return cluster
        except (KeyError, TypeError):
            pass
        assert time.monotonic() < deadline, (
            f"no engine view as wanted after {timeout} s: {view!r} (error: {cluster.engine_view_error!r})")
        time.sleep(0.2)


def text_of(html):
    """The page's text, tags dropped and spaces collapsed: what a person reads."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def engine_row(html, host):
    row = re.search(rf'<tr data-engine-host="{re.escape(host)}">(.*?)</tr>', html, re.S)
    assert row, f"no engine row for {host}"
    return text_of(row[1])


def section(html, element_id):
    found = re.search(rf'<section[^>]*id="{element_id}"[^>]*>(.*?)</section>', html, re.S)
    assert found, f"no #{element_id}"
    return found[0]


@pytest.mark.lab(engine_version="4.5", os="el9")
def test_the_cluster_page_shows_the_engines_view_and_the_plan_a_pinned_vm(
        ha_poller, fresh_lab_cluster, make_user, client):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    lab.admin("add-vm", vm="db1", host="he2", affinity="pinned")
    lab.admin("add-vm", vm="web1", host="he3", affinity="migratable")
    lab.admin("add-vm", vm="web2", host="he3", affinity="migratable")
    cluster = wait_for_engine_view(fresh_lab_cluster, lambda v: v["hosts"]["he3.lab.local"]["vms"] == 2
                                   and v["hosts"]["he2.lab.local"]["cannot_migrate"] == ["db1"])
    engine = lab.state()["engine"]
    client.force_login(operator)
    html = client.get(f"/clusters/{cluster.pk}/live/").content.decode()
    view = section(html, "engine-view")
    statuses = {name: h["status"] for name, h in engine["hosts"].items()}
    assert set(statuses.values()) == {"up"}
    assert re.fullmatch(r"he1\.lab\.local up 1 none no \d+ s ago", engine_row(view, "he1.lab.local"))
    assert re.fullmatch(r"he2\.lab\.local up 1 db1 no \d+ s ago", engine_row(view, "he2.lab.local"))
    assert re.fullmatch(r"he3\.lab\.local up 2 none no \d+ s ago", engine_row(view, "he3.lab.local"))
    version = engine_cluster(lab)["version"]
    wanted = f"{version['major']}.{version['minor']}" if isinstance(version, dict) else version
    assert f"Compatibility version {wanted} " in text_of(view)
    assert "Scheduling policy none " in text_of(view)
    page = text_of(client.get(f"/clusters/{cluster.pk}/").content.decode())
    assert f"compatibility {wanted} " in page and "compatibility ?" not in page

    # he-upgrade's plan knows the pinned VM before anyone approves anything.
    plan = services.plan_run(cluster=cluster, slug="he-upgrade", params={})
    check = {c.check: c for c in plan.checks}["vms-can-migrate"]
    assert check.level == "inhibitor"
    assert check.message.startswith("These VMs cannot migrate, so their hosts cannot go to maintenance: "
                                    "db1 on he2.lab.local (the engine's view read ")
    with pytest.raises(services.Blocked, match="db1 on he2.lab.local"):
        start(cluster, "he-upgrade", operator)
    launch = text_of(client.get(f"/clusters/{cluster.pk}/runbooks/he-upgrade/?target=").content.decode())
    assert "db1 on he2.lab.local" in launch

    # Migratable again: the next engine read says so, and the plan has no inhibitor for it.
    lab.admin("set-vm-affinity", vm="db1", affinity="migratable")
    cluster = wait_for_engine_view(cluster, lambda v: v["hosts"]["he2.lab.local"]["cannot_migrate"] == [])
    check = {c.check: c for c in services.plan_run(cluster=cluster, slug="he-upgrade", params={}).checks}
    assert check["vms-can-migrate"].level == "ok"
    # An engine status change reaches the page: he3 to maintenance in the web admin.
    lab.admin("host-maintenance", host="he3")
    cluster = wait_for_engine_view(cluster, lambda v: v["hosts"]["he3.lab.local"]["status"] == "maintenance")
    html = client.get(f"/clusters/{cluster.pk}/live/").content.decode()
    assert engine_row(section(html, "engine-view"), "he3.lab.local").startswith("he3.lab.local maintenance 0 ")


@pytest.mark.lab(engine_version="3.5")
def test_on_3_5_the_page_says_the_engines_view_is_not_available_through_api_v3(
        ha_poller, fresh_lab_cluster, make_user, client):
    polled_release(fresh_lab_cluster)
    cluster = wait_for_engine_view(fresh_lab_cluster, lambda v: v["api"] == "v3")
    client.force_login(make_user("viewer"))
    view = text_of(section(client.get(f"/clusters/{cluster.pk}/live/").content.decode(), "engine-view"))
    assert "The engine's view is not available through API v3 (oVirt 3.x): see the web admin." in view
    assert "Scheduling policy" not in view  # nothing pretended


def differences(run):
    """What the run left, package versions aside: whether the poller has read them again
    since the start is a matter of timing (tested apart, below); they are never restored."""
    found = leftbehind.left_behind(run)
    if not found:
        return None
    assert all(d.restore == "Nothing: packages are not downgraded." for d in found.differences
               if d.what.endswith(": packages"))
    return {d.what: (d.before, d.now, d.by_run, d.restore) for d in found.differences
            if not d.what.endswith(": packages")}


@pytest.mark.browser
@pytest.mark.lab(engine_version="4.5", os="el9", outdated=True)
def test_an_upgrade_interrupted_in_a_yum_update_shows_what_it_left_and_return_to_normal_restores_it(
        live_portal, ha_poller, fresh_lab_cluster, browser, make_user, client):
    """Killed in he2's `yum update`: global maintenance, he2 in maintenance in the engine,
    the policy cluster_maintenance. The run page and the cluster page (live, no reload)
    list each with the step that did it; return-to-normal, launched from there, restores
    them in the lab."""
    from playwright.sync_api import expect

    from tests.test_browser import log_in

    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    cluster = polled_release(fresh_lab_cluster)
    wait_for_engine_view(cluster, lambda v: v["cluster"]["scheduling_policy"] == "none")
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, live_portal, "operator")
        page.goto(f"{live_portal}/clusters/{cluster.pk}/")
        expect(page.locator("#engine-policy")).to_have_text("none")
        expect(page.locator("#left-behind")).to_be_hidden()

        run = start(cluster, "he-upgrade", operator)
        drive(run, lab, operator, timeout=900, stop_at="hosts.he2.lab.local.maintenance-wait")
        lab.fault("slow-host", host="he2.lab.local", factor=300)  # its yum update now takes minutes
        update = wait_until(lambda: (s := steps_of(run)["hosts.he2.lab.local.update"]).status == StepStatus.RUNNING
                            and s.output.exists() and s, 300, "he2's yum update running with output")
        assert update.output.count() < 20  # still in the middle of it
        _kill_executor(run)
        wait_for_status(run, [RunStatus.INTERRUPTED], 60)
        assert steps_of(run)["hosts.he2.lab.local.update"].status == StepStatus.INTERRUPTED
        assert run.snapshot["engine"]["scheduling_policy"] == "none"
        assert run.snapshot["ha"]["global_maintenance"] is False
        assert run.snapshot["engine"]["hosts"]["he2.lab.local"]["status"] == "up"

        # What the lab says, and what the portal lists from the poller's reads after the kill.
        state = lab.state()
        assert state["global_maintenance"] is True
        assert state["engine"]["hosts"]["he2.lab.local"]["status"] == "maintenance"
        assert engine_cluster(lab)["scheduling_policy"] == "cluster_maintenance"
        steps = steps_of(run)
        wanted = {
            "Global maintenance": ("off", "on", f"step {steps['global'].order} (Global maintenance)",
                                   "Maintenance none."),
            "he2.lab.local: engine status": (
                "up", "maintenance", f"step {steps['hosts.he2.lab.local.maintenance'].order} "
                                     "(he2.lab.local to maintenance (engine))",
                "Activate he2.lab.local through the engine."),
            "Scheduling policy": (
                "none", "cluster_maintenance", f"step {steps['hosts.he2.lab.local.policy'].order} "
                                               "(he2.lab.local: keep the scheduling policy at cluster_maintenance)",
                "Scheduling policy none again."),
        }
        found = wait_until(lambda: (d := differences(run)) == wanted and d, 60, f"{differences(run)} == {wanted}")
        assert found == wanted

        client.force_login(operator)
        for url in (f"/runs/{run.pk}/", f"/clusters/{cluster.pk}/live/"):
            shown = text_of(section(client.get(url).content.decode(), "left-behind"))
            assert f"Left behind by run #{run.pk} Hosted-engine upgrade (interrupted)" in shown
            for what, (before, now, by, restore) in wanted.items():
                assert f"{what} {before} {now} {by} {restore}" in shown, (what, shown)
            # Package versions: changed ones listed once the poller read them again, else said unknown.
            assert "engine-vm: packages as installed when the run started ovirt-engine" in shown or \
                "Package versions: the HA poller has not read them (rpm -q, every PACKAGES_POLL_SECONDS) again" \
                in shown, shown
            assert "Plan the return to normal" in shown

        # The cluster page that was open all along shows it without a reload.
        box = page.locator("#left-behind")
        expect(box).to_be_visible(timeout=30_000)
        expect(box.locator("h2")).to_contain_text(f"Left behind by run #{run.pk}")
        expect(box.locator("tr", has_text="Scheduling policy")).to_contain_text("cluster_maintenance")
        expect(box.locator("tr", has_text="he2.lab.local: engine status")).to_contain_text("maintenance")
        expect(box.locator("tr", has_text="Global maintenance")).to_contain_text("on")
        expect(page.locator("#engine-policy")).to_have_text("cluster_maintenance", timeout=30_000)
        expect(page.locator('tr[data-engine-host="he2.lab.local"] .engine-status')).to_have_text("maintenance")

        # The run page shows it too; from there the return to normal is planned and started.
        lab.fault("slow-host", host="he2.lab.local", factor=1)
        page.goto(f"{live_portal}/runs/{run.pk}/")
        expect(page.locator("#left-behind tr", has_text="Scheduling policy")).to_contain_text("none")
        page.click("#left-behind a.return-to-normal")
        expect(page).to_have_url(re.compile(rf".*/runbooks/return-to-normal/\?run={run.pk}$"))
        page.click("button.show-plan")
        titles = page.locator(".plan-step")
        expect(titles).to_have_count(5)
        for n, text in enumerate(["Activate he2.lab.local (engine)",
                                  "Wait until he2.lab.local's HA configuration is out of local maintenance",
                                  "Scheduling policy none again", "Maintenance none",
                                  "Wait until vm-status shows no global maintenance"]):
            expect(page.locator(".plan-step", has_text=text).first).to_be_visible()
        page.click("button.start-run")
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=300_000)
    finally:
        context.close()

    state = lab.state()
    assert state["global_maintenance"] is False
    assert state["engine"]["hosts"]["he2.lab.local"]["status"] == "up"
    assert engine_cluster(lab)["scheduling_policy"] == "none"
    # Nothing is left behind any more: the cluster page's section goes once the poller sees it.
    wait_until(lambda: leftbehind.for_cluster(Cluster.objects.get(pk=cluster.pk)) is None, 60,
               f"nothing left behind (still {differences(run)})")


def test_on_3_x_what_the_runs_web_admin_steps_did_is_listed_and_return_to_normal_asks_a_person(make_user):
    """API v3 shows nothing of the engine: the host a confirmed web-admin step put into
    maintenance (and no step activated again) is listed from the run's own steps, its
    status now said to be unknown, and return-to-normal plans the web-admin activation."""
    from django.utils import timezone

    from tests.factories import make_polled_cluster
    from upgrades.models import StepStatus as S

    operator = make_user("operator")
    cluster = make_polled_cluster()
    Cluster.objects.filter(pk=cluster.pk).update(
        detected_release="oVirt 3.5 (ovirt-hosted-engine-setup 1.2.6.1)", engine_view={"api": "v3"},
        engine_view_at=timezone.now())
    cluster.refresh_from_db()
    plan = services.plan_run(cluster=cluster, slug="he-upgrade", params={"target": "3.6"})
    run = services.create_run(plan, operator)
    services.record_snapshot(run)
    # The run got as far as he2's yum update (a person put he2 into maintenance in the web
    # admin and confirmed), then its worker was lost; the poller sees global maintenance.
    steps = steps_of(run)
    cut = steps["hosts.he2.lab.local.update"]
    run.steps.filter(order__lt=cut.order).update(status=S.SUCCEEDED)
    run.steps.filter(pk=cut.pk).update(status=S.INTERRUPTED)
    run.__class__.objects.filter(pk=run.pk).update(status=RunStatus.INTERRUPTED, finished_at=timezone.now())
    Cluster.objects.filter(pk=cluster.pk).update(maintenance_mode="global", polled_at=timezone.now())
    run.refresh_from_db()

    found = leftbehind.left_behind(run)
    maintenance = steps["hosts.he2.lab.local.maintenance"]
    assert {d.what: (d.before, d.now, d.by_run, d.restore) for d in found.differences} == {
        "Global maintenance": ("off", "on", f"step {steps['global'].order} (Global maintenance)",
                               "Maintenance none."),
        "he2.lab.local: engine status": (
            "up (the run's step put it into maintenance later)",
            "unknown (API v3); the run did not activate it again",
            f"step {maintenance.order} (he2.lab.local to maintenance (web admin))",
            "Activate he2.lab.local in the web admin."),
    }
    assert any("not available through API v3" in text for text in found.unknown)

    planned = services.plan_run(cluster=cluster, slug="return-to-normal", params={"run": run.pk})
    assert [(s.title, s.kind) for s in planned.steps] == [
        ("Activate he2.lab.local (web admin)", "manual"),
        ("Wait until he2.lab.local's HA configuration is out of local maintenance", "ssh"),
        ("Maintenance none", "ssh"),
        ("Wait until vm-status shows no global maintenance", "wait"),
    ]
    assert planned.steps[0].command == ("In the web admin, Hosts tab: select he2.lab.local, click Activate. "
                                        "Then confirm this step.")
    # A run that succeeded leaves nothing to return from.
    run.__class__.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    with pytest.raises(ValidationError, match="only a run that failed, was cancelled or interrupted"):
        services.plan_run(cluster=cluster, slug="return-to-normal", params={"run": run.pk})


def test_packages_changed_since_the_run_started_are_listed_and_unread_ones_said_unknown(make_user):
    """The installed versions the poller read before the run and after it: a host whose
    vdsm moved is listed (never downgraded); before any second read the page says so."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import make_polled_cluster

    operator = make_user("operator")
    cluster = make_polled_cluster()
    started = timezone.now() - timedelta(minutes=5)
    Cluster.objects.filter(pk=cluster.pk).update(packages_read_at=started, packages={"machines": {
        "he2.lab.local": {"installed": {"vdsm": "4.50.3.3", "ovirt-hosted-engine-ha": "2.5.1"}, "error": ""}}})
    cluster.refresh_from_db()
    run = services.create_run(services.plan_run(cluster=cluster, slug="maintenance-global", params={}), operator)
    services.record_snapshot(run)
    run.__class__.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_at=timezone.now())
    run.refresh_from_db()

    found = leftbehind.left_behind(run)
    assert "again since the run started" in " ".join(found.unknown)
    assert not [d for d in found.differences if d.what.endswith("packages")]

    Cluster.objects.filter(pk=cluster.pk).update(packages_read_at=timezone.now(), packages={"machines": {
        "he2.lab.local": {"installed": {"vdsm": "4.50.3.4", "ovirt-hosted-engine-ha": "2.5.1"}, "error": ""}}})
    found = leftbehind.left_behind(run)
    assert [(d.what, d.now, d.restore) for d in found.differences if d.what.endswith("packages")] == [
        ("he2.lab.local: packages", "vdsm 4.50.3.3 -> 4.50.3.4", "Nothing: packages are not downgraded.")]
    assert not [text for text in found.unknown if text.startswith("Package versions")]
    # Newer packages alone do not keep the cluster page's section: nothing returns them.
    Cluster.objects.filter(pk=cluster.pk).update(maintenance_mode="none")
    assert [d.what for d in leftbehind.left_behind(run).differences] == ["he2.lab.local: packages"]
    assert leftbehind.for_cluster(Cluster.objects.get(pk=cluster.pk)) is None
