"""The dashboard as a person uses it: Chromium, daphne, a real worker and the
lab. The terminal view of a step's output, the cluster page's table and score
chart, the live home page, keyboard-only maintenance."""
import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.test_browser import browser, log_in, page, start_run, terminal_lines  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SCROLLBACK = 5000  # upgrades.views.TERMINAL_SCROLLBACK
SCREENSHOTS = ROOT / "docs" / "screenshots"


def screenshot(page, name, full_page=False):
    """Save the page as users see it on a laptop (docs/screenshots/, shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(300)  # let a resize redraw
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page)


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
    assert lines[:3] == ["green plain", "oops", "tick 1"]
    green = page.evaluate(CELL, [step_id, 0, 0])
    assert green == {"chars": "g", "fg": 2, "palette": True, "plain": False}  # the command's own ANSI colour
    assert page.evaluate(CELL, [step_id, 0, 6])["plain"] is True  # reset after it
    assert page.evaluate(CELL, [step_id, 1, 0])["fg"] == 1  # stderr in red

    follow = step.locator("button.follow")
    expect(follow).to_have_attribute("aria-pressed", "true")
    follow.click()  # pause: the view holds still while lines arrive
    expect(follow).to_have_attribute("aria-pressed", "false")
    held = terminal_lines(page, step)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    expect(follow).to_have_text(f"Paused ({202 - len(held)} new)")
    assert page.evaluate("id => window.heportalRun.lines(id)", step_id) == held
    follow.click()  # follow again: what was held is written
    expect(follow).to_have_text("Following")
    lines = terminal_lines(page, step, 202)
    assert lines == ["green plain", "oops"] + [f"tick {i}" for i in range(1, 201)]

    search = step.locator("input.output-search")
    search.fill("tick 42")
    search.press("Enter")
    assert page.evaluate("id => window.heportalRun.view(id).term.getSelection()", step_id) == "tick 42"
    expect(follow).to_have_attribute("aria-pressed", "false")  # searching holds the view
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
    expect(marks.first).to_contain_text(f"Run #{run.pk} Diagnostic, step 1: ")
    expect(marks.first.locator("a")).to_have_attribute("href", f"/runs/{run.pk}/#step-1")
    expect(card).to_have_attribute("data-marks-drawn", "2")  # drawn on the canvas too
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
    screenshot(page, "cluster", full_page=True)
