from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("clusters/<int:cluster_id>/", views.cluster_detail, name="cluster-detail"),
    path("hosts/<int:host_id>/diagnostic/", views.start_diagnostic, name="start-diagnostic"),
    path("hosts/<int:host_id>/host-key/", views.host_key, name="host-key"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/steps/<int:step_id>/log.txt", views.step_log, name="step-log"),
]
