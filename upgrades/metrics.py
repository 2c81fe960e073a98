"""``/metrics`` for Prometheus: the estate's state as the database holds it.

Every value is read at scrape time (``PortalCollector``) in a fixed number of
queries however many clusters, hosts and runs there are, so every web process
answers the same (per-process counters would differ between them). The text
is written by the official ``prometheus_client``; the metrics and their labels
are listed in docs/metrics.md. Labels carry names (cluster, host, runbook,
status, queue), never an address, a credential or an error's text.

Who may scrape (``refusal``): a scraper sending ``Authorization: Bearer
METRICS_TOKEN``, or one whose address (``client_address.for_request``: the
forwarded address counts only from a trusted proxy) is in
METRICS_ALLOWED_ADDRESSES. With neither set nothing is exposed. Wrong tokens
count towards the API's failure limit per address (``api.auth``).
"""
import hmac
import ipaddress
import logging
from dataclasses import dataclass

import django_rq
import redis
from django.conf import settings
from django.db.models import Count, F, FloatField, Func, Q, Sum
from django.utils import timezone
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, HistogramMetricFamily
from rq import Worker

from . import cards
from .client_address import for_request
from .models import Cluster, Host, MaintenanceMode, RunStatus, RunStep, StepOutput, UpgradeRun

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the step duration histogram: from a quick check to a host's reboot.
STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
ENGINE_VM_STATES = ("running", "down", "unknown")
ENGINE_VM_LEVELS = ("ok", "warn", "bad")


class SecondsBetween(Func):
    """``later - earlier`` in seconds, by the database's own functions: Django's
    duration arithmetic calls a Python function per row on SQLite, which made a
    scrape of 30,000 steps take over a second there."""
    arity = 2
    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM (%(expressions)s))::double precision"
    arg_joiner = " - "

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="((julianday(%(expressions)s)) * 86400.0)",
                           arg_joiner=") - julianday(", **extra)


@dataclass
class Refusal:
    status: int
    message: str


def _allowed_address(address):
    if not address:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_ADDRESSES)


def refusal(request):
    """None when the request may scrape, else why not (and the status to answer with)."""
    from .api import auth  # the API's failure count per address, shared with the tokens

    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES
    if not token and not networks:
        return Refusal(403, "Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_ADDRESSES (docs/metrics.md).\n")
    address = for_request(request)
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if parts and parts[0].lower() == "bearer":
        counted = address or "unknown"
        if auth.failures(counted) >= settings.API_AUTH_FAILURE_LIMIT:
            return Refusal(429, "Too many failed token authentications from this address.\n")
        if token and len(parts) == 2 and hmac.compare_digest(parts[1].encode(), token.encode()):
            return None
        auth.count_failure(counted)
        return Refusal(401, "The metrics token is wrong.\n")
    if _allowed_address(address):
        return None
    if token:
        return Refusal(401, "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.\n")
    return Refusal(403, "This address may not scrape the metrics (METRICS_ALLOWED_ADDRESSES).\n")


def _gauge(name, documentation, labels):
    return GaugeMetricFamily(name, documentation, labels=labels)


class PortalCollector:
    """Reads the database (five queries) and Redis each time Prometheus scrapes."""

    def collect(self):
        now = timezone.now()
        in_service = Cluster.objects.in_service()
        clusters = list(in_service.only(
            "name", "maintenance_mode", "polled_at", "poll_error", "engine_health", "engine_health_ok",
            "engine_health_at"))
        hosts = {c.pk: [] for c in clusters}
        for host in Host.objects.filter(cluster__in=in_service).order_by("cluster_id", "he_host_id", "name").only(
                "cluster_id", "name", "ha_state", "ha_score", "ha_live", "local_maintenance", "engine_vm_here"):
            hosts[host.cluster_id].append(host)
        yield from self._hosts(clusters, hosts)
        yield from self._clusters(clusters, hosts, now)
        yield from self._runs(in_service)
        yield self._step_durations(in_service)
        lines = _gauge("heportal_output_lines", "Lines of run output stored.", [])
        lines.add_metric([], StepOutput.objects.count())
        yield lines
        yield from self._queues()

    def _hosts(self, clusters, hosts):
        score = _gauge("heportal_host_ha_score", "The host's HA score as its agent last published it.",
                       ["cluster", "host"])
        state = _gauge("heportal_host_ha_agent_state", "The host's HA agent state (1 for the current one).",
                       ["cluster", "host", "state"])
        live = _gauge("heportal_host_ha_live", "1 while the host's HA agent publishes fresh data, 0 when stale.",
                      ["cluster", "host"])
        local = _gauge("heportal_host_local_maintenance", "1 while the host is in local maintenance.",
                       ["cluster", "host"])
        engine_vm = _gauge("heportal_host_engine_vm_here", "1 on the live host that runs the engine VM.",
                           ["cluster", "host"])
        for cluster in clusters:
            for host in hosts[cluster.pk]:
                labels = [cluster.name, host.name]
                if host.ha_score is not None:
                    score.add_metric(labels, host.ha_score)
                state.add_metric([*labels, host.ha_state or "unknown"], 1)
                live.add_metric(labels, int(host.ha_live))
                local.add_metric(labels, int(host.local_maintenance))
                engine_vm.add_metric(labels, int(host.engine_vm_here and host.ha_live))
        return score, state, live, local, engine_vm

    def _clusters(self, clusters, hosts, now):
        hosts_count = _gauge("heportal_cluster_hosts", "Hosts registered in the cluster.", ["cluster"])
        maintenance = _gauge("heportal_cluster_global_maintenance",
                             "1 in global maintenance, 0 out of it (absent until the poller has read it).",
                             ["cluster"])
        vm_state = _gauge("heportal_cluster_engine_vm_state",
                          "Where the engine VM is as the HA data tells: running, down or unknown (1 for the current).",
                          ["cluster", "state"])
        vm_health = _gauge("heportal_cluster_engine_vm_health",
                           "The engine VM's health level: ok, warn or bad (1 for the current), as on the cluster card.",
                           ["cluster", "level"])
        vm_host = _gauge("heportal_cluster_engine_vm_host", "1 for the host that runs the engine VM.",
                         ["cluster", "host"])
        polled = _gauge("heportal_cluster_last_poll_timestamp_seconds",
                        "When the HA poller last read the cluster successfully (Unix time).", ["cluster"])
        age = _gauge("heportal_cluster_poll_age_seconds",
                     "Seconds since the HA poller last read the cluster successfully.", ["cluster"])
        error = _gauge("heportal_cluster_poll_error", "1 while the HA poller's last attempt failed.", ["cluster"])
        for cluster in clusters:
            members = hosts[cluster.pk]
            hosts_count.add_metric([cluster.name], len(members))
            if cluster.maintenance_mode in (MaintenanceMode.GLOBAL, MaintenanceMode.NONE):
                maintenance.add_metric([cluster.name], int(cluster.maintenance_mode == MaintenanceMode.GLOBAL))
            running = next((h for h in members if h.engine_vm_here and h.ha_live), None)
            summary = cards.engine_vm_summary(cluster, members, running)
            for value in ENGINE_VM_STATES:
                vm_state.add_metric([cluster.name, value], int(summary["state"] == value))
            for value in ENGINE_VM_LEVELS:
                vm_health.add_metric([cluster.name, value], int(summary["level"] == value))
            if running is not None:
                vm_host.add_metric([cluster.name, running.name], 1)
            if cluster.polled_at is not None:
                polled.add_metric([cluster.name], cluster.polled_at.timestamp())
                age.add_metric([cluster.name], max(0.0, (now - cluster.polled_at).total_seconds()))
            error.add_metric([cluster.name], int(bool(cluster.poll_error)))
        return hosts_count, maintenance, vm_state, vm_health, vm_host, polled, age, error

    def _runs(self, in_service):
        """Every status of each (cluster, runbook) that has runs, 0 included: a run moving on
        shows as one count going down and another up, not as a series vanishing."""
        runs = _gauge("heportal_runs", "Runs by cluster, runbook and status.", ["cluster", "runbook", "status"])
        counts = {}
        for row in UpgradeRun.objects.filter(cluster__in=in_service).values(
                "cluster__name", "runbook__slug", "status").annotate(n=Count("pk")).order_by():
            counts[(row["cluster__name"], row["runbook__slug"], row["status"])] = row["n"]
        for cluster, runbook in sorted({key[:2] for key in counts}):
            for status in RunStatus.values:
                runs.add_metric([cluster, runbook, status], counts.get((cluster, runbook, status), 0))
        yield runs

    def _step_durations(self, in_service):
        """Finished steps' durations, bucketed by the database: cumulative over the
        history kept, so Prometheus' rate() and histogram_quantile() work on it."""
        histogram = HistogramMetricFamily(
            "heportal_step_duration_seconds", "How long finished steps took, by runbook, kind and status.",
            labels=["runbook", "kind", "status"])
        buckets = {f"le_{i}": Count("pk", filter=Q(duration__lte=bound)) for i, bound in enumerate(STEP_BUCKETS)}
        rows = (RunStep.objects.filter(run__cluster__in=in_service, started_at__isnull=False, finished_at__isnull=False)
                .annotate(duration=SecondsBetween(F("finished_at"), F("started_at"))).values("run__runbook__slug", "action", "status")
                .annotate(n=Count("pk"), total=Sum("duration"), **buckets).order_by())
        for row in sorted(rows, key=lambda r: (r["run__runbook__slug"], r["action"], r["status"])):
            counts = [(str(float(bound)), row[f"le_{i}"]) for i, bound in enumerate(STEP_BUCKETS)]
            histogram.add_metric([row["run__runbook__slug"], row["action"], row["status"]],
                                 [*counts, ("+Inf", row["n"])], max(0.0, float(row["total"] or 0)))
        return histogram

    def _queues(self):
        up = _gauge("heportal_rq_up", "1 when Redis answered for the queues below.", [])
        depth = _gauge("heportal_rq_queue_jobs", "Jobs waiting in the RQ queue.", ["queue"])
        failed = _gauge("heportal_rq_failed_jobs", "Jobs in the RQ queue's failed registry.", ["queue"])
        workers = _gauge("heportal_rq_workers", "RQ workers alive listening on the queue.", ["queue"])
        try:
            rows = []
            for name in settings.RQ_QUEUES:
                queue = django_rq.get_queue(name)
                rows.append((name, queue.count, queue.failed_job_registry.count,
                             Worker.count(connection=queue.connection, queue=queue)))
        except redis.RedisError as exc:
            log.warning("metrics: Redis unreachable (%s)", exc)
            up.add_metric([], 0)
            return (up,)
        up.add_metric([], 1)
        for name, jobs, failed_jobs, alive in rows:
            depth.add_metric([name], jobs)
            failed.add_metric([name], failed_jobs)
            workers.add_metric([name], alive)
        return up, depth, failed, workers


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PortalCollector())
