"""Websocket payloads and the one way to publish them.

Groups: ``run-<pk>`` for a run's steps and output, ``cluster-<pk>`` for HA
state, ``home`` for a short "this card changed" to every home page,
``approvals`` for "count your pending approvals again" to every approver's header.
Payloads are saved to the database before they are published, so a page
can always be rebuilt from the database. A message waits while Redis is
away (``_Sender``), and a page that may have missed one asks whether what it
shows is current (``{"type": "check"}`` on its websocket, upgrades.consumers).
"""
import asyncio
import logging
import os
import threading
import time
import uuid
from typing import TypedDict

import redis
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


class OutputEvent(TypedDict):
    """On the channel layer; viewers get ``json``: {type, step, lines: [[seq, stream, text], ...]}."""
    type: str  # "output.lines"
    step: int
    first: int  # seq of the first and last line in ``json``
    last: int
    json: str


class StepEvent(TypedDict):
    type: str  # "step.status"
    step: int
    status: str
    label: str  # the status as people read it ("waiting for a person")
    exit_code: int | None
    error: str
    lines: int  # the step's last stored output line: a viewer below it has missed some
    note: str
    started_at: str | None
    finished_at: str | None


class RunEvent(TypedDict):
    type: str  # "run.status"
    run: int
    status: str
    label: str  # the status as people read it ("awaiting approval")
    error: str
    pause_requested: bool
    cancel_requested: bool


class HostHa(TypedDict):
    id: int
    name: str
    state: str
    score: int | None
    live: bool
    local_maintenance: bool
    engine_vm_here: bool
    seen_at: str | None  # the last poll that listed the host
    data_at: str | None  # when the host's own metadata (host-ts) last changed


class HaEvent(TypedDict):
    type: str  # "ha.update"
    cluster: int
    maintenance_mode: str
    polled_at: str | None
    poll_error: str
    hosts: list[HostHa]
    version: str  # ha.ha_version: changes with anything published, not with the poll's times


def run_group(run_id):
    return f"run-{run_id}"


def cluster_group(cluster_id):
    return f"cluster-{cluster_id}"


HOME_GROUP = "home"
# Every approver's page header: "the pending approvals may have changed"; each
# consumer counts its own user's (upgrades.consumers.ApprovalsConsumer).
APPROVALS_GROUP = "approvals"


def approvals_event():
    return {"type": "approvals.changed"}


class HomeEvent(TypedDict):
    """On the channel layer; a home page gets {type: "home.card", cluster, html}, the card
    rendered once per web process for all its home pages (or this event itself, to fetch it)."""
    type: str  # "home.changed"
    cluster: int | None
    run: int | None
    runs: bool  # a run started or its status changed: the page's "Recent runs" too
    id: str  # one per change: the key under which its card is rendered once


def home_notice(group, payload) -> HomeEvent | None:
    """What the home page needs to hear of a message: which cluster's (or run's) card changed.
    A run's start and end also reach its cluster's group, so a new run is found by its cluster.
    A step that succeeded says nothing new to a card: the next step's start, or the run's
    end, follows at once (half the messages, and card renders, of a running run)."""
    if payload.get("type") == "ha.update":
        return {"type": "home.changed", "cluster": payload["cluster"], "run": None, "runs": False,
                "id": uuid.uuid4().hex}
    if payload.get("type") == "step.status" and payload.get("status") == "succeeded":
        return None
    if payload.get("type") in ("run.status", "step.status") and group.startswith("run-"):
        return {"type": "home.changed", "cluster": None, "run": int(group.removeprefix("run-")),
                "runs": payload["type"] == "run.status", "id": uuid.uuid4().hex}
    return None


def access_changed(user_id=None):
    """A role of ``user_id`` (of anyone when None) changed: each web process's home pages ask
    again which clusters they may see, before any later card (upgrades/homefeed.py)."""
    transaction.on_commit(lambda: send_now(HOME_GROUP, {"type": "home.access", "user": user_id}))


def publish(group, payload):
    """Send after the current transaction commits (at once in autocommit), and
    tell the home pages which card to refresh."""
    notice = home_notice(group, payload)
    transaction.on_commit(lambda: send_now(group, payload))
    if notice is not None:
        transaction.on_commit(lambda: send_now(HOME_GROUP, notice))
    if payload.get("type") == "run.status":  # a request made, decided, expired or closed
        transaction.on_commit(lambda: send_now(APPROVALS_GROUP, approvals_event()))


def send_now(group, payload):
    """Hand a message to this process's sender; it never blocks or fails the caller."""
    _SENDER.send(group, payload)


def flush(timeout=5.0):
    """Wait until every message handed over so far is sent (or dropped); before a process exits."""
    return _SENDER.flush(timeout)


class _Sender:
    """Sends every message of this process, in order, from one event loop thread.

    One loop means one set of Redis connections for the process's whole life
    (``async_to_sync`` per message built a loop and a connection each time,
    a third of a runbook step's own cost). A connection Redis closed is
    retried once on a fresh one (``CHANNEL_RETRY`` in the settings). While
    Redis is away the message waits and is tried again every RETRY_SECONDS,
    with those behind it (at most MAX_WAITING; beyond that the oldest go:
    every page catches up from the database); the outage is logged once, and
    its end.
    """

    MAX_WAITING = 2000
    SEND_TIMEOUT = 10.0
    RETRY_SECONDS = 1.0
    # Redis away or slow; anything else (a payload it cannot encode) is a bug: logged, not retried.
    TRANSIENT = (redis.RedisError, OSError, asyncio.TimeoutError)

    def __init__(self):
        self._reset()
        # A forked child (an RQ work horse) starts its own loop on first use.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self):
        self._pid = None
        self._idle = threading.Condition()
        self._unsent = 0

    def send(self, group, payload):
        with self._idle:
            if self._pid != os.getpid():
                self._start()
            self._unsent += 1
        self._loop.call_soon_threadsafe(self._put, group, payload)

    def flush(self, timeout):
        with self._idle:
            return self._idle.wait_for(lambda: self._unsent == 0, timeout)

    def _start(self):
        self._pid = os.getpid()
        self._down_since = None  # monotonic time of the first failed send of an outage
        self._dropping = False
        self._loop = asyncio.new_event_loop()
        self._queue = asyncio.Queue(self.MAX_WAITING)
        threading.Thread(target=self._loop.run_forever, name="publisher", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._drain(), self._loop)

    def _put(self, group, payload):
        if self._queue.full():
            self._queue.get_nowait()
            self._sent()
            if not self._dropping:
                self._dropping = True
                log.warning("%d messages wait for Redis: the oldest are dropped (pages catch up from the database)",
                            self.MAX_WAITING)
        self._queue.put_nowait((group, payload))

    def _sent(self):
        with self._idle:
            self._unsent -= 1
            if self._unsent == 0:
                self._idle.notify_all()

    async def _drain(self):
        layer = get_channel_layer()
        while True:
            group, payload = await self._queue.get()
            try:
                await self._send(layer, group, payload)
            finally:
                self._sent()

    async def _send(self, layer, group, payload):
        while True:
            try:
                await asyncio.wait_for(layer.group_send(group, payload), self.SEND_TIMEOUT)
            except self.TRANSIENT as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("Redis unreachable, messages wait until it answers: %s", exc)
                await asyncio.sleep(self.RETRY_SECONDS)
                continue
            except Exception:
                log.exception("not published to %s", group)
            if self._down_since is not None:
                log.warning("Redis answers again after %.0f s: waiting messages sent",
                            time.monotonic() - self._down_since)
                self._down_since, self._dropping = None, False
            return


_SENDER = _Sender()


def step_event(step, lines=None) -> StepEvent:
    if lines is None:
        lines = step.output.order_by("-seq").values_list("seq", flat=True).first() or 0
    return {"type": "step.status", "step": step.pk, "status": step.status, "label": step.get_status_display(),
            "exit_code": step.exit_code, "error": step.error, "lines": lines, "note": step.note,
            "started_at": step.started_at.isoformat() if step.started_at else None,
            "finished_at": step.finished_at.isoformat() if step.finished_at else None}


def run_event(run) -> RunEvent:
    return {"type": "run.status", "run": run.pk, "status": run.status, "label": run.get_status_display(),
            "error": run.error,
            "pause_requested": run.pause_requested, "cancel_requested": run.cancel_requested}
