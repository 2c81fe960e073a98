"""Request bodies bounded in the web process: settings.MAX_REQUEST_BODY_BYTES.

Django's own limits act on a body the server has already taken in, and daphne
(4.2) takes in the whole body before it calls the application: Twisted keeps
it in memory or a temporary file, then daphne puts all of it on the
application's queue at once. So the bound is in two places:

- ``bound_daphne()``: daphne's request refuses a body announced (Content-Length)
  over the limit with 413 as soon as the headers are in, and a chunked body as
  soon as it passes the limit. Nothing of a refused body is kept: what still
  arrives is read and dropped for at most LINGER_SECONDS, so that the client
  reads the 413 instead of a reset, then the connection is closed.
- ``BodyLimit``: the same rule as ASGI middleware, for any other server (and
  behind daphne a second check): 413 without reading an announced body that is
  too large, and a streamed one stopped where it passes the limit.
"""
import io
import logging
import sys

from django.conf import settings

logger = logging.getLogger(__name__)

LINGER_SECONDS = 5
MESSAGE = b"Request body too large.\n"
REFUSAL = (b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(MESSAGE), MESSAGE))


def limit():
    return settings.MAX_REQUEST_BODY_BYTES


class BodyTooLarge(Exception):
    pass


def _content_length(scope):
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else -1
    return None


async def _refuse(send):
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": MESSAGE})


class BodyLimit:
    """ASGI middleware: HTTP requests with a body over the limit get 413."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        bound = limit()
        if (_content_length(scope) or 0) > bound:
            return await _refuse(send)
        received, started = 0, False

        async def bounded_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > bound:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send)


def bound_daphne():
    """Make daphne's HTTP factory build bounded requests (it looks the class up by
    name for each connection). Only under daphne: importing Twisted elsewhere would
    install a reactor daphne does not want."""
    if "daphne.server" not in sys.modules:
        return
    from daphne import http_protocol

    if getattr(http_protocol.WebRequest, "bounded", False):
        return

    class BoundedRequest(http_protocol.WebRequest):
        bounded = True
        refused = False
        body_bytes = 0

        def gotLength(self, length):
            if length is not None and length > limit():
                self.refuse()
            else:
                super().gotLength(length)

        def handleContentChunk(self, data):
            if self.refused:
                return
            self.body_bytes += len(data)
            if self.body_bytes > limit():
                self.refuse()
            else:
                super().handleContentChunk(data)

        def refuse(self):
            """413 now; what more comes is dropped; closed when the body ends or after LINGER_SECONDS."""
            self.refused = True
            path = getattr(self.channel, "_path", b"")[:200].decode(errors="replace")  # before requestReceived
            logger.warning("413: request body to %s from %s over %d bytes refused", path,
                           getattr(self.getClientAddress(), "host", "?"), limit())
            if getattr(self, "content", None) is not None:
                self.content.close()
            self.content = io.BytesIO()
            self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
            transport = self.channel.transport
            transport.write(REFUSAL)
            self.channel.callLater(LINGER_SECONDS, transport.loseConnection)

        def process(self):
            if self.refused:
                self.channel.transport.loseConnection()
                return None
            return super().process()

    http_protocol.WebRequest = BoundedRequest
