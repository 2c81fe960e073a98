"""A cluster's HA state as the checks and wait conditions read it.

Two sources, one shape: ``from_poll`` (the HA poller's last result in the
database: what a page shows, no remote call in a web request) and ``read``
(``hosted-engine --vm-status --json`` read fresh over SSH, for a worker about
to act). A host whose data is not up to date counts as stale, and so does
every host when the last poll is too old.
"""
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from .remote.base import RemoteError
from .remote.ssh import SshTarget
from .remote.vmstatus import VmStatusParseError, parse_vm_status

VM_STATUS_COMMAND = "hosted-engine --vm-status --json"
# A poll older than this many poll intervals (and at least POLL_GRACE) is no
# longer "up to date" for an interlock.
STALE_POLLS = 3
POLL_GRACE = timedelta(seconds=30)


@dataclass
class HostState:
    name: str
    he_host_id: int | None
    live: bool
    score: int | None
    state: str
    local_maintenance: bool
    engine_vm_here: bool
    known: bool = True  # False: vm-status did not list this host at all
    # The host's metadata timestamp (its own monotonic clock when its agent collected the
    # data it published); a new value means new data. None: not read (the poll keeps none).
    host_ts: int | None = None

    @property
    def can_run_engine_vm(self):
        return self.live and not self.local_maintenance and (self.score or 0) > 0


@dataclass
class ClusterState:
    hosts: list
    global_maintenance: bool | None
    source: str  # "poll" or "fresh"
    read_at: object = None
    error: str = ""  # why nothing could be read
    notes: list = field(default_factory=list)

    def host(self, name):
        return next((h for h in self.hosts if h.name == name), None)

    @property
    def engine_vm_host(self):
        return next((h for h in self.hosts if h.engine_vm_here), None)

    def describe(self):
        where = "last poll" if self.source == "poll" else "read now"
        if self.error:
            return f"HA state unknown ({self.error})"
        gm = {True: "global maintenance", False: "no global maintenance", None: "global maintenance unknown"}
        hosts = "; ".join(f"{h.name}: {h.state or '?'} score {h.score if h.score is not None else '?'}"
                          f"{' local maintenance' if h.local_maintenance else ''}"
                          f"{' engine VM' if h.engine_vm_here else ''}{'' if h.live else ' STALE'}"
                          for h in self.hosts)
        return f"{gm[self.global_maintenance]}; {hosts} ({where})"


def from_poll(cluster, hosts=None, now=None):
    """The poller's last result, from the database."""
    now = now or timezone.now()
    hosts = list(hosts if hosts is not None else cluster.hosts.order_by("he_host_id", "name"))
    fresh_enough = max(POLL_GRACE, timedelta(seconds=cluster.poll_interval * STALE_POLLS))
    error, notes = "", []
    if cluster.polled_at is None:
        error = "the HA poller has not read this cluster yet"
    elif now - cluster.polled_at > fresh_enough:
        notes.append(f"the last HA poll is {int((now - cluster.polled_at).total_seconds())} s old")
    too_old = bool(error or notes)
    states = [HostState(name=h.name, he_host_id=h.he_host_id, live=h.ha_live and not too_old, score=h.ha_score,
                        state=h.ha_state, local_maintenance=h.local_maintenance,
                        engine_vm_here=h.engine_vm_here and not too_old, known=h.ha_seen_at is not None)
              for h in hosts]
    gm = {"global": True, "none": False}.get(cluster.maintenance_mode)
    return ClusterState(hosts=states, global_maintenance=gm, source="poll", read_at=cluster.polled_at,
                        error=error, notes=notes)


def read(cluster, pool, hosts=None, timeout=20.0):
    """``--vm-status --json`` read now, from the first host that answers."""
    from .ha import pair_blocks

    hosts = list(hosts if hosts is not None else cluster.hosts.order_by("he_host_id", "name"))
    errors = []
    for host in hosts:
        try:
            status = fetch_vm_status(pool.session(SshTarget.for_host(host)), timeout=timeout)
        except (RemoteError, VmStatusParseError) as exc:
            errors.append(f"{host.name}: {exc}")
            continue
        states = []
        paired = pair_blocks(hosts, status.hosts)
        for row in hosts:
            seen = paired.get(row.pk)
            if seen is None:
                states.append(HostState(name=row.name, he_host_id=row.he_host_id, live=False, score=None,
                                        state="", local_maintenance=False, engine_vm_here=False, known=False))
                continue
            states.append(HostState(
                name=row.name, he_host_id=row.he_host_id, live=seen.up_to_date, score=seen.score,
                state=seen.state or "", local_maintenance=seen.local_maintenance,
                host_ts=seen.host_timestamp,
                # A stale host's engine status is its last word, not the truth now.
                engine_vm_here=seen.engine_vm == "up" and seen.up_to_date))
        return ClusterState(hosts=states, global_maintenance=status.global_maintenance, source="fresh",
                            read_at=timezone.now(), notes=[f"read on {host.name}"])
    return ClusterState(hosts=[], global_maintenance=None, source="fresh", read_at=timezone.now(),
                        error="no host answered: " + "; ".join(errors) if errors else "the cluster has no hosts")


def fetch_vm_status(session, timeout=20.0):
    """Run ``--vm-status --json`` on an open session and parse it (the poller uses it too)."""
    result = session.run(VM_STATUS_COMMAND, timeout=timeout, idle_timeout=timeout)
    if result.exit_status != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise RemoteError(f"vm-status exited with {result.exit_status}: {reason[0] if reason else 'no output'}")
    return parse_vm_status(result.stdout)
