"""The websockets with an API token, through a real daphne and a real client (aiohttp):
a script's ``Authorization: Bearer``, a browser's ``heportal.token`` subprotocol, every
refusal as a close code, and a run followed losslessly across a reconnection
(real RQ worker, the lab over SSH). heportal/websocket_gate.py, docs/api.md."""
import asyncio
import json
import socket
import time
from base64 import b64encode
from urllib.parse import urlsplit

import aiohttp
import pytest
from django.conf import settings
from django.utils import timezone

from tests.factories import grant, make_host, make_polled_cluster, make_run
from tests.test_live_output import lab_host, numbers
from tests.viewers import session_cookie
from upgrades.api import auth
from upgrades.api.tokens import create_token, revoke_token
from upgrades.models import RUN_TERMINAL, StepOutput, UpgradeRun
from upgrades.services import enqueue_run

pytestmark = pytest.mark.django_db(transaction=True)
ENDED = {str(status) for status in RUN_TERMINAL}


def ws_url(portal, path):
    return portal.replace("http://", "ws://") + path


async def handshake(url, headers=None, protocols=()):
    """("open", first event, answered subprotocol) or ("closed", close code, answered subprotocol)."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers or {}, protocols=protocols, heartbeat=None,
                                      timeout=aiohttp.ClientWSTimeout(ws_receive=30)) as ws:
            msg = await ws.receive(timeout=30)
            if msg.type == aiohttp.WSMsgType.TEXT:
                return "open", json.loads(msg.data)["type"], ws.protocol
            return "closed", ws.close_code, ws.protocol


def connect(url, headers=None, protocols=()):
    return asyncio.run(handshake(url, headers, protocols))


def raw_handshake_answer(url, protocols):
    """The server's handshake answer, as bytes off the socket: what a proxy or a browser sees."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {b64encode(b'0123456789abcdef').decode()}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {', '.join(protocols)}\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n\r\n")[0].decode("latin-1")


@pytest.fixture
def tokens(make_user):
    """A viewer's run, and tokens: good, revoked, expired, of a user with a role elsewhere only."""
    auth.clear_failures()
    viewer, outsider = make_user("viewer", "vera"), make_user(None, "otto")
    grant(outsider, make_polled_cluster(("x1",), name="Other"), "admin")
    run = make_run(viewer, make_host(), ["true"])
    revoked_row, revoked = create_token(user=viewer, name="old")
    revoke_token(token=revoked_row, user=viewer)
    expired_row, expired = create_token(user=viewer, name="short", days=1)
    type(expired_row).objects.filter(pk=expired_row.pk).update(expires_at=timezone.now())
    yield {"run": run, "viewer": viewer, "good": create_token(user=viewer, name="ws")[1], "revoked": revoked,
           "expired": expired, "outsider": create_token(user=outsider, name="ws")[1]}
    auth.clear_failures()


def test_the_run_socket_for_every_kind_of_authentication(live_portal, tokens):
    url = ws_url(live_portal, f"/ws/runs/{tokens['run'].pk}/")
    own, cookie = {"Origin": live_portal}, {"Cookie": f"sessionid={session_cookie(tokens['viewer'])}"}

    def bearer(token):
        return {"Authorization": f"Bearer {token}"}

    def offered(token):
        return ("heportal.token", token)

    cases = {
        "none": ({**own}, (), ("closed", 4401, None)),
        "none, no Origin": ({}, (), ("closed", 4403, None)),
        "session without Origin": ({**cookie}, (), ("closed", 4403, None)),
        "session, foreign Origin": ({**cookie, "Origin": "http://127.0.0.1:9"}, (), ("closed", 4403, None)),
        "session, own Origin": ({**cookie, **own}, (), ("open", "step.status", None)),
        "bad token": (bearer("hep_wrong"), (), ("closed", 4401, None)),
        "not a token": (bearer("x" * 5000), (), ("closed", 4401, None)),
        "Bearer without a token": ({"Authorization": "Bearer"}, (), ("closed", 4401, None)),
        "revoked token": (bearer(tokens["revoked"]), (), ("closed", 4401, None)),
        "expired token": (bearer(tokens["expired"]), (), ("closed", 4401, None)),
        "token with a role elsewhere only": (bearer(tokens["outsider"]), (), ("closed", 4403, None)),
        # A token is no ambient credential: a script sends no Origin, and any Origin is no matter.
        "token, no Origin": (bearer(tokens["good"]), (), ("open", "step.status", None)),
        "token, foreign Origin": ({**bearer(tokens["good"]), "Origin": "http://evil.example"}, (),
                                  ("open", "step.status", None)),
        # The token wins over the cookie: a revoked token with a good session is refused.
        "revoked token with a session": ({**bearer(tokens["revoked"]), **cookie, **own}, (), ("closed", 4401, None)),
        # A browser: the token as a subprotocol; every answer names heportal.token, so the
        # browser sees the close code and not a failed handshake.
        "subprotocol token": (own, offered(tokens["good"]), ("open", "step.status", "heportal.token")),
        "subprotocol bad token": (own, offered("hep_wrong"), ("closed", 4401, "heportal.token")),
        "subprotocol revoked": (own, offered(tokens["revoked"]), ("closed", 4401, "heportal.token")),
        "subprotocol expired": (own, offered(tokens["expired"]), ("closed", 4401, "heportal.token")),
        "subprotocol marker only": (own, ("heportal.token",), ("closed", 4401, "heportal.token")),
        "subprotocol role elsewhere": (own, offered(tokens["outsider"]), ("closed", 4403, "heportal.token")),
    }
    failures = 0
    for kind, (headers, protocols, expected) in cases.items():
        assert connect(url, headers, protocols) == expected, kind
        failures += expected[:2] == ("closed", 4401) and (bool(protocols) or "Authorization" in headers)
    assert auth.failures("127.0.0.1") == failures  # each token failure counted, and nothing else

    assert connect(ws_url(live_portal, "/ws/runs/999999/"), bearer(tokens["good"])) == ("closed", 4404, None)

    # The handshake names the protocol only, never the token; daphne's log has no token either.
    answer = raw_handshake_answer(url, offered(tokens["good"]))
    assert answer.startswith("HTTP/1.1 101"), answer
    assert "sec-websocket-protocol: heportal.token\r\n" in answer.lower() + "\r\n", answer
    assert tokens["good"] not in answer
    log = live_portal.log.read_text()
    assert not any(tokens[kind] in log for kind in ("good", "revoked", "expired", "outsider"))


def test_too_many_token_failures_close_with_4429_even_for_a_good_token(live_portal, tokens):
    url = ws_url(live_portal, f"/ws/runs/{tokens['run'].pk}/")
    for _ in range(settings.API_AUTH_FAILURE_LIMIT):
        auth.count_failure("127.0.0.1")
    assert connect(url, {"Authorization": f"Bearer {tokens['good']}"}) == ("closed", 4429, None)
    assert connect(url, {}, ("heportal.token", tokens["good"])) == ("closed", 4429, "heportal.token")
    auth.clear_failures("127.0.0.1")
    assert connect(url, {"Authorization": f"Bearer {tokens['good']}"})[0] == "open"
    # Sessions are not held by the token limit.
    for _ in range(settings.API_AUTH_FAILURE_LIMIT):
        auth.count_failure("127.0.0.1")
    cookie = f"sessionid={session_cookie(tokens['viewer'])}"
    assert connect(url, {"Cookie": cookie, "Origin": live_portal})[0] == "open"


def test_the_other_sockets_take_a_token_with_the_same_checks(live_portal, make_user):
    """Home, cluster and approvals sockets act as the token's user too: the same gate."""
    auth.clear_failures()
    cluster = make_polled_cluster()
    viewer, approver = make_user("viewer", "vera"), make_user("approver", "anna")
    stranger = grant(make_user(None, "sam"), make_polled_cluster(("x1",), name="Other"), "viewer")
    token, approver_token, stranger_token = (create_token(user=who, name="ws")[1]
                                             for who in (viewer, approver, stranger))

    def bearer(raw):
        return {"Authorization": f"Bearer {raw}"}

    assert connect(ws_url(live_portal, f"/ws/clusters/{cluster.pk}/"), bearer(token))[:2] == ("open", "ha.update")
    assert connect(ws_url(live_portal, f"/ws/clusters/{cluster.pk}/"), bearer(stranger_token)) == (
        "closed", 4403, None)
    assert connect(ws_url(live_portal, "/ws/home/"), {}, ("heportal.token", token)) == (
        "open", "home.ready", "heportal.token")
    assert connect(ws_url(live_portal, "/ws/approvals/"), bearer(approver_token))[:2] == ("open", "approvals.count")
    assert connect(ws_url(live_portal, "/ws/approvals/"), bearer(token)) == ("closed", 4403, None)


async def follow(url, auth_kind, token, cursors, stop_after=None, timeout=120):
    """Read a run's socket from ``cursors`` ({step: seq}, updated in place): every line
    received, in order, as (step, seq, stream, text). Returns (lines, final status or
    None when it left after ``stop_after`` lines)."""
    after = ",".join(f"{step}:{seq}" for step, seq in cursors.items())
    headers, protocols = ({"Authorization": f"Bearer {token}"}, ()) if auth_kind == "header" else (
        {}, ("heportal.token", token))
    lines = []
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, params={"after": after}, headers=headers, protocols=protocols,
                                      heartbeat=None) as ws:
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=timeout)
                assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, ws.close_code)
                event = json.loads(msg.data)
                if event["type"] == "output.lines":
                    for seq, stream, text in event["lines"]:
                        lines.append((event["step"], seq, stream, text))
                    cursors[event["step"]] = event["lines"][-1][0]
                    if stop_after is not None and len(lines) >= stop_after:
                        return lines, None  # leaving mid-run, as a dropped connection does
                elif event["type"] == "run.status" and event["status"] in ENDED:
                    return lines, event["status"]
    raise AssertionError(f"the run did not end within {timeout} s")


def test_a_token_client_resumes_a_real_run_with_the_cursor_and_gets_every_line_once(
        rq_worker, lab_cluster, live_portal, make_user):
    auth.clear_failures()
    operator = make_user("operator", "olga")
    token = create_token(user=operator, name="follower")[1]
    run = make_run(operator, lab_host(lab_cluster), [
        f"for i in {numbers(40)}; do echo first $i; done; echo oops >&2",
        f"for i in {numbers(120)}; do echo second $i; sleep 0.05; done"])
    enqueue_run(run)
    url = ws_url(live_portal, f"/ws/runs/{run.pk}/")
    cursors = {}

    before, status = asyncio.run(follow(url, "header", token, cursors, stop_after=60))
    assert status is None and len(before) >= 60
    second = run.steps.get(order=2)
    time.sleep(1)  # lines go on being stored while no one is connected
    assert StepOutput.objects.filter(step=second).count() > cursors.get(second.pk, 0), "the run ended too soon"
    # Back with the cursor, this time as a browser would send the token.
    after, status = asyncio.run(follow(url, "subprotocol", token, cursors))

    assert status == "succeeded", UpgradeRun.objects.get(pk=run.pk).error
    stored = [(step_id, seq, stream, text) for step_id, seq, stream, text in StepOutput.objects.filter(
        step__run=run).order_by("step__order", "seq").values_list("step_id", "seq", "stream", "text")]
    got = before + after
    assert sorted(got) == sorted(stored) and len(got) == len(stored)  # every line once
    for step_id in {line[0] for line in stored}:  # in order within each step
        assert [seq for s, seq, *_ in got if s == step_id] == [seq for s, seq, *_ in stored if s == step_id]
    assert [text for *_, text in stored if text.startswith("second")] == [f"second {i}" for i in range(1, 121)]
    assert ("stderr", "oops") in {(stream, text) for _, _, stream, text in stored}
    assert len(stored) == 161
