"""Live HA state: apply one parsed ``--vm-status`` to a cluster's rows.

Samples are downsampled for history: one is stored when a host's state,
score, liveness or maintenance changes, and otherwise at most once per
SAMPLE_EVERY. Changes are published to the cluster's group after saving.
"""
import hashlib
import json
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import events
from .events import HaEvent, HostHa
from .models import Cluster, HaSample, MaintenanceMode

SAMPLE_EVERY = timedelta(minutes=1)
HOST_FIELDS = ("ha_state", "ha_score", "ha_live", "local_maintenance", "engine_vm_here")


def host_payload(host) -> HostHa:
    return {"id": host.pk, "name": host.name, "state": host.ha_state, "score": host.ha_score,
            "live": host.ha_live, "local_maintenance": host.local_maintenance,
            "engine_vm_here": host.engine_vm_here,
            "seen_at": host.ha_seen_at.isoformat() if host.ha_seen_at else None,
            "data_at": host.ha_data_at.isoformat() if host.ha_data_at else None}


def cluster_payload(cluster) -> HaEvent:
    hosts = list(cluster.hosts.order_by("he_host_id", "name"))
    return {"type": "ha.update", "cluster": cluster.pk, "maintenance_mode": cluster.maintenance_mode,
            "polled_at": cluster.polled_at.isoformat() if cluster.polled_at else None,
            "poll_error": cluster.poll_error,
            "hosts": [host_payload(h) for h in hosts], "version": ha_version(cluster, hosts)}


def ha_version(cluster, hosts):
    """A digest of everything whose change is published to the cluster's group (not
    the times every poll moves): equal versions, nothing missed (consumers.ClusterConsumer)."""
    from .engine_view import _without_times

    seen = [cluster.maintenance_mode, cluster.poll_error, cluster.detected_release, cluster.engine_health,
            cluster.engine_health_ok, _without_times(cluster.engine_view), cluster.engine_view_error,
            [[h.pk, h.name, *(getattr(h, f) for f in HOST_FIELDS)] for h in hosts]]
    return hashlib.sha1(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pair_blocks(hosts, blocks):
    """{host pk: its vm-status block}: each row gets at most one block and each
    block at most one row. A host reinstalled and deployed again under a new id
    leaves its old, stale block under the same name (and maybe the id the
    inventory still records), so the best pairing wins: a live block first,
    then id and name agreeing, then the id alone, then the name."""
    candidates = []
    for host in hosts:
        for block in blocks:
            same_id = host.he_host_id is not None and host.he_host_id == block.host_id
            same_name = host.name == block.hostname
            if same_id or same_name:
                candidates.append(((block.up_to_date, same_id and same_name, same_id), host, block))
    candidates.sort(key=lambda c: c[0], reverse=True)
    paired, used = {}, set()
    for _, host, block in candidates:
        if host.pk not in paired and id(block) not in used:
            paired[host.pk] = block
            used.add(id(block))
    return paired


def data_time(host, status, now):
    """(host-ts, when it changed): the host's own metadata timestamp and when the
    poller saw it change. A dead host's block is still listed, with its last
    host-ts; so its data's age grows while the poll's stays small. A host first
    seen stale, or a layout without a timestamp and not up to date, keeps what
    was known (None: not seen changing since the portal watches)."""
    ts = status.host_timestamp
    if ts is None:
        return None, now if status.up_to_date else host.ha_data_at
    if ts == host.ha_host_ts:
        return ts, host.ha_data_at
    if host.ha_host_ts is None and not status.up_to_date:
        return ts, host.ha_data_at
    return ts, now


def apply_vm_status(cluster_id, vm_status, *, now=None):
    """Store one poll's result; returns True when anything visible changed."""
    now = now or timezone.now()
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        # No ordering (the models' own joins the cluster for its name): a poll pairs by id.
        hosts = list(cluster.hosts.order_by())
        changed = False
        mode = MaintenanceMode.GLOBAL if vm_status.global_maintenance else MaintenanceMode.NONE
        if cluster.maintenance_mode != mode or cluster.poll_error:
            changed = True
        cluster.maintenance_mode, cluster.polled_at, cluster.poll_error = mode, now, ""
        cluster.save(update_fields=["maintenance_mode", "polled_at", "poll_error"])
        # A host with a sample within SAMPLE_EVERY needs none unless it changed: one query for all.
        sampled = set(HaSample.objects.filter(host__in=hosts, at__gt=now - SAMPLE_EVERY)
                      .order_by().values_list("host_id", flat=True).distinct())
        samples = []
        paired = pair_blocks(hosts, vm_status.hosts)
        for host in hosts:
            status = paired.get(host.pk)
            if status is None:
                continue
            new = {"ha_state": status.state or "", "ha_score": status.score, "ha_live": status.up_to_date,
                   "local_maintenance": status.local_maintenance,
                   "engine_vm_here": status.engine_vm == "up" and status.up_to_date}
            host_changed = any(getattr(host, f) != v for f, v in new.items())
            for field, value in new.items():
                setattr(host, field, value)
            host.ha_seen_at = now
            host.ha_host_ts, host.ha_data_at = data_time(host, status, now)
            host.save(update_fields=[*HOST_FIELDS, "ha_seen_at", "ha_host_ts", "ha_data_at"])
            if host_changed or host.pk not in sampled:
                samples.append(HaSample(host=host, at=now, state=host.ha_state, score=host.ha_score,
                                        live=host.ha_live,
                                        engine_vm=(status.engine_vm or "") if status.up_to_date else "unknown",
                                        local_maintenance=host.local_maintenance))
            changed = changed or host_changed
        HaSample.objects.bulk_create(samples)
        if changed:
            events.publish(events.cluster_group(cluster.pk), cluster_payload(cluster))
    return changed


def record_poll_error(cluster_id, message, *, now=None):
    """Every host failed: keep the last known values, say why on the page."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        changed = cluster.poll_error != message
        cluster.poll_error = message
        cluster.save(update_fields=["poll_error"])
        if changed:
            events.publish(events.cluster_group(cluster.pk), cluster_payload(cluster))


def record_engine_health(cluster_id, page, *, now=None):
    """What the engine's health page answered (``poller._check_engine_health``); a
    change is published (the home card and the cluster page say it)."""
    now = now or timezone.now()
    text = (page.text or (f"HTTP {page.status}" if page.status else "no answer"))[:300]
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        changed = (cluster.engine_health, cluster.engine_health_ok) != (text, page.ok)
        cluster.engine_health, cluster.engine_health_ok, cluster.engine_health_at = text, page.ok, now
        cluster.save(update_fields=["engine_health", "engine_health_ok", "engine_health_at"])
        if changed:
            events.publish(events.cluster_group(cluster.pk), cluster_payload(cluster))


def record_release(cluster_id, release):
    """The release the poller detected (on the cluster page and home card: a change is
    published, as an upgrade's last step changes it with no HA change to carry it)."""
    with transaction.atomic():
        if Cluster.objects.filter(pk=cluster_id).exclude(detected_release=release).update(detected_release=release):
            events.publish(events.cluster_group(cluster_id), cluster_payload(Cluster.objects.get(pk=cluster_id)))

