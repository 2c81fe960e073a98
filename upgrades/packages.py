"""Pending updates per host and in the engine VM: what he-upgrade would change.

``poll_packages`` asks every host and the engine VM over SSH: ``yum check-update``
(exit 100: updates listed, 0: none, anything else: an error) and ``rpm -q`` of those
packages and the ones that matter for hosted engine, for the installed versions; on 4.x
also the engine's own host update check (``update_available``). The HA poller calls it
every PACKAGES_POLL_SECONDS (``PackagePolls``) and stores the result on the cluster with
the time it was read; pages and plans only read that. A run's start preflight reads them
fresh, in the worker (``upgrades.engine.start_preflight``).
"""
import datetime
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.utils import timezone

from .models import Cluster
from .outage import riding_out
from .remote.base import EngineError, RemoteError
from .remote.engine_api import EngineClient
from .remote.ssh import SshPool, SshTarget, build_command

log = logging.getLogger(__name__)

ENGINE_VM = "engine-vm"
CHECK_UPDATE = "yum check-update"
RPM_QUERY = "rpm -q {names}"
# Besides whatever has an update: the versions a run's end is compared on.
KEY_PACKAGES = {"host": ("ovirt-hosted-engine-ha", "ovirt-hosted-engine-setup", "vdsm"),
                ENGINE_VM: ("ovirt-engine", "ovirt-engine-setup")}
ARCHES = {"noarch", "x86_64", "i686", "aarch64", "ppc64le", "s390x"}
# yum/dnf check-update list lines: name.arch  [epoch:]version-release  repo
UPDATE_LINE = re.compile(r"^(\S+)\.(\w+)\s+(\S+)\s+(\S+)$")
READ_TIMEOUT = 600  # yum may download repo metadata first


def parse_check_update(text):
    """{name: available version} from ``yum check-update``'s list (the obsoletes
    section that may follow is not an update of an installed package)."""
    found = {}
    for line in text.splitlines():
        if line.startswith("Obsoleting Packages"):
            break
        match = UPDATE_LINE.match(line)
        if match and match[2] in ARCHES and match[3][:1].isdigit():
            found[match[1]] = match[3]
    return found


def parse_rpm_query(text, names):
    """{name: version-release} from ``rpm -q NAME...`` (``NAME-VERSION-RELEASE.ARCH``
    lines; "package X is not installed" is left out)."""
    found = {}
    for line in text.splitlines():
        for name in names:
            rest = line.strip().removeprefix(name + "-")
            if rest != line.strip() and re.fullmatch(r"\d[^-\s]*-[^-\s]+\.\w+", rest):
                found[name] = rest.rsplit(".", 1)[0]
    return found


def read_machine(session, kind):
    """One machine: {"updates": [{name, installed, available}], "installed": {...}, "error": ""}."""
    try:
        result = session.run(CHECK_UPDATE, timeout=READ_TIMEOUT, idle_timeout=READ_TIMEOUT)
        available = parse_check_update(result.stdout) if result.exit_status == 100 else {}
        if result.exit_status not in (0, 100) or (result.exit_status == 100 and not available):
            said = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["nothing"]
            return {"updates": [], "installed": {},
                    "error": f"yum check-update exited with {result.exit_status}: {said[0]}"}
        names = sorted(set(KEY_PACKAGES[kind]) | set(available))
        query = session.run(build_command(RPM_QUERY, names=names), timeout=60, idle_timeout=60)
        installed = parse_rpm_query(query.stdout, names)
    except RemoteError as exc:
        return {"updates": [], "installed": {}, "error": exc.message}
    updates = [{"name": name, "installed": installed.get(name, "?"), "available": version}
               for name, version in sorted(available.items())]
    return {"updates": updates, "installed": installed, "error": ""}


def poll_packages(cluster, pool, *, engine_client=EngineClient.for_cluster):
    """Read every host's and the engine VM's pending updates now, store them on the
    cluster with the time, and return them. Remote calls: only from the HA poller
    and the workers."""
    machines = {}
    for host in cluster.hosts.order_by("he_host_id", "name"):
        machines[host.name] = {"kind": "host", **read_machine(pool.session(SshTarget.for_host(host)), "host")}
    if cluster.engine_vm_address:
        target = SshTarget.for_engine_vm(cluster)
        machines[ENGINE_VM] = {"kind": ENGINE_VM, "name": target.name,
                               **read_machine(pool.session(target), ENGINE_VM)}
    engine = {"error": ""}
    if cluster.engine_url:
        try:
            with engine_client(cluster) as client:
                flags = client.host_updates()
            for name, flag in flags.items():
                if name in machines:
                    machines[name]["engine_update_available"] = flag
        except (EngineError, RemoteError) as exc:
            engine["error"] = exc.message
    data = {"machines": machines, "engine": engine}
    now = timezone.now()
    Cluster.objects.filter(pk=cluster.pk).update(packages=data, packages_read_at=now)
    cluster.packages, cluster.packages_read_at = data, now
    return data


class PackagePolls:
    """The HA poller's low-rate part: each cluster's pending updates every
    PACKAGES_POLL_SECONDS, one read per cluster at a time. Its own few threads: a slow
    yum (or an unreachable host's connect timeout) never holds up the vm-status polls."""

    THREADS = 4

    def __init__(self):
        self.due, self.busy = {}, {}
        self.executor = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="packages")

    def tick(self, cluster_ids, now=None):
        now = time.monotonic() if now is None else now
        for cluster_id in cluster_ids:
            running = self.busy.get(cluster_id)
            if (running is None or running.done()) and now >= self.due.get(cluster_id, 0.0):
                self.due[cluster_id] = now + settings.PACKAGES_POLL_SECONDS
                self.busy[cluster_id] = self.executor.submit(_poll_safely, cluster_id)

    def close(self):
        self.executor.shutdown(wait=False, cancel_futures=True)


def _poll_safely(cluster_id):
    try:
        with riding_out("reading pending updates"):
            cluster = Cluster.objects.filter(pk=cluster_id).first()
            if cluster is not None:
                with SshPool() as pool:
                    poll_packages(cluster, pool)
    except Exception:
        log.exception("reading the pending updates of cluster %s failed", cluster_id)


# Reading what was stored (pages, plans, checks: no remote call) --------------------

def machine_label(name, data):
    return (data.get("name") or "the engine VM") if name == ENGINE_VM else name


def pending(cluster, name):
    """The updates pending on one machine as last read; None when not known."""
    data = (cluster.packages or {}).get("machines", {}).get(name)
    if cluster.packages_read_at is None or data is None or data.get("error"):
        return None
    return data["updates"]


def describe_updates(updates):
    return ", ".join(f"{u['name']} {u['installed']} -> {u['available']}" for u in updates)


def age(moment, now=None):
    """How long ago, for people: "40 s", "12 min", "3 h"."""
    seconds = max(0, int(((now or timezone.now()) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def read_when(cluster, before="this plan"):
    """'read at 2026-12-06 22:40:01 UTC, 3 min before this plan' (stays true once stored)."""
    moment = cluster.packages_read_at
    return f"read at {moment.astimezone(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC, " \
           f"{age(moment)} before {before}"


def summary(cluster):
    """[(label, name, text)] per machine, as the plan and the cluster page say it."""
    rows = []
    for name, data in (cluster.packages or {}).get("machines", {}).items():
        label = machine_label(name, data)
        if data.get("error"):
            text = f"not known: {data['error']}"
        elif data["updates"]:
            text = f"{len(data['updates'])} update(s): {describe_updates(data['updates'])}"
        else:
            text = "nothing to update"
        flag = data.get("engine_update_available")
        if flag is not None:
            text += f" (the engine's host update check: {'updates available' if flag else 'none'})"
        rows.append((label, name, text))
    return rows


def versions(run):
    """The run's package versions: as read when it started (installed, and what was
    available) and as its final ``rpm -q`` steps found them; [] for runs without them.
    Rows: {machine, package, before, available, after} ("" where not known yet)."""
    from .models import OutputStream, StepOutput

    before = (run.preflight or {}).get("packages", {}).get("machines", {})
    steps = {s.key.removeprefix("versions."): s for s in run.steps.filter(key__startswith="versions.")}
    if not before and not steps:
        return []
    rows = []
    for name in list(before) + [n for n in steps if n not in before]:
        data = before.get(name, {})
        step = steps.get(name)
        available = {u["name"]: u["available"] for u in data.get("updates", [])}
        installed = data.get("installed", {})
        after = {}
        if step is not None and step.status == "succeeded":
            names = set(installed) | set(available)
            lines = StepOutput.objects.filter(step=step, stream=OutputStream.STDOUT).values_list("text", flat=True)
            after = parse_rpm_query("\n".join(lines), names)
        if step is None and not available:
            continue  # skipped by the plan, nothing pending
        for package in sorted(set(installed) | set(available)):
            rows.append({"machine": machine_label(name, data), "package": package,
                         "before": installed.get(package, ""), "available": available.get(package, ""),
                         "after": after.get(package, "")})
    return rows
