"""Request bodies are bounded in the web process: a real daphne serving the portal
gets three anonymous 150 MB POSTs (streamed from a buffer of 1 MB, not held by the
test), refuses each with 413 before taking it in, and its memory stays flat;
a normal login works after. Before the bound, daphne took in every body
(335 to 884 MB for three) and Django answered 403 after.
"""
import asyncio
import http.client
import re
import select
import socket
import subprocess
import sys
import time

import pytest

from heportal.body_limit import BodyLimit
from tests.conftest import PASSWORD, ROOT, Processes, child_env, free_port

HUGE = 150 * 1024 * 1024
BLOCK = b"a" * (1 << 20)


def rss_mb(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@pytest.fixture
def daphne(transactional_db, tmp_path, make_user):
    make_user("operator")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=ROOT, env=child_env(), check=True)
    procs = Processes(tmp_path)
    port = free_port()
    proc = procs.start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                  "heportal.asgi:application"],
                       env={**child_env(), "MAX_REQUEST_BODY_BYTES": str(4 * 1024 * 1024)})
    deadline = time.monotonic() + 60
    while True:
        procs.check_alive()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "daphne did not start listening in 60 s"
            time.sleep(0.1)
    yield port, proc.pid
    procs.stop()


def post_huge(port, chunked):
    """POST 150 MB to /login/, stopping once an answer comes; (status, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {HUGE}\r\n"
    sock.sendall((head + "\r\n").encode())
    piece = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK) if chunked else BLOCK
    sent = 0
    try:
        while sent < HUGE and not select.select([sock], [], [], 0)[0]:
            sock.sendall(piece)
            sent += len(BLOCK)
        if sent >= HUGE and chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    while b"\r\n" not in answer:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, sent


def login(port):
    """The login form as a browser sends it: (status, Location)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/login/")
    page = conn.getresponse()
    html = page.read().decode()
    csrf_cookie = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie")).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    body = f"csrfmiddlewaretoken={token}&username=operator&password={PASSWORD.replace(' ', '+')}"
    conn.request("POST", "/login/", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}",
        "Referer": f"http://127.0.0.1:{port}/login/"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.status, answer.getheader("Location")


@pytest.mark.slow
def test_huge_bodies_are_refused_by_daphne_with_its_memory_flat(daphne):
    port, pid = daphne
    assert login(port) == (302, "/")  # warmed up: the baseline is a portal that has served
    baseline = rss_mb(pid)
    for chunked in (False, True, False):
        status, sent = post_huge(port, chunked)
        assert status == 413, f"a 150 MB {'chunked ' if chunked else ''}POST got {status}"
        assert sent < HUGE, "the 413 came only after the whole body was sent"
        assert rss_mb(pid) < baseline + 50, f"daphne grew from {baseline:.0f} to {rss_mb(pid):.0f} MB"
    assert login(port) == (302, "/")
    assert rss_mb(pid) < baseline + 50


def test_a_body_just_under_the_limit_still_reaches_django(daphne):
    """Django answers (403: no CSRF token), not the bound."""
    port, _ = daphne
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/login/", body=b"a=" + b"b" * (2 * 1024 * 1024),
                 headers={"Content-Type": "application/octet-stream"})
    assert conn.getresponse().status == 403


# The ASGI middleware, for servers other than daphne ------------------------------

def run_middleware(headers, bodies, settings, app=None):
    """Call BodyLimit around an app that reads the whole body (default: a stub that answers
    200); (statuses sent, app reached, bodies read)."""
    settings.MAX_REQUEST_BODY_BYTES = 1000
    sent, reached, queue = [], [], [{"type": "http.request", "body": b, "more_body": i < len(bodies) - 1}
                                    for i, b in enumerate(bodies)]

    async def receive():
        if not queue:  # the client waits for the answer (Django listens for a disconnect)
            await asyncio.Event().wait()
        return queue.pop(0)

    async def send(message):
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    async def stub(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def watched(scope, receive, send):
        reached.append(True)
        await (app or stub)(scope, receive, send)

    scope = {"type": "http", "method": "POST", "path": "/login/", "query_string": b"", "headers": headers,
             "client": ["127.0.0.1", 5000], "server": ["127.0.0.1", 8000]}
    asyncio.run(BodyLimit(watched)(scope, receive, send))
    return sent, bool(reached), len(bodies) - len(queue)


def test_middleware_refuses_an_announced_body_over_the_limit_unread(settings):
    assert run_middleware([(b"content-length", b"5000")], [b"x" * 500] * 10, settings) == ([413], False, 0)


def test_middleware_stops_a_streamed_body_where_it_passes_the_limit(settings):
    assert run_middleware([], [b"x" * 400] * 10, settings) == ([413], True, 3)


def test_middleware_lets_a_body_within_the_limit_through(settings):
    assert run_middleware([(b"content-length", b"800")], [b"x" * 400] * 2, settings) == ([200], True, 2)


def test_middleware_stops_a_streamed_body_before_django_answers(settings):
    """Django's own handler reads the body first: the middleware's 413 replaces its answer."""
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()
    assert run_middleware([], [b"x" * 400] * 10, settings, django_app) == ([413], True, 3)
    assert run_middleware([], [b"x" * 400] * 2, settings, django_app) == ([403], True, 2)  # no CSRF token
