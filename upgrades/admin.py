"""Admin: clusters, hosts and runbook kinds are edited here (audited); runs,
their output, approvals, HA samples and the audit trail are records and
stay read-only. Host keys are pinned only through the host-key review page."""
from functools import wraps
from importlib.util import find_spec

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from . import audit, permissions
from .inventory import is_address
from .models import (Approval, ApprovalPolicy, AuditEvent, Cluster, DirectoryRole, EngineBackup, HaSample, Host,
                     RoleGrant, Runbook, RunStep, StepOutput, UpgradeRun)

# The admin site is for global admins (group "admin" or superusers): the same rule as everywhere.
admin.site.has_permission = lambda request: request.user.is_active and permissions.is_global_admin(request.user)


class AuditedMixin:
    """Every save and delete in the admin is an audit event (which fields, never their secret values)."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        action = "change" if change else "add"
        audit.record(request.user, f"admin.{obj._meta.model_name}.{action}", obj, fields=form.changed_data)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for name in ("groups", "user_permissions", "permissions"):
            if name in form.changed_data:
                audit.record(request.user, f"admin.{form.instance._meta.model_name}.{name}", form.instance,
                             **{name: sorted(str(item) for item in form.cleaned_data[name])})

    def delete_model(self, request, obj):
        audit.record(request.user, f"admin.{obj._meta.model_name}.delete", obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record(request.user, f"admin.{obj._meta.model_name}.delete", obj)
        super().delete_queryset(request, queryset)


class AuditedAdmin(AuditedMixin, admin.ModelAdmin):
    pass


class RecordAdmin(admin.ModelAdmin):
    """Read-only: what happened is not edited after the fact."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class HostForm(forms.ModelForm):
    """The checks an inventory file gets, so the admin cannot save a host
    the portal could never connect to."""

    def clean_address(self):
        address = self.cleaned_data["address"].strip()
        if not is_address(address):
            raise forms.ValidationError("Not a host name or IP address.")
        return address

    def clean_ssh_port(self):
        port = self.cleaned_data["ssh_port"]
        if port is not None and not 1 <= port <= 65535:
            raise forms.ValidationError("An SSH port is 1-65535.")
        return port


class HostInline(admin.TabularInline):
    model = Host
    form = HostForm
    extra = 0
    fields = ("name", "address", "ssh_port", "he_host_id", "os_release", "ha_state", "ha_score")
    readonly_fields = ("ha_state", "ha_score")


class ClusterForm(forms.ModelForm):
    """The engine password is written here and never shown back: stored encrypted (upgrades.secrets)."""

    engine_password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; leave empty to keep the one stored. Used instead of the credentials reference.")
    forget_engine_password = forms.BooleanField(required=False, help_text="Remove the stored engine password.")

    class Meta:
        model = Cluster
        fields = "__all__"

    def save(self, commit=True):
        cluster = super().save(commit=False)
        if self.cleaned_data.get("forget_engine_password"):
            cluster.engine_password_encrypted = ""
        elif self.cleaned_data.get("engine_password"):
            cluster.set_engine_password(self.cleaned_data["engine_password"])
        if commit:
            cluster.save()
            self.save_m2m()
        return cluster


class RoleGrantInline(admin.TabularInline):
    model = RoleGrant
    extra = 0


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    form = ClusterForm
    list_display = ("name", "engine_url", "compatibility_version", "maintenance_mode", "polled_at")
    readonly_fields = ("maintenance_mode", "polled_at", "poll_error", "engine_health", "engine_health_ok",
                       "engine_health_at", "engine_password_stored")
    inlines = [HostInline, RoleGrantInline]

    @admin.display(boolean=True, description="engine password stored")
    def engine_password_stored(self, obj):
        return bool(obj.engine_password_encrypted)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects + [o for o, _ in formset.changed_objects]:
            audit.record(request.user, f"admin.{obj._meta.model_name}.save", obj, cluster=form.instance.name)
        for obj in formset.deleted_objects:
            audit.record(request.user, f"admin.{obj._meta.model_name}.delete", obj, cluster=form.instance.name)


@admin.register(Host)
class HostAdmin(AuditedAdmin):
    form = HostForm
    list_display = ("name", "cluster", "address", "ssh_port", "he_host_id", "ha_state", "ha_score")
    list_filter = ("cluster",)
    readonly_fields = ("known_hosts", "ha_state", "ha_score", "ha_live", "local_maintenance",
                       "engine_vm_here", "ha_seen_at", "ha_host_ts", "ha_data_at")


@admin.register(Runbook)
class RunbookAdmin(AuditedAdmin):
    list_display = ("slug", "name")


class RunStepInline(admin.TabularInline):
    model = RunStep
    extra = 0
    fields = ("order", "key", "host", "title", "status", "exit_code")
    readonly_fields = fields
    can_delete = False


@admin.register(UpgradeRun)
class UpgradeRunAdmin(RecordAdmin):
    list_display = ("id", "runbook", "cluster", "requested_by", "status", "created_at")
    list_filter = ("status", "runbook")
    inlines = [RunStepInline]


@admin.register(RunStep)
class RunStepAdmin(RecordAdmin):
    list_display = ("run", "order", "title", "host", "status", "exit_code")


@admin.register(StepOutput)
class StepOutputAdmin(RecordAdmin):
    list_display = ("step", "seq", "stream", "text")


@admin.register(EngineBackup)
class EngineBackupAdmin(RecordAdmin):
    list_display = ("file_name", "cluster", "run", "size", "sha256", "created_at")
    list_filter = ("cluster",)


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    list_display = ("run", "step", "user", "decision", "created_at")


@admin.register(RoleGrant)
class RoleGrantAdmin(AuditedAdmin):
    list_display = ("user", "cluster", "role")
    list_filter = ("role", "cluster")


@admin.register(DirectoryRole)
class DirectoryRoleAdmin(RecordAdmin):
    """Roles the directory's groups give (LDAP_ROLE_MAP): changed in the directory, not here."""

    list_display = ("user", "cluster", "role", "group_dn")
    list_filter = ("role", "cluster")


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(AuditedAdmin):
    list_display = ("__str__", "before_start", "approvers", "expiry_hours", "rehearsal_hours")


admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class AuditedUserAdmin(AuditedMixin, UserAdmin):
    """Users and their global roles (groups); changes are audited (never the password)."""


@admin.register(Group)
class AuditedGroupAdmin(AuditedMixin, GroupAdmin):
    pass


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    list_display = ("seq", "created_at", "actor_name", "client_address", "action", "target_repr")
    list_filter = ("action",)


@admin.register(HaSample)
class HaSampleAdmin(RecordAdmin):
    list_display = ("host", "at", "state", "score", "live")
    list_filter = ("host",)


def _unknown_is_not_found(view):
    """django_rq's dashboard answers with a 500 where it should say "not found":
    an unknown queue index (IndexError), job (NoSuchJobError) or worker key
    (ValueError, a bare assert), scheduler pages without rq_scheduler; and
    its open stats.json/<token>/ does on a non-ASCII token (compare_digest).
    For staff those are 404s; others fall through to the view's own login check."""
    from django.http import Http404
    from django_rq.queues import get_queue_by_index, get_queues_list
    from rq.exceptions import NoSuchJobError
    from rq.worker import Worker

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not (kwargs.get("token") or "").isascii():
            # stats.json/<token>/ is open to anyone; compare_digest raises on non-ASCII.
            raise PermissionDenied("Not a valid RQ API token.")
        if not (request.user.is_active and request.user.is_staff):
            return view(request, *args, **kwargs)
        for key in ("queue_index", "scheduler_index"):
            if key in kwargs and not 0 <= kwargs[key] < len(get_queues_list()):
                raise Http404(f"There is no RQ queue #{kwargs[key]}.")
        if "scheduler_index" in kwargs and find_spec("rq_scheduler") is None:
            raise Http404("The RQ scheduler is not installed.")
        if "key" in kwargs:
            connection = get_queue_by_index(kwargs["queue_index"]).connection
            prefix = Worker.redis_worker_namespace_prefix
            if not kwargs["key"].startswith(prefix) or not Worker.find_by_key(kwargs["key"], connection=connection):
                raise Http404("There is no such RQ worker.")
        try:
            return view(request, *args, **kwargs)
        except NoSuchJobError:
            raise Http404("There is no such RQ job.") from None

    return guarded


def _guard_rq_dashboard():
    """Re-register django_rq's admin dashboard (when it is shown) with every view
    guarded, and without the ModelAdmin's object views: its model has no table,
    so /admin/django_rq/dashboard/1/change/ was a 500."""
    from django.urls import URLPattern
    from django_rq.admin import QueueAdmin
    from django_rq.models import Dashboard

    if not admin.site.is_registered(Dashboard):
        return

    class GuardedQueueAdmin(QueueAdmin):
        def get_urls(self):
            urls = super().get_urls()
            # QueueAdmin puts its own views first and the ModelAdmin's last.
            own = urls[:len(urls) - len(admin.ModelAdmin.get_urls(self))]
            return [URLPattern(url.pattern, _unknown_is_not_found(url.callback), url.default_args, url.name)
                    for url in own]

    admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, GuardedQueueAdmin)


_guard_rq_dashboard()


def view_on_site(request, content_type_id, object_id):
    """The admin's "view on site" redirect (admin/r/...). Django's looks the
    object up before asking whether its model has a page, and for django_rq's
    table-less dashboard model that lookup is a 500. None of our models has a
    page, so a model without one is a 404 at once."""
    from django.contrib.contenttypes.models import ContentType
    from django.contrib.contenttypes.views import shortcut
    from django.http import Http404

    from .converters import parse_id

    pk = parse_id(content_type_id)
    content_type = ContentType.objects.filter(pk=pk).first() if pk is not None else None
    model = content_type.model_class() if content_type else None
    if model is None or not model._meta.managed or not hasattr(model, "get_absolute_url"):
        raise Http404("That object has no page to view.")
    return shortcut(request, content_type_id, object_id)
