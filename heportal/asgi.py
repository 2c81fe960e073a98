"""ASGI entry point: HTTP through Django, websockets through Channels.

The Django app is built before the routing import so that models load first.
"""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heportal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from heportal.body_limit import BodyLimit, bound_daphne  # noqa: E402
from heportal.websocket_gate import WebsocketGate  # noqa: E402
from upgrades.routing import websocket_urlpatterns  # noqa: E402

bound_daphne()  # request bodies over MAX_REQUEST_BODY_BYTES refused before they are kept
application = ProtocolTypeRouter({
    "http": BodyLimit(django_asgi_app),
    "websocket": WebsocketGate(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

# The URLconf and every view module (the API's too) load now, not at the first request:
# that request is not slowed by them, and they are loaded before the freeze below.
get_resolver().url_patterns

# Everything loaded so far lives as long as the process: keep it out of the
# garbage collector's full passes, which otherwise pause every websocket
# (50 viewers: p99 latency 76 ms without, 44 ms with; docs/benchmarks.md).
gc.freeze()
