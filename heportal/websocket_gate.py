"""The one gate in front of every websocket: same origin only, refusals as close codes.

A browser sends the cookie with a websocket to any page's script and
websockets have no CORS, so the Origin header is the only defence: it must be
the portal's own origin (scheme, host and port of the request itself, as
Django's CSRF check does for a form) or one of ``CSRF_TRUSTED_ORIGINS``.
Channels' AllowedHostsOriginValidator compared host names only, so a page on
any other port of localhost could open the sockets.

A socket closed before it is accepted reaches the browser as an HTTP 403 at
the handshake, which a page cannot tell from a network error (close code
1006) and so retries for ever. Every refusal is therefore accepted and closed
at once with its code (docs/architecture.md, "Websocket refusals"): 4403 for
a foreign origin, and the consumers' own 4401, 4403 and 4404.
"""
import logging
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

FOREIGN_ORIGIN = 4403
BAD_TOKEN, TOO_MANY_FAILURES = 4401, 4429
# The subprotocol a browser offers next to its token; the server answers with this name only.
TOKEN_SUBPROTOCOL = "heportal.token"
DEFAULT_PORTS = {"http": 80, "https": 443}
log = logging.getLogger(__name__)


def _origin(url):
    """``"http://Host:80"`` → ("http", "host", 80); None when it is not an http(s) origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _request_scheme(scope, headers):
    """The scheme the browser used: the socket's own, or the TLS proxy's
    forwarded one when BEHIND_TLS_PROXY set SECURE_PROXY_SSL_HEADER."""
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower()
        forwarded = headers.get(name)
        if forwarded is not None:
            return "https" if forwarded.split(",")[0].strip() == proxy[1] else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def origin_allowed(scope):
    """True when the socket's Origin is the portal's own origin or a trusted one."""
    headers = {name.decode("latin-1").lower(): value.decode("latin-1")
               for name, value in scope.get("headers", [])}
    origin = _origin(headers.get("origin", ""))
    if origin is None:
        return False
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if domain and validate_host(domain, settings.ALLOWED_HOSTS):
        if origin == _origin(f"{_request_scheme(scope, headers)}://{host}"):
            return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:  # Django's form: https://*.example.com
            scheme, _, pattern = trusted.partition("://")
            netloc = origin[1] if origin[2] == DEFAULT_PORTS[origin[0]] else f"{origin[1]}:{origin[2]}"
            if origin[0] == scheme and is_same_domain(netloc, pattern.replace("*", "", 1)):
                return True
        elif origin == _origin(trusted):
            return True
    return False


def bearer_token(scope):
    """The token of an ``Authorization: Bearer`` header, "" for a malformed one, None without."""
    from upgrades.api.auth import bearer

    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            return bearer(value)
    return None


def subprotocol_token(scope):
    """A browser's token: ``new WebSocket(url, ["heportal.token", token])`` offers the
    marker and the token as two subprotocols. The token, "" when the marker comes
    without exactly one other entry, None without the marker."""
    offered = list(scope.get("subprotocols") or ())
    if TOKEN_SUBPROTOCOL not in offered:
        return None
    others = [item for item in offered if item != TOKEN_SUBPROTOCOL]
    return others[0] if len(others) == 1 else ""


def without_token(scope, user):
    """The scope the consumers see: the token's user, and neither the token (header or
    subprotocol) nor the session cookie, so nothing downstream can log or use them."""
    dropped = (b"cookie", b"authorization", b"sec-websocket-protocol")
    headers = [(name, value) for name, value in scope.get("headers", []) if name.lower() not in dropped]
    subprotocols = [TOKEN_SUBPROTOCOL] if TOKEN_SUBPROTOCOL in (scope.get("subprotocols") or ()) else []
    return {**scope, "headers": headers, "subprotocols": subprotocols, "token_user": user}


def token_user(raw, scope):
    """(user or None, close code): the API's token check and its failure limit (upgrades/api/auth.py)."""
    from upgrades.api import auth

    from upgrades.client_address import for_scope

    user, refusal = auth.user_for_token(raw, for_scope(scope))
    if user is None:
        return None, TOO_MANY_FAILURES if refusal == auth.LIMITED else BAD_TOKEN
    return user, None


class WebsocketGate:
    """ASGI middleware, outermost on the websocket route (heportal/asgi.py).

    A client may authenticate with an API token instead of a session: a script
    with ``Authorization: Bearer <token>``, a browser page (which cannot set
    headers on a websocket) by offering the subprotocols ``heportal.token`` and
    the token; the handshake then answers ``heportal.token`` only, never the
    token. A token is no ambient credential (a foreign page cannot know it), so
    the Origin check does not apply; the session cookie is dropped and the
    consumers act as the token's user (``scope["token_user"]``), with the same
    checks as for a page.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        accepted = False
        raw = bearer_token(scope)
        if raw is None:
            raw = subprotocol_token(scope)
        # A browser that offered subprotocols fails a handshake answered with none of them.
        answer = TOKEN_SUBPROTOCOL if TOKEN_SUBPROTOCOL in (scope.get("subprotocols") or ()) else None

        async def send_accepting_refusals(message):
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
                if answer:
                    message = {**message, "subprotocol": answer}
            elif message["type"] == "websocket.close" and not accepted:
                accepted = True
                await send({"type": "websocket.accept", **({"subprotocol": answer} if answer else {})})
            await send(message)

        if raw is not None:
            user, code = await sync_to_async(token_user)(raw, scope)
            if user is not None:
                return await self.app(without_token(scope, user), receive, send_accepting_refusals)
            log.warning("websocket %s refused: %s", scope.get("path"),
                        "too many token failures" if code == TOO_MANY_FAILURES else "bad token")
            message = await receive()
            if message["type"] == "websocket.connect":
                await send_accepting_refusals({"type": "websocket.close", "code": code})
            return
        if origin_allowed(scope):
            return await self.app(scope, receive, send_accepting_refusals)
        headers = dict(scope.get("headers", []))
        log.warning("websocket %s refused: origin %r is not the portal's (host %r)",
                    scope.get("path"), headers.get(b"origin"), headers.get(b"host"))
        message = await receive()
        if message["type"] == "websocket.connect":
            await send_accepting_refusals({"type": "websocket.close", "code": FOREIGN_ORIGIN})
