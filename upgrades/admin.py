"""Admin: clusters, hosts and runbook kinds are edited here (audited); runs,
their output, approvals, HA samples and the audit trail are records and
stay read-only. Host keys are pinned only through the host-key review page."""
from django import forms
from django.contrib import admin

from . import audit
from .inventory import is_address
from .models import Approval, AuditEvent, Cluster, HaSample, Host, Runbook, RunStep, StepOutput, UpgradeRun


class AuditedAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        action = "change" if change else "add"
        audit.record(request.user, f"admin.{obj._meta.model_name}.{action}", obj, fields=form.changed_data)

    def delete_model(self, request, obj):
        audit.record(request.user, f"admin.{obj._meta.model_name}.delete", obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record(request.user, f"admin.{obj._meta.model_name}.delete", obj)
        super().delete_queryset(request, queryset)


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


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    list_display = ("name", "engine_url", "compatibility_version", "maintenance_mode", "polled_at")
    readonly_fields = ("maintenance_mode", "polled_at", "poll_error")
    inlines = [HostInline]

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects + [o for o, _ in formset.changed_objects]:
            audit.record(request.user, "admin.host.save", obj, cluster=form.instance.name)
        for obj in formset.deleted_objects:
            audit.record(request.user, "admin.host.delete", obj, cluster=form.instance.name)


@admin.register(Host)
class HostAdmin(AuditedAdmin):
    form = HostForm
    list_display = ("name", "cluster", "address", "ssh_port", "he_host_id", "ha_state", "ha_score")
    list_filter = ("cluster",)
    readonly_fields = ("known_hosts", "ha_state", "ha_score", "ha_live", "local_maintenance",
                       "engine_vm_here", "ha_seen_at")


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


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    list_display = ("run", "step", "user", "decision", "created_at")


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    list_display = ("created_at", "actor_name", "action", "target_repr")
    list_filter = ("action",)


@admin.register(HaSample)
class HaSampleAdmin(RecordAdmin):
    list_display = ("host", "at", "state", "score", "live")
    list_filter = ("host",)
