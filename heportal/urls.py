from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from upgrades.admin import view_on_site
from upgrades.directory import LoginForm
from upgrades.views_metrics import metrics

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Before the admin's own admin/r/ route, which it replaces (see view_on_site).
    path("admin/r/<path:content_type_id>/<path:object_id>/", admin.site.admin_view(view_on_site)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("upgrades.api.urls")),
    path("metrics", metrics, name="metrics"),  # Prometheus (docs/metrics.md)
    path("tokens/", include("upgrades.api.page_urls")),
    path("", include("upgrades.urls")),
]

# 403 and 500 use Django's handlers with templates/403.html and 500.html.
handler404 = "upgrades.errors.page_not_found"
