"""The one place that says where a request came from, for the audit trail.

Behind a reverse proxy every request's REMOTE_ADDR is the proxy's; the
client's address is in X-Forwarded-For, which anyone can also send. So the
header counts only when the request comes from a proxy in
settings.TRUSTED_PROXIES, and then it is read from its right end: each
trusted proxy appends the address it saw, the first address from the right
that is not a trusted proxy is the client (whatever a client put at the left
end is ignored). Without TRUSTED_PROXIES the header is never read.

``ClientAddressMiddleware`` computes it once per request and keeps it in a
context variable for the request's duration, so ``upgrades.audit.record``
stores it with every event the request causes (logins and failed logins
included) without each caller passing it.
"""
import ipaddress
from contextvars import ContextVar
from functools import lru_cache

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

current = ContextVar("heportal_client_address", default="")


def normalize(text):
    """``text`` as one canonical address (IPv4-mapped IPv6 as IPv4), or None if it is not one."""
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


@lru_cache(maxsize=4)
def _networks(proxies):
    return tuple(ipaddress.ip_network(item, strict=False) for item in proxies)


def is_trusted_proxy(address):
    return address is not None and any(
        ipaddress.ip_address(address) in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(remote_addr, forwarded_for=""):
    """The client's address from the connection's and the X-Forwarded-For header's ("" if unknown)."""
    hop = normalize(remote_addr)
    if not is_trusted_proxy(hop) or not forwarded_for:
        return hop or ""
    for item in reversed(forwarded_for.split(",")):
        address = normalize(item)
        if address is None:
            # Not an address: what lies left of it cannot be trusted; the last hop read is the best known.
            return hop
        hop = address
        if not is_trusted_proxy(hop):
            return hop
    return hop  # every hop a trusted proxy: the leftmost is as close to the client as we know


def for_request(request):
    return client_address(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def for_scope(scope):
    """The same for an ASGI scope (websockets)."""
    forwarded = ",".join(value.decode("latin-1") for name, value in scope.get("headers", [])
                         if name.lower() == b"x-forwarded-for")
    return client_address((scope.get("client") or ("",))[0], forwarded)


class ClientAddressMiddleware:
    """Sets ``current`` for the request (sync and async views alike)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = current.set(for_request(request))
        try:
            return self.get_response(request)
        finally:
            current.reset(token)

    async def __acall__(self, request):
        token = current.set(for_request(request))
        try:
            return await self.get_response(request)
        finally:
            current.reset(token)
