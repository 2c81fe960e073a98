"""Websocket viewers that behave like the run and cluster pages, over real
TCP to a real daphne (aiohttp): they send their cursors on (re)connect,
count closes, and keep every line they get."""
import asyncio
import json
import time

import aiohttp
from django.test import Client

FINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class RunViewer:
    """Follows one run like static/js/run.js: reconnects with ``?after=`` cursors."""

    def __init__(self, base_url, run_id, cookie):
        self.url = base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": base_url}
        self.lines = {}  # step -> [(seq, text)] in arrival order
        self.closes = []  # close codes seen before the run ended
        self.status = None
        self.connects = 0

    def cursor(self):
        return ",".join(f"{step}:{rows[-1][0]}" for step, rows in self.lines.items() if rows)

    async def follow(self, session, timeout):
        async with asyncio.timeout(timeout):
            while True:
                try:
                    async with session.ws_connect(f"{self.url}?after={self.cursor()}", headers=self.headers,
                                                  max_msg_size=0, heartbeat=None) as ws:
                        self.connects += 1
                        async for msg in ws:  # ends when the socket closes
                            self.take(json.loads(msg.data))
                            if self.status in FINAL:
                                return self
                        self.closes.append(ws.close_code)
                except aiohttp.ClientError as exc:
                    self.closes.append(repr(exc))
                await asyncio.sleep(0.5)

    def follow_until_done(self, timeout):
        """``follow`` in a loop of its own, for a thread."""
        async def run():
            async with aiohttp.ClientSession() as session:
                await self.follow(session, timeout)
        asyncio.run(run())
        return self

    def take(self, event):
        if event["type"] == "output.lines":
            self.lines.setdefault(event["step"], []).extend((seq, text) for seq, _, text in event["lines"])
        elif event["type"] == "run.status":
            self.status = event["status"]


class ClusterViewer:
    """Holds a cluster page's websocket open and records every message and close."""

    def __init__(self, base_url, cluster_id, cookie):
        self.url = base_url.replace("http://", "ws://") + f"/ws/clusters/{cluster_id}/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": base_url}
        self.messages = []
        self.closes = []

    async def hold(self, session, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            async with session.ws_connect(self.url, headers=self.headers, heartbeat=None) as ws:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        async for msg in ws:  # ends when the socket closes
                            self.messages.append(json.loads(msg.data))
                except TimeoutError:
                    return self
                self.closes.append(ws.close_code)
        return self
