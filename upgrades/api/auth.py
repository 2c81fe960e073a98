"""``Authorization: Bearer <token>`` for the API, with a limit on failures per client address.

A request without the header falls through to the session (the browser),
whose CSRF check DRF's SessionAuthentication keeps. A wrong, expired or
revoked token is a 401; after API_AUTH_FAILURE_LIMIT failures from one
address within API_AUTH_FAILURE_WINDOW seconds every token call from that
address is a 429 until the window ends (counted in Redis, so every web
process shares the count). Redis unreachable: tokens are still checked, and
only the limit is off (logged), as the pages keep working without Redis.
"""
import logging

import redis
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from upgrades.client_address import for_request

from . import tokens

log = logging.getLogger(__name__)
KEY = "heportal:api-auth-failures:{}"
_client = None


def _redis():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _client


def client_address(request):
    """The address the limit counts: the one the audit records (upgrades/client_address.py)."""
    return for_request(request)


def failures(address):
    try:
        return int(_redis().get(KEY.format(address)) or 0)
    except redis.RedisError as exc:
        log.warning("API auth failure limit off: Redis unreachable (%s)", exc)
        return 0


def count_failure(address):
    key = KEY.format(address)
    try:
        with _redis().pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, settings.API_AUTH_FAILURE_WINDOW, nx=True)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("API auth failure not counted: Redis unreachable (%s)", exc)


def clear_failures(address=None):
    """Tests and an admin's shell: forget the counts (of one address, or all)."""
    client = _redis()
    keys = [KEY.format(address)] if address else list(client.scan_iter(KEY.format("*")))
    if keys:
        client.delete(*keys)


LIMITED, BAD = "limited", "bad"


def bearer(value):
    """The token in an ``Authorization`` header's value (bytes): None when it is not
    ``Bearer``, "" when malformed (no token, two, not ASCII)."""
    parts = value.split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii") if len(parts) == 2 else ""
    except UnicodeDecodeError:
        return ""


def user_for_token(raw, address):
    """(user, None) or (None, LIMITED or BAD): the token check behind its failure limit,
    for the API and the websockets (heportal/websocket_gate.py) alike."""
    address = address or "unknown"
    if failures(address) >= settings.API_AUTH_FAILURE_LIMIT:
        return None, LIMITED
    user = tokens.user_of(raw) if raw else None
    if user is None:
        count_failure(address)
        return None, BAD
    return user, None


class TooManyFailures(exceptions.Throttled):
    default_detail = "Too many failed token authentications from this address."


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = bearer(get_authorization_header(request))
        if raw is None:
            return None
        user, refusal = user_for_token(raw, client_address(request))
        if refusal == LIMITED:
            raise TooManyFailures(wait=settings.API_AUTH_FAILURE_WINDOW)
        if user is None:
            raise exceptions.AuthenticationFailed(
                "The token is unknown, expired or revoked." if raw else "Give one token: Authorization: Bearer <token>.")
        return user, "token"

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class BearerScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how the token is sent (found by subclassing: imported with this module)."""
    target_class = "upgrades.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (the tokens page)."}
