from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/clusters/<int:cluster_id>/", consumers.ClusterConsumer.as_asgi()),
]
