"""The engine's view of a cluster, read by the HA poller less often than vm-status.

Each host's engine status (up, maintenance, non_operational, ...), whether the
engine reports an update for it, its VMs and those that cannot migrate; the
engine cluster's compatibility version and scheduling policy; where the engine
VM runs. Stored on the cluster (``Cluster.engine_view``) with the time each part
was read, so pages show it with its age and never call the engine. A failed
read keeps the last values and says why. 3.x engines speak API v3 only
(ovirtsdk4 cannot log in): the view says so instead of guessing.
"""
import contextlib
from dataclasses import asdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import events
from .models import Cluster
from .remote.base import RemoteError
from .remote.engine_api import API_V3_ONLY, EngineClient


V3_TEXT = "The engine's view is not available through API v3 (oVirt 3.x): see the web admin."


def engine_poll_seconds(poll_interval):
    """How often the poller reads the engine: every ENGINE_POLL_EVERY HA polls (6 by default:
    once a minute at the default 10 s), at least ENGINE_POLL_MIN_SECONDS apart."""
    return max(max(poll_interval, 0.2) * settings.ENGINE_POLL_EVERY, settings.ENGINE_POLL_MIN_SECONDS)


def poll_engine_view(cluster, *, client_factory=EngineClient.for_cluster, now=None,
                     database=contextlib.nullcontext):
    """Read the engine's view of ``cluster`` and store it; True when what a page shows changed.
    ``database``: what each use of the database runs in (the poller's ``database_turn``:
    none held while the engine answers)."""
    from .plan import release_of  # plan imports the runbooks, which import checks

    now = now or timezone.now()
    with database():
        release = release_of(cluster)
        if release is not None and release < (4, 0):
            return _store(cluster.pk, {"api": "v3"}, "", now)
        hosts = list(cluster.hosts.values_list("name", flat=True))
    try:
        with client_factory(cluster, timeout=settings.ENGINE_POLL_TIMEOUT) as client:
            view = client.cluster_view(hosts)
    except RemoteError as exc:
        with database():
            if exc.message.startswith(API_V3_ONLY):
                return _store(cluster.pk, {"api": "v3"}, "", now)
            return _store(cluster.pk, None, exc.message, now)
    stamp = now.isoformat()
    data = {"api": "v4", "engine_vm_host": view.engine_vm_host,
            "cluster": {"name": view.cluster, "version": view.version,
                        "scheduling_policy": view.scheduling_policy, "at": stamp},
            "hosts": {h.name: {**asdict(h), "cannot_migrate": list(h.cannot_migrate), "at": stamp}
                      for h in view.hosts}}
    with database():
        return _store(cluster.pk, data, "", now)


def _store(cluster_id, data, error, now):
    """``data`` None: the read failed, keep the last view (its parts keep their times)."""
    from . import ha

    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        before = (_without_times(cluster.engine_view), cluster.engine_view_error)
        if data is not None:
            cluster.engine_view, cluster.engine_view_at = data, now
        cluster.engine_view_error = error
        cluster.save(update_fields=["engine_view", "engine_view_at", "engine_view_error"])
        changed = before != (_without_times(cluster.engine_view), cluster.engine_view_error)
        if changed:
            events.publish(events.cluster_group(cluster.pk), ha.cluster_payload(cluster))
    return changed


def _without_times(view):
    if not isinstance(view, dict):
        return view
    return {k: _without_times(v) for k, v in view.items() if k != "at"}


def cannot_migrate(cluster):
    """[(VM, host)] the last engine view lists as unable to migrate, and when it was read
    (None when there is no 4.x view)."""
    view = cluster.engine_view or {}
    if view.get("api") != "v4":
        return [], None
    stuck = [(vm, name) for name, host in sorted(view.get("hosts", {}).items()) for vm in host["cannot_migrate"]]
    return stuck, cluster.engine_view_at


def for_page(cluster, hosts):
    """The view as the cluster page shows it: one row per host of the portal (in its order),
    times as datetimes for the age display."""
    view = cluster.engine_view or {}
    rows = []
    for host in hosts:
        seen = (view.get("hosts") or {}).get(host.name)
        rows.append({"name": host.name, "known": seen is not None,
                     **({**seen, "at": parse_datetime(seen["at"])} if seen else {})})
    part = view.get("cluster")
    return {
        "api": view.get("api"), "v3_text": V3_TEXT, "error": cluster.engine_view_error,
        "read_at": cluster.engine_view_at, "engine_vm_host": view.get("engine_vm_host"),
        "cluster": {**part, "at": parse_datetime(part["at"])} if part else None,
        "hosts": rows,
    }
