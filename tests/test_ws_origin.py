"""Websockets open only from the portal's own origin (scheme, host and port)
or a trusted one, and every refusal is a close code, not an HTTP 403
(heportal/websocket_gate.py, docs/architecture.md "Websocket refusals")."""
import asyncio
import json

import aiohttp
import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from heportal.asgi import application
from tests.factories import make_host, make_run
from tests.test_live_output import open_or_closed
from tests.viewers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_socket(make_user):
    """run_socket(origin, host) → what a viewer's run page socket gets for that
    Origin and Host: (True, first message) when it opens, (False, close code)
    when refused."""
    user = make_user("viewer")
    run = make_run(user, make_host(), ["true"])
    cookie = (b"cookie", f"sessionid={session_cookie(user)}".encode())

    def connect(origin, host, extra=()):
        headers = [cookie, (b"origin", origin.encode()), (b"host", host.encode()), *extra]

        async def handshake():
            communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=headers)
            result = await open_or_closed(communicator)
            await communicator.disconnect()
            return result

        return asyncio.run(handshake())

    return connect


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_the_portal_host_on_another_port_is_refused_and_its_own_origin_opens(run_socket, host):
    is_open, first = run_socket(f"http://{host}:8000", f"{host}:8000")
    assert is_open and first["type"] == "websocket.send", first
    assert run_socket(f"http://{host}:8001", f"{host}:8000") == (False, 4403)
    assert run_socket(f"http://{host}", f"{host}:8000") == (False, 4403)  # port 80


def test_another_scheme_is_refused(run_socket):
    assert run_socket("https://localhost:8000", "localhost:8000") == (False, 4403)
    assert run_socket("null", "localhost:8000") == (False, 4403)  # a sandboxed or file:// page
    assert run_socket("http://localhost:8000", "localhost:8000")[0]


def test_behind_a_tls_proxy_the_forwarded_scheme_is_the_portals(run_socket, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    forwarded = [(b"x-forwarded-proto", b"https")]
    assert run_socket("https://portal.example.com", "portal.example.com", forwarded)[0]
    assert run_socket("http://portal.example.com", "portal.example.com", forwarded) == (False, 4403)
    # The proxy says plain http: an https page is not the portal's origin.
    assert run_socket("https://portal.example.com", "portal.example.com",
                      [(b"x-forwarded-proto", b"http")]) == (False, 4403)


def test_a_trusted_extra_origin_opens_and_only_that_one(run_socket):
    with override_settings(CSRF_TRUSTED_ORIGINS=["https://portal.example.com", "https://*.ops.example.com"]):
        assert run_socket("https://portal.example.com", "localhost:8000")[0]
        assert run_socket("https://he.ops.example.com", "localhost:8000")[0]
        assert run_socket("http://portal.example.com", "localhost:8000") == (False, 4403)
        assert run_socket("https://portal.example.com:8443", "localhost:8000") == (False, 4403)
        assert run_socket("https://evil.example.com", "localhost:8000") == (False, 4403)


def test_a_host_outside_allowed_hosts_is_not_an_origin(run_socket):
    """A DNS-rebound name points at the portal, but it is not in ALLOWED_HOSTS."""
    assert run_socket("http://rebound.example:8000", "rebound.example:8000") == (False, 4403)
    assert run_socket("http://localhost:8000", "localhost:8000")[0]


def test_every_refusal_is_accepted_then_closed_with_its_code(make_user):
    """Bad origin, anonymous, no role on the cluster, unknown path: the codes
    docs/architecture.md lists, each after an accept (never an HTTP 403)."""
    user, stranger = make_user("viewer"), make_user(None, "stranger")
    run = make_run(user, make_host(), ["true"])
    own = [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")]

    def cookie(who):
        return [(b"cookie", f"sessionid={session_cookie(who)}".encode())]

    async def socket(path, headers):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        result = await open_or_closed(communicator)
        await communicator.disconnect()
        return result

    cases = {
        "bad origin": (f"/ws/runs/{run.pk}/", cookie(user) + [(b"origin", b"http://localhost:9"),
                                                              (b"host", b"localhost:8000")], 4403),
        "no origin": (f"/ws/runs/{run.pk}/", cookie(user) + [(b"host", b"localhost:8000")], 4403),
        "anonymous": (f"/ws/runs/{run.pk}/", own, 4401),
        "no role": (f"/ws/runs/{run.pk}/", cookie(stranger) + own, 4403),
        "unknown path": ("/ws/nowhere/", cookie(user) + own, 4404),
    }
    for kind, (path, headers, code) in cases.items():
        assert asyncio.run(socket(path, headers)) == (False, code), kind


def test_daphne_refuses_a_foreign_port_with_a_close_code_and_opens_the_own_origin(live_portal, make_user):
    """Through the real server and a real websocket client, as a browser sees it."""
    user = make_user("viewer")
    run = make_run(user, make_host(), ["true"])
    cookie = f"sessionid={session_cookie(user)}"
    url = f"{live_portal.replace('http://', 'ws://')}/ws/runs/{run.pk}/"
    port = int(live_portal.rsplit(":", 1)[1])

    async def handshake(origin, with_cookie=True):
        headers = {"Origin": origin, **({"Cookie": cookie} if with_cookie else {})}
        async with aiohttp.ClientSession() as session:
            try:
                ws = await session.ws_connect(url, headers=headers, heartbeat=None, timeout=aiohttp.ClientWSTimeout(
                    ws_receive=30))
            except aiohttp.WSServerHandshakeError as error:
                return "http", error.status
            async with ws:
                msg = await ws.receive(timeout=30)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    return "open", json.loads(msg.data)["type"]
                return "closed", ws.close_code

    assert asyncio.run(handshake(f"http://127.0.0.1:{port + 1}")) == ("closed", 4403)
    assert asyncio.run(handshake(f"https://127.0.0.1:{port}")) == ("closed", 4403)
    assert asyncio.run(handshake(live_portal, with_cookie=False)) == ("closed", 4401)
    assert asyncio.run(handshake(live_portal))[0] == "open"
