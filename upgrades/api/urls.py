"""/api/v1/: every route named ``api-…`` (tests/test_api_roles.py reads them from here)."""
from django.urls import path

from .. import converters  # noqa: F401 (registers <id:...>)
from ..views import RUN_ACTIONS, STEP_ACTIONS
from . import admin_views, token_views, views

urlpatterns = [
    path("schema/", views.Schema.as_view(), name="api-schema"),
    path("me/", views.Me.as_view(), name="api-me"),
    path("tokens/", token_views.TokenList.as_view(), name="api-tokens"),
    path("tokens/<id:token_id>/revoke/", token_views.TokenRevoke.as_view(), name="api-token-revoke"),
    path("clusters/", admin_views.ClusterList.as_view(), name="api-clusters"),
    path("clusters/<id:cluster_id>/", admin_views.ClusterDetail.as_view(), name="api-cluster"),
    path("clusters/<id:cluster_id>/ha/", views.ClusterHa.as_view(), name="api-cluster-ha"),
    path("clusters/<id:cluster_id>/scores/", views.ClusterScores.as_view(), name="api-cluster-scores"),
    path("clusters/<id:cluster_id>/runbooks/<slug:slug>/plan/", views.PlanView.as_view(), name="api-plan"),
    path("hosts/<id:host_id>/", admin_views.HostDetail.as_view(), name="api-host"),
    path("clusters/ca/", admin_views.ClusterCa.as_view(), name="api-cluster-ca"),
    path("clusters/<id:cluster_id>/remove/", admin_views.ClusterRemove.as_view(), name="api-cluster-remove"),
    path("clusters/<id:cluster_id>/hosts/", admin_views.ClusterHosts.as_view(), name="api-cluster-hosts"),
    path("clusters/<id:cluster_id>/setup/", admin_views.ClusterSetup.as_view(), name="api-cluster-setup"),
    path("clusters/<id:cluster_id>/check/", admin_views.ClusterCheck.as_view(), name="api-cluster-check"),
    path("clusters/<id:cluster_id>/backups/", admin_views.BackupList.as_view(), name="api-cluster-backups"),
    path("clusters/<id:cluster_id>/backups/<id:backup_id>/", admin_views.BackupDownload.as_view(),
         name="api-cluster-backup"),
    path("hosts/<id:host_id>/host-key/", admin_views.HostKey.as_view(), name="api-host-key"),
    path("webhooks/", admin_views.WebhookList.as_view(), name="api-webhooks"),
    path("webhooks/<id:webhook_id>/", admin_views.WebhookDetail.as_view(), name="api-webhook"),
    path("webhooks/<id:webhook_id>/deliveries/", admin_views.DeliveryList.as_view(), name="api-webhook-deliveries"),
    path("webhooks/<id:webhook_id>/deliveries/<id:delivery_id>/resend/", admin_views.DeliveryResend.as_view(),
         name="api-webhook-delivery-resend"),
    path("runbooks/", views.RunbookList.as_view(), name="api-runbooks"),
    path("runbooks/<slug:slug>/", views.RunbookDetail.as_view(), name="api-runbook"),
    path("runs/", views.RunList.as_view(), name="api-runs"),
    path("runs/<id:run_id>/", views.RunDetail.as_view(), name="api-run"),
    path("runs/<id:run_id>/output/", views.RunOutput.as_view(), name="api-run-output"),
    path("runs/<id:run_id>/log/", views.RunLog.as_view(), name="api-run-log"),
    path("runs/<id:run_id>/steps/<id:step_id>/output/", views.StepOutputView.as_view(), name="api-step-output"),
    path("approvals/", views.ApprovalList.as_view(), name="api-approvals"),
    path("audit/", views.AuditList.as_view(), name="api-audit"),
    path("audit/export.csv", views.AuditExport.as_view(export="csv"), name="api-audit-export-csv"),
    path("audit/export.json", views.AuditExport.as_view(export="json"), name="api-audit-export-json"),
]
# One route per action, as the pages have (upgrades/urls.py): the same table of services.
urlpatterns += [path(f"runs/<id:run_id>/{action}/", views.RunAction.as_view(action=action),
                     name=f"api-run-{action}") for action in RUN_ACTIONS]
urlpatterns += [path(f"runs/<id:run_id>/steps/<id:step_id>/{action}/", views.StepAction.as_view(action=action),
                     name=f"api-step-{action}") for action in STEP_ACTIONS]
