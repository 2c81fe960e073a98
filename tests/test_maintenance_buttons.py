"""The maintenance buttons as an operator uses them: Chromium, daphne, a real
worker, the real HA poller and the lab over SSH. Tests that change the HA
state use a lab of their own (``fresh_lab_cluster``)."""
import pytest
from playwright.sync_api import expect

from tests.test_browser import browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_engine import wait_for_polled
from upgrades.models import UpgradeRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow]

# hosted-engine's own words (4.x) when asked for local maintenance where the engine VM runs.
REFUSAL = ("Unable to enter local maintenance mode: the engine VM is running on the current host, please "
           "migrate it before entering local maintenance mode.")
LAST_HOST = ("he1.lab.local is the last host able to run the engine VM: no other live host out of local "
             "maintenance has a positive score.")


def host_row(page, name):
    return page.locator("#ha-hosts tbody tr", has_text=name)


def lab_run(lab, host, command):
    client = lab.connect(host)
    try:
        assert client.exec_command(command)[1].channel.recv_exit_status() == 0
    finally:
        client.close()


def test_each_maintenance_button_sets_its_mode_on_the_lab_and_the_table_follows_live(
        live_portal, ha_poller, fresh_lab_cluster, page, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    he2 = cluster.hosts.get(name="he2.lab.local")
    cluster_url = f"{live_portal}/clusters/{cluster.pk}/"
    make_user("operator")
    log_in(page, live_portal, "operator")
    watcher = page.context.new_page()  # stays on the cluster page: it must follow without a reload
    watcher.goto(cluster_url)
    wait_for_polled(cluster)

    def press(button, command, host):
        """Click, read the confirmation, confirm; the run must succeed."""
        page.goto(cluster_url)
        page.click(button)
        plan = page.locator("section.plan")
        expect(plan.locator("code.command").first).to_have_text(command)
        expect(plan.locator(".plan-host").first).to_have_text(host)
        expect(plan.locator("table.checks")).to_contain_text(f"{host} publishes up-to-date HA data.")
        expect(plan.locator(".ha-basis")).to_contain_text("(last poll)")
        page.click("button.start-run")
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
        expect(page.locator(".step-status")).to_have_text(["succeeded", "succeeded"])

    press("#maintenance-global-cluster", "hosted-engine --set-maintenance --mode=global", "he1.lab.local")
    assert lab.state()["global_maintenance"] is True
    expect(watcher.locator("#maintenance-mode")).to_have_text("global", timeout=15_000)
    expect(host_row(watcher, "he2.lab.local").locator(".ha-state")).to_have_text("GlobalMaintenance",
                                                                                  timeout=15_000)

    press("#maintenance-none-cluster", "hosted-engine --set-maintenance --mode=none", "he1.lab.local")
    assert lab.state()["global_maintenance"] is False
    expect(watcher.locator("#maintenance-mode")).to_have_text("none", timeout=15_000)

    press(f"#maintenance-local-{he2.pk}", "hosted-engine --set-maintenance --mode=local", "he2.lab.local")
    assert lab.state()["hosts"]["he2.lab.local"]["local_maintenance"] is True
    expect(host_row(watcher, "he2.lab.local").locator(".ha-local")).to_have_text("yes", timeout=15_000)
    expect(host_row(watcher, "he2.lab.local").locator(".ha-state")).to_have_text("LocalMaintenance")

    press(f"#maintenance-none-{he2.pk}", "hosted-engine --set-maintenance --mode=none", "he2.lab.local")
    assert lab.state()["hosts"]["he2.lab.local"]["local_maintenance"] is False
    expect(host_row(watcher, "he2.lab.local").locator(".ha-local")).to_have_text("no", timeout=15_000)


@pytest.mark.lab(engine_version="4.5")  # hosted-engine-setup 2.3.11 and later refuse there
def test_local_maintenance_where_the_engine_vm_runs_is_refused_up_front_and_the_vm_can_be_moved_first(
        live_portal, ha_poller, fresh_lab_cluster, page, make_user):
    lab_cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    wait_for_polled(lab_cluster)
    he1 = lab_cluster.hosts.get(name="he1.lab.local")
    make_user("operator")
    log_in(page, live_portal, "operator")
    cluster_url = f"{live_portal}/clusters/{lab_cluster.pk}/"
    page.goto(cluster_url)
    button = page.locator(f"#maintenance-local-{he1.pk}")
    expect(page.locator(f"#why-maintenance-local-{he1.pk}")).to_contain_text(
        f"The engine VM runs on he1.lab.local: hosted-engine-setup 2.7.1 refuses local maintenance there (\"{REFUSAL}\"",
        timeout=20_000)  # once the poller has detected the release
    expect(button).to_be_disabled()
    page.click(f"#remedy-maintenance-local-{he1.pk}")
    expect(page.locator("h1")).to_contain_text("Move the engine VM on")
    expect(page.locator("section.plan code.command").first).to_have_text(
        "engine API: migrate_engine_vm(host=he2.lab.local)")
    page.click("button.start-run")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=120_000)
    assert lab.state()["engine_vm"]["host"] == "he2.lab.local"
    assert UpgradeRun.objects.get().runbook.slug == "engine-vm-migrate"
    # Once the poller has seen it move, local maintenance on he1 is offered again.
    page.goto(cluster_url)
    expect(host_row(page, "he2.lab.local").locator(".ha-state")).to_have_text("EngineUp", timeout=20_000)
    page.goto(cluster_url)
    expect(page.locator(f"#maintenance-local-{he1.pk}")).to_be_enabled()


@pytest.mark.lab(engine_version="3.6")  # its HA 1.3 agents accept local maintenance where the engine VM runs
def test_the_last_host_able_to_run_the_engine_vm_cannot_be_put_in_local_maintenance(
        live_portal, ha_poller, fresh_lab_cluster, page, make_user):
    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    he1 = cluster.hosts.get(name="he1.lab.local")
    make_user("operator")
    log_in(page, live_portal, "operator")
    page.goto(f"{live_portal}/clusters/{cluster.pk}/")
    button = page.locator(f"#maintenance-local-{he1.pk}")
    expect(button).to_be_enabled(timeout=20_000)  # once the poller has read the cluster
    for host in ("he2", "he3"):
        lab_run(lab, host, "hosted-engine --set-maintenance --mode=local")
    expect(host_row(page, "he3.lab.local").locator(".ha-local")).to_have_text("yes", timeout=20_000)
    expect(button).to_be_disabled(timeout=15_000)
    expect(page.locator(f"#why-maintenance-local-{he1.pk}")).to_have_text(LAST_HOST)
    # Leaving local maintenance stays possible on the others.
    expect(page.locator(f"#maintenance-none-{cluster.hosts.get(name='he2.lab.local').pk}")).to_be_enabled()
