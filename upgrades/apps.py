from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "upgrades"

    def ready(self):
        from django.contrib.auth import signals

        from . import audit

        # Who logged in, out, or failed to, belongs in the audit trail too.
        signals.user_logged_in.connect(
            lambda sender, request, user, **kw: audit.record(user, "auth.login"), weak=False)
        signals.user_logged_out.connect(
            lambda sender, request, user, **kw: audit.record(user, "auth.logout"), weak=False)
        signals.user_login_failed.connect(
            lambda sender, credentials, **kw: audit.record(
                None, "auth.login_failed", username=str(credentials.get("username", ""))[:150]),
            weak=False)
