"""Websocket payloads and the one way to publish them.

Groups: ``run-<pk>`` for a run's steps and output, ``cluster-<pk>`` for HA
state. Payloads are saved to the database before they are published, so a
page can always be rebuilt from the database.
"""
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


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


class RunEvent(TypedDict):
    type: str  # "run.status"
    run: int
    status: str


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
    transaction.on_commit(lambda: async_to_sync(get_channel_layer().group_send)(group, payload))


def step_event(step) -> StepEvent:
    return {"type": "step.status", "step": step.pk, "status": step.status,
            "exit_code": step.exit_code, "error": step.error}


def run_event(run) -> RunEvent:
    return {"type": "run.status", "run": run.pk, "status": run.status}
