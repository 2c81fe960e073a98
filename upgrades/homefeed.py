"""The home pages' live feed in one web process (``consumers.HomeConsumer``).

One member of the home group per process, not one per page: a change has one
member to reach (channels_redis carried it as one Redis message per process in
either design, naming 200 member channels for 200 pages: channels_redis/core.py@4.3.0, `_map_channel_keys_to_connection`),
its card is rendered once, encoded once and written to each page that may see
it. One map of every card's digest per process, read again from the database
at most every REFRESH_SECONDS and kept current from the changes themselves:
a page's join and its checks compare against it instead of reading every
visible card's rows (before 2026-12-07: four queries over 1,000 clusters,
~110 ms, on each join and each page's check every 5 s).

The feed listens while it has pages: when the last one leaves it leaves the group and
its listener ends, woken by a message to itself rather than by a cancellation alone
(a cancel that reaches the listener inside the channel layer's Redis read can be lost
there; the read then waits for ever and so does the end of the event loop, which
cancels its tasks and waits for them). Without a listener the map no longer follows
the changes, so the next join reads it again.

Who sees what stays the one permission check (``permissions.clusters_where``),
asked per page on joining, on each check, and again when a role changes
("home.access", sent by the signals in apps.py), before any later card.
"""
import asyncio
import json
import logging
import time
import weakref

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from .events import HOME_GROUP

REFRESH_SECONDS = 4.0  # the digest map is read again at most this often (pages check every 5 s)
JOIN_SECONDS = 60.0  # a join takes the map up to this old (200 pages joining cost no read each)
REJOIN_SECONDS = 2.0  # a check joins the group again at most this often (a Redis restart forgets it)
log = logging.getLogger(__name__)


class Feed:
    """The home pages of one event loop (daphne has one) and what they share."""

    def __init__(self):
        self.pages = set()  # the pages that get the changes (joined)
        self.members = set()  # those and the pages joining: the feed listens while there are any
        self.channel = None
        self.listener = None
        self.lock = asyncio.Lock()
        self.joined_at = float("-inf")
        self.digests = {}  # in-service cluster id -> digest of its card; replaced, never changed in place
        self.read_at = float("-inf")
        self.reading = None

    async def listen(self, page):
        """Be a member of the home group, listening (at once on the first page; later joins
        and checks join again, at most every REJOIN_SECONDS)."""
        async with self.lock:
            self.members.add(page)
            layer = get_channel_layer()
            if self.channel is None:
                self.channel = await layer.new_channel()  # the process's own kind: its receive reads them all
            if time.monotonic() - self.joined_at > REJOIN_SECONDS:
                await layer.group_add(HOME_GROUP, self.channel)
                self.joined_at = time.monotonic()
            if self.listener is None or self.listener.done():
                self.listener = asyncio.ensure_future(self._listen(layer))

    async def leave(self, page):
        """A page has gone; the last one takes the feed out of the group and ends its listener."""
        self.pages.discard(page)
        async with self.lock:
            self.members.discard(page)
            if self.members or self.listener is None or self.listener.done():
                return
            layer = get_channel_layer()
            self.read_at = float("-inf")  # changes go unheard from here: the next join reads the map
            try:
                await layer.group_discard(HOME_GROUP, self.channel)
                await layer.send(self.channel, {"type": STOP})  # the listener's read returns with it
            except Exception as exc:  # Redis away: the listener is cancelled below
                log.warning("home feed cannot leave the group: %s", exc)
                self.listener.cancel()
            self.joined_at = float("-inf")

    async def current(self, fresh=True):
        """The digest map, read again if older than REFRESH_SECONDS (one read for all pages);
        ``fresh=False`` (a join): up to JOIN_SECONDS old. An older base costs a page at most
        a card fetched again at its next check, never a change missed."""
        if time.monotonic() - self.read_at > (REFRESH_SECONDS if fresh else JOIN_SECONDS):
            if self.reading is None or self.reading.done():
                self.reading = asyncio.ensure_future(self._read())
            await asyncio.shield(self.reading)
        return self.digests

    async def _read(self):
        from .cards import card_digests
        from .models import Cluster

        started = time.monotonic()
        self.digests = await database_sync_to_async(lambda: card_digests(Cluster.objects.in_service()))()
        self.read_at = started

    async def _listen(self, layer):
        while True:
            try:
                event = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the pages' checks catch up meanwhile
                if asyncio.current_task().cancelling():  # a cancel the layer turned into an error
                    raise asyncio.CancelledError from exc
                log.warning("home feed cannot receive: %s", exc)
                await asyncio.sleep(1)
                continue
            if event.get("type") == STOP:
                if not self.members:  # else a page joined meanwhile: listen on for it
                    return
                continue
            try:
                if event.get("type") == "home.access":
                    await self.access_changed(event)
                elif self.pages:
                    await self.changed(event)
            except Exception:
                log.exception("home feed: %s not handled", event)

    async def changed(self, event):
        """Render the changed card once and write it to each page that may see it."""
        from .cards import render_change

        try:
            rendered = await database_sync_to_async(render_change)(event)
        except Exception:  # each page fetches the card itself
            log.exception("home card for %s not rendered", event)
            text = json.dumps(event)
            for page in list(self.pages):
                if event.get("cluster") in page.visible:
                    await page.push(text)
            return
        if rendered is None:
            return
        cluster_id, html, digest = rendered
        if html is None:  # no longer in service: gone from every page
            self.digests = {pk: d for pk, d in self.digests.items() if pk != cluster_id}
            for page in list(self.pages):
                if cluster_id in page.visible:
                    page.visible.discard(cluster_id)
                    await page.push(GRID)
            return
        self.digests = {**self.digests, cluster_id: digest}
        text = json.dumps({"type": "home.card", "cluster": cluster_id, "html": html, "runs": event.get("runs", False)})
        for page in list(self.pages):
            if page.shows(cluster_id):
                page.pushed[cluster_id] = digest
                await page.push(text)
            elif event.get("runs") and cluster_id in page.visible:  # its recent runs
                await page.push(RUNS)

    async def access_changed(self, event):
        """A role changed: each page of that user (of every user when unsaid) asks again
        what it may see, before any later card."""
        for page in list(self.pages):
            if event.get("user") is None or event["user"] == page.user_id:
                await page.reread_access()


STOP = "home.stop"  # sent by the feed to itself when its last page has gone
GRID = json.dumps({"type": "home.grid"})  # the set of clusters the page may show changed: fetch the grid
RUNS = json.dumps({"type": "home.changed", "cluster": None, "run": None, "runs": True})

_FEEDS = weakref.WeakKeyDictionary()


def feed():
    """This event loop's feed (tests run one loop each; daphne one for its life)."""
    loop = asyncio.get_running_loop()
    if loop not in _FEEDS:
        _FEEDS[loop] = Feed()
    return _FEEDS[loop]
