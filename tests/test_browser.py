"""The slice as a person uses it: Chromium, daphne, a real worker."""
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD
from tests.factories import make_host

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


def test_an_operator_starts_a_diagnostic_and_sees_every_line_in_order(live_portal, page, make_user):
    make_user("operator")
    make_host(name="he1.example.com")
    log_in(page, live_portal, "operator")
    page.click("button.start-diagnostic")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    lines = page.locator("pre.log .line").all_inner_texts()
    assert lines[0].startswith("Linux ")
    assert [line.strip() for line in lines[1:]] == ["1", "2", "3"]
    expect(page.locator(".step-status")).to_have_text("succeeded")
    expect(page.locator("#conn-banner")).to_be_hidden()


def test_a_wrong_password_keeps_the_user_out(live_portal, page, make_user):
    make_user("operator")
    page.goto(live_portal + "/login/")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".message.error")).to_contain_text("didn't match")
    assert "/login/" in page.url
