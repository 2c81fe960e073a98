"""he-upgrade knows what it would update: pending updates per host and in the engine VM
(read by the real HA poller with yum check-update over SSH), a host with nothing to
update left out, nothing to update anywhere an inhibitor, versions before and after."""
import time

import pytest

from tests.conftest import wait_until
from tests.test_engine import lab_exec, start, steps_of
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import polled_release
from upgrades import packages, services
from upgrades.models import RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def packages_read(cluster, after=None, timeout=120):
    """The HA poller has read the pending updates (after ``after``, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.refresh_from_db()
        read = cluster.packages_read_at
        if read is not None and (after is None or read > after):
            return cluster
        assert time.monotonic() < deadline, "the HA poller did not read the pending updates"
        time.sleep(0.2)


@pytest.mark.lab(engine_version="4.5", os="el9")
def test_on_an_up_to_date_cluster_the_plan_has_the_inhibitor_nothing_to_update(ha_poller, fresh_lab_cluster,
                                                                              make_user, client):
    polled_release(fresh_lab_cluster)
    packages_read(fresh_lab_cluster)
    plan = services.plan_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={})
    blocked = [c.message for c in plan.inhibitors]
    assert any(m.startswith("Nothing to update: yum check-update finds no pending update on any host or in "
                            "the engine VM") for m in blocked), blocked
    assert "he1.lab.local: nothing to update (the engine's host update check: none)" in plan.notes
    operator = make_user("operator")
    with pytest.raises(services.Blocked, match="Nothing to update"):
        start(fresh_lab_cluster, "he-upgrade", operator)
    # The launch page says it, with the start button disabled.
    client.force_login(operator)
    page = client.get(f"/clusters/{fresh_lab_cluster.pk}/runbooks/he-upgrade/").content.decode()
    assert '<p class="interlock" id="blocked">Cannot start: Nothing to update: yum check-update' in page
    assert '<button type="submit" class="start-run" disabled' in page
    assert "<li>he1.lab.local: nothing to update" in page


@pytest.mark.lab(engine_version="4.5", os="el9", outdated=True)
def test_on_an_outdated_cluster_the_plan_lists_updates_skips_an_up_to_date_host_and_the_end_shows_versions(
        rq_worker, ha_poller, fresh_lab_cluster, make_user, client):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    # he2 brought up to date by hand: the plan must see it and leave it out (once a read
    # that began after the update has seen it: one under way meanwhile still lists them).
    assert "Complete!" in lab_exec(lab, "he2", "yum update -y")
    wait_until(lambda: packages.pending(packages_read(fresh_lab_cluster), "he2.lab.local") == [], 120,
               "a read of the pending updates that sees he2 up to date")
    polled_release(fresh_lab_cluster)

    plan = services.plan_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={})
    notes = "\n".join(plan.notes)
    assert "he1.lab.local: 4 update(s): ovirt-hosted-engine-ha 2.5.0-1.el9 -> 2.5.1-1.el9, " in notes, notes
    assert "vdsm 4.50.3.3-1.el9 -> 4.50.3.4-1.el9" in notes
    assert "he2.lab.local: nothing to update" in notes
    assert "ovirt-engine 4.5.6-1.el8 -> 4.5.7-1.el8" in notes
    assert "Skipped, nothing to update: he2.lab.local; their steps are left out of the plan." in notes
    keys = [s.key for s in plan.steps]
    assert not any(k.startswith("hosts.he2.lab.local.") for k in keys), keys
    assert [k for k in keys if k.endswith(".update")] == ["hosts.he3.lab.local.update", "hosts.he1.lab.local.update"]
    assert not plan.inhibitors, [c.message for c in plan.inhibitors]
    # With the parameter the other way every host is upgraded.
    every = services.plan_run(cluster=fresh_lab_cluster, slug="he-upgrade", params={"up_to_date_hosts": "include"})
    assert "hosts.he2.lab.local.update" in [s.key for s in every.steps]

    run = start(fresh_lab_cluster, "he-upgrade", operator)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.CANCELLED], 900)
    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED, (run.error, [(s.key, s.status, s.error) for s in steps.values()
                                                           if s.status != "succeeded"])
    started = {c["check"]: c for c in run.preflight["start"]}
    assert started["updates-pending"]["level"] == "ok", started["updates-pending"]
    rows = {(r["machine"], r["package"]): r for r in packages.versions(run)}
    assert rows[("he1.lab.local", "vdsm")] == {
        "machine": "he1.lab.local", "package": "vdsm", "before": "4.50.3.3-1.el9", "available": "4.50.3.4-1.el9",
        "after": "4.50.3.4-1.el9"}
    assert (rows[("he3.lab.local", "ovirt-hosted-engine-ha")]["before"],
            rows[("he3.lab.local", "ovirt-hosted-engine-ha")]["after"]) == ("2.5.0-1.el9", "2.5.1-1.el9")
    engine_vm = fresh_lab_cluster.engine_vm_name or "the engine VM"
    assert (rows[(engine_vm, "ovirt-engine-setup")]["before"],
            rows[(engine_vm, "ovirt-engine-setup")]["after"]) == ("4.5.6-1.el8", "4.5.7-1.el8")
    assert not any(machine == "he2.lab.local" for machine, _ in rows)

    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<h2>Package versions</h2>" in page
    assert ('<td class="before">4.50.3.3-1.el9</td>' in page and
            '<td class="after">4.50.3.4-1.el9</td>' in page), page[page.find("run-versions"):][:3000]


def test_pending_updates_never_read_are_a_warning_not_a_pass():
    from upgrades import checks
    from upgrades.models import Cluster

    cluster = Cluster.objects.create(name="Never read")
    result = checks.run_check("updates-pending", {"skipped": "", "scope": "minor"}, None,
                              checks.Context(cluster=cluster))
    assert (result.level, result.message.split(" (")[0]) == ("warning", "Pending updates are not known yet")
