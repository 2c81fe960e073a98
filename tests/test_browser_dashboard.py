"""The dashboard as a person uses it: Chromium, daphne, a real worker and the
lab. The terminal view of a step's output, the cluster page's table and score
chart, the live home page, keyboard-only maintenance."""
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.test_browser import browser, log_in, page, start_run, terminal_lines  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SCROLLBACK = 5000  # upgrades.views.TERMINAL_SCROLLBACK
SCREENSHOTS = ROOT / "docs" / "screenshots"


def screenshot(page, name, upto=None):
    """Save the page as users see it on a laptop (docs/screenshots/, shown in the README):
    the first screen, or from the top down to the end of ``upto``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(300)  # let a resize redraw
    if upto is None:
        page.screenshot(path=SCREENSHOTS / f"{name}.png")
        return
    box = page.locator(upto).bounding_box()
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True,
                    clip={"x": 0, "y": 0, "width": 1280, "height": box["y"] + box["height"] + 8})


def test_the_terminal_follows_a_100k_line_step_keeps_its_tail_and_the_download_has_every_line(
        live_portal, lab_cluster, page, make_user):
    user = make_user("operator")
    log_in(page, live_portal, "operator")
    run = start_run(user, lab_cluster, "seq 100000")
    page.goto(f"{live_portal}/runs/{run.pk}/")
    step = page.locator("section.step").first
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=120_000)
    lines = terminal_lines(page, step, timeout=60_000)
    while lines[-1] != "100000":
        lines = terminal_lines(page, step, len(lines) + 1, timeout=60_000)
    # Bounded: the scrollback and one screen, the newest lines, in order.
    assert SCROLLBACK <= len(lines) <= SCROLLBACK + 24
    assert lines == [str(i) for i in range(100001 - len(lines), 100001)]
    view = page.evaluate("id => { const t = window.heportalRun.view(id).term;"
                         " return {viewportY: t.buffer.active.viewportY, baseY: t.buffer.active.baseY}; }",
                         step.get_attribute("data-step"))
    assert view["viewportY"] == view["baseY"]  # following: the view is at the newest line
    expect(step.locator(".output-count")).to_have_text(
        "100,000 lines, the last 5,000 shown (full log: download)")
    response = page.request.get(live_portal + step.locator("a.full-log").get_attribute("href"))
    assert response.ok
    assert response.text() == "".join(f"{i}\n" for i in range(1, 100001))


CELL = """([id, row, col]) => {
  const cell = window.heportalRun.view(id).term.buffer.active.getLine(row).getCell(col);
  return {chars: cell.getChars(), fg: cell.getFgColor(), palette: !!cell.isFgPalette(), plain: !!cell.isFgDefault()};
}"""


def test_the_terminal_shows_colours_pauses_and_finds_text(live_portal, lab_cluster, page, make_user):
    user = make_user("operator")
    log_in(page, live_portal, "operator")
    run = start_run(user, lab_cluster, "printf '\\033[32mgreen\\033[0m plain\\n'; echo oops >&2; "
                                       "for i in $(seq 1 200); do echo tick $i; sleep 0.1; done")
    page.goto(f"{live_portal}/runs/{run.pk}/")
    step = page.locator("section.step").first
    step_id = step.get_attribute("data-step")
    lines = terminal_lines(page, step, 3, timeout=60_000)
    # stdout and stderr are two streams: their lines interleave as they were read.
    assert "oops" in lines and [line for line in lines if line != "oops"][:2] == ["green plain", "tick 1"]
    green_row, stderr_row = lines.index("green plain"), lines.index("oops")
    green = page.evaluate(CELL, [step_id, green_row, 0])
    assert green == {"chars": "g", "fg": 2, "palette": True, "plain": False}  # the command's own ANSI colour
    assert page.evaluate(CELL, [step_id, green_row, 6])["plain"] is True  # reset after it
    assert page.evaluate(CELL, [step_id, stderr_row, 0])["fg"] == 1  # stderr in red

    follow = step.locator("button.follow")
    expect(follow).to_have_attribute("aria-pressed", "true")
    follow.click()  # pause: the view holds still while lines arrive
    expect(follow).to_have_attribute("aria-pressed", "false")
    held = terminal_lines(page, step)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    new = 202 - len(held)  # on a slow machine the page may come late, when little is left to hold
    expect(follow).to_have_text(f"Paused ({new} new)" if new else "Paused")
    assert page.evaluate("id => window.heportalRun.lines(id)", step_id) == held
    follow.click()  # follow again: what was held is written
    expect(follow).to_have_text("Following")
    lines = terminal_lines(page, step, 202)
    assert sorted(lines) == sorted(["green plain", "oops"] + [f"tick {i}" for i in range(1, 201)])
    assert [line for line in lines if line != "oops"] == ["green plain"] + [f"tick {i}" for i in range(1, 201)]

    search = step.locator("input.output-search")
    search.fill("tick 42")
    search.press("Enter")
    assert page.evaluate("id => window.heportalRun.view(id).term.getSelection()", step_id) == "tick 42"
    expect(follow).to_have_attribute("aria-pressed", "false")  # searching holds the view
    screenshot(page, "run")
    search.fill("no such text")
    search.press("Enter")
    expect(step.locator(".search-result")).to_have_text("not in the last 5,000 lines")


def test_the_score_chart_shows_the_steps_of_a_run_as_marks(live_portal, ha_poller, lab_cluster, page, make_user):
    from tests.test_engine import wait_for_polled
    from upgrades import services

    operator = make_user("operator")
    wait_for_polled(lab_cluster)
    run = services.start_run(cluster=lab_cluster, slug="diagnostic", params={"host": "he1.lab.local"},
                             user=operator)
    log_in(page, live_portal, "operator")
    page.goto(f"{live_portal}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    page.goto(f"{live_portal}/clusters/{lab_cluster.pk}/")
    he1 = lab_cluster.hosts.get(name="he1.lab.local")
    he2 = lab_cluster.hosts.get(name="he2.lab.local")
    card = page.locator(f".chart-card[data-host='{he1.pk}']")
    marks = card.locator("li.mark")
    expect(marks).to_have_count(2, timeout=20_000)
    expect(card.locator("li.run-group summary").first).to_contain_text(f"Run #{run.pk} Diagnostic")
    expect(marks.first).to_contain_text("step 1: ")
    expect(marks.first.locator("a")).to_have_attribute("href", f"/runs/{run.pk}/#step-1")
    expect(card).to_have_attribute("data-marks-drawn", "1")  # the run, one band on the canvas
    expect(card.locator("canvas")).to_be_visible()
    # The poller's samples are plotted: the score line has values.
    scores = page.evaluate(f"""() => document.querySelector(".chart-card[data-host='{he1.pk}']").plot.data[1]""")
    assert 3400 in scores
    # The run was on he1 only: he2's chart has no marks.
    expect(page.locator(f".chart-card[data-host='{he2.pk}'] li.mark")).to_have_count(0)
    page.click(".chart-range button[data-range=week]")
    expect(page.locator(".chart-range button[data-range=week]")).to_have_attribute("aria-pressed", "true")
    expect(card.locator("li.mark")).to_have_count(2)
    page.click(".chart-range button[data-range=hour]")
    expect(card.locator("li.mark")).to_have_count(2)
    screenshot(page, "cluster", upto="section.score-history")


def test_home_and_cluster_pages_follow_a_lab_fault_without_a_reload(
        live_portal, ha_poller, fresh_lab_cluster, browser, make_user):
    from tests.test_engine import wait_for_polled
    from tests.test_maintenance_buttons import host_row, lab_run
    from upgrades.models import Cluster

    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    make_user("viewer")
    home = browser.new_context().new_page()
    log_in(home, live_portal, "viewer")
    detail = home.context.new_page()
    detail.goto(f"{live_portal}/clusters/{cluster.pk}/")
    wait_for_polled(cluster)
    card = home.locator(f"#card-{cluster.pk}")
    try:
        expect(card.locator(".hosts-up")).to_have_text("3 up", timeout=30_000)
        expect(card.locator(".engine-vm")).to_have_text("on he1.lab.local good health")
        expect(card).to_have_class("cluster-card ok")
        # The release (rpm -q on a host) is stored without an HA change: the page shows it once loaded again.
        deadline = time.monotonic() + 60
        while not Cluster.objects.get(pk=cluster.pk).detected_release and time.monotonic() < deadline:
            time.sleep(0.2)
        home.reload()
        expect(card.locator(".release")).to_have_text("oVirt 4.3")
        screenshot(home, "home")
        home.evaluate("window.sameDocument = true")

        lab_run(lab, "he2", "hosted-engine --set-maintenance --mode=local")
        expect(card.locator(".hosts-local")).to_have_text("1 in local maintenance", timeout=30_000)
        expect(card.locator(".hosts-up")).to_have_text("2 up")
        expect(card).to_have_class("cluster-card warn")
        he2 = host_row(detail, "he2.lab.local")
        expect(he2.locator(".ha-local")).to_have_text("yes", timeout=30_000)
        expect(he2.locator(".score-reason")).to_have_text("local maintenance")

        lab.fault("kill-host", host="he3.lab.local")  # its agent dies without a word: it goes stale
        expect(card.locator(".hosts-stale")).to_have_text("1 stale", timeout=90_000)
        expect(card).to_have_class("cluster-card bad")
        he3 = host_row(detail, "he3.lab.local")
        expect(he3).to_have_class("stale", timeout=30_000)
        expect(he3.locator(".score-reason")).to_contain_text("stale data")
        assert home.evaluate("window.sameDocument") is True  # never reloaded
    finally:
        home.context.close()


def tab_to(page, selector, limit=80):
    """Press Tab until ``selector`` has the focus, as a keyboard user does; fails if it never does."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            # The focus is visible where it is.
            assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
            return
    raise AssertionError(f"{selector} never got the focus in {limit} tabs")


def test_the_maintenance_buttons_and_their_confirmations_work_from_the_keyboard_alone(
        live_portal, ha_poller, fresh_lab_cluster, page, make_user):
    from tests.test_engine import wait_for_polled

    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    make_user("operator")
    log_in(page, live_portal, "operator")
    wait_for_polled(cluster)
    page.goto(f"{live_portal}/clusters/{cluster.pk}/")
    expect(page.locator("#maintenance-global-cluster")).to_be_enabled(timeout=30_000)
    tab_to(page, "#maintenance-global-cluster")
    page.keyboard.press("Enter")
    expect(page.locator("section.plan code.command").first).to_have_text(
        "hosted-engine --set-maintenance --mode=global")
    screenshot(page, "launch")
    tab_to(page, "button.start-run")
    page.keyboard.press("Enter")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    assert lab.state()["global_maintenance"] is True

    page.goto(f"{live_portal}/clusters/{cluster.pk}/")
    expect(page.locator("#maintenance-mode")).to_have_text("global", timeout=30_000)
    expect(page.locator("#maintenance-none-cluster")).to_be_enabled(timeout=30_000)
    tab_to(page, "#maintenance-none-cluster")
    # The live fragment is replaced (as on each HA change) and the focus stays on the button.
    page.evaluate("() => fetch(document.getElementById('cluster').dataset.liveUrl).then(r => r.text())"
                  ".then(html => { document.getElementById('cluster-live').dataset.old = '1';"
                  " window.heportalFragments.replace(html); })")
    expect(page.locator("#cluster-live")).not_to_have_attribute("data-old", "1")
    assert page.evaluate("document.activeElement.id") == "maintenance-none-cluster"
    page.keyboard.press("Enter")
    expect(page.locator("section.plan code.command").first).to_have_text(
        "hosted-engine --set-maintenance --mode=none")
    tab_to(page, "button.start-run")
    page.keyboard.press("Enter")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    assert lab.state()["global_maintenance"] is False


def test_a_launch_without_its_required_parameter_says_so_and_plans_once_it_is_given(
        live_portal, lab_cluster, page, make_user):
    # The runbooks on this branch take only a host; tests/test_pages.py checks typed values are kept.
    make_user("operator")
    log_in(page, live_portal, "operator")
    page.goto(f"{live_portal}/clusters/{lab_cluster.pk}/runbooks/diagnostic/")
    expect(page.locator("select[name=host]")).to_have_value("")
    page.click("button.show-plan")
    expect(page.locator(".errorlist")).to_have_text(["This field is required."])
    expect(page.locator("section.plan")).to_have_count(0)
    page.select_option("select[name=host]", "he2.lab.local")
    page.click("button.show-plan")
    expect(page.locator("select[name=host]")).to_have_value("he2.lab.local")  # kept with the plan
    expect(page.locator("section.plan .plan-host").first).to_have_text("he2.lab.local")
    expect(page.locator(".errorlist")).to_have_count(0)


def test_the_audit_page_shows_who_did_what_in_the_same_layout(live_portal, page, make_user):
    make_user("operator")
    log_in(page, live_portal, "operator")
    page.locator("header button", has_text="Log out").click()
    make_user("auditor")
    log_in(page, live_portal, "auditor")
    page.goto(f"{live_portal}/audit/")
    table = page.locator("table.audit")
    expect(table).to_contain_text("auth.login")
    expect(table).to_contain_text("auth.logout")
    expect(page.locator("header")).to_contain_text("auditor")
    screenshot(page, "audit")
