"""What the API answers and accepts. Output serializers only shape rows the
services and models give; input ones check types and lengths (the services
check everything else, as for the pages)."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..forms import TEXT_LIMIT
from ..models import RUN_ADVANCING, RunStatus, StepStatus
from .tokens import MAX_DAYS, NAME_MAX


class HostSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    address = serializers.CharField()
    ssh_port = serializers.IntegerField()
    ssh_user = serializers.CharField()
    he_host_id = serializers.IntegerField(allow_null=True)
    os_release = serializers.CharField()
    ha_state = serializers.CharField()
    ha_score = serializers.IntegerField(allow_null=True)
    ha_live = serializers.BooleanField()
    local_maintenance = serializers.BooleanField()
    engine_vm_here = serializers.BooleanField()
    ha_seen_at = serializers.DateTimeField(allow_null=True)
    cluster = serializers.IntegerField(source="cluster_id")


class ClusterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    engine_url = serializers.CharField()
    compatibility_version = serializers.CharField()
    detected_release = serializers.CharField()
    maintenance_mode = serializers.CharField()
    poll_interval = serializers.FloatField()
    polled_at = serializers.DateTimeField(allow_null=True)
    poll_error = serializers.CharField()
    created_at = serializers.DateTimeField()


class ClusterDetailSerializer(ClusterSerializer):
    hosts = HostSerializer(many=True, source="hosts.all")


class HostHaSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    score = serializers.IntegerField(allow_null=True)
    live = serializers.BooleanField()
    local_maintenance = serializers.BooleanField()
    engine_vm_here = serializers.BooleanField()
    seen_at = serializers.CharField(allow_null=True)
    data_at = serializers.CharField(allow_null=True)


class HaStateSerializer(serializers.Serializer):
    """The cluster page's live HA state, as its websocket sends it (upgrades.ha.cluster_payload)."""
    cluster = serializers.IntegerField()
    maintenance_mode = serializers.CharField()
    polled_at = serializers.CharField(allow_null=True)
    poll_error = serializers.CharField()
    hosts = HostHaSerializer(many=True)
    version = serializers.CharField()


class ScoreSeriesSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    score = serializers.ListField(child=serializers.IntegerField(allow_null=True))


class ScoresSerializer(serializers.Serializer):
    """Each host's lowest score per interval (upgrades.charts.score_history), times in Unix seconds."""
    range = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    step = serializers.IntegerField()
    x = serializers.ListField(child=serializers.IntegerField())
    hosts = ScoreSeriesSerializer(many=True)
    marks = serializers.ListField(child=serializers.DictField())
    runs = serializers.ListField(child=serializers.DictField())
    full_score = serializers.IntegerField()


class ParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.CharField()
    required = serializers.BooleanField()
    pattern = serializers.CharField()
    pattern_help = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())
    default = serializers.JSONField(allow_null=True)
    help = serializers.CharField()


class RunbookSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    scope = serializers.CharField()
    emergency = serializers.BooleanField()
    params = ParamSerializer(many=True)


class CheckSerializer(serializers.Serializer):
    check = serializers.CharField()
    level = serializers.ChoiceField(choices=["ok", "warning", "inhibitor"])
    message = serializers.CharField()
    remedy = serializers.DictField(allow_null=True, required=False)


class PlannedStepSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField()
    command = serializers.CharField()
    host = serializers.CharField(source="host.name", allow_null=True, default=None)
    changes = serializers.BooleanField()
    rerun_safe = serializers.BooleanField()


class PlanSerializer(serializers.Serializer):
    """A plan: what would run, and the preflight now; nothing was started."""
    cluster = serializers.IntegerField(source="cluster.pk")
    runbook = serializers.CharField(source="runbook.slug")
    params = serializers.DictField()
    steps = PlannedStepSerializer(many=True)
    checks = CheckSerializer(many=True)
    notes = serializers.ListField(child=serializers.CharField())
    startable = serializers.BooleanField(help_text="No inhibitor: a start would be accepted (warnings acknowledged).")
    needs_acknowledge = serializers.BooleanField(help_text="There are warnings: start with acknowledge=true.")
    approvals_required = serializers.IntegerField()


class StepSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    order = serializers.IntegerField()
    key = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField(source="action")
    command = serializers.CharField()
    host = serializers.CharField(source="host.name", allow_null=True, default=None)
    status = serializers.ChoiceField(choices=StepStatus.choices)
    changes = serializers.BooleanField()
    exit_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    note = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    last_seq = serializers.IntegerField(help_text="The step's last stored output line: a cursor at it has all.")


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cluster = serializers.IntegerField(source="cluster_id")
    runbook = serializers.CharField(source="runbook.slug")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    params = serializers.DictField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    pause_requested = serializers.BooleanField()
    cancel_requested = serializers.BooleanField()
    emergency = serializers.BooleanField()
    hold_reason = serializers.CharField()
    approvals_required = serializers.IntegerField()
    approval_expires_at = serializers.DateTimeField(allow_null=True)
    queued = serializers.SerializerMethodField(help_text="False while it should be queued and the queue is "
                                                         "unreachable (it is queued once the queue answers).")

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_queued(self, run):
        return not (run.status in RUN_ADVANCING and run.queued_at is None)


class RunDetailSerializer(RunSerializer):
    steps = StepSerializer(many=True)
    actions = serializers.ListField(child=serializers.CharField(),
                                    help_text="What you may do now (a guide: the action itself decides).")
    preflight = serializers.DictField()


class OutputLineSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    seq = serializers.IntegerField()
    stream = serializers.CharField()
    text = serializers.CharField(allow_blank=True)


class RunOutputSerializer(serializers.Serializer):
    lines = OutputLineSerializer(many=True)
    after = serializers.CharField(help_text="The cursor for the next call (?after=), the websocket's format.")
    more = serializers.BooleanField(help_text="More lines are stored already: call again at once.")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    ended = serializers.BooleanField(help_text="The run ended and every line was given: stop following.")


class StepOutputSerializer(serializers.Serializer):
    lines = OutputLineSerializer(many=True)
    after = serializers.IntegerField(help_text="The cursor for the next call (?after=).")
    more = serializers.BooleanField()
    status = serializers.ChoiceField(choices=StepStatus.choices)


class ApprovalRequestSerializer(serializers.Serializer):
    run = RunSerializer()
    step = serializers.IntegerField(allow_null=True, help_text="The approval step; null: the run's start.")
    needed = serializers.IntegerField()
    given = serializers.IntegerField()
    expires_at = serializers.DateTimeField(allow_null=True)


class AuditEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name")
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    target = serializers.CharField(source="target_repr")
    cluster = serializers.IntegerField(source="cluster_ref", allow_null=True)
    run = serializers.IntegerField(source="run_ref", allow_null=True)
    details = serializers.DictField()
    hash = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


# Input -------------------------------------------------------------------------

class PlanInput(serializers.Serializer):
    params = serializers.DictField(required=False, default=dict,
                                   help_text="The runbook's parameters by name (GET /api/v1/runbooks/ lists them).")


class StartInput(PlanInput):
    cluster = serializers.IntegerField(min_value=1)
    runbook = serializers.SlugField(max_length=50)
    acknowledge = serializers.BooleanField(required=False, default=False,
                                           help_text="Start although the plan has warnings.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=TEXT_LIMIT)


class ActionInput(serializers.Serializer):
    """What a person may write with an action; each action reads the fields it takes."""
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=TEXT_LIMIT)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=TEXT_LIMIT)
    acknowledge = serializers.BooleanField(
        required=False, default=False, help_text="resume, retry: go on although an emergency action paused the run.")


class TokenInput(serializers.Serializer):
    """Types only: the name and the days are checked by ``tokens.create_token``, for the page too."""
    name = serializers.CharField(allow_blank=True, help_text=f"What it is for (at most {NAME_MAX} characters).")
    expires_in_days = serializers.IntegerField(required=False, allow_null=True, default=None,
                                               help_text=f"1 to {MAX_DAYS}; null: it never expires.")


# Administration: clusters, hosts and host keys, engine backups, webhooks ----------------------

class EngineCaSerializer(serializers.Serializer):
    """The engine's CA as step 1 of adding a cluster shows it, to compare before trusting it."""
    fingerprint = serializers.CharField(help_text="SHA-256 of the certificate (AA:BB:...), as openssl prints it.")
    subject = serializers.CharField()
    not_after = serializers.CharField()
    pem = serializers.CharField()
    ca_url = serializers.CharField(help_text="Where the portal read it (TLS not checked: nothing to check it with).")
    compare_with = serializers.CharField(help_text="The command that prints the same fingerprint on the engine VM.")


class EngineCaInput(serializers.Serializer):
    engine_url = serializers.CharField(max_length=500, help_text="https://ENGINE (the engine VM's name).")
    ca_pem = serializers.CharField(required=False, allow_blank=True, default="", max_length=70000,
                                   help_text="The engine's CA, pasted; empty: read from the engine.")


class ClusterInput(EngineCaInput):
    name = serializers.CharField(max_length=200, allow_blank=True)
    username = serializers.CharField(required=False, default="admin@internal", max_length=200)
    password = serializers.CharField(max_length=1000, trim_whitespace=False, write_only=True)
    ca_fingerprint = serializers.CharField(max_length=200, help_text=(
        "The CA's fingerprint you compared with the engine's own (POST /api/v1/clusters/ca/ shows it): "
        "the CA is trusted only when it is this one."))
    poll_interval = serializers.FloatField(required=False, allow_null=True, default=None,
                                           help_text="Seconds between polls; null: the default.")


class ClusterEditInput(serializers.Serializer):
    password = serializers.CharField(required=False, max_length=1000, trim_whitespace=False, write_only=True,
                                     help_text="A new engine password: stored once the engine accepts it.")
    poll_interval = serializers.FloatField(required=False, allow_null=True, default=None)


class ClusterChangedSerializer(ClusterSerializer):
    changed = serializers.ListField(child=serializers.CharField(), help_text="What this call changed.")


class ClusterRemoveInput(serializers.Serializer):
    confirm_name = serializers.CharField(max_length=200, help_text="The cluster's name, typed to confirm.")


class HostEntryInput(serializers.Serializer):
    """One host as the hand-entry form takes it (NAME ADDRESS [PORT] [USER])."""
    name = serializers.CharField(max_length=255)
    address = serializers.CharField(max_length=255)
    port = serializers.IntegerField(required=False, default=22)
    ssh_user = serializers.CharField(required=False, default="root", max_length=32)


class HostsInput(serializers.Serializer):
    hosts = HostEntryInput(many=True, allow_empty=False)


class PinnedKeySerializer(serializers.Serializer):
    key_type = serializers.CharField()
    fingerprint = serializers.CharField()


class HostKeySerializer(serializers.Serializer):
    """What the host key page shows: the key the host offers now, and the keys pinned."""
    host = serializers.IntegerField()
    offered = serializers.DictField(allow_null=True, help_text=(
        "{known_hosts_line, fingerprint} the host offers now; null when it did not answer (see error). "
        "Compare the fingerprint with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then "
        "POST the line to pin it."))
    pinned = PinnedKeySerializer(many=True)
    already_pinned = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)


class HostKeyInput(serializers.Serializer):
    known_hosts_line = serializers.CharField(max_length=20000, help_text="The reviewed line, as offered.")


class SetupHostSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="host.pk")
    name = serializers.CharField(source="host.name")
    command = serializers.CharField(help_text="Run as root on the host: authorises the portal's key for its SSH user.")
    pinned = PinnedKeySerializer(many=True, help_text="The host keys pinned (review and pin: hosts/{id}/host-key/).")


class SetupSerializer(serializers.Serializer):
    """What the set-up page shows: the portal's key and how to authorise it on each host."""
    public_key = serializers.CharField()
    key_fingerprint = serializers.CharField()
    hosts = SetupHostSerializer(many=True)


class ConnectionCheckSerializer(serializers.Serializer):
    """A connection check ("doctor", upgrades/doctor.py) as its page shows it."""
    id = serializers.IntegerField()
    cluster = serializers.IntegerField(source="cluster_id")
    status = serializers.CharField(help_text="queued, running, passed, failed (upgrades.models.CheckStatus).")
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    results = serializers.ListField(child=serializers.DictField(), help_text=(
        "[{host, checks: [{key, title, outcome (ok, warn, fail, skipped), detail, fix}]}]"))
    error = serializers.CharField(allow_blank=True)
    first_poll = serializers.CharField(allow_blank=True)


class EngineBackupSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cluster = serializers.IntegerField(source="cluster_id")
    run = serializers.IntegerField(source="run_id", allow_null=True)
    file_name = serializers.CharField()
    source_path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()


class WebhookSerializer(serializers.Serializer):
    """An endpoint; its secret is never shown again after the answer that set it."""
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    deliveries = serializers.SerializerMethodField(help_text="How many deliveries are pending, delivered, failed.")

    @extend_schema_field({"type": "object", "properties": {s: {"type": "integer"} for s in
                                                           ("pending", "delivered", "failed")}})
    def get_deliveries(self, hook):
        return {s: hook.deliveries.filter(status=s).count() for s in ("pending", "delivered", "failed")}


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Shown in this answer only: keep it now.")


class WebhookEditedSerializer(WebhookSerializer):
    secret = serializers.CharField(required=False,
                                   help_text="Only when this call replaced the secret: shown this once.")


class WebhookInput(serializers.Serializer):
    """Types only: services.webhooks.check checks the values, for the page too."""
    url = serializers.CharField(max_length=2000, allow_blank=True)
    events = serializers.ListField(child=serializers.CharField(max_length=50), max_length=20)
    secret = serializers.CharField(required=False, allow_blank=True, max_length=1000, write_only=True,
                                   trim_whitespace=False,
                                   help_text="At least 16 characters; empty or left out: the portal makes one.")


class WebhookEditInput(serializers.Serializer):
    url = serializers.CharField(required=False, max_length=2000, allow_blank=True)
    events = serializers.ListField(required=False, child=serializers.CharField(max_length=50), max_length=20)
    active = serializers.BooleanField(required=False)
    secret = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=1000,
                                   write_only=True, trim_whitespace=False, help_text=(
                                       "Replace the secret: a new one of at least 16 characters, or empty for "
                                       "one the portal makes (shown in this answer only). Left out: kept."))


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.CharField()
    run = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_run(self, delivery):
        run = (delivery.payload or {}).get("run") or {}
        return run.get("id")
