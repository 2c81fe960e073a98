"""The dashboard's server side: score history downsampling and its marks, the
score's reason, the one time format, and query counts that do not grow with
the data (the pages stay fast with 200 clusters and a year of samples)."""
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_cluster, make_host, make_run
from upgrades import charts
from upgrades.models import HaSample, StepStatus
from upgrades.templatetags.portal import score_reason, when

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 10, 15, 0, tzinfo=UTC)


def sample(host, minutes_ago, score, **kw):
    return HaSample.objects.create(host=host, at=NOW - timedelta(minutes=minutes_ago), score=score, **kw)


def test_each_interval_keeps_its_lowest_score_so_a_short_drop_stays_visible():
    host = make_host(he_host_id=1)
    HaSample.objects.bulk_create([HaSample(host=host, at=NOW - timedelta(minutes=m), score=3400)
                                  for m in range(0, 7 * 24 * 60)])  # a week, one a minute
    sample(host, 3 * 24 * 60 + 0.5, 0, state="ReinitializeFSM")  # a 10-second dip three days ago
    data = charts.score_history(host.cluster, [host], "week", now=NOW)
    scores = data["hosts"][0]["score"]
    assert len(scores) == len(data["x"]) == 7 * 48  # 30-minute intervals
    assert scores.count(0) == 1 and set(scores) == {0, 3400}
    dip = data["x"][scores.index(0)]
    assert dip <= (NOW - timedelta(minutes=3 * 24 * 60 + 0.5)).timestamp() < dip + 1800


def test_an_interval_without_a_sample_carries_the_score_on_until_the_poller_was_away():
    host = make_host(he_host_id=1)
    sample(host, 50, 3400)
    sample(host, 49, 1800)  # a change, then no sample for a long while (poller stopped)
    data = charts.score_history(host.cluster, [host], "hour", now=NOW)
    scores, x = data["hosts"][0]["score"], data["x"]
    at = {round((NOW.timestamp() - t) / 60, 2): s for t, s in zip(x, scores)}
    assert at[49.0] == 1800 and at[48.0] == 1800  # held within two minutes of its sample
    assert at[45.0] is None and at[10.0] is None  # the poller was away: a gap, not a made-up line


def test_the_marks_are_the_run_steps_that_overlap_the_range(make_user):
    host = make_host(he_host_id=1)
    run = make_run(make_user("operator"), host, ["a", "b", "c"])
    steps = list(run.steps.order_by("order"))
    for step, (start, end, status) in zip(steps, [(70, 65, "succeeded"), (30, 20, "succeeded"), (10, None, "running")]):
        step.started_at = NOW - timedelta(minutes=start)
        step.finished_at = NOW - timedelta(minutes=end) if end else None
        step.status = status
        step.save()
    marks = charts.score_history(host.cluster, [host], "hour", now=NOW)["marks"]
    assert [(m["order"], m["status"], m["host"], m["end"] is None) for m in marks] == [
        (2, "succeeded", host.pk, False), (3, "running", host.pk, True)]
    assert marks[0]["t"] == (NOW - timedelta(minutes=30)).timestamp()
    assert marks[0]["title"] == "Step 2" and marks[0]["run"] == run.pk


def test_the_chart_data_view_answers_json_and_refuses_an_unknown_range(client, make_user):
    host = make_host(he_host_id=1)
    sample(host, 0, 3400)
    client.force_login(make_user("viewer"))
    url = reverse("cluster-scores", args=[host.cluster_id])
    data = client.get(url, {"range": "day"}).json()
    assert data["range"] == "day" and data["full_score"] == 3400 and len(data["x"]) == 288
    assert data["hosts"][0]["name"] == host.name
    assert client.get(url, {"range": "year"}).status_code == 400


def test_the_score_reason_names_the_penalty_or_the_state():
    host = make_host(ha_live=True, ha_score=3400, ha_state="EngineUp")
    assert score_reason(host) == ""
    host.ha_score = 1800
    assert score_reason(host) == "−1600: gateway unreachable (network test)"
    host.ha_score = 3400 - 319
    assert score_reason(host) == "−319: network test: 1 of 5 gateway checks failed"
    host.ha_score = 2400
    assert score_reason(host, 2400) == ""  # oVirt 3.5's full score
    host.ha_score, host.local_maintenance, host.ha_state = 0, True, "LocalMaintenance"
    assert score_reason(host) == "local maintenance"
    host.ha_live = False
    assert score_reason(host).startswith("stale data")


def test_times_have_one_format_24_hour_with_the_zone():
    assert when(datetime(2026, 3, 5, 22, 5, 9, tzinfo=UTC)) == "2026-03-05 22:05:09 UTC"
    assert when(None) == ""


def test_the_cluster_page_shows_the_host_row_facts(client, make_user):
    cluster = make_cluster(name="Lab", polled_at=timezone.now(), maintenance_mode="none",
                           detected_release="oVirt 4.3 (ovirt-hosted-engine-setup-2.3.13)")
    make_host(cluster, name="he1.lab.local", address="127.0.1.1", he_host_id=1, os_release="CentOS Linux 7",
              ha_live=True, ha_score=3400, ha_state="EngineUp", engine_vm_here=True, ha_seen_at=timezone.now())
    make_host(cluster, name="he2.lab.local", address="127.0.1.2", he_host_id=2, ha_live=True, ha_score=1800,
              ha_state="EngineDown", ha_seen_at=timezone.now(), ha_data_at=timezone.now() - timedelta(seconds=75))
    client.force_login(make_user("viewer"))
    page = " ".join(client.get(reverse("cluster-detail", args=[cluster.pk])).content.decode().split())
    assert "on he1.lab.local · <span class=\"label ok\">good health</span>" in page
    assert "2 up · 0 in local maintenance · 0 stale · 2 in all" in page
    assert '<td class="address">127.0.1.1</td> <td class="os">CentOS Linux 7</td>' in page
    assert '<span class="ha-score">1800</span><span class="score-reason">−1600: gateway unreachable' in page
    assert ">1 min ago</span>" in page
    assert 'id="charts" data-url="/clusters/%d/scores.json" data-zone="UTC"' % cluster.pk in page


def make_clusters(n, hosts=5, user=None, first=0):
    """``n`` clusters of ``hosts`` hosts as the poller leaves them, every other one with an active run."""
    made = []
    for c in range(first, first + n):
        cluster = make_cluster(name=f"c{c:03d}", polled_at=timezone.now(), maintenance_mode="none",
                               detected_release="oVirt 4.3")
        for h in range(1, hosts + 1):
            host = make_host(cluster, name=f"h{h}.c{c:03d}", he_host_id=h, ha_live=True, ha_score=3400,
                             ha_state="EngineUp" if h == 1 else "EngineDown", engine_vm_here=h == 1,
                             ha_seen_at=timezone.now())
            HaSample.objects.bulk_create([HaSample(host=host, at=timezone.now() - timedelta(minutes=m), score=3400)
                                          for m in range(0, 120, 7)])
        if user is not None and c % 2 == 0:
            run = make_run(user, cluster.hosts.first(), ["a", "b"])
            run.steps.filter(order=1).update(status=StepStatus.SUCCEEDED)
            run.steps.filter(order=2).update(status=StepStatus.RUNNING)
            run.status = "running"
            run.save()
        made.append(cluster)
    return made


def queries_for(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_home_page_takes_the_same_number_of_queries_for_2_or_20_clusters(client, make_user):
    user = make_user("operator")
    client.force_login(user)
    make_clusters(2, user=user)
    few = queries_for(client, reverse("home"))
    make_clusters(18, user=user, first=2)
    assert queries_for(client, reverse("home")) == few


def test_the_home_card_says_the_run_and_its_current_step(client, make_user):
    user = make_user("viewer")
    cluster = make_clusters(1, user=user)[0]
    client.force_login(user)
    card = " ".join(client.get(reverse("cluster-card", args=[cluster.pk])).content.decode().split())
    assert card.startswith(f'<article class="cluster-card warn" id="card-{cluster.pk}"')
    assert "step 2 of 2: Step 2</span>" in card
    assert '<span class="hosts-up">5 up</span>' in card
    assert "on h1.c000 <span class=\"label ok\">good health</span>" in card


def test_the_cluster_page_and_its_chart_data_take_the_same_queries_whatever_the_samples(client, make_user):
    user = make_user("operator")
    client.force_login(user)
    cluster = make_clusters(1, user=user)[0]
    page = queries_for(client, reverse("cluster-detail", args=[cluster.pk]))
    scores = queries_for(client, reverse("cluster-scores", args=[cluster.pk]) + "?range=week")
    for host in cluster.hosts.all():
        HaSample.objects.bulk_create([HaSample(host=host, at=timezone.now() - timedelta(seconds=s), score=3000)
                                      for s in range(0, 7 * 86400, 600)])
    assert queries_for(client, reverse("cluster-detail", args=[cluster.pk])) == page
    assert queries_for(client, reverse("cluster-scores", args=[cluster.pk]) + "?range=week") == scores


def test_the_home_pages_hear_which_card_changed_and_nothing_of_output():
    from upgrades.events import home_notice

    first, second = (home_notice("cluster-7", {"type": "ha.update", "cluster": 7}) for _ in range(2))
    assert {**first, "id": ""} == {"type": "home.changed", "cluster": 7, "run": None, "runs": False, "id": ""}
    assert first["id"] != second["id"]  # each change is rendered anew
    assert home_notice("run-12", {"type": "step.status", "step": 3})["run"] == 12
    assert home_notice("run-12", {"type": "run.status", "run": 12})["run"] == 12
    # A run's status reaches the home page's recent runs; its steps' do not.
    assert home_notice("run-12", {"type": "run.status", "run": 12})["runs"] is True
    assert home_notice("run-12", {"type": "step.status", "step": 3})["runs"] is False
    assert home_notice("run-12", {"type": "output.lines", "step": 3}) is None
    assert home_notice("run-12", {"type": "step.status", "step": 3, "status": "succeeded"}) is None


@pytest.mark.django_db(transaction=True)
def test_every_home_page_gets_the_changed_card_rendered_once(make_user):
    import asyncio

    from channels.testing import WebsocketCommunicator

    from heportal.asgi import application
    from tests.test_live_output import session_headers
    from upgrades import events, ha

    cluster = make_clusters(1)[0]
    headers = session_headers(make_user("viewer"))

    async def watch():
        pages = [WebsocketCommunicator(application, "/ws/home/", headers=headers) for _ in range(3)]
        for page in pages:
            assert (await page.connect(timeout=10))[0]
            assert await page.receive_json_from(timeout=10) == {"type": "home.ready"}
        def change():  # as the poller does: save, then publish
            cluster.hosts.filter(he_host_id=2).update(local_maintenance=True, ha_score=0)
            events.publish(events.cluster_group(cluster.pk), ha.cluster_payload(cluster))
        await asyncio.to_thread(change)
        got = [await page.receive_json_from(timeout=10) for page in pages]
        for page in pages:
            await page.disconnect()
        return got

    got = asyncio.run(watch())
    assert [(m["type"], m["cluster"]) for m in got] == [("home.card", cluster.pk)] * 3
    assert '<span class="hosts-local">1 in local maintenance</span>' in got[0]["html"]
    assert got[0]["html"].startswith(f'<article class="cluster-card warn" id="card-{cluster.pk}"')


@pytest.mark.django_db(transaction=True)
def test_a_home_page_hears_only_of_the_clusters_its_user_may_see(django_user_model):
    import asyncio

    from channels.testing import WebsocketCommunicator

    from heportal.asgi import application
    from tests.factories import grant
    from tests.test_live_output import session_headers
    from upgrades import events, ha

    mine, theirs = make_clusters(2)
    user = grant(django_user_model.objects.create_user("one-cluster", password="x"), mine, "viewer")
    headers = session_headers(user)

    async def watch():
        page = WebsocketCommunicator(application, "/ws/home/", headers=headers)
        assert (await page.connect(timeout=10))[0]
        assert await page.receive_json_from(timeout=10) == {"type": "home.ready"}
        for cluster in (theirs, mine):  # theirs first: had it come through, it would be first
            await asyncio.to_thread(lambda c=cluster: events.publish(events.cluster_group(c.pk),
                                                                     ha.cluster_payload(c)))
        got = await page.receive_json_from(timeout=10)
        assert await page.receive_nothing(timeout=1)
        await page.disconnect()
        return got

    got = asyncio.run(watch())
    assert (got["type"], got["cluster"]) == ("home.card", mine.pk)


def test_the_operator_cluster_page_takes_the_same_queries_for_2_or_6_hosts(client, make_user):
    """Each host has its maintenance buttons, each button a plan: read once, not per button."""
    user = make_user("operator")
    client.force_login(user)
    small, = make_clusters(1, hosts=2, user=user)
    large, = make_clusters(1, hosts=6, user=user, first=2)
    few = queries_for(client, reverse("cluster-detail", args=[small.pk]))
    assert few == queries_for(client, reverse("cluster-detail", args=[large.pk]))
    page = client.get(reverse("cluster-detail", args=[large.pk])).content.decode()
    assert page.count('id="maintenance-local-') == 6


def test_the_home_page_pages_100_clusters_in_the_same_queries_as_10(client, make_user, monkeypatch):
    """The home page of a large estate: a fixed number of queries and one page of cards."""
    from upgrades import cards

    monkeypatch.setattr(cards, "PAGE_SIZE", 5)
    user = make_user("operator")
    client.force_login(user)
    make_clusters(10, hosts=2, user=user)
    few = queries_for(client, reverse("home"))
    make_clusters(90, hosts=2, user=user, first=10)
    assert queries_for(client, reverse("home")) == few
    assert queries_for(client, reverse("home") + "?page=7&show=warn") == few
    page = client.get(reverse("home")).content.decode()
    assert page.count('<article class="cluster-card') == 5
    assert "Page 1 of 20 (100 clusters)." in " ".join(page.split())


def test_the_home_page_lists_problems_first_and_filters_by_level_and_name(client, make_user):
    user = make_user("viewer")
    client.force_login(user)
    made = make_clusters(6, hosts=2)  # c000..c005, all fine
    made[5].poll_error = "ssh: connection refused"  # the last by name needs a look
    made[5].save()
    made[4].maintenance_mode = "global"  # something going on
    made[4].save()

    def names(url):
        page = client.get(url).content.decode()
        return [c.name for c in made if f'id="card-{c.pk}"' in page], page

    shown, page = names(reverse("home"))
    assert shown == [c.name for c in made]  # the set; the order is the page's:
    order = sorted(made, key=lambda c: page.index(f'id="card-{c.pk}"'))
    assert [c.name for c in order] == ["c005", "c004", "c000", "c001", "c002", "c003"]
    assert "needs a look (1)" in page and "going on (1)" in page and "fine (4)" in page
    assert names(reverse("home") + "?show=bad")[0] == ["c005"]
    assert names(reverse("home") + "?show=ok&q=C00")[0] == ["c000", "c001", "c002", "c003"]
    assert names(reverse("home") + "?q=c001")[0] == ["c001"]
    shown, page = names(reverse("home") + "?show=nonsense")
    assert len(shown) == 6 and "There is no filter “nonsense”: every cluster is shown." in page
    # home.js re-fetches the same page of the grid, filter kept
    page = client.get(reverse("home") + "?show=bad").content.decode()
    assert f'data-cards-url="{reverse("home-cards")}?show=bad"' in page
    assert names(reverse("home-cards") + "?show=warn")[0] == ["c004"]
