"""The slice as a person uses it: Chromium, daphne, a real worker."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD

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


def test_an_operator_starts_a_diagnostic_and_sees_every_line_in_order(live_portal, lab_cluster, page, make_user):
    make_user("operator")
    log_in(page, live_portal, "operator")
    page.locator("button.start-diagnostic").first.click()
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    identity, ha_status = page.locator("section.step").all()
    lines = [line.rstrip("\n") for line in identity.locator(".line").all_inner_texts()]
    assert lines[0] == "he1.lab.local"
    assert lines[1] == "CentOS Linux release 7.2.1511 (Core)"
    assert lines[2].startswith("Linux he1.lab.local ")
    status_text = "".join(ha_status.locator(".line").all_inner_texts())
    assert "--== Host he1.lab.local (id: 1) status ==--" in status_text
    seqs = [int(s) for s in ha_status.locator(".line").evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == list(range(1, len(seqs) + 1))
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
