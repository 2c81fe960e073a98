"""/api/v1/: every route named ``api-…`` (tests/test_api_roles.py reads them from here)."""
from django.urls import path

from .. import converters  # noqa: F401 (registers <id:...>)
from ..views import RUN_ACTIONS, STEP_ACTIONS
from . import token_views, views

urlpatterns = [
    path("schema/", views.Schema.as_view(), name="api-schema"),
    path("me/", views.Me.as_view(), name="api-me"),
    path("tokens/", token_views.TokenList.as_view(), name="api-tokens"),
    path("tokens/<id:token_id>/revoke/", token_views.TokenRevoke.as_view(), name="api-token-revoke"),
    path("clusters/", views.ClusterList.as_view(), name="api-clusters"),
    path("clusters/<id:cluster_id>/", views.ClusterDetail.as_view(), name="api-cluster"),
    path("clusters/<id:cluster_id>/ha/", views.ClusterHa.as_view(), name="api-cluster-ha"),
    path("clusters/<id:cluster_id>/scores/", views.ClusterScores.as_view(), name="api-cluster-scores"),
    path("clusters/<id:cluster_id>/runbooks/<slug:slug>/plan/", views.PlanView.as_view(), name="api-plan"),
    path("hosts/<id:host_id>/", views.HostDetail.as_view(), name="api-host"),
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
