"""Websocket consumers: authenticate, join the group, replay, forward.

Lossless resume: the client says which line it has per step
(``?after=<step>:<seq>,...``). The consumer joins the group *before* reading
the backlog from the database, so a line is either in the backlog or
arrives live afterwards; ``self.sent`` drops the ones that are both.
"""
from urllib.parse import parse_qs

from channels.generic.websocket import JsonWebsocketConsumer
from asgiref.sync import async_to_sync

from .events import cluster_group, run_group, run_event, step_event
from .ha import cluster_payload
from .models import Cluster, StepOutput, UpgradeRun

BACKLOG_CHUNK = 1_000


def parse_cursors(query_string):
    """``after=12:340,13:0`` → {12: 340, 13: 0}; malformed parts are ignored."""
    cursors = {}
    raw = parse_qs(query_string).get("after", [""])[0]
    for part in raw.split(","):
        step, _, seq = part.partition(":")
        if step.isdigit() and seq.isdigit():
            cursors[int(step)] = int(seq)
    return cursors


class RunConsumer(JsonWebsocketConsumer):
    def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4401)
            return
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        self.run = UpgradeRun.objects.filter(pk=run_id).first()
        if self.run is None:
            self.close(code=4404)
            return
        self.sent = parse_cursors(self.scope.get("query_string", b"").decode())
        self.group = run_group(self.run.pk)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()
        self.send_backlog()

    def disconnect(self, code):
        if getattr(self, "group", None):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def send_backlog(self):
        self.run.refresh_from_db()
        steps = list(self.run.steps.order_by("order"))
        for step in steps:
            self.send_json(step_event(step))
            after = self.sent.get(step.pk, 0)
            rows = (StepOutput.objects.filter(step=step, seq__gt=after).order_by("seq")
                    .values_list("seq", "stream", "text"))
            chunk = []
            for row in rows.iterator(chunk_size=BACKLOG_CHUNK):
                chunk.append(list(row))
                if len(chunk) == BACKLOG_CHUNK:
                    self._send_lines(step.pk, chunk)
                    chunk = []
            if chunk:
                self._send_lines(step.pk, chunk)
        self.send_json(run_event(self.run))

    def _send_lines(self, step_id, lines):
        last = self.sent.get(step_id, 0)
        fresh = [line for line in lines if line[0] > last]
        if fresh:
            self.sent[step_id] = fresh[-1][0]
            self.send_json({"type": "output.lines", "step": step_id, "lines": fresh})

    def output_lines(self, event):
        self._send_lines(event["step"], event["lines"])

    def step_status(self, event):
        self.send_json(event)

    def run_status(self, event):
        self.send_json(event)


class ClusterConsumer(JsonWebsocketConsumer):
    """Live HA state of one cluster: a snapshot on connect, then each change."""

    def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4401)
            return
        cluster = Cluster.objects.filter(pk=self.scope["url_route"]["kwargs"]["cluster_id"]).first()
        if cluster is None:
            self.close(code=4404)
            return
        self.group = cluster_group(cluster.pk)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()
        self.send_json(cluster_payload(cluster))

    def disconnect(self, code):
        if getattr(self, "group", None):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def ha_update(self, event):
        self.send_json(event)
