"""Websocket consumers: authenticate, join the group, replay, forward.

Lossless resume: the client says which line it has per step
(``?after=<step>:<seq>,...``). The consumer joins the group *before* reading
the backlog from the database, so a line is either in the backlog or
arrives live afterwards; ``self.sent`` drops the ones that are both. A live
batch that starts beyond the next line (batches not published while Redis
was away) is preceded by the missing lines, read from the database, and so
is a step's final status.

Missed messages: every page sends ``{"type": "check"}`` every 5 s
(``keepChecking`` in static/js/fragments.js). The consumer joins its group
again (a Redis restart forgets every group, while the socket may outlive it)
and, where what it last sent differs from the database, sends the current
state: nothing stays missed longer than one check, whatever befell a message
(two on the home page, whose digest map is read at most every 4 s: homefeed).
"""
import json
import logging
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from . import homefeed
from .cards import runs_digest
from .converters import parse_id
from .events import APPROVALS_GROUP, cluster_group, run_group, run_event, step_event
from .ha import cluster_payload
from .models import Cluster, StepOutput, UpgradeRun
from .permissions import APPROVE, VIEW, can, can_anywhere, clusters_where

BACKLOG_CHUNK = 1_000
log = logging.getLogger(__name__)


def parse_cursors(query_string):
    """``after=12:340,13:0`` → {12: 340, 13: 0}. A part that is not two ASCII
    numbers within the database's range ("7:²", 5,000 digits) is ignored:
    the client then gets that step from its first line, and never an error."""
    cursors = {}
    raw = parse_qs(query_string).get("after", [""])[0]
    for part in raw.split(","):
        step, _, seq = part.partition(":")
        step, seq = parse_id(step), parse_id(seq)
        if step is not None and seq is not None:
            cursors[step] = seq
    return cursors


def scope_user(scope):
    """The API token's user when the socket came with one (heportal/websocket_gate.py), else the session's."""
    return scope.get("token_user") or scope.get("user")


def is_check(content):
    """The page's ``{"type": "check"}``; anything else a client sends is ignored."""
    return isinstance(content, dict) and content.get("type") == "check"


class RunConsumer(AsyncJsonWebsocketConsumer):
    """Async, so that forwarding a batch costs no thread hop: at 50 viewers
    and hundreds of batches a second that hop was the bottleneck."""

    async def dispatch(self, message):
        """A live batch skips Channels' close_old_connections before each message, a hop to
        the one sync thread per viewer and batch (40 % of the web process's time per frame,
        docs/benchmarks.md): output_lines reaches the database only through
        database_sync_to_async, which closes old connections itself."""
        if message["type"] == "output.lines":
            await self.output_lines(message)
        else:
            await super().dispatch(message)

    async def connect(self):
        user = scope_user(self.scope)
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        run = await database_sync_to_async(
            lambda: UpgradeRun.objects.filter(pk=run_id).select_related("cluster").first())()
        if run is None:
            await self.close(code=4404)
            return
        if not await database_sync_to_async(can)(user, VIEW, run.cluster):
            await self.close(code=4403)
            return
        self.run_id = run.pk
        # latin-1 decodes any bytes; a valid query string is ASCII anyway.
        self.sent = parse_cursors(self.scope.get("query_string", b"").decode("latin-1"))
        self.group = run_group(self.run_id)
        self.shown = {}  # ("step", id) or ("run", id) -> the status event last sent, without "lines"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_backlog()

    async def receive_json(self, content, **kwargs):
        """A check: join again, then send each step and run status that is not what
        was last sent (a running step's new lines first, any missed)."""
        if not is_check(content):
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        run, steps = await database_sync_to_async(self._load_run)()
        for step in steps:
            event = step_event(step, lines=0)
            if step.status in ("running", "waiting") or self._changed(event):
                await self._catch_up(step.pk)
            if self._changed(event):
                await self.send_status(event)
        event = run_event(run)
        if self._changed(event):
            await self.send_status(event)

    def _key(self, event):
        return ("run", event["run"]) if event["type"] == "run.status" else ("step", event["step"])

    def _changed(self, event):
        return self.shown.get(self._key(event)) != {k: v for k, v in event.items() if k != "lines"}

    async def send_status(self, event):
        self.shown[self._key(event)] = {k: v for k, v in event.items() if k != "lines"}
        await self.send_json(event)

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_backlog(self):
        """Every step's status and the lines after the client's cursors, then the run's status."""
        run, steps = await database_sync_to_async(self._load_run)()
        for step in steps:
            await self.send_status(step_event(step, lines=0))
            await self._catch_up(step.pk)
        await self.send_status(run_event(run))

    async def _catch_up(self, step_id, upto=None):
        """Send the stored lines after what this viewer has, up to ``upto``."""
        after = self.sent.get(step_id, 0)
        while upto is None or after < upto:
            rows = await database_sync_to_async(self._rows)(step_id, after, upto)
            if not rows:
                break
            await self._send_lines(step_id, rows)
            after = rows[-1][0]

    def _load_run(self):
        run = UpgradeRun.objects.get(pk=self.run_id)
        return run, list(run.steps.order_by("order"))

    @staticmethod
    def _rows(step_id, after, upto=None):
        rows = StepOutput.objects.filter(step_id=step_id, seq__gt=after)
        if upto is not None:
            rows = rows.filter(seq__lte=upto)
        return [list(row) for row in rows.order_by("seq").values_list("seq", "stream", "text")[:BACKLOG_CHUNK]]

    async def _send_lines(self, step_id, lines):
        last = self.sent.get(step_id, 0)
        fresh = [line for line in lines if line[0] > last]
        if fresh:
            self.sent[step_id] = fresh[-1][0]
            await self.send_json({"type": "output.lines", "step": step_id, "lines": fresh})

    async def output_lines(self, event):
        """Forward the batch as encoded once by the worker, unless it overlaps the backlog."""
        step_id = event["step"]
        if event["first"] > self.sent.get(step_id, 0) + 1:
            await self._catch_up(step_id, upto=event["first"] - 1)
        last = self.sent.get(step_id, 0)
        if event["first"] > last:
            self.sent[step_id] = event["last"]
            await self.send(text_data=event["json"])
        elif event["last"] > last:
            await self._send_lines(step_id, json.loads(event["json"])["lines"])

    async def step_status(self, event):
        if event.get("lines", 0) > self.sent.get(event["step"], 0):
            await self._catch_up(event["step"], upto=event["lines"])
        await self.send_status(event)

    async def run_status(self, event):
        await self.send_status(event)


class NotFoundConsumer(AsyncJsonWebsocketConsumer):
    """Any websocket path no route takes, e.g. an id beyond the database's range."""

    async def connect(self):
        await self.close(code=4404)


class ClusterConsumer(JsonWebsocketConsumer):
    """Live HA state of one cluster: a snapshot on connect, then each change."""

    def connect(self):
        user = scope_user(self.scope)
        if user is None or not user.is_authenticated:
            self.close(code=4401)
            return
        cluster = Cluster.objects.filter(pk=self.scope["url_route"]["kwargs"]["cluster_id"]).first()
        if cluster is None:
            self.close(code=4404)
            return
        if not can(user, VIEW, cluster):
            self.close(code=4403)
            return
        self.cluster_id, self.group = cluster.pk, cluster_group(cluster.pk)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()
        self.ha_update(cluster_payload(cluster))

    def disconnect(self, code):
        if getattr(self, "group", None):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive_json(self, content, **kwargs):
        """A check: join again, and send the HA state if its version is not the one last sent."""
        if not is_check(content):
            return
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        cluster = Cluster.objects.filter(pk=self.cluster_id).first()
        if cluster is None:
            self.close(code=4404)
            return
        payload = cluster_payload(cluster)
        if payload["version"] != self.version:
            self.ha_update(payload)

    def ha_update(self, event):
        self.version = event.get("version")
        self.send_json(event)


class ApprovalsConsumer(AsyncJsonWebsocketConsumer):
    """The header's pending-approvals count of one approver: the count on connect,
    then again on each change of any request (counted for this user only)."""

    async def connect(self):
        user = scope_user(self.scope)
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await database_sync_to_async(can_anywhere)(user, APPROVE):
            await self.close(code=4403)
            return
        self.user, self.joined = user, True
        await self.channel_layer.group_add(APPROVALS_GROUP, self.channel_name)
        await self.accept()
        await self.send_count()

    async def receive_json(self, content, **kwargs):
        """A check: join again, and count again (one query)."""
        if is_check(content):
            await self.channel_layer.group_add(APPROVALS_GROUP, self.channel_name)
            await self.send_count()

    async def disconnect(self, code):
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(APPROVALS_GROUP, self.channel_name)

    async def send_count(self):
        from .services.approvals import pending_count

        await self.send_json({"type": "approvals.count", "pending": await database_sync_to_async(pending_count)(
            self.user)})

    async def approvals_changed(self, event):
        await self.send_count()


class HomeConsumer(AsyncJsonWebsocketConsumer):
    """The home page: "home.ready" once joined, then each changed card
    ("home.card", rendered and encoded once per process by homefeed.Feed; ``runs``
    when a run started or changed status, for the page's recent runs), "home.changed"
    for a card to fetch (a check found it changed, or the process could not render it)
    and "home.grid" when the clusters it may see changed (a role, a removed cluster).
    A page may say which cards it shows ({"type": "shown", "cards": [...]}): it then
    gets those only."""

    async def connect(self):
        user = scope_user(self.scope)
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user, self.user_id, self.shown, self.feed = user, user.pk, None, homefeed.feed()
        # The clusters this page may show; the rest of the feed's changes are not for it.
        self.visible, self.runs = await database_sync_to_async(self._access)(False)
        if not self.visible:
            await self.close(code=4403)
            return
        await self.feed.listen(self)  # a member of the group before the page fetches its cards
        await self.accept()
        # What the page fetches on "home.ready" is at least this: the base of its checks.
        self.base, self.pushed = await self.feed.current(fresh=False), {}
        self.feed.pages.add(self)  # from here on, every change reaches it
        # A page that reconnects fetches every card again on this.
        await self.send_json({"type": "home.ready"})

    def _access(self, reread=True):
        """(the in-service clusters this page's user may see, the digest of their recent runs)."""
        if reread:  # roles, or the user, may have changed since the socket opened
            self.user = get_user_model().objects.filter(pk=self.user_id).first() or AnonymousUser()
        visible = clusters_where(self.user, VIEW)
        return set(visible.in_service().values_list("pk", flat=True)), runs_digest(visible)

    def shows(self, cluster_id):
        return cluster_id in self.visible and (self.shown is None or cluster_id in self.shown)

    async def push(self, text):
        try:
            await self.send(text_data=text)
        except Exception as exc:  # closing: the others still get theirs
            log.info("home page not sent to: %s", exc)

    async def reread_access(self):
        visible, _ = await database_sync_to_async(self._access)()
        if visible != self.visible:
            self.visible = visible
            await self.push(homefeed.GRID)

    async def receive_json(self, content, **kwargs):
        """A check: join again, ask again what the user may see, and have the page fetch each
        card (and the recent runs) that changed since the last check, in case its message was
        missed; a "shown": the cards the page now shows."""
        if isinstance(content, dict) and content.get("type") == "shown" and isinstance(content.get("cards"), list):
            cards = {c for c in content["cards"][:1000] if isinstance(c, int)}
            self.shown = cards & self.visible
            return
        if not is_check(content):
            return
        await self.feed.listen(self)
        (visible, runs), digests = await database_sync_to_async(self._access)(), await self.feed.current()
        old = self.visible
        self.visible = visible
        if visible != old:
            await self.push(homefeed.GRID)
        for cluster_id in visible & old:
            if digests.get(cluster_id) != self.pushed.get(cluster_id, self.base.get(cluster_id)) \
                    and self.shows(cluster_id):
                await self.send_json({"type": "home.changed", "cluster": cluster_id, "run": None, "runs": False})
        self.base, self.pushed = digests, {}
        if runs != self.runs:
            self.runs = runs
            await self.send_json({"type": "home.changed", "cluster": None, "run": None, "runs": True})

    async def disconnect(self, code):
        if getattr(self, "feed", None):
            await self.feed.leave(self)
