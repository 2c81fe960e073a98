from django.urls import path

from . import converters, views  # noqa: F401 (converters registers <id:...>)

urlpatterns = [
    path("", views.home, name="home"),
    path("clusters/<id:cluster_id>/", views.cluster_detail, name="cluster-detail"),
    path("hosts/<id:host_id>/diagnostic/", views.start_diagnostic, name="start-diagnostic"),
    path("hosts/<id:host_id>/host-key/", views.host_key, name="host-key"),
    path("runs/<id:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<id:run_id>/log.txt", views.run_log, name="run-log"),
    path("runs/<id:run_id>/steps/<id:step_id>/log.txt", views.step_log, name="step-log"),
]
