from django.urls import path, re_path

from . import consumers, converters  # noqa: F401 (converters registers <id:...>)

websocket_urlpatterns = [
    path("ws/runs/<id:run_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/clusters/<id:cluster_id>/", consumers.ClusterConsumer.as_asgi()),
    path("ws/home/", consumers.HomeConsumer.as_asgi()),
    path("ws/approvals/", consumers.ApprovalsConsumer.as_asgi()),
    # Last: any other path is closed as not found, instead of Channels
    # raising "No route found" and the handshake ending without an answer.
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
