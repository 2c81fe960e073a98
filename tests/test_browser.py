"""The slice as a person uses it: Chromium, daphne, a real worker."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD, leave_global_maintenance
from tests.netproxy import CuttableProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop running in this thread, which
    # makes Django refuse ORM calls from tests and their teardown; the ORM is
    # used from this one thread only, so that is safe here.
    mp = pytest.MonkeyPatch()
    mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    mp.undo()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


def log_in(page, base_url, username):
    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/login/?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def terminal_lines(page, step, at_least=0, timeout=30_000):
    """The lines a step's terminal view (xterm.js) shows, once it has written
    everything it received and shows at least ``at_least`` lines."""
    step_id = step.get_attribute("data-step")
    page.wait_for_function("([id, n]) => window.heportalRun && window.heportalRun.settled(id)"
                           " && window.heportalRun.lines(id).length >= n", arg=[step_id, at_least], timeout=timeout)
    return page.evaluate("id => window.heportalRun.lines(id)", step_id)


def test_an_operator_starts_a_diagnostic_and_sees_every_line_in_order(live_portal, lab_cluster, page, make_user):
    make_user("operator")
    log_in(page, live_portal, "operator")
    page.click(f"#card-{lab_cluster.pk} h2 a")  # from the home page's card to the cluster page
    page.locator("button.start-diagnostic").first.click()
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    identity, ha_status = page.locator("section.step").all()
    lines = terminal_lines(page, identity, 3)
    assert lines[0] == "he1.lab.local"
    assert lines[1] == "CentOS Linux release 7.2.1511 (Core)"
    assert lines[2].startswith("Linux he1.lab.local ")
    status_lines = terminal_lines(page, ha_status, 1)
    assert "--== Host he1.lab.local (id: 1) status ==--" in status_lines
    # Every stored line once, in order: the terminal shows what the full log holds.
    full_log = page.request.get(live_portal + ha_status.locator("a.full-log").get_attribute("href")).text()
    assert status_lines == [line.expandtabs(8).rstrip() for line in full_log.splitlines()]
    expect(page.locator(".step-status")).to_have_text(["succeeded", "succeeded"])
    expect(page.locator("#conn-banner")).to_be_hidden()


def test_a_wrong_password_keeps_the_user_out(live_portal, page, make_user):
    make_user("operator")
    page.goto(live_portal + "/login/")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".message.error")).to_contain_text("didn't match")
    assert "/login/" in page.url


def start_run(user, cluster, command):
    from tests.factories import make_run
    from upgrades.services import enqueue_run

    run = make_run(user, cluster.hosts.order_by("he_host_id").first(), [command])
    enqueue_run(run)
    return run


def test_the_page_reconnects_by_itself_and_misses_nothing(live_portal, lab_cluster, page, make_user):
    host, port = live_portal.removeprefix("http://").split(":")
    proxy = CuttableProxy(host, int(port))
    base = f"http://127.0.0.1:{proxy.port}"
    try:
        user = make_user("operator")
        log_in(page, base, "operator")
        numbers = " ".join(str(i) for i in range(1, 401))
        run = start_run(user, lab_cluster, f"for i in {numbers}; do echo line $i; sleep 1; done")
        page.goto(f"{base}/runs/{run.pk}/")
        step = page.locator("section.step").first
        terminal_lines(page, step, 21, timeout=20_000)
        proxy.cut()  # the network drops
        expect(page.locator("#conn-banner")).to_be_visible(timeout=10_000)
        page.wait_for_timeout(1000)
        proxy.restore()
        expect(page.locator("#conn-banner")).to_be_hidden(timeout=20_000)
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
        assert terminal_lines(page, step, 400) == [f"line {i}" for i in range(1, 401)]
    finally:
        proxy.close()


def test_the_cluster_page_shows_ha_changes_as_the_poller_sees_them(live_portal, lab_cluster, lab, page, make_user):
    import threading

    from upgrades.poller import run_poller

    make_user("viewer")
    log_in(page, live_portal, "viewer")
    page.goto(f"{live_portal}/clusters/{lab_cluster.pk}/")
    stop = threading.Event()
    poller = threading.Thread(target=run_poller, kwargs={"stop": stop, "threads": 2}, daemon=True)
    poller.start()
    client = lab.connect("he3.lab.local")
    try:
        he1 = page.locator("tr", has_text="he1.lab.local")
        expect(he1.locator(".ha-state")).to_have_text("EngineUp", timeout=15_000)
        expect(he1.locator(".ha-score")).to_have_text("3400")
        expect(he1.locator(".ha-vm")).to_have_text("here")
        assert client.exec_command("hosted-engine --set-maintenance --mode=global")[1].channel.recv_exit_status() == 0
        expect(page.locator("#maintenance-mode")).to_have_text("global", timeout=15_000)
        expect(he1.locator(".ha-state")).to_have_text("GlobalMaintenance", timeout=15_000)
        expect(page.locator("button.start-diagnostic")).to_have_count(0)  # a viewer cannot start runs
    finally:
        stop.set()
        poller.join(10)
        leave_global_maintenance(lab, client)
        client.close()


def test_an_operator_confirms_a_manual_step_from_the_run_page_with_a_comment(
        live_portal, ha_poller, lab_cluster, page, make_user):
    import tests.runbooks  # noqa: F401  (registers the test runbooks)
    from tests.test_engine import wait_for_polled
    from upgrades import services

    operator = make_user("operator")
    wait_for_polled(lab_cluster)
    run = services.start_run(cluster=lab_cluster, slug="test-manual", params={"host": "he2.lab.local"},
                             user=operator)
    log_in(page, live_portal, "operator")
    page.goto(f"{live_portal}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("waiting for a person", timeout=30_000)
    # The confirmation appears as the run reaches the step, without a reload.
    expect(page.locator(".waiting")).to_have_text(
        "Step 2 waits for an operator: Reinstall he2.lab.local as el7, then confirm.")
    expect(page.locator("button.run-pause")).to_have_count(0)  # nothing executes to pause after
    page.fill("#confirm-comment", "reinstalled from PXE")
    page.click("button.step-confirm")
    expect(page.locator(".message.success")).to_have_text(
        "Step 2 (Reinstall he2.lab.local) confirmed; the run goes on.")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#step-2 .step-note")).to_have_text("Note: reinstalled from PXE")
    assert terminal_lines(page, page.locator("#step-3"), 1) == ["after"]
    history = page.locator("#run-history tr", has_text="confirmed step 2. Reinstall he2.lab.local")
    expect(history.locator(".actor")).to_have_text("operator")
    expect(history).to_contain_text("comment: reinstalled from PXE")
    expect(page.locator("#run-panel .actions")).to_have_count(0, timeout=10_000)


def test_an_approval_is_offered_to_another_approver_never_to_the_requester(
        live_portal, lab_cluster, browser, make_user):
    import tests.runbooks  # noqa: F401  (registers the test runbooks)
    from upgrades import services

    alice = make_user("admin", "alice")  # an admin, and so an approver too
    make_user("approver", "bob")
    run = services.start_run(cluster=lab_cluster, slug="test-approval", params={"host": "he1.lab.local"},
                             user=alice)
    pages = {}
    for name in ("alice", "bob"):
        pages[name] = browser.new_context().new_page()
        log_in(pages[name], live_portal, name)
        pages[name].goto(f"{live_portal}/runs/{run.pk}/")
    try:
        for viewer in pages.values():
            expect(viewer.locator("#run-status")).to_have_text("awaiting approval", timeout=30_000)
        expect(pages["alice"].locator(".waiting")).to_contain_text(
            "You requested this run: another approver must decide (four eyes).")
        expect(pages["alice"].locator("button.step-approve")).to_have_count(0)
        bob = pages["bob"]
        bob.fill("#decision-comment", "window agreed")
        bob.click("button.step-approve")
        expect(bob.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
        # The requester's page follows: the run goes on and the decision is recorded.
        expect(pages["alice"].locator("#run-status")).to_have_text("succeeded", timeout=30_000)
        expect(pages["alice"].locator("#run-history tr", has_text="approved step 1. Sign-off")).to_contain_text(
            "bob")
    finally:
        for viewer in pages.values():
            viewer.context.close()
