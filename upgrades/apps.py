import logging

from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "upgrades"

    def ready(self):
        from django.contrib.auth import get_user_model, signals
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from . import audit, events, permissions, sshkey
        from .models import DirectoryRole, RoleGrant

        # A user object keeps its roles once read (permissions._held): forget them
        # when they change through it (its groups, or a grant made with it).
        m2m_changed.connect(lambda instance, **kw: permissions.forget(instance),
                            sender=get_user_model().groups.through, weak=False)
        for signal in (post_save, post_delete):
            signal.connect(lambda instance, **kw: permissions.forget(
                instance.user if RoleGrant.user.is_cached(instance) else None), sender=RoleGrant, weak=False)
        # Open home pages of another process hold the clusters they may see: tell them.
        user_model = get_user_model()
        m2m_changed.connect(lambda instance, action, **kw: action.startswith("post_") and events.access_changed(
            instance.pk if isinstance(instance, user_model) else None), sender=user_model.groups.through, weak=False)
        for model in (RoleGrant, DirectoryRole):
            for signal in (post_save, post_delete):
                signal.connect(lambda instance, **kw: events.access_changed(instance.user_id), sender=model,
                               weak=False)
        post_save.connect(lambda instance, update_fields=None, **kw: None if update_fields == frozenset({"last_login"})
                          else events.access_changed(instance.pk), sender=user_model, weak=False)

        # Who logged in, out, or failed to, belongs in the audit trail too.
        signals.user_logged_in.connect(
            lambda sender, request, user, **kw: audit.record(user, "auth.login"), weak=False)
        signals.user_logged_out.connect(
            lambda sender, request, user, **kw: audit.record(user, "auth.logout"), weak=False)
        signals.user_login_failed.connect(
            lambda sender, credentials, **kw: audit.record(
                None, "auth.login_failed", username=str(credentials.get("username", ""))[:150]),
            weak=False)

        # The portal's own SSH key pair, made at first start (settings.SSH_KEY_FILE): the
        # set-up page shows its public half, and a shell's `manage.py runbook` finds it too.
        try:
            sshkey.ensure_key()
        except OSError as exc:
            logging.getLogger(__name__).warning("cannot make the portal's SSH key %s: %s",
                                                sshkey.key_path(), exc)
