from django.urls import path

from . import converters, views, views_clusters, views_records, views_rehearsal  # noqa: F401 (converters registers <id:...>)
from . import views_webhooks

urlpatterns = [
    path("", views.home, name="home"),
    path("clusters/add/", views_clusters.cluster_add, name="cluster-add"),
    path("clusters/<id:cluster_id>/", views.cluster_detail, name="cluster-detail"),
    path("clusters/<id:cluster_id>/hosts/add/", views_clusters.cluster_hosts_add, name="cluster-hosts-add"),
    path("clusters/<id:cluster_id>/setup/", views_clusters.cluster_setup, name="cluster-setup"),
    path("clusters/<id:cluster_id>/doctor/", views_clusters.cluster_doctor, name="cluster-doctor"),
    path("clusters/<id:cluster_id>/edit/", views_clusters.cluster_edit, name="cluster-edit"),
    path("clusters/<id:cluster_id>/remove/", views_clusters.cluster_remove, name="cluster-remove"),
    path("clusters/<id:cluster_id>/live/", views.cluster_live, name="cluster-live"),
    path("clusters/<id:cluster_id>/backups/<id:backup_id>/", views.engine_backup, name="engine-backup"),
    path("clusters/<id:cluster_id>/runbooks/<slug:slug>/", views.launch_runbook, name="runbook-launch"),
    path("clusters/<id:cluster_id>/runbooks/<slug:slug>/rehearse/", views_rehearsal.rehearse, name="runbook-rehearse"),
    path("rehearsals/<id:rehearsal_id>/", views_rehearsal.rehearsal_detail, name="rehearsal-detail"),
    path("hosts/<id:host_id>/diagnostic/", views.start_diagnostic, name="start-diagnostic"),
    path("hosts/<id:host_id>/host-key/", views.host_key, name="host-key"),
    path("runs/<id:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<id:run_id>/live/", views.run_live, name="run-live"),
    path("runs/<id:run_id>/log.txt", views.run_log, name="run-log"),
    path("runs/<id:run_id>/steps/<id:step_id>/log.txt", views.step_log, name="step-log"),
    path("history/", views_records.run_history, name="run-history"),
    path("approvals/", views_records.pending_approvals, name="approvals"),
    path("approvals/count/", views_records.approvals_count, name="approvals-count"),
    path("audit/", views_records.audit_page, name="audit"),
    path("audit/export.csv", views_records.audit_export_csv, name="audit-export-csv"),
    path("webhooks/", views_webhooks.webhook_list, name="webhooks"),
    path("webhooks/<id:webhook_id>/", views_webhooks.webhook_detail, name="webhook-detail"),
    path("webhooks/<id:webhook_id>/delete/", views_webhooks.webhook_delete, name="webhook-delete"),
    path("webhooks/<id:webhook_id>/deliveries/<id:delivery_id>/resend/", views_webhooks.delivery_resend,
         name="webhook-delivery-resend"),
    path("audit/export.json", views_records.audit_export_json, name="audit-export-json"),
]
# One route per action, so each has its own name (and the fuzz test finds each).
urlpatterns += [path(f"runs/<id:run_id>/{action}/", views.run_action, {"action": action}, name=f"run-{action}")
                for action in views.RUN_ACTIONS]
urlpatterns += [path(f"runs/<id:run_id>/steps/<id:step_id>/{action}/", views.step_action, {"action": action},
                     name=f"step-{action}") for action in views.STEP_ACTIONS]
urlpatterns += [
    path("clusters/<id:cluster_id>/scores.json", views.cluster_scores, name="cluster-scores"),
    path("clusters/<id:cluster_id>/card/", views.cluster_card, name="cluster-card"),
    path("cards/", views.home_cards, name="home-cards"),
    path("recent-runs/", views.home_runs, name="home-runs"),
]
