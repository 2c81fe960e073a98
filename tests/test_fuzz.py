"""Arbitrary ids, cursors, query strings and form data at every route: never a 5xx, never a hang.

The routes come from the URL configuration and the websocket routing, so a
route added later is fuzzed without touching this file.
"""
import asyncio
import contextlib
import functools
import json
import re
import signal
import threading
from urllib.parse import quote, urlencode

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from heportal.asgi import application
from tests.conftest import free_port
from tests.factories import make_host, make_run
from upgrades.converters import MAX_ID
from upgrades.output import insert_rows
from upgrades.routing import websocket_urlpatterns

FUZZ = settings(deadline=None, max_examples=200, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REQUEST_SECONDS = 10
PLACEHOLDER = re.compile(r"<(?:[^>:]+:)?[^>]+>")


def routes(patterns, prefix=()):
    """Every route as the tuple of patterns from the root to its view."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, prefix + (entry.pattern,))
        else:
            yield prefix + (entry.pattern,)


HTTP_ROUTES = sorted(set(routes(get_resolver().url_patterns)), key=lambda route: [str(p) for p in route])
WS_ROUTES = list(routes(websocket_urlpatterns))


def id_text(known):
    """What a URL or cursor might carry where an id goes."""
    return st.one_of(
        st.sampled_from(sorted(known)).map(str),
        st.integers(0, 2**70).map(str),
        st.sampled_from([str(MAX_ID), str(MAX_ID + 1), "9" * 30, "9" * 5000, "0", "-1", "²", "7²", "٣", "1e3"]),
        st.text(alphabet="0123456789²³¹٣۴०", min_size=1, max_size=25),
        st.text(max_size=12),
    )


def path_for(route, an_id, matching):
    """A path along ``route``: its literal parts, ``an_id()`` for each parameter,
    ``matching(regex)`` for each regular-expression part."""
    parts = []
    for pattern in route:
        if isinstance(pattern, RoutePattern):
            pieces = PLACEHOLDER.split(str(pattern))
            parts.append(pieces[0] + "".join(an_id() + piece for piece in pieces[1:]))
        else:
            assert isinstance(pattern, RegexPattern)
            parts.append(matching(pattern.regex))
    return "/" + quote("".join(parts), safe="/")


@functools.cache
def simplest_match(regex):
    return find(st.from_regex(regex, fullmatch=True), lambda text: True)


def drawn_path(route, draw, ids):
    return path_for(route, lambda: draw(ids), lambda regex: draw(
        st.one_of(st.from_regex(regex, fullmatch=True), st.text(max_size=20))))


@contextlib.contextmanager
def at_most(seconds, what):
    """A request that takes longer than this is a hang: fail with its name."""
    def expire(signum, frame):
        raise TimeoutError(f"no answer in {seconds} s: {what}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def world(make_user, django_user_model):
    """A cluster with a host nothing listens on (the host-key page connects at
    once and is refused), a run with output, and a user per role."""
    host = make_host(address="127.0.0.1", ssh_port=free_port())
    operator = make_user("operator")
    run = make_run(operator, host, ["echo one", "echo two"])
    first, second = run.steps.order_by("order")
    insert_rows([(first.pk, seq, "stdout", f"l{seq}") for seq in range(1, 2100)] +
                [(second.pk, 1, "stderr", "e1")])
    users = [None, make_user("viewer"), operator, make_user("admin"),
             django_user_model.objects.create_superuser("root", password="x")]
    ids = {run.pk, first.pk, second.pk, host.pk, host.cluster_id, *(user.pk for user in users if user)}
    return {"run": run, "steps": [first, second], "users": users, "ids": ids}


@pytest.fixture
def ws_loop():
    """An event loop that runs all along in its own thread, as daphne's does:
    a loop paused between examples would time out the channel layer's reads.
    At the end, every consumer must have ended, without an error."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    loop.consumers = []
    yield loop

    async def settle():
        """Up to 30 s, but no longer than while something other than a layer read is left."""
        done, pending, deadline = set(), set(loop.consumers), loop.time() + 30
        while pending and loop.time() < deadline:
            ended, pending = await asyncio.wait(pending, timeout=min(1.0, deadline - loop.time()))
            done |= ended
            if all(_waits_in_layer_receive(task) for task in pending):
                break
        return done, pending

    done, pending = asyncio.run_coroutine_threadsafe(settle(), loop).result()
    # A consumer that was the channel layer's reader when it disconnected can
    # stay in channels_redis's receive() after the cancel until that read
    # returns a message (channels_redis and redis-py, not the portal). It has
    # handled its disconnect; anything else still running is a failure.
    stuck = [task for task in pending if not _waits_in_layer_receive(task)]
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    assert not stuck, f"{len(stuck)} consumers still running 30 s after their disconnect"
    errors = [future.exception() for future in done if not future.cancelled() and future.exception()]
    assert not errors, errors[:3]


def _waits_in_layer_receive(task):
    waiting = getattr(task, "_fut_waiter", None)
    coro = waiting.get_coro() if isinstance(waiting, asyncio.Task) else None
    return getattr(coro, "__qualname__", "") == "RedisChannelLayer.receive" and waiting.cancelling()


FIELDS = ["known_hosts_line", "username", "password", "next", "name", "address", "ssh_port", "cluster",
          "post", "action", "_selected_action", "index", "q", "o", "p", "e", "after", "_save"]


def assert_answers(client, method, url, form=None):
    """An answer below 500 in time; a 405 is a page (a HEAD answer has no body by definition)."""
    with at_most(REQUEST_SECONDS, f"{method} {url}"):
        response = client.post(url, form or {}) if method == "POST" else client.generic(method, url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code < 500, f"{method} {url}: {response.status_code}"
    if response.status_code == 405 and method != "HEAD":
        if url.startswith("/api/"):  # the API answers JSON, saying so
            assert json.loads(body)["detail"].endswith("not allowed."), f"{method} {url}: {body[:200]}"
        else:
            assert b"Method not allowed" in body, f"{method} {url}: a 405 without a page"
    return response


def logged_in(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.django_db
def test_every_url_answers_out_of_range_and_unicode_ids(world):
    """Each route at least once, whatever the random examples below pick."""
    superuser, viewer = world["users"][4], world["users"][1]
    existing = str(world["run"].pk)
    clients = {}
    for route in HTTP_ROUTES:
        for user, method, value in ((superuser, "GET", "9" * 30), (superuser, "POST", existing),
                                    (viewer, "GET", "²"), (None, "GET", existing)):
            path = path_for(route, lambda: value, simplest_match)
            if user not in clients or "logout" in path:  # a logout ends the client's session
                clients[user] = logged_in(user)
            assert_answers(clients[user], method, path)


@pytest.mark.django_db
@FUZZ
@given(data=st.data())
def test_no_url_answers_with_a_server_error_or_hangs(world, data):
    route = data.draw(st.sampled_from(HTTP_ROUTES), label="route")
    ids = id_text(world["ids"])
    path = drawn_path(route, data.draw, ids)
    values = st.one_of(ids, st.text(max_size=40))
    query = data.draw(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), values, max_size=3))
    form = data.draw(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), values, max_size=4))
    method = data.draw(st.sampled_from(["GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD"]), label="method")
    user = data.draw(st.sampled_from(world["users"]), label="user")
    url = f"{path}?{urlencode(query)}" if query else path
    assert_answers(logged_in(user), method, url, form)


async def _handshake(path, headers, consumers):
    """Connect and read what the consumer sends first: its events, or the close code."""
    from tests.test_live_output import open_or_closed

    communicator = WebsocketCommunicator(application, path, headers=headers)
    consumers.append(communicator.future)
    try:
        is_open, first = await open_or_closed(communicator, timeout=REQUEST_SECONDS)
        if not is_open:
            return first
        events = [json.loads(first["text"])]
        if path.startswith("/ws/runs/"):
            while events[-1]["type"] != "run.status":
                events.append(await communicator.receive_json_from(timeout=REQUEST_SECONDS))
        return events
    finally:
        # Not waited for here: a consumer ends when its pending channel-layer
        # read returns (up to channels_redis's 5 s poll), meanwhile the next
        # examples run. ws_loop checks at the end that every one ended cleanly.
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})


@pytest.mark.django_db(transaction=True)
@FUZZ
@given(data=st.data())
def test_no_websocket_path_or_cursor_breaks_or_stalls_the_handshake(world, ws_loop, data):
    from tests.test_live_output import session_headers

    if "headers" not in world:
        world["headers"] = [None] + [session_headers(user) for user in world["users"][1:3]]
    ids = id_text(world["ids"] | {0})
    route = data.draw(st.sampled_from(WS_ROUTES), label="route")
    path = drawn_path(route, data.draw, ids) if data.draw(st.booleans()) else f"/ws/runs/{world['run'].pk}/"
    cursors = data.draw(st.lists(st.tuples(ids, ids), max_size=4), label="cursors")
    after = ",".join(f"{step}:{seq}" for step, seq in cursors)
    if after:
        path += "?" + urlencode({"after": after})
    headers = data.draw(st.sampled_from(world["headers"]))
    handshake = _handshake(path, headers or [(b"origin", b"http://localhost"), (b"host", b"localhost")],
                           ws_loop.consumers)
    result = asyncio.run_coroutine_threadsafe(handshake, ws_loop).result(timeout=3 * REQUEST_SECONDS)

    if isinstance(result, int):
        # The approvals count is for approvers: a viewer or an operator is refused (4403).
        refused = (4401, 4404, 4403) if path.startswith("/ws/approvals/") and headers else (4401, 4404)
        assert result in refused, f"{path}: closed with {result}"
        return
    assert headers is not None, f"{path}: accepted without a login"
    # Whatever the cursors, each step's lines come once, in order, up to its last.
    for step in world["steps"] if path.startswith("/ws/runs/") else []:
        seqs = [line[0] for event in result if event.get("step") == step.pk and event["type"] == "output.lines"
                for line in event["lines"]]
        assert seqs == sorted(set(seqs)), path
        assert not seqs or seqs[-1] == step.output.count(), path
