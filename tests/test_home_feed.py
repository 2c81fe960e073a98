"""The home pages' feed of one web process (upgrades/homefeed.py) under change: a card
changed while pages join is not lost, each user gets only the cards of clusters they
may see, a revoked role or a removed cluster stops its card, a missed message is named
at the next check, and a join costs the same queries however many clusters there are.
Real channel layer (Redis) and the portal's ASGI application, as tests/test_dashboard.py."""
import asyncio
import re

import pytest
from channels.testing import WebsocketCommunicator

from tests.factories import grant
from tests.test_dashboard import make_clusters
from tests.test_live_output import session_headers

pytestmark = pytest.mark.django_db(transaction=True)


def publish(cluster):
    """As the poller does after saving: the cluster's HA state, which tells the home pages."""
    from upgrades import events, ha

    events.publish(events.cluster_group(cluster.pk), ha.cluster_payload(cluster))


def card_html(cluster_id):
    """The card as the page's own fetch gets it (views.cluster_card)."""
    from upgrades.cards import render_card
    from upgrades.models import Cluster

    return render_card(Cluster.objects.filter(pk=cluster_id))[1]


async def joined(headers):
    from heportal.asgi import application

    page = WebsocketCommunicator(application, "/ws/home/", headers=headers)
    assert (await page.connect(timeout=10))[0]
    assert await page.receive_json_from(timeout=10) == {"type": "home.ready"}
    return page


async def messages(page, quiet=1.5):
    """Every message until the page has heard nothing for ``quiet`` seconds."""
    got = []
    while not await page.receive_nothing(timeout=quiet):  # a receive that times out ends the application
        got.append(await page.receive_json_from(timeout=10))
    return got


def test_a_card_changed_while_pages_join_is_not_lost(django_user_model):
    """Pages join while a card changes five times; each does what home.js does (fetch the
    cards on "home.ready" and on "home.changed", put a pushed card in place). At the end
    every page shows the card as it is."""
    from heportal.asgi import application

    cluster = make_clusters(1, hosts=6)[0]
    headers = session_headers(grant(django_user_model.objects.create_user("v", password="x"), cluster, "viewer"))

    def change(n):  # one more host in local maintenance: a card that says so
        cluster.hosts.filter(he_host_id=n + 1).update(local_maintenance=True, ha_score=0)
        publish(cluster)

    async def page_life(delay, done):
        await asyncio.sleep(delay)
        page = WebsocketCommunicator(application, "/ws/home/", headers=headers)
        assert (await page.connect(timeout=10))[0]
        shown = None
        while True:
            if await page.receive_nothing(timeout=1.5):
                if done.is_set():
                    break
                continue
            msg = await page.receive_json_from(timeout=10)
            if msg["type"] in ("home.ready", "home.changed"):
                shown = await asyncio.to_thread(card_html, cluster.pk)  # the page's fetch, after the message
            elif msg["type"] == "home.card":
                shown = msg["html"]
        await page.disconnect()
        return shown

    async def run():
        done = asyncio.Event()
        pages = [asyncio.ensure_future(page_life(n * 0.03, done)) for n in range(12)]
        for n in range(1, 6):
            await asyncio.to_thread(change, n)
            await asyncio.sleep(0.05)
        done.set()
        return await asyncio.gather(*pages)

    shown = asyncio.run(run())
    assert [local(html) for html in shown] == ["5 in local maintenance"] * 12


def local(html):
    """What the card says of local maintenance (the rest has times in it)."""
    return re.search(r'class="hosts-local">([^<]*)<', html).group(1)


def test_two_users_with_different_roles_get_only_their_cards(django_user_model):
    one, two, three = make_clusters(3)
    first = grant(django_user_model.objects.create_user("first", password="x"), one, "viewer")
    second = grant(grant(django_user_model.objects.create_user("second", password="x"), two, "viewer"),
                   three, "operator")

    headers = [session_headers(first), session_headers(second)]

    async def watch():
        pages = [await joined(h) for h in headers]
        for cluster in (three, two, one):
            await asyncio.to_thread(publish, cluster)
        got = [await messages(page) for page in pages]
        for page in pages:
            await page.disconnect()
        return got

    got = asyncio.run(watch())
    assert [[(m["type"], m["cluster"]) for m in page] for page in got] == [
        [("home.card", one.pk)], [("home.card", three.pk), ("home.card", two.pk)]]


def test_a_revoked_role_or_a_removed_cluster_stops_its_card(django_user_model, make_user):
    from upgrades import services
    from upgrades.models import RoleGrant

    kept, revoked = make_clusters(2)
    user = grant(grant(django_user_model.objects.create_user("v", password="x"), kept, "viewer"), revoked, "viewer")
    admin = make_user("admin")
    headers = session_headers(user)

    async def watch():
        page = await joined(headers)
        await asyncio.to_thread(lambda: RoleGrant.objects.filter(user=user, cluster=revoked).delete())
        after_revoke = await messages(page)
        for cluster in (revoked, kept):
            await asyncio.to_thread(publish, cluster)
        after_changes = await messages(page)
        await asyncio.to_thread(lambda: services.remove_cluster(user=admin, cluster=kept))
        after_removal = await messages(page)
        await asyncio.to_thread(publish, kept)
        await page.send_json_to({"type": "check"})
        last = await messages(page)
        await page.disconnect()
        return after_revoke, after_changes, after_removal, last

    after_revoke, after_changes, after_removal, last = asyncio.run(watch())
    assert after_revoke == [{"type": "home.grid"}]  # the page fetches its grid: the card leaves it
    assert [(m["type"], m["cluster"]) for m in after_changes] == [("home.card", kept.pk)]
    assert after_removal == [{"type": "home.grid"}]
    assert last == []  # neither the removed cluster's change nor the check names a card


def test_a_missed_change_is_named_at_the_next_check_and_a_pushed_one_is_not(make_user, monkeypatch):
    from upgrades import homefeed

    monkeypatch.setattr(homefeed, "REFRESH_SECONDS", 0)  # the map read again at each check
    quiet, missed, pushed = make_clusters(3)
    headers = session_headers(make_user("viewer"))

    async def watch():
        page = await joined(headers)
        await asyncio.to_thread(lambda: missed.hosts.filter(he_host_id=2).update(local_maintenance=True))
        await asyncio.to_thread(lambda: (pushed.hosts.filter(he_host_id=2).update(ha_score=0), publish(pushed)))
        got = [await messages(page)]
        await page.send_json_to({"type": "check"})
        got.append(await messages(page))
        await page.send_json_to({"type": "check"})
        got.append(await messages(page))
        await page.disconnect()
        return got

    live, first_check, second_check = asyncio.run(watch())
    assert [(m["type"], m["cluster"]) for m in live] == [("home.card", pushed.pk)]
    assert first_check == [{"type": "home.changed", "cluster": missed.pk, "run": None, "runs": False}]
    assert second_check == []


def test_a_page_that_says_which_cards_it_shows_gets_only_those(make_user):
    on_page, elsewhere = make_clusters(2)
    headers = session_headers(make_user("viewer"))

    async def watch():
        page = await joined(headers)
        await page.send_json_to({"type": "shown", "cards": [on_page.pk, "x", 10 ** 9]})
        await asyncio.sleep(0.2)
        for cluster in (elsewhere, on_page):
            await asyncio.to_thread(publish, cluster)
        got = await messages(page)
        await page.disconnect()
        return got

    assert [(m["type"], m["cluster"]) for m in asyncio.run(watch())] == [("home.card", on_page.pk)]


def test_a_join_costs_the_same_queries_for_2_or_40_clusters_and_reads_no_digest_when_warm(
        make_user, monkeypatch):
    """Counted at the database cursor, in every thread (the consumer's run in a pool)."""
    from django.db.backends import utils

    from upgrades import homefeed

    monkeypatch.setattr(homefeed, "JOIN_SECONDS", 3600)  # the second and third joins find the map read
    executed = []
    plain = utils.CursorWrapper.execute
    monkeypatch.setattr(utils.CursorWrapper, "execute",
                        lambda self, sql, params=None: executed.append(sql) or plain(self, sql, params))
    user = make_user("operator")
    make_clusters(2, hosts=3, user=user)
    headers = session_headers(user)

    async def join_costs():
        costs, pages = [], []
        for _ in range(2):  # the first reads the digest map, the second finds it read
            executed.clear()
            pages.append(await joined(headers))
            costs.append(len(executed))
        await asyncio.to_thread(make_clusters, 38, 3, user, 2)
        executed.clear()
        pages.append(await joined(headers))
        costs.append(len(executed))
        for page in pages:
            await page.disconnect()
        return costs

    cold, warm, warm_at_40 = asyncio.run(join_costs())
    assert warm == warm_at_40
    assert cold == warm + 3  # the digest map: three queries for every cluster at once


def test_the_last_page_to_leave_ends_the_feeds_listener_and_the_next_join_starts_it_again(make_user):
    """A listener left waiting in the channel layer's Redis read would outlive the pages
    (and hang the end of the event loop); the next page listens again and reads the map."""
    from upgrades import homefeed

    (cluster,) = make_clusters(1)
    headers = session_headers(make_user("viewer"))

    async def watch():
        first = await joined(headers)
        feed = homefeed.feed()
        listener = feed.listener
        await first.disconnect()
        await asyncio.wait_for(asyncio.shield(listener), 10)  # ended by its own message, not cancelled
        page = await joined(headers)
        again = feed.listener
        await asyncio.to_thread(publish, cluster)
        got = await messages(page)
        await page.disconnect()
        await asyncio.wait_for(asyncio.shield(again), 10)
        return listener.cancelled(), again is not listener, got

    cancelled, restarted, got = asyncio.run(watch())
    assert (cancelled, restarted) == (False, True)
    assert [(m["type"], m["cluster"]) for m in got] == [("home.card", cluster.pk)]
