from django.contrib import admin

from .models import Approval, AuditEvent, Cluster, HaSample, Host, Runbook, RunStep, StepOutput, UpgradeRun


class HostInline(admin.TabularInline):
    model = Host
    extra = 0
    fields = ("name", "address", "ssh_port", "he_host_id", "os_release", "ha_state", "ha_score")


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "engine_url", "compatibility_version", "maintenance_mode")
    inlines = [HostInline]


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "address", "ssh_port", "he_host_id", "ha_state", "ha_score")
    list_filter = ("cluster",)


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ("slug", "name")


class RunStepInline(admin.TabularInline):
    model = RunStep
    extra = 0
    fields = ("order", "key", "host", "title", "status", "exit_code")
    readonly_fields = fields


@admin.register(UpgradeRun)
class UpgradeRunAdmin(admin.ModelAdmin):
    list_display = ("id", "runbook", "cluster", "requested_by", "status", "created_at")
    list_filter = ("status", "runbook")
    inlines = [RunStepInline]


@admin.register(RunStep)
class RunStepAdmin(admin.ModelAdmin):
    list_display = ("run", "order", "title", "host", "status", "exit_code")


@admin.register(StepOutput)
class StepOutputAdmin(admin.ModelAdmin):
    list_display = ("step", "seq", "stream", "text")


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "user", "decision", "created_at")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only."""

    list_display = ("created_at", "actor_name", "action", "target_repr")
    list_filter = ("action",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HaSample)
class HaSampleAdmin(admin.ModelAdmin):
    list_display = ("host", "at", "state", "score", "live")
    list_filter = ("host",)
