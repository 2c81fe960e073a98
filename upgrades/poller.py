"""The HA poller: a worker-side loop that reads ``--vm-status --json`` per cluster.

Why a loop and not an RQ job per poll: see docs/architecture.md. Each
cluster keeps one SSH session open between polls, to the host that answered
last; when that host fails the next one is asked, so one unreachable host
does not stop the cluster's polling.
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections
from django.db.models.functions import Mod

from . import ha, sweeper
from .models import Cluster
from .remote.base import RemoteError
from .remote.ssh import SshSession, SshTarget
from .remote.vmstatus import VmStatusParseError
from .state import fetch_vm_status

log = logging.getLogger(__name__)

CLUSTER_REFRESH_SECONDS = 2.0


class ClusterPoller:
    """Polls one cluster; not thread-safe, the loop runs one poll per cluster at a time."""

    def __init__(self, cluster_id, *, timeout=20.0):
        self.cluster_id = cluster_id
        self.timeout = timeout
        self.session = None
        self.session_host_id = None

    def poll(self):
        close_old_connections()
        hosts = list(Cluster.objects.get(pk=self.cluster_id).hosts.order_by("he_host_id", "name"))
        # The host that answered last goes first: its session is open.
        hosts.sort(key=lambda h: h.pk != self.session_host_id)
        errors = []
        for host in hosts:
            try:
                status = self._read(host)
            except (RemoteError, VmStatusParseError) as exc:
                self.close()
                errors.append(f"{host.name}: {exc}")
                continue
            ha.apply_vm_status(self.cluster_id, status)
            return True
        ha.record_poll_error(self.cluster_id, "no host answered: " + "; ".join(errors) if errors
                             else "the cluster has no hosts")
        return False

    def _read(self, host):
        if self.session_host_id != host.pk:
            self.close()
            self.session = SshSession(SshTarget.for_host(host), connect_timeout=self.timeout)
            self.session_host_id = host.pk
        return fetch_vm_status(self.session, timeout=self.timeout)

    def close(self):
        if self.session is not None:
            self.session.close()
        self.session = None
        self.session_host_id = None


def run_poller(*, shard=0, shards=1, threads=16, stop=None):
    """Poll every cluster of this shard at its own interval until ``stop`` is set.

    The loop also runs the run sweeper (``upgrades.sweeper``) every few
    seconds: this process lives whether or not any RQ worker does.
    """
    stop = stop or threading.Event()
    pollers, due, busy = {}, {}, {}
    clusters, refreshed = {}, 0.0
    sweeping, sweep_due = None, 0.0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ha-poll") as pool:
        while not stop.is_set():
            now = time.monotonic()
            if now >= sweep_due and (sweeping is None or sweeping.done()):
                sweep_due = now + sweeper.SWEEP_SECONDS
                sweeping = pool.submit(_sweep_safely)
            if now - refreshed >= CLUSTER_REFRESH_SECONDS:
                close_old_connections()
                clusters = dict(Cluster.objects.annotate(shard=Mod("id", shards)).filter(shard=shard)
                                .values_list("id", "poll_interval"))
                for gone in set(pollers) - set(clusters):
                    pollers.pop(gone).close()
                refreshed = now
            for cluster_id, interval in clusters.items():
                if busy.get(cluster_id) is not None and not busy[cluster_id].done():
                    continue
                if now >= due.get(cluster_id, 0.0):
                    poller = pollers.setdefault(cluster_id, ClusterPoller(cluster_id))
                    due[cluster_id] = now + max(interval, 0.2)
                    busy[cluster_id] = pool.submit(_poll_safely, poller)
            stop.wait(0.05)
        for poller in pollers.values():
            poller.close()


def _sweep_safely():
    close_old_connections()
    try:
        sweeper.sweep()
    except Exception:
        log.exception("sweeping runs failed")


def _poll_safely(poller):
    try:
        poller.poll()
    except Exception:
        log.exception("polling cluster %s failed", poller.cluster_id)
