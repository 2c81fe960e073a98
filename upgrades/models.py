"""Clusters, hosts, runs and their records.

Models hold fields, choices and named queries; state changes go through
``upgrades.services`` so each one is audited in one place.
"""
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models


class MaintenanceMode(models.TextChoices):
    NONE = "none", "None"
    GLOBAL = "global", "Global"
    LOCAL = "local", "Local"
    UNKNOWN = "unknown", "Unknown"


class ClusterQuerySet(models.QuerySet):
    def in_service(self):
        """The clusters the portal manages: not removed, not a rehearsal's twin."""
        return self.filter(removed_at__isnull=True, twin_of__isnull=True)


class Cluster(models.Model):
    name = models.CharField(max_length=100, unique=True)
    engine_url = models.URLField(
        "engine API URL", max_length=300, blank=True,
        help_text="e.g. https://engine.example.com/ovirt-engine/api",
    )
    engine_username = models.CharField(max_length=100, default="admin@internal")
    credentials_ref = models.CharField(
        "credentials reference", max_length=300, blank=True,
        help_text="Where the engine password lives: env:VARIABLE or file:/path (never the password itself).",
    )
    # The engine password kept by the portal, Fernet-encrypted (upgrades.secrets);
    # used instead of credentials_ref when set. Never rendered back.
    engine_password_encrypted = models.TextField(blank=True, editable=False)
    engine_ca_file = models.CharField("engine CA file", max_length=300, blank=True)
    compatibility_version = models.CharField(max_length=20, blank=True)
    # The engine VM over SSH, for steps that run inside it (engine-backup, engine-setup).
    engine_vm_name = models.CharField("engine VM name", max_length=255, blank=True)
    engine_vm_address = models.CharField("engine VM address", max_length=255, blank=True)
    engine_vm_port = models.PositiveIntegerField("engine VM SSH port", default=22)
    engine_vm_user = models.CharField("engine VM SSH user", max_length=64, default="root")
    engine_vm_known_hosts = models.TextField(
        "engine VM known_hosts", blank=True, help_text="Pinned OpenSSH known_hosts line(s) of the engine VM.")
    maintenance_mode = models.CharField(
        max_length=10, choices=MaintenanceMode.choices, default=MaintenanceMode.UNKNOWN,
        help_text="Global hosted-engine maintenance as last seen by the poller.",
    )
    poll_interval = models.FloatField(
        "HA poll interval (s)", default=10.0,
        help_text="How often the poller reads hosted-engine --vm-status; the HA agents' own cycle is 10 s.",
    )
    polled_at = models.DateTimeField(null=True, blank=True)
    poll_error = models.TextField(blank=True)
    detected_release = models.CharField(
        max_length=200, blank=True,
        help_text="The oVirt release the HA poller found on the hosts (docs/vm-status.md).",
    )
    # The engine's view (upgrades.engine_view), read by the HA poller less often than
    # vm-status: {"api": "v4"|"v3", "cluster": {...}, "hosts": {name: {...}}, "engine_vm": ...},
    # each part with the time it was read; kept when a read fails (the error says why).
    engine_view = models.JSONField(default=dict, blank=True)
    engine_view_at = models.DateTimeField(null=True, blank=True)
    engine_view_error = models.TextField(blank=True)
    # Pending updates per host and in the engine VM (``upgrades.packages``), read by the
    # HA poller every PACKAGES_POLL_SECONDS: {"machines": {name: {...}}}; never read while
    # packages_read_at is None.
    packages = models.JSONField(default=dict, blank=True, editable=False)
    packages_read_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The engine's own health page (/ovirt-engine/services/health, what HA's liveliness
    # check reads), asked by the poller while the HA data cannot say whether the engine
    # VM runs: "" never asked, else what it answered; and when.
    engine_health = models.CharField(max_length=300, blank=True)
    engine_health_ok = models.BooleanField(default=False)
    engine_health_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Removed by an admin (upgrades.services.clusters.remove_cluster): no longer polled or
    # shown on the home page, its name free again; its runs and audit stay readable.
    removed_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ClusterQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def set_engine_password(self, password):
        from . import secrets

        self.engine_password_encrypted = secrets.encrypt(password)

    def engine_password(self):
        """The stored engine password, decrypted; "" when the portal keeps none."""
        from . import secrets

        return secrets.decrypt(self.engine_password_encrypted)


class Host(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="hosts")
    name = models.CharField(max_length=255)
    address = models.CharField(max_length=255)
    ssh_port = models.PositiveIntegerField(default=22)
    ssh_user = models.CharField(max_length=64, default="root")
    known_hosts = models.TextField(
        blank=True, help_text="Pinned OpenSSH known_hosts line(s); an unknown key is refused.",
    )
    he_host_id = models.PositiveIntegerField("HE host id", null=True, blank=True)
    os_release = models.CharField(max_length=100, blank=True)
    ha_state = models.CharField("HA agent state", max_length=40, blank=True)
    ha_score = models.IntegerField("HA score", null=True, blank=True)
    ha_live = models.BooleanField("HA data up to date", default=False)
    local_maintenance = models.BooleanField(default=False)
    engine_vm_here = models.BooleanField(default=False)
    ha_seen_at = models.DateTimeField(null=True, blank=True)  # the last poll that listed the host
    # The host's own metadata timestamp (vm-status host-ts) last read, and when the
    # poller saw it change: the age of the host's own data, which grows while its
    # agent is dead even though every poll lists its (old) block.
    ha_host_ts = models.BigIntegerField("HA metadata timestamp", null=True, blank=True)
    ha_data_at = models.DateTimeField("HA data changed", null=True, blank=True)

    class Meta:
        ordering = ["cluster", "he_host_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="host_unique_name_in_cluster"),
        ]

    def __str__(self):
        return self.name


class Runbook(models.Model):
    """A kind of procedure; its steps are code in ``upgrades.runbooks``."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)

    def __str__(self):
        return self.name


# Statuses: the value is for code and URLs, the label is what people read
# (pages, websocket payloads, the CLI), lower case as it sits in a sentence.
class RunStatus(models.TextChoices):
    PENDING = "pending", "pending"
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    RUNNING = "running", "running"
    WAITING = "waiting", "waiting for a person"
    PAUSED = "paused", "paused"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"
    INTERRUPTED = "interrupted", "interrupted"


# A cluster has at most one procedure in these states, and at most one run of the
# emergency lane (the maintenance modes and the diagnostic; two database constraints).
# Failed and interrupted runs can be resumed, but hold no lock meanwhile:
# resuming one takes the lock again, or is refused while another run holds it.
RUN_ACTIVE = (RunStatus.PENDING, RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING, RunStatus.WAITING,
              RunStatus.PAUSED)
RUN_TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)
# A worker should be executing (or about to execute) runs in these states.
RUN_ADVANCING = (RunStatus.PENDING, RunStatus.RUNNING)


class UpgradeRun(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="runs")
    runbook = models.ForeignKey(Runbook, on_delete=models.PROTECT, related_name="runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs",
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # While a worker executes the run: its claim token and its last heartbeat.
    # The sweeper marks a run whose heartbeat stopped as interrupted.
    executor = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="The runbook's parameters, validated.")
    # Preflight results as shown with the plan and as found when the run started.
    preflight = models.JSONField(default=dict, blank=True)
    # Requests an executing worker honours between steps (cancel also stops the current command).
    pause_requested = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, help_text="Why the run stopped, when no step says it.")
    # The job last put on the queue to advance the run, and when (None: it
    # never reached the queue); the sweeper queues it again if it was lost.
    job_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    # The request to start (status awaiting approval, before any step): how
    # many distinct approvers it needs, and until when it is valid.
    approvals_required = models.PositiveSmallIntegerField(default=0)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    # The cluster as it was when the run's first step was about to run (upgrades.leftbehind):
    # what a run that did not succeed is compared with.
    snapshot = models.JSONField(default=dict, blank=True)
    # A run of the emergency lane (a maintenance mode, the diagnostic): it runs
    # whatever procedure is active (docs/architecture.md, "Emergency lane").
    emergency = models.BooleanField(default=False)
    # Why an emergency action paused this procedure; set until an operator resumes
    # it knowingly (acknowledging this text), so it never goes on unaware.
    hold_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["cluster"], condition=models.Q(status__in=RUN_ACTIVE, emergency=False),
                                    name="one_active_run_per_cluster"),
            models.UniqueConstraint(fields=["cluster"], condition=models.Q(status__in=RUN_ACTIVE, emergency=True),
                                    name="one_active_emergency_run_per_cluster"),
        ]

    def __str__(self):
        return f"{self.runbook} on {self.cluster} (#{self.pk})"

    @property
    def is_active(self):
        return self.status in RUN_ACTIVE


class StepStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    WAITING = "waiting", "waiting for a person"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    REJECTED = "rejected", "rejected"
    SKIPPED = "skipped", "skipped"
    CANCELLED = "cancelled", "cancelled"
    INTERRUPTED = "interrupted", "interrupted"


STEP_DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


class StepKind(models.TextChoices):
    SSH = "ssh", "command"
    ENGINE = "engine", "engine API"
    WAIT = "wait"
    MANUAL = "manual", "by a person"
    APPROVAL = "approval"


class RunStep(models.Model):
    run = models.ForeignKey(UpgradeRun, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    key = models.CharField(max_length=100, help_text="Stable step key from the runbook.")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="steps")
    title = models.CharField(max_length=200)
    action = models.CharField("kind", max_length=50, choices=StepKind.choices, default=StepKind.SSH)
    # What it does, for people: the exact command, the engine action, the condition, the instructions.
    command = models.TextField(blank=True)
    # How to execute it (upgrades.engine): expected exit codes, condition, guards, timeout...
    spec = models.JSONField(default=dict, blank=True)
    changes = models.BooleanField("changes the system", default=False)
    rerun_safe = models.BooleanField("safe to run again", default=True)
    note = models.TextField(blank=True, help_text="Why it was skipped, marked done, confirmed or decided.")
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.PENDING)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "order"]
        constraints = [
            models.UniqueConstraint(fields=["run", "order"], name="runstep_unique_order"),
        ]

    def __str__(self):
        return f"{self.order}. {self.title}"


class OutputStream(models.TextChoices):
    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"


class StepOutput(models.Model):
    """One line of a step's output; ``seq`` counts from 1 per step, without gaps."""

    step = models.ForeignKey(RunStep, on_delete=models.CASCADE, related_name="output")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=6, choices=OutputStream.choices, default=OutputStream.STDOUT)
    text = models.TextField()

    class Meta:
        ordering = ["step", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["step", "seq"], name="stepoutput_unique_seq"),
        ]


class ApprovalDecision(models.TextChoices):
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"


class Approval(models.Model):
    """One person's decision on a run's start (``step`` None) or on an approval step."""

    run = models.ForeignKey(UpgradeRun, on_delete=models.CASCADE, related_name="approvals")
    step = models.ForeignKey(RunStep, on_delete=models.CASCADE, null=True, blank=True, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals")
    decision = models.CharField(max_length=10, choices=ApprovalDecision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step", "user"], name="approval_one_per_person"),
        ]


class Role(models.TextChoices):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


class RoleGrant(models.Model):
    """A role on one cluster. A role on every cluster is membership of the
    Django group of that name (upgrades.permissions)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=10, choices=Role.choices)

    class Meta:
        ordering = ["cluster", "user", "role"]
        constraints = [
            models.UniqueConstraint(fields=["user", "cluster", "role"], name="rolegrant_unique"),
        ]

    def __str__(self):
        return f"{self.user} is {self.role} on {self.cluster}"


class DirectoryAccount(models.Model):
    """Marks a user made by the directory (LDAP) login: such an account has no
    password of its own, and the directory never takes over one without this
    mark (a local account stays local, for break-glass; upgrades.directory)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account")
    dn = models.CharField("directory DN", max_length=500)
    synced_at = models.DateTimeField(help_text="The last login, when its groups and roles were read.")

    def __str__(self):
        return self.dn


class DirectoryRole(models.Model):
    """A role the directory gives: on every cluster (no cluster) or on one, because
    of one directory group (LDAP_ROLE_MAP). Replaced at each login; kept apart from
    groups and ``RoleGrant`` so that roles given by hand are never taken away by it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_roles")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="directory_roles", help_text="Empty: every cluster.")
    role = models.CharField(max_length=10, choices=Role.choices)
    group_dn = models.CharField("directory group", max_length=500)

    class Meta:
        ordering = ["user", "cluster", "role"]

    def __str__(self):
        return f"{self.user} is {self.role} on {self.cluster or 'every cluster'} (directory group {self.group_dn})"


# --force (and --force-cleanup), --clean-metadata, lockspace re-initialisation, and the
# failed-install clean-up: ovirt-hosted-engine-cleanup, or the howto's script that removes the packages.
DEFAULT_APPROVAL_MARKERS = ("--force\n--clean-metadata\n--reinitialize-lockspace\novirt-hosted-engine-cleanup\n"
                            "yum remove -y \\*ovirt\\*")


class ApprovalPolicy(models.Model):
    """Which runs and steps need approval, by how many people, for how long.

    The most specific policy applies: cluster and runbook, then cluster,
    then runbook, then the one for every cluster and runbook; without any,
    the settings' default (upgrades/services/approvals.py).
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="approval_policies", help_text="Empty: every cluster.")
    runbook = models.SlugField(max_length=50, blank=True, help_text="Runbook slug; empty: every runbook.")
    before_start = models.CharField(
        max_length=10, default="changes",
        choices=[("changes", "if the runbook changes hosts"), ("always", "always"), ("never", "never")],
        help_text="When a run needs approval before it starts.")
    step_markers = models.TextField(
        blank=True, default=DEFAULT_APPROVAL_MARKERS,
        help_text="One text a line: a step whose command contains one needs approval before it runs.")
    approvers = models.PositiveSmallIntegerField(default=1, help_text="Distinct approvers needed (N).")
    expiry_hours = models.PositiveIntegerField(default=24, help_text="How long a request stays valid.")
    rehearsal_hours = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="A run may start only after a successful rehearsal of the same plan (same hash) "
                  "within this many hours (upgrades.rehearsal); empty: no rehearsal needed.")

    class Meta:
        verbose_name_plural = "approval policies"
        constraints = [
            models.UniqueConstraint(fields=["cluster", "runbook"], name="approvalpolicy_unique"),
        ]

    def __str__(self):
        return f"approval policy for {self.runbook or 'every runbook'} on {self.cluster or 'every cluster'}"

    def markers(self):
        return [line.strip() for line in self.step_markers.splitlines() if line.strip()]


class AuditHead(models.Model):
    """The chain's last link (one row): its number and hash. Locked while an
    event is appended, so the chain never forks; audit_verify compares the
    last event with it, so a deleted tail is found too."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")


class AppendOnlyQuerySet(models.QuerySet):
    """Audit rows are never changed or removed by the application, in bulk either."""

    def update(self, **kwargs):
        raise PermissionDenied("Audit events are append-only.")

    def delete(self):
        raise PermissionDenied("Audit events are append-only.")


class AuditEvent(models.Model):
    """Append-only record of who did what. Written by ``upgrades.audit.record``."""

    objects = AppendOnlyQuerySet.as_manager()

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
    )
    actor_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_index=True)
    details = models.JSONField(default=dict, blank=True)
    # For filters: the cluster and run the event belongs to (plain numbers:
    # the record outlives what it names).
    cluster_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    run_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    # Where the request came from (upgrades.client_address); empty for the system's
    # own events (workers, commands). Signed with the event when not empty.
    client_address = models.CharField(max_length=45, blank=True, default="", db_default="")
    # The chain (upgrades.audit): number, the previous event's hash, this one's
    # (an HMAC under the audit key named by key_id, kept outside the database).
    seq = models.PositiveBigIntegerField(unique=True, null=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionDenied("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionDenied("Audit events are append-only.")


class HaSample(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="ha_samples")
    at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=40, blank=True)
    score = models.IntegerField(null=True, blank=True)
    live = models.BooleanField(default=True)
    engine_vm = models.CharField(max_length=20, blank=True)
    local_maintenance = models.BooleanField(default=False)

    class Meta:
        ordering = ["host", "-at"]
        indexes = [models.Index(fields=["host", "at"], name="hasample_host_at")]


class EngineBackup(models.Model):
    """An ``engine-backup`` file copied off the engine VM into ENGINE_BACKUP_DIR, its
    sha256 checked against the VM's own ``sha256sum`` (``upgrades.backups``)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="engine_backups")
    run = models.ForeignKey(UpgradeRun, on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="engine_backups")
    file_name = models.CharField(max_length=255, help_text="Relative to ENGINE_BACKUP_DIR.")
    source_path = models.CharField(max_length=500, help_text="Where engine-backup wrote it in the engine VM.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster", "-created_at", "-id"]

    def __str__(self):
        return self.file_name


class CheckStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "could not run"


class ConnectionCheck(models.Model):
    """One run of the connection check ("doctor") of a cluster's hosts, done by a worker
    (upgrades.doctor). ``results``: [{"host": name, "checks": [{"key", "title", "outcome"
    ("ok", "warn", "fail", "skipped"), "detail", "fix"}]}], in the hosts' order."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="connection_checks")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    status = models.CharField(max_length=10, choices=CheckStatus.choices, default=CheckStatus.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    results = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # After a check that passed, the worker polls the cluster once (so its card shows
    # the HA state at once): what that poll said.
    first_poll = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def all_hosts_pass(self):
        """Every host answered every check without a failure (warnings allowed)."""
        return bool(self.results) and all(
            check["outcome"] != "fail" for host in self.results for check in host["checks"])

    @property
    def passed(self):
        return self.status == CheckStatus.DONE and self.all_hosts_pass


class RehearsalStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


REHEARSAL_ACTIVE = (RehearsalStatus.PENDING, RehearsalStatus.RUNNING)


class Rehearsal(models.Model):
    """A plan made for ``cluster`` and run on a twin of it in the lab (``upgrades.rehearsal``).

    The twin is a cluster row of its own (``twin``) with its own run (``run``), so the
    rehearsal never holds the real cluster's lock; the plan's text and its sha256 are
    those of the real plan, which an approval policy may ask for (``rehearsal_hours``).
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="rehearsals")
    runbook = models.SlugField(max_length=50)
    params = models.JSONField(default=dict, blank=True)
    plan_text = models.TextField()
    plan_sha256 = models.CharField(max_length=64, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rehearsals")
    status = models.CharField(max_length=10, choices=RehearsalStatus.choices, default=RehearsalStatus.PENDING)
    # The real cluster as read when the rehearsal started (upgrades.twin; no secrets),
    # and the twin's before and after the run (packages before/after).
    snapshot = models.JSONField(default=dict, blank=True)
    twin_before = models.JSONField(default=dict, blank=True)
    twin_after = models.JSONField(default=dict, blank=True)
    twin = models.ForeignKey(Cluster, on_delete=models.SET_NULL, null=True, blank=True, related_name="twin_of")
    run = models.ForeignKey(UpgradeRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="rehearsals")
    # Person steps the rehearsal played itself: [{"order", "title", "how"}].
    played = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=list, blank=True, help_text="What came from the lab's model, not the cluster.")
    error = models.TextField(blank=True)
    simulated_seconds = models.FloatField(null=True, blank=True, help_text="The twin run's length in lab time.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"rehearsal #{self.pk} of {self.runbook} on {self.cluster}"

    @property
    def is_active(self):
        return self.status in REHEARSAL_ACTIVE


class WebhookEvent(models.TextChoices):
    RUN_STARTED = "run.started", "run started"
    RUN_WAITING = "run.waiting", "run waiting for a person"
    APPROVAL_REQUESTED = "approval.requested", "approval requested"
    STEP_FAILED = "step.failed", "step failed"
    RUN_ENDED = "run.ended", "run ended"


class Webhook(models.Model):
    """An endpoint that is told of run events (upgrades/webhooks.py); the secret signs each body."""
    url = models.CharField(max_length=500, help_text="http(s) URL, checked by services.webhooks.check.")
    secret = models.TextField(help_text="Encrypted (upgrades.secrets); signs each delivery.")
    events = models.JSONField(default=list, help_text="WebhookEvent values this endpoint receives.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"webhook #{self.pk} {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint: sent from the ``hooks`` queue, retried with back-off."""
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=30, choices=WebhookEvent.choices)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self):
        return f"delivery #{self.pk} {self.event} to webhook #{self.webhook_id}"


# The API's tokens live with the API (upgrades/api/tokens.py); imported here so Django finds the model.
from .api.tokens import ApiToken  # noqa: E402,F401
