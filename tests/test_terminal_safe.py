"""Issue 17, part 5: command output cannot rewrite the terminal view.

A step's output that clears the screen, moves the cursor home or up, erases
lines, sets the title or the clipboard must not hide what was shown before:
the terminal renders the text and its colours only, while the stored log and
its download keep every byte the host printed.
"""
import pytest
from playwright.sync_api import expect

from tests.factories import make_polled_cluster, make_run
from tests.test_browser import browser, log_in, page, start_run  # noqa: F401  (fixtures)
from upgrades.models import StepOutput

ERROR = "ERROR: disk /dev/vda full"
# An error, a coloured line, then a line that tries to wipe the view: a progress
# bar overwritten by \r, clear screen, cursor home, title and clipboard OSCs,
# cursor up and erase line, then "all good" where the error was.
COMMAND = ("echo '%s'; printf '\\033[32mgreen ok\\033[0m\\n'; "
           "printf 'progress 10%%%%\\r\\033[2J\\033[H\\033]0;pwned\\007\\033]52;c;aGk=\\007"
           "\\033[A\\033[A\\033[2Kall good\\n'" % ERROR)
STORED = [ERROR, "\x1b[32mgreen ok\x1b[0m",
          "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;aGk=\x07\x1b[A\x1b[A\x1b[2Kall good"]
SHOWN = [ERROR, "green ok", "all good"]

VIEWPORT = """id => { const t = window.heportalRun.view(id).term, b = t.buffer.active, rows = [];
  for (let i = b.viewportY; i < b.viewportY + t.rows; i++) { rows.push(b.getLine(i).translateToString(true)); }
  return rows; }"""
# The foreground of a line's first cell.
FOREGROUND = """([id, row]) => { const c = window.heportalRun.view(id).term.buffer.active.getLine(row).getCell(0);
  return {default: !!c.isFgDefault(), palette: !!c.isFgPalette(), colour: c.getFgColor()}; }"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_output_that_clears_the_screen_leaves_every_line_shown_coloured_and_searchable(
        live_portal, lab_cluster, page, make_user):
    user = make_user("operator")
    log_in(page, live_portal, "operator")
    run = start_run(user, lab_cluster, COMMAND)
    page.goto(f"{live_portal}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    step = page.locator("section.step").first
    step_id = step.get_attribute("data-step")

    # The log keeps what the host printed (the \r progress bar as a terminal left it).
    stored = list(StepOutput.objects.filter(step_id=step_id).order_by("seq").values_list("text", flat=True))
    assert stored == STORED
    download = page.request.get(f"{live_portal}/runs/{run.pk}/steps/{step_id}/log.txt")
    assert download.ok
    for line in STORED:
        assert line in download.text()

    # The view: every line, the error first, in the buffer and on the screen.
    page.wait_for_function("id => window.heportalRun.settled(id) && window.heportalRun.lines(id).length >= 3",
                           arg=step_id, timeout=20_000)
    assert page.evaluate("id => window.heportalRun.lines(id)", step_id) == SHOWN
    assert [row for row in page.evaluate(VIEWPORT, step_id) if row] == SHOWN
    rows = [t.replace("\xa0", " ").rstrip() for t in step.locator(".xterm-rows > div").all_inner_texts()]
    assert [r for r in rows if r] == SHOWN
    # Colours still render: the green line is green (palette 2), the error plain.
    assert page.evaluate(FOREGROUND, [step_id, 1]) == {"default": False, "palette": True, "colour": 2}
    assert page.evaluate(FOREGROUND, [step_id, 0])["default"] is True
    # The cursor stayed hidden and the title is the page's own.
    assert page.evaluate("id => window.heportalRun.view(id).term.buffer.active.cursorY", step_id) == 2
    assert "pwned" not in page.title()

    # The search finds the error line, and the last one.
    search = step.locator(".output-search")
    for text in ("ERROR: disk", "all good"):
        search.fill(text)
        search.press("Enter")
        page.wait_for_function("([id, t]) => window.heportalRun.view(id).term.getSelection() === t",
                               arg=[step_id, text], timeout=5_000)
        expect(step.locator(".search-result")).to_have_text("")


# What the filter keeps and removes, case by case: [printed, rendered].
CASES = [
    ["plain text\twith a tab", "plain text\twith a tab"],
    ["\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold orange\x1b[m", "\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold orange\x1b[m"],
    ["\x1b[38;2;1;2;3mtrue\x1b[38:2::1:2:3mcolour", "\x1b[38;2;1;2;3mtrue\x1b[38:2::1:2:3mcolour"],
    # conceal (8) would hide a shown line; 38;5;8 is a grey, not conceal
    ["\x1b[1;8;38;5;8mhidden\x1b[8m?", "\x1b[1;38;5;8mhidden?"],
    ["\x1b[2J\x1b[3J\x1b[H\x1b[10;1H\x1b[A\x1b[5B\x1b[K\x1b[2K\x1b[1;5r\x1b[?1049h\x1b[?25h\x1b[6n\x1b[>4;1mx", "x"],
    ["\x1b]0;title\x07\x1b]2;title\x1b\\\x1b]52;c;aGk=\x07\x1b]8;;http://x\x1b\\link", "link"],
    ["a\x1bPq#0;2;0;0;0\x1b\\b\x1b_apc\x1b\\c\x1b^pm\x1b\\d\x1bXsos\x1b\\e", "abcde"],
    ["\x1b7\x1b8\x1bc\x1bM\x1bD\x1bE\x1bH\x1b(0\x1b#8ok", "ok"],
    ["progress\r\x08\x0b\x0c\x07\x00\x7fdone", "progressdone"],
    ["\x9b2J\x9d0;t\x9c.", "2J0;t."],
    ["cut \x1b]0;unterminated title", "cut "],
    ["cut \x1b[", "cut "],
    ["lone \x1b", "lone "],
]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_terminal_filter_keeps_text_and_colours_and_drops_every_other_sequence(
        live_portal, page, make_user):
    user = make_user("operator")
    log_in(page, live_portal, "operator")
    run = make_run(user, make_polled_cluster().hosts.first(), ["true"])  # not queued: the page is enough
    page.goto(f"{live_portal}/runs/{run.pk}/")
    got = page.evaluate("cases => cases.map(c => window.heportalRun.neutralise(c[0]))", CASES)
    assert got == [rendered for _, rendered in CASES]
