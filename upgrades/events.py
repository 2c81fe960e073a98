"""Websocket payloads and the one way to publish them.

Groups: ``run-<pk>`` for a run's steps and output, ``cluster-<pk>`` for HA
state. Payloads are saved to the database before they are published, so a
page can always be rebuilt from the database; publishing is best effort
(Redis may be restarting) and a viewer catches up from the database.
"""
import logging
from typing import TypedDict

from asgiref.sync import async_to_sync
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
    exit_code: int | None
    error: str
    lines: int  # the step's last stored output line: a viewer below it has missed some
    note: str


class RunEvent(TypedDict):
    type: str  # "run.status"
    run: int
    status: str
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
    seen_at: str | None


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


def publish(group, payload):
    """Send after the current transaction commits (at once in autocommit)."""
    transaction.on_commit(lambda: send_now(group, payload))


def send_now(group, payload):
    """Send, or log why not: the change is saved already, and a failed send
    must never fail the step or the request that made it."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, payload)
    except Exception as exc:  # redis errors, OSError, ChannelFull
        log.warning("not published to %s (viewers catch up from the database): %s", group, exc)
        return False
    return True


def step_event(step, lines=None) -> StepEvent:
    if lines is None:
        lines = step.output.order_by("-seq").values_list("seq", flat=True).first() or 0
    return {"type": "step.status", "step": step.pk, "status": step.status,
            "exit_code": step.exit_code, "error": step.error, "lines": lines, "note": step.note}


def run_event(run) -> RunEvent:
    return {"type": "run.status", "run": run.pk, "status": run.status, "error": run.error,
            "pause_requested": run.pause_requested, "cancel_requested": run.cancel_requested}
