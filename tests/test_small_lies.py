"""Issue 16, part 5: the small lies that teach admins to ignore the page.

Each test makes the situation happen (Redis stopped, a host killed, the lockspace
corrupted, a hundred step marks) and looks at what a person is shown.
"""
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.factories import make_polled_cluster, make_run
from tests.test_browser import browser, log_in, page, start_run  # noqa: F401  (fixtures)
from upgrades import services
from upgrades.models import ApprovalPolicy, RunStatus, RunStep, StepOutput, StepStatus, UpgradeRun

QUEUE_DOWN = "The job queue is unreachable right now."
# Any date and time a page shows: it must be the one format, "2026-03-05 10:15:42 UTC".
TIME_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?: ?[A-Z]{2,5}\b)?")
ONE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")


def visible_text(response):
    """The page's text as a person reads it: no tags, scripts or attribute values."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.sub(r"\(\s+", "(", re.sub(r"\s+([;,)])", r"\1", text))


def needs_approval(cluster, slug):
    """An explicit policy, whatever the defaults are: the run waits for one approver."""
    ApprovalPolicy.objects.create(cluster=cluster, runbook=slug, before_start="always", approvers=1)


# The queue banner ------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)  # committed, as in production: queued after the commit
def test_a_run_awaiting_approval_shows_no_queue_banner_and_its_approval_with_redis_stopped_does(
        make_user, redis_server):
    cluster = make_polled_cluster()
    needs_approval(cluster, "maintenance-local")
    operator, approver = Client(), Client()
    operator.force_login(make_user("operator"))
    approver.force_login(make_user("approver"))
    response = operator.post(reverse("runbook-launch", args=[cluster.pk, "maintenance-local"]),
                             {"host": "he2.lab.local", "acknowledge": "on"}, follow=True)
    run = UpgradeRun.objects.get()
    assert run.status == RunStatus.AWAITING_APPROVAL
    # Redis is up and the run waits for a person, not for the queue.
    assert QUEUE_DOWN not in visible_text(response)
    assert "awaiting approval" in visible_text(response)

    redis_server.stop()
    response = approver.post(reverse("run-approve-run", args=[run.pk]), {"comment": "go"}, follow=True)
    run.refresh_from_db()
    assert (run.status, run.queued_at) == (RunStatus.RUNNING, None)  # approved, not on the queue
    assert (f"{QUEUE_DOWN} Run #{run.pk} is approved and starts as soon as the queue answers again."
            in visible_text(response))


# Statuses as people read them -----------------------------------------------------

@pytest.mark.django_db
def test_no_page_shows_a_raw_status_value(client, make_user):
    cluster = make_polled_cluster()
    needs_approval(cluster, "maintenance-local")
    operator = make_user("operator")
    run = services.start_run(cluster=cluster, slug="maintenance-local", params={"host": "he2.lab.local"},
                             user=operator, acknowledge=True)
    assert run.status == RunStatus.AWAITING_APPROVAL
    other = make_polled_cluster(name="Other")
    waiting = make_run(operator, other.hosts.get(name="he3.lab.local"), ["true"])
    UpgradeRun.objects.filter(pk=waiting.pk).update(status=RunStatus.WAITING)
    RunStep.objects.filter(run=waiting).update(status=StepStatus.WAITING)
    client.force_login(make_user("admin"))
    for url in (reverse("home"), reverse("run-history"), reverse("run-detail", args=[run.pk]),
                reverse("run-detail", args=[waiting.pk]), reverse("approvals")):
        text = visible_text(client.get(url))
        assert "awaiting_approval" not in text, url
        assert not re.search(r"\bwaiting\b(?! for a person)", text), url
    assert "awaiting approval" in visible_text(client.get(reverse("home")))
    assert "waiting for a person" in visible_text(client.get(reverse("run-detail", args=[waiting.pk])))
    # The run page's websocket payloads carry the label too (run.js shows it).
    from upgrades.events import run_event, step_event
    assert run_event(run)["label"] == "awaiting approval"
    assert step_event(waiting.steps.get(), lines=0)["label"] == "waiting for a person"


# One time format ------------------------------------------------------------------

@pytest.mark.django_db
def test_history_audit_run_and_admin_pages_write_times_one_way(client, make_user):
    cluster = make_polled_cluster()
    admin = make_user("admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    run = services.start_run(cluster=cluster, slug="maintenance-global", params={}, user=admin, acknowledge=True,
                             queue=False)
    UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, started_at=timezone.now(),
                                                finished_at=timezone.now())
    client.force_login(admin)
    pages = [reverse("run-history"), reverse("audit"), reverse("run-detail", args=[run.pk]), reverse("home"),
             "/admin/upgrades/upgraderun/", "/admin/upgrades/auditevent/", f"/admin/upgrades/upgraderun/{run.pk}/change/"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        text = visible_text(response)
        assert not re.search(r"\b[ap]\.m\.", text), url  # no "8:50 p.m."
        times = TIME_LIKE.findall(text)
        assert times, f"{url} shows no time"
        assert [t for t in times if not ONE_FORMAT.fullmatch(t)] == [], url
    # The filters' dates are ISO text (a browser's date picker shows its own locale's order).
    for url in (reverse("run-history"), reverse("audit")):
        html = client.get(url).content.decode()
        for name in ("since", "until"):
            field = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
            assert 'type="text"' in field and 'placeholder="yyyy-mm-dd"' in field, field
            assert r'pattern="\d{4}-\d{2}-\d{2}"' in field, field
    today = timezone.localdate().isoformat()
    filtered = client.get(reverse("run-history"), {"since": today, "until": today})
    assert filtered.status_code == 200 and f">{run.pk}</a>" in filtered.content.decode()
    assert client.get(reverse("run-history"), {"since": "12/06/2026"}).status_code == 400


# The terminal ---------------------------------------------------------------------

VIEWPORT = """id => { const t = window.heportalRun.view(id).term, b = t.buffer.active, rows = [];
  for (let i = b.viewportY; i < b.viewportY + t.rows; i++) { rows.push(b.getLine(i).translateToString(true)); }
  return rows; }"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_terminal_shows_every_line_of_a_short_step_the_first_included(live_portal, lab_cluster, page,
                                                                           make_user):
    user = make_user("operator")
    log_in(page, live_portal, "operator")
    run = start_run(user, lab_cluster, "hostname; printf 'second\\nthird\\nfourth\\n'")
    page.goto(f"{live_portal}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    step = page.locator("section.step").first
    step_id = step.get_attribute("data-step")
    stored = list(StepOutput.objects.filter(step_id=step_id).order_by("seq").values_list("text", flat=True))
    assert stored == ["he1.lab.local", "second", "third", "fourth"]
    expect(step.locator(".output-count")).to_have_text("4 lines")
    page.wait_for_function("id => window.heportalRun.settled(id) && window.heportalRun.lines(id).length >= 4",
                           arg=step_id, timeout=20_000)
    # What is on the screen: the terminal's rows, every stored line, the first one (the hostname) too.
    shown = [row for row in page.evaluate(VIEWPORT, step_id) if row]
    assert shown == stored
    assert page.evaluate("id => window.heportalRun.lines(id)", step_id) == stored
    rows = [t.replace("\xa0", " ").rstrip() for t in step.locator(".xterm-rows > div").all_inner_texts()]
    assert [r for r in rows if r] == stored


# A dead host's age ----------------------------------------------------------------

def host_ages(client, cluster):
    """{host name: seconds} of the cluster page's "Last update" column (None: no age shown)."""
    html = client.get(reverse("cluster-live", args=[cluster.pk])).content.decode()
    ages = {}
    for host in cluster.hosts.all():
        row = re.search(rf'<tr data-host="{host.pk}".*?</tr>', html, flags=re.S).group(0)
        cell = re.search(r'<td class="ha-seen">(.*?)</td>', row, flags=re.S).group(1)
        found = re.search(r">(\d+) (s|min) ago<", cell)
        ages[host.name] = None if found is None else int(found.group(1)) * (60 if found.group(2) == "min" else 1)
    return ages


@pytest.mark.django_db(transaction=True)
def test_a_killed_hosts_last_update_grows_while_the_others_stay_fresh(ha_poller, fresh_lab_cluster, make_user):
    from tests.test_engine import wait_for_polled

    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    client = Client()
    client.force_login(make_user("viewer"))
    wait_for_polled(cluster, timeout=60)
    wait_until(lambda: None not in host_ages(client, cluster).values(), 30, "no host's data age shown")
    lab.fault("kill-host", host="he3.lab.local")
    he3 = cluster.hosts.get(name="he3.lab.local")
    wait_until(lambda: not cluster.hosts.get(pk=he3.pk).ha_live, 120, "he3 never went stale")
    polled = cluster.hosts.get(pk=he3.pk).ha_seen_at
    # Polls go on (they list he3's old block every time), and its data grows older meanwhile,
    # while the live hosts' data stays as fresh as the agents' cycle (10 s of lab time) and the poll.
    wait_until(lambda: host_ages(client, cluster)["he3.lab.local"] >= 15, 60, "he3's age did not grow")
    ages = host_ages(client, cluster)
    assert ages["he1.lab.local"] <= 8 and ages["he2.lab.local"] <= 8, ages
    assert cluster.hosts.get(pk=he3.pk).ha_seen_at > polled + timedelta(seconds=5)  # polled all along


# The engine VM under a corrupted lockspace ---------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_corrupted_lockspace_makes_the_home_card_say_the_vm_state_is_unknown_and_the_engine_answers(
        ha_poller, fresh_lab_cluster, make_user):
    from tests.test_engine import wait_for_polled

    cluster, lab = fresh_lab_cluster, fresh_lab_cluster.lab
    client = Client()
    client.force_login(make_user("viewer"))
    wait_for_polled(cluster, timeout=60)
    lab.fault("corrupt-lockspace")
    wait_until(lambda: not any(cluster.hosts.values_list("ha_live", flat=True)), 120, "the agents kept publishing")
    assert lab.state()["engine_vm"]["healthy"]  # the VM runs on, the engine answers
    card = wait_until(lambda: (lambda text: "the engine answers" in text and text)(
        visible_text(client.get(reverse("cluster-card", args=[cluster.pk])))), 60,
        "the card does not say that the engine answers")
    assert "not running" not in card
    assert "Engine VM state unknown no HA agent publishes (all 3 hosts stale); " \
           "the engine answers: DB Up!Welcome to Health Status!" in card
    live = visible_text(client.get(reverse("cluster-live", args=[cluster.pk])))
    assert "state unknown no HA agent publishes (all 3 hosts stale); the engine answers" in live
    # The engine going down too is said as plainly.
    lab.fault("kill-engine-vm")
    wait_until(lambda: "the engine does not answer" in visible_text(
        client.get(reverse("cluster-card", args=[cluster.pk]))), 60, "the card kept saying the engine answers")


# Recent runs, live ----------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_home_pages_recent_runs_follow_a_new_run_and_its_status_without_a_reload(live_portal, page,
                                                                                     make_user):
    cluster = make_polled_cluster()
    needs_approval(cluster, "maintenance-local")
    operator = make_user("operator")
    make_user("viewer")
    log_in(page, live_portal, "viewer")
    expect(page.locator("#recent-runs")).to_contain_text("No runs yet.")
    page.evaluate("window.sameDocument = true")
    page.wait_for_timeout(1000)  # the websocket joins
    run = services.start_run(cluster=cluster, slug="maintenance-local", params={"host": "he2.lab.local"},
                             user=operator, acknowledge=True)
    row = page.locator(f"#recent-runs tr[data-run='{run.pk}']")
    expect(row).to_contain_text("awaiting approval", timeout=15_000)
    services.cancel_run(run=run, user=operator, reason="not today")
    expect(row).to_contain_text("cancelled", timeout=15_000)
    assert page.evaluate("window.sameDocument") is True  # never reloaded
    assert "awaiting_approval" not in page.inner_text("body")


# The score chart ------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_score_chart_draws_a_band_per_run_and_zooms_to_one_run(live_portal, page, make_user):
    cluster = make_polled_cluster()
    operator = make_user("operator")
    he1 = cluster.hosts.get(name="he1.lab.local")
    now = timezone.now()
    runs = []
    for r in range(3):  # three runs of 50 steps in the last hour: 150 marks before
        run = make_run(operator, he1, ["true"] * 50)
        start = now - timedelta(minutes=50 - r * 15)
        for n, step in enumerate(run.steps.order_by("order")):
            RunStep.objects.filter(pk=step.pk).update(status=StepStatus.SUCCEEDED,
                                                      started_at=start + timedelta(seconds=10 * n),
                                                      finished_at=start + timedelta(seconds=10 * n + 8))
        UpgradeRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        runs.append(run)
    log_in(page, live_portal, "operator")
    page.goto(f"{live_portal}/clusters/{cluster.pk}/")
    card = page.locator(f".chart-card[data-host='{he1.pk}']")
    expect(card).to_have_attribute("data-marks-drawn", "3", timeout=20_000)  # a band per run
    expect(card.locator("li.run-group")).to_have_count(3)
    expect(card.locator("li.mark")).to_have_count(150)  # every step still listed, under its run
    # Hovering over a band says which run it is (in view: the page above it is long).
    card.locator(".u-over").scroll_into_view_if_needed()
    box = card.locator(".u-over").bounding_box()
    second = runs[1]
    x = page.evaluate("""([id, t]) => document.querySelector(`.chart-card[data-host='${id}']`).plot
      .valToPos(t, "x")""", [he1.pk, (now - timedelta(minutes=35) + timedelta(seconds=200)).timestamp()])
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    expect(card.locator(".chart-pointed")).to_contain_text(f"Run #{second.pk} ")
    # A click zooms to it: its 50 steps, each a mark; back to the whole range.
    page.mouse.click(box["x"] + x, box["y"] + box["height"] / 2)
    card = page.locator(f".chart-card[data-host='{he1.pk}']")
    expect(page.locator("#charts")).to_have_attribute("data-zoom", str(second.pk))
    expect(card).to_have_attribute("data-marks-drawn", "50")
    page.click("button.zoom-out")
    expect(card).to_have_attribute("data-marks-drawn", "3")
    card.locator("summary").first.click()
    card.locator(f"li.run-group[data-run='{runs[2].pk}'] button.zoom-run").click()
    expect(page.locator("#charts")).to_have_attribute("data-zoom", str(runs[2].pk))


@pytest.mark.django_db
def test_the_chart_data_groups_the_steps_per_run_with_its_span_and_hosts(make_user):
    from upgrades import charts

    cluster = make_polled_cluster()
    he1, he2 = cluster.hosts.get(name="he1.lab.local"), cluster.hosts.get(name="he2.lab.local")
    user = make_user("operator")
    now = timezone.now()
    done = make_run(user, he1, ["a", "b"])
    UpgradeRun.objects.filter(pk=done.pk).update(status=RunStatus.SUCCEEDED)
    going = make_run(make_user("approver"), he2, ["c", "d"])
    for step, start, end in [(done.steps.get(order=1), 40, 39), (done.steps.get(order=2), 38, 30),
                             (going.steps.get(order=1), 20, 19), (going.steps.get(order=2), 18, None)]:
        RunStep.objects.filter(pk=step.pk).update(
            status=StepStatus.SUCCEEDED if end else StepStatus.RUNNING, started_at=now - timedelta(minutes=start),
            finished_at=now - timedelta(minutes=end) if end else None)
    UpgradeRun.objects.filter(pk=going.pk).update(status=RunStatus.AWAITING_APPROVAL)
    data = charts.score_history(cluster, [he1, he2], "hour", now=now)
    assert len(data["marks"]) == 4
    assert [(b["run"], b["steps"], b["hosts"], b["label"]) for b in data["runs"]] == [
        (done.pk, 2, [he1.pk], "succeeded"), (going.pk, 2, [he2.pk], "awaiting approval")]
    first, second = data["runs"]
    assert (first["t"], first["end"]) == ((now - timedelta(minutes=40)).timestamp(),
                                          (now - timedelta(minutes=30)).timestamp())
    assert second["end"] is None  # still going: the band reaches now


@pytest.mark.django_db
def test_a_hosts_data_time_moves_only_when_its_metadata_timestamp_does():
    from upgrades.ha import apply_vm_status
    from upgrades.remote.vmstatus import HostStatus, VmStatus

    cluster = make_polled_cluster(names=("he1.lab.local",))
    t0 = timezone.now()

    def poll(ts, live, at):
        apply_vm_status(cluster.pk, VmStatus(False, (HostStatus(1, "he1.lab.local", 3400, "EngineUp", live,
                                                                host_timestamp=ts),)), now=at)
        return cluster.hosts.get()

    assert poll(100, True, t0).ha_data_at == t0
    assert poll(110, True, t0 + timedelta(seconds=10)).ha_data_at == t0 + timedelta(seconds=10)
    host = poll(110, False, t0 + timedelta(seconds=60))  # dead: the same block, read again
    assert (host.ha_data_at, host.ha_seen_at) == (t0 + timedelta(seconds=10), t0 + timedelta(seconds=60))
    assert host.ha_host_ts == 110
