"""Websocket payloads and the one way to publish them.

Groups: ``run-<pk>`` for a run's steps and output, ``cluster-<pk>`` for HA
state, ``home`` for a short "this card changed" to every home page,
``approvals`` for "count your pending approvals again" to every approver's header.
Payloads are saved to the database before they are published, so a page
can always be rebuilt from the database; publishing is best effort (Redis
may be restarting) and a viewer catches up from the database.
"""
import asyncio
import logging
import os
import threading
import time
import uuid
from typing import TypedDict

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
    a third of a runbook step's own cost). The change behind a message is
    saved already: while Redis is away messages are dropped, with a warning
    now and then, and viewers catch up from the database.
    """

    MAX_WAITING = 2000
    SEND_TIMEOUT = 10.0
    RETRY_SECONDS = 1.0

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
        self._loop = asyncio.new_event_loop()
        self._queue = asyncio.Queue(self.MAX_WAITING)
        threading.Thread(target=self._loop.run_forever, name="publisher", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._drain(), self._loop)

    def _put(self, group, payload):
        try:
            self._queue.put_nowait((group, payload))
        except asyncio.QueueFull:
            log.warning("not published to %s: %d messages wait already (viewers catch up from the database)",
                        group, self.MAX_WAITING)
            self._sent()

    def _sent(self):
        with self._idle:
            self._unsent -= 1
            if self._unsent == 0:
                self._idle.notify_all()

    async def _drain(self):
        layer = get_channel_layer()
        retry_at = warned_at = 0.0
        while True:
            group, payload = await self._queue.get()
            try:
                if time.monotonic() >= retry_at:
                    await asyncio.wait_for(layer.group_send(group, payload), self.SEND_TIMEOUT)
            except Exception as exc:  # redis errors, OSError, ChannelFull, a timeout
                retry_at = time.monotonic() + self.RETRY_SECONDS
                if time.monotonic() - warned_at > 10:
                    warned_at = time.monotonic()
                    log.warning("not published to %s (viewers catch up from the database): %s", group, exc)
            finally:
                self._sent()


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
