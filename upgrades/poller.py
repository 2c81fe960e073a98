"""The HA poller: a worker-side loop that reads ``--vm-status --json`` per cluster.

Why a loop and not an RQ job per poll: see docs/architecture.md. Each
cluster keeps one SSH session open between polls, to the host that answered
last; when that host fails the next one is asked, so one unreachable host
does not stop the cluster's polling.
"""
import contextlib
import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections
from django.db.models.functions import Mod

from . import engine_view, ha, packages, sweeper
from .models import Cluster, Host
from .outage import riding_out
from .remote.base import RemoteError
from .remote.engine_api import health_page
from .remote.ssh import SshSession, SshTarget
from .remote.vmstatus import VmStatusParseError
from .state import fetch_vm_status

log = logging.getLogger(__name__)

CLUSTER_REFRESH_SECONDS = 2.0
# The release is read with rpm this often, and whenever the vm-status layout changes.
RELEASE_CHECK_SECONDS = 600.0
RPM_COMMAND = "rpm -q ovirt-hosted-engine-setup ovirt-hosted-engine-ha"
# While the HA data cannot say where the engine VM runs (its agents do not publish, or
# no host answers), the engine's own health page is asked at most this often.
ENGINE_HEALTH_SECONDS = 15.0
# ovirt-hosted-engine-setup series -> oVirt release (newest first).
SETUP_RELEASES = (("2.6", "4.5"), ("2.4", "4.4"), ("2.3", "4.3"), ("2.2", "4.2"), ("2.1", "4.1"),
                  ("2.0", "4.0"), ("1.3", "3.6"), ("1.2", "3.5"))
# A poll mostly waits: SSH round trips, and `hosted-engine --vm-status` itself takes about
# a second on a host. So a shard's pool is sized for polls in flight, not for cores; a
# ThreadPoolExecutor starts a thread only when none is idle, so a shard uses as many as
# its clusters keep busy (about clusters x poll time / interval, plus the engine's view).
# 16 were a bound: at a second a poll, 16 threads poll 160 clusters every 10 s at most.
DEFAULT_THREADS = 64
# A cluster's first poll (and first read of the engine) comes at a random moment within its
# interval, at most this late: a poller that starts with hundreds of clusters does not
# start a thread, and open a database connection, for each of them at once.
FIRST_POLL_SPREAD = 10.0
# At most this many of a poller's threads use the database at once; the others wait their
# turn holding no connection (with DB_CONN_MAX_AGE=0 a turn ends by closing it). On a
# starved machine stores get slower, and a poller's connections stay few.
DATABASE_TURNS = 8
_database_turns = threading.BoundedSemaphore(DATABASE_TURNS)
# What the vm-status layout alone tells (VmStatus.setup_series).
LAYOUT_RELEASES = {"1.2": "3.5", "1.3": "3.6", "2.0-2.1": "4.0-4.1", "2.0-2.2": "4.0-4.2",
                   "2.2+": "4.2 or later", "2.3+": "4.3 or later"}


def _version_key(text):
    return [int(part) for part in re.findall(r"\d+", text)]


def release_of_setup(version):
    """The oVirt release of an ovirt-hosted-engine-setup version, e.g. 1.3.7.4 -> 3.6."""
    for floor, release in SETUP_RELEASES:
        if _version_key(version) >= _version_key(floor):
            return release
    return None


def describe_release(rpm_output, setup_series):
    """The text shown as the cluster's release, from `rpm -q` output (preferred) or the
    vm-status layout."""
    versions = dict(re.findall(r"^(ovirt-hosted-engine-(?:setup|ha))-(\d[\w.]*?)-\d[\w.]*$",
                               rpm_output or "", flags=re.M))
    setup = versions.get("ovirt-hosted-engine-setup")
    release = release_of_setup(setup) if setup else None
    if release:
        packages = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
        return f"oVirt {release} ({packages})"
    if setup_series in LAYOUT_RELEASES:
        return f"oVirt {LAYOUT_RELEASES[setup_series]} (from the vm-status layout)"
    return ""


@contextlib.contextmanager
def database_turn():
    """One of the DATABASE_TURNS: the thread's connection is let go at its end."""
    with _database_turns:
        try:
            yield
        finally:
            close_old_connections()


class ClusterPoller:
    """Polls one cluster; not thread-safe, the loop runs one poll per cluster at a time."""

    def __init__(self, cluster_id, *, timeout=20.0):
        self.cluster_id = cluster_id
        self.timeout = timeout
        self.session = None
        self.session_host_id = None
        self.release_checked = None  # (monotonic time, vm-status layout) of the last check
        self.health_checked = None  # monotonic time the engine's health page was last asked

    def poll(self, hosts=None):
        """``hosts``: the cluster's, as the loop read them (``run_poller``); so a poll opens
        no database connection until it stores what it read, and holds none while it waits
        for ``--vm-status``. None: read them now."""
        close_old_connections()
        if hosts is None:
            with database_turn():
                hosts = list(Host.objects.filter(cluster_id=self.cluster_id).order_by())
        # The host that answered last goes first: its session is open.
        hosts = sorted(hosts, key=lambda h: (h.pk != self.session_host_id, h.he_host_id is None,
                                             h.he_host_id or 0, h.name))
        errors = []
        for host in hosts:
            try:
                status = self._read(host)
            except (RemoteError, VmStatusParseError) as exc:
                self.close()
                errors.append(f"{host.name}: {exc}")
                continue
            with database_turn():
                ha.apply_vm_status(self.cluster_id, status)
            self._detect_release(status)
            if status.engine_host() is None:
                self._check_engine_health()
            return True
        with database_turn():
            ha.record_poll_error(self.cluster_id, "no host answered: " + "; ".join(errors) if errors
                                 else "the cluster has no hosts")
        self._check_engine_health()
        return False

    def _check_engine_health(self):
        """No live agent says the engine VM runs: ask the engine itself (a corrupted
        lockspace stops every agent while the VM runs on), so the page can say so."""
        now = time.monotonic()
        if self.health_checked is not None and now - self.health_checked < ENGINE_HEALTH_SECONDS:
            return
        self.health_checked = now
        with database_turn():
            cluster = Cluster.objects.get(pk=self.cluster_id)
        if not cluster.engine_url:
            return
        page = health_page(cluster.engine_url, cluster.engine_ca_file, min(self.timeout, 10))
        with database_turn():
            ha.record_engine_health(self.cluster_id, page)

    def _read(self, host):
        if self.session_host_id != host.pk:
            self.close()
            self.session = SshSession(SshTarget.for_host(host), connect_timeout=self.timeout)
            self.session_host_id = host.pk
        return fetch_vm_status(self.session, timeout=self.timeout)

    def _detect_release(self, status):
        """Now and then (and when the layout changes) ask rpm which setup and HA packages
        the answering host runs; one short command, not on every poll."""
        now = time.monotonic()
        if self.release_checked is not None:
            checked_at, series = self.release_checked
            if series == status.setup_series and now - checked_at < RELEASE_CHECK_SECONDS:
                return
        self.release_checked = (now, status.setup_series)
        try:
            output = self.session.run(RPM_COMMAND, timeout=self.timeout, idle_timeout=self.timeout).stdout
        except RemoteError as exc:
            log.info("cluster %s: rpm -q failed: %s", self.cluster_id, exc)
            output = ""
        release = describe_release(output, status.setup_series)
        if release:
            with database_turn():
                ha.record_release(self.cluster_id, release)

    def close(self):
        if self.session is not None:
            self.session.close()
        self.session = None
        self.session_host_id = None


def run_poller(*, shard=0, shards=1, threads=DEFAULT_THREADS, stop=None):
    """Poll every cluster of this shard at its own interval until ``stop`` is set.

    The loop also runs the run sweeper (``upgrades.sweeper``) every few
    seconds: this process lives whether or not any RQ worker does. A database
    outage stops nothing: each pass rides it out (``upgrades.outage``), and the
    clusters last read are polled on. Each task ends with ``close_old_connections``:
    with DB_CONN_MAX_AGE=0 a thread holds a database connection only while it stores,
    not while it waits for its next poll.
    """
    stop = stop or threading.Event()
    pollers, due, busy = {}, {}, {}
    engine_due, engine_busy = {}, {}
    clusters, hosts, refreshed = {}, {}, 0.0
    sweeping, sweep_due = None, 0.0
    package_polls = packages.PackagePolls()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ha-poll") as pool:
        while not stop.is_set():
            now = time.monotonic()
            if now >= sweep_due and (sweeping is None or sweeping.done()):
                sweep_due = now + sweeper.SWEEP_SECONDS
                sweeping = pool.submit(_sweep_safely)
            if now - refreshed >= CLUSTER_REFRESH_SECONDS:
                refreshed = now
                with riding_out("reading the clusters to poll"):
                    clusters = dict(Cluster.objects.in_service().annotate(shard=Mod("id", shards)).filter(shard=shard)
                                    .values_list("id", "poll_interval"))
                    by_cluster = {}  # one query for the shard's hosts: the polls' threads read none
                    for host in Host.objects.filter(cluster_id__in=list(clusters)).order_by():
                        by_cluster.setdefault(host.cluster_id, []).append(host)
                    hosts = by_cluster
                    for gone in set(pollers) - set(clusters):
                        pollers.pop(gone).close()
            package_polls.tick(clusters)  # pending updates, at a low rate, in its own threads
            for cluster_id, interval in clusters.items():
                if cluster_id not in due:
                    spread = min(max(interval, 0.2), FIRST_POLL_SPREAD)
                    due[cluster_id] = now + random.uniform(0, spread)
                    engine_due[cluster_id] = now + random.uniform(0, spread)
                # The engine's view, less often and in its own task: an engine that does not
                # answer (engine-setup restarts it) never holds up the HA poll.
                if now >= engine_due[cluster_id] and (
                        engine_busy.get(cluster_id) is None or engine_busy[cluster_id].done()):
                    engine_due[cluster_id] = now + engine_view.engine_poll_seconds(interval)
                    engine_busy[cluster_id] = pool.submit(_poll_engine_safely, cluster_id)
                if busy.get(cluster_id) is not None and not busy[cluster_id].done():
                    continue
                if now >= due[cluster_id]:
                    poller = pollers.setdefault(cluster_id, ClusterPoller(cluster_id))
                    due[cluster_id] = now + max(interval, 0.2)
                    busy[cluster_id] = pool.submit(_poll_safely, poller, hosts.get(cluster_id, []))
            stop.wait(0.05)
    # After the pool has waited for the polls under way: a session is never closed under a poll.
    for poller in pollers.values():
        poller.close()
    package_polls.close()


def _sweep_safely():
    try:
        with riding_out("sweeping runs"):
            sweeper.sweep()
    except Exception:
        log.exception("sweeping runs failed")
    finally:
        close_old_connections()


def _poll_engine_safely(cluster_id):
    try:
        with riding_out("reading the engine's view"):
            with database_turn():
                cluster = Cluster.objects.filter(pk=cluster_id).first()
            if cluster is not None:
                engine_view.poll_engine_view(cluster, database=database_turn)
    except Exception:
        log.exception("reading the engine's view of cluster %s failed", cluster_id)
    finally:
        close_old_connections()


def _poll_safely(poller, hosts):
    try:
        with riding_out("polling HA state"):
            poller.poll(hosts)
    except Exception:
        log.exception("polling cluster %s failed", poller.cluster_id)
    finally:
        close_old_connections()
