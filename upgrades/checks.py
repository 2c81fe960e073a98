"""Checks (preflight and step guards) and wait conditions, by name.

Runbooks refer to them as ``Check(name, args)``; stored steps keep the name
and the resolved arguments as JSON, so a worker evaluates exactly what the
plan showed. A check returns ``Result(level, message)``: ``ok``, ``warning``
(shown, acknowledged to start) or ``inhibitor`` (blocks, with the reason). A
condition returns ``(holds, what was seen)``. Both read a ``ClusterState``
(``upgrades.state``) and a ``Context`` with the run's cluster.
"""
from dataclasses import asdict, dataclass

OK, WARNING, INHIBITOR = "ok", "warning", "inhibitor"

CHECKS = {}
CONDITIONS = {}


@dataclass(frozen=True)
class Result:
    check: str
    level: str
    message: str
    # What clears it, offered next to the message: {"slug": a runbook, "label": ...}.
    remedy: dict | None = None

    def to_dict(self):
        data = asdict(self)
        if self.remedy is None:
            del data["remedy"]  # stored results keep their shape when there is none
        return data


@dataclass
class Context:
    """What a check may look at besides the HA state."""

    cluster: object
    run_id: int | None = None
    engine_probe: object = None  # callable -> error text or "" (None: not probed here)
    # A wait's first read of the state: what it saw before anything new was published
    # (conditions with ``fresh`` accept only data published after it).
    baseline: object = None


def check(name, describe):
    def register(fn):
        CHECKS[name] = (fn, describe)
        return fn
    return register


def condition(name, describe):
    def register(fn):
        CONDITIONS[name] = (fn, describe)
        return fn
    return register


def run_check(name, args, state, ctx):
    fn, _ = CHECKS[name]
    level, message, *remedy = fn(state, ctx, **args)  # a check may name its remedy third
    return Result(name, level, message, *remedy)


def describe_check(name, args):
    return CHECKS[name][1].format(**args)


def test_condition(name, args, state, ctx):
    fn, _ = CONDITIONS[name]
    return fn(state, ctx, **args)


def describe_condition(name, args):
    describe = CONDITIONS[name][1]
    if callable(describe):
        return describe(**args)
    return describe.format(**{k: {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v
                                         for k, v in args.items()})


def _unknown(state):
    return INHIBITOR, f"The cluster's HA state is unknown: {state.error}."


@check("ha-fresh", "every host's HA data is up to date")
def ha_fresh(state, ctx):
    if state.error:
        return _unknown(state)
    # A host vm-status never listed and without an HE host id is not a hosted-engine host
    # (yet: deploy-host's target), so it has no HA data to be stale.
    stale = [h.name for h in state.hosts if not h.live and (h.known or h.he_host_id is not None)]
    if stale:
        why = f" ({'; '.join(state.notes)})" if state.notes and state.source == "poll" else ""
        return INHIBITOR, f"HA data is not up to date for {', '.join(stale)}{why}."
    return OK, "Every host's HA data is up to date."


def active_run_message(cluster, exclude=None, emergency=None):
    """Who holds the cluster, as the second operator reads it; "" when nobody does.
    ``emergency``: only runs of that lane (None: either)."""
    other = active_run(cluster, exclude=exclude, emergency=emergency)
    if other is None:
        return ""
    if other.emergency:
        return (f"Cluster {cluster.name} already has an emergency-lane run: #{other.pk} {other.runbook.name} "
                f"({other.get_status_display().lower()}). One maintenance action or diagnostic at a time.")
    return (f"Cluster {cluster.name} already has an active run: #{other.pk} {other.runbook.name} "
            f"({other.get_status_display().lower()}). Only one run per cluster at a time.")


def active_run(cluster, exclude=None, emergency=None):
    """The cluster's active run (a procedure before an emergency-lane run), or None."""
    from .models import RUN_ACTIVE, UpgradeRun

    prefetched = getattr(cluster, "active_runs", None)  # a page's Prefetch(to_attr=...)
    if prefetched is not None:
        runs = [run for run in prefetched if run.pk != exclude]
    else:
        runs = list(UpgradeRun.objects.filter(cluster=cluster, status__in=RUN_ACTIVE).exclude(pk=exclude)
                    .select_related("runbook"))
    runs = [run for run in runs if emergency is None or run.emergency == emergency]
    return min(runs, key=lambda run: (run.emergency, run.pk), default=None)


@check("no-other-active-run", "no other run is active on the cluster")
def no_other_active_run(state, ctx):
    """A procedure's lock; the emergency lane's runs (a few seconds each) do not hold it."""
    message = active_run_message(ctx.cluster, exclude=ctx.run_id, emergency=False)
    return (INHIBITOR, message) if message else (OK, "No other run is active on the cluster.")


@check("no-other-emergency-run", "no other maintenance action or diagnostic is active on the cluster")
def no_other_emergency_run(state, ctx):
    """The emergency lane's own lock: whatever procedure runs, one of these at a time."""
    message = active_run_message(ctx.cluster, exclude=ctx.run_id, emergency=True)
    return (INHIBITOR, message) if message else (OK, "No other maintenance action or diagnostic is active.")


@check("pauses-procedure", "no procedure is active on the cluster (one would be paused)")
def pauses_procedure(state, ctx):
    """An emergency action that changes the cluster pauses the active procedure: say so first."""
    other = active_run(ctx.cluster, exclude=ctx.run_id, emergency=False)
    if other is None:
        return OK, "No procedure is active on the cluster."
    return WARNING, (f"Run #{other.pk} {other.runbook.name} is {other.get_status_display().lower()}: this pauses it "
                     "(after its current step), with your reason, and it goes on only when an operator resumes "
                     "it knowingly.")


@check("command-host-live", "{host}, where the command runs, publishes up-to-date HA data")
def command_host_live(state, ctx, host):
    """A warning only: a dead or stale host never blocks the emergency lane; the
    operator may pick another host for the command."""
    if state.error:
        return WARNING, (f"The cluster's HA state is unknown ({state.error}): the command runs on {host} "
                         "all the same.")
    here = state.host(host)
    if here is None or not here.live:
        return WARNING, (f"{host}'s HA data is not up to date: the command may fail there. Pick a live host "
                         "for it if there is one.")
    return OK, f"{host} publishes up-to-date HA data."


@check("engine-reachable", "the engine API answers")
def engine_reachable(state, ctx):
    if not ctx.cluster.engine_url:
        return INHIBITOR, f"Cluster {ctx.cluster.name} has no engine API URL."
    if ctx.engine_probe is None:
        return OK, ("The engine API is checked when the run starts; an engine step waits for an engine "
                    "that is restarting.")
    problem = ctx.engine_probe()
    return (INHIBITOR, f"The engine API does not answer: {problem}") if problem else (OK, "The engine API answers.")


@check("not-last-engine-host", "another host can run the engine VM while {host} is in local maintenance")
def not_last_engine_host(state, ctx, host):
    if state.error:
        return _unknown(state)
    others = [h.name for h in state.hosts if h.name != host and h.can_run_engine_vm]
    if not others:
        return INHIBITOR, (f"{host} is the last host able to run the engine VM: no other live host out of "
                           "local maintenance has a positive score.")
    return OK, f"Other hosts can run the engine VM: {', '.join(others)}."


# hosted-engine's refusal on the engine VM's host (set_maintenance.py, setup 2.3.11 and later).
LOCAL_REFUSAL = ("Unable to enter local maintenance mode: the engine VM is running on the current host, please "
                 "migrate it before entering local maintenance mode.")
MOVE_ENGINE_VM = {"slug": "engine-vm-migrate", "label": "Move the engine VM to another host first"}


def setup_version(cluster):
    """The ovirt-hosted-engine-setup version the poller found (``rpm -q``), e.g. (2, 3, 13); None
    when the release came from the vm-status layout only."""
    import re

    match = re.search(r"ovirt-hosted-engine-setup (\d+(?:\.\d+)*)", cluster.detected_release or "")
    return tuple(int(part) for part in match[1].split(".")) if match else None


@check("engine-vm-elsewhere", "the engine VM does not run on {host}")
def engine_vm_elsewhere(state, ctx, host):
    """Local maintenance where the engine VM runs, as each release answers it
    (ovirt-releases.md): HA 1.x (oVirt 3.x) accepts it and its agent migrates the VM away;
    setup 2.0-2.3.10 accept it (2.1+ only while another host can take the VM) but no agent
    moves the VM, and vm-status shows no local maintenance while it runs there; setup
    2.3.11 and later (commit 4a36099) refuse with exit 1 whenever the VM runs there."""
    from .plan import release_of

    here = state.host(host)
    if here is None or not here.engine_vm_here:
        return OK, f"The engine VM does not run on {host}."
    release, setup = release_of(ctx.cluster), setup_version(ctx.cluster)
    where = f"The engine VM runs on {host}"
    if release is None:
        return WARNING, (f"{where} and the cluster's release is not detected yet: hosted-engine-setup 2.3.11 and "
                         "later (oVirt 4.3 up to date, 4.4, 4.5) refuse local maintenance there. Move the engine "
                         "VM to another host first."), MOVE_ENGINE_VM
    if release < (4, 0):
        return WARNING, (f"{where}: the HA agent of oVirt {release[0]}.{release[1]} accepts local maintenance "
                         "there and migrates the engine VM to the best other host itself.")
    if (setup is not None and setup >= (2, 3, 11)) or release >= (4, 4):
        named = f"hosted-engine-setup {'.'.join(map(str, setup))}" if setup else \
            f"hosted-engine-setup of oVirt {release[0]}.{release[1]}"
        return INHIBITOR, (f"{where}: {named} refuses local maintenance there (\"{LOCAL_REFUSAL}\"; 2.3.11 and "
                           "later). Move the engine VM to another host first."), MOVE_ENGINE_VM
    if setup is None:
        return WARNING, (f"{where}. On oVirt {release[0]}.{release[1]} hosted-engine-setup 2.3.11 and later refuse "
                         "local maintenance there (the setup version is not known). Move the engine VM to another "
                         "host first."), MOVE_ENGINE_VM
    return WARNING, (f"{where}: hosted-engine-setup {'.'.join(map(str, setup))} accepts local maintenance there, "
                     "but no agent moves the engine VM away, and vm-status shows local maintenance only once the "
                     "VM has left: the run would wait in vain. Move the engine VM to another host first."), \
        MOVE_ENGINE_VM


@check("engine-vm-target", "{host} can take the engine VM")
def engine_vm_target(state, ctx, host):
    if state.error:
        return _unknown(state)
    here = state.host(host)
    if here is not None and here.engine_vm_here:
        return INHIBITOR, f"The engine VM runs on {host} already."
    if here is None or not here.can_run_engine_vm:
        seen = "not in vm-status" if here is None or not here.known else \
            f"score {here.score}, state {here.state or '?'}{' local maintenance' if here.local_maintenance else ''}" \
            f"{'' if here.live else ', HA data not up to date'}"
        return INHIBITOR, f"{host} cannot take the engine VM: it must be live, out of local maintenance, with a " \
                          f"positive score ({seen})."
    return OK, f"{host} can take the engine VM (score {here.score})."


@check("global-maintenance-off", "the cluster is not in global maintenance already")
def global_maintenance_off(state, ctx):
    if state.global_maintenance is None:
        return OK, "Whether the cluster is in global maintenance is not known now; setting it again does no harm."
    if state.global_maintenance:
        return WARNING, "The cluster is in global maintenance already."
    return OK, "The cluster is not in global maintenance."


@check("local-maintenance-off", "{host} is not in local maintenance already")
def local_maintenance_off(state, ctx, host):
    here = state.host(host)
    if here is not None and here.local_maintenance:
        return WARNING, f"{host} is in local maintenance already."
    return OK, f"{host} is not in local maintenance."


@check("something-in-maintenance", "something is in maintenance")
def something_in_maintenance(state, ctx, host=""):
    if state.error:  # the emergency lane: leaving maintenance is never blocked for not knowing
        return WARNING, (f"The cluster's HA state is unknown ({state.error}): whether anything is in maintenance "
                         "cannot be told; the command runs all the same.")
    local = [h.name for h in state.hosts if h.local_maintenance and (not host or h.name == host)]
    if not state.global_maintenance and not local:
        where = f"{host} is" if host else "nothing is"
        return WARNING, f"Nothing to undo: {where} not in local maintenance and the cluster is not in global maintenance."
    parts = (["global maintenance"] if state.global_maintenance else []) + [f"local maintenance on {n}" for n in local]
    return OK, "In maintenance now: " + ", ".join(parts) + "."


@condition("global-maintenance", "vm-status shows global maintenance {on}")
def global_maintenance(state, ctx, on):
    seen = "unknown" if state.global_maintenance is None else ("on" if state.global_maintenance else "off")
    return state.global_maintenance is on, f"global maintenance {seen}"


@condition("local-maintenance", "{host} shows local maintenance {on} in vm-status")
def local_maintenance(state, ctx, host, on):
    here = state.host(host)
    if here is None or not here.known:
        return False, f"{host} is not in vm-status"
    seen = f"{host}: local maintenance {here.local_maintenance}, state {here.state or '?'}, score {here.score}"
    return here.live and here.local_maintenance is on, seen + ("" if here.live else " (stale)")


@condition("no-maintenance", "vm-status shows no global maintenance and {host} out of local maintenance")
def no_maintenance(state, ctx, host=""):
    ok_global, seen_global = global_maintenance(state, ctx, on=False)
    if not host:
        return ok_global, seen_global
    ok_local, seen_local = local_maintenance(state, ctx, host=host, on=False)
    return ok_global and ok_local, f"{seen_global}; {seen_local}"


@condition("engine-vm-up", "the engine VM is up and healthy on a host other than {not_on}")
def engine_vm_up(state, ctx, not_on=""):
    vm_host = state.engine_vm_host
    if vm_host is None:
        return False, "the engine VM is not up on any live host"
    return vm_host.name != not_on, f"the engine VM runs on {vm_host.name} ({vm_host.state})"


# The states an agent rests in once it has taken in the maintenance flags it reads: EngineDown
# (the engine VM runs elsewhere) or EngineUp (here); GlobalMaintenance while that is set. The
# others are steps on the way (StartState, ReinitializeFSM, EngineStarting, EngineStop, ...) or
# trouble (EngineUnexpectedlyDown, UnknownLocalVmState, AgentStopped).
SETTLED_STATES = ("EngineDown", "EngineUp")


def _describe_host_score(host, min_score, fresh=False, settled=False):
    text = f"{host} is live with a score of at least {min_score}"
    if settled:
        text += ", its agent settled (EngineDown or EngineUp; GlobalMaintenance while that is set)"
    if fresh:
        text += ", in data its agent published after this wait began"
    return text


@condition("host-score", _describe_host_score)
def host_score(state, ctx, host, min_score, fresh=False, settled=False):
    """``fresh``: only data published after the wait's first read counts (the host's metadata
    timestamp moved): a wait that follows a change must not pass on what the agent said
    before it, such as the score the agent published before its restart, or its
    GlobalMaintenance state just after global maintenance was left. ``settled``: the agent
    is in a state it rests in under the flags vm-status shows, not one on the way there."""
    here = state.host(host)
    if here is None or not here.known:
        return False, f"{host} is not in vm-status"
    seen = f"{host}: score {here.score}, state {here.state or '?'}{'' if here.live else ' (stale)'}"
    holds = here.live and (here.score or 0) >= min_score
    if settled:
        rest = ("GlobalMaintenance",) if state.global_maintenance else SETTLED_STATES
        if here.state not in rest:
            holds = False
            seen += f" (not settled: waiting for {' or '.join(rest)})"
    if fresh:
        base = ctx.baseline.host(host) if ctx.baseline is not None else None
        if base is not None and base.known and (here.host_ts is None or here.host_ts == base.host_ts):
            holds = False
            seen += "; nothing published since the wait began"
    return holds, seen


# -- Checks of the recovery runbooks (lockspace, metadata, failed install, resume deploy) --

def _release_key(text):
    return tuple(int(part) for part in text.split("."))


@check("release-at-least", "the cluster runs oVirt {version} or later ({needs})")
def release_at_least(state, ctx, version, needs):
    from .plan import release_of

    release = release_of(ctx.cluster)
    if release is None:
        return WARNING, (f"The cluster's oVirt release is not detected yet; {needs} needs oVirt {version} "
                         "or later.")
    if release < _release_key(version):
        return INHIBITOR, (f"The cluster runs oVirt {release[0]}.{release[1]}: {needs} needs oVirt {version} "
                           "or later.")
    return OK, f"oVirt {release[0]}.{release[1]} has {needs}."


@check("lockspace-suspect", "the HA agents do not all publish (what a corrupted lockspace looks like)")
def lockspace_suspect(state, ctx):
    if state.error or not state.hosts:
        return OK, "The HA state cannot be read: the recovery is planned for every host of the cluster."
    stale = [h.name for h in state.hosts if not h.live]
    if not stale:
        return WARNING, ("Every host's agent publishes up-to-date data: the lockspace does not look corrupted. "
                         "Re-initialising it stops every agent for a while.")
    return OK, f"No up-to-date HA data from {', '.join(stale)}."


@check("metadata-host-id", "host id {host_id} belongs to no live host of the cluster")
def metadata_host_id(state, ctx, host_id, host):
    host_id = int(host_id)  # filled into the check's arguments as text
    if host_id < 1:
        return INHIBITOR, "Host ids start at 1."
    owner = ctx.cluster.hosts.filter(he_host_id=host_id).first()
    if owner is not None and owner.name == host:
        return INHIBITOR, (f"Host id {host_id} is {host}'s own id, the host that runs the command: "
                           "this runbook removes a host that no longer exists.")
    seen = state.host(owner.name) if owner is not None else None
    if owner is not None and state.error:
        return _unknown(state)
    if seen is not None and seen.live:
        return INHIBITOR, (f"Host id {host_id} is {owner.name}, whose agent publishes up-to-date data: "
                           "it still exists.")
    if owner is not None:
        return WARNING, (f"Host id {host_id} is {owner.name}, still a host of this cluster (its HA data is not "
                         "up to date). Clean its metadata only if it is gone for good.")
    return OK, f"No host of the cluster has host id {host_id}."


@check("not-he-host", "{host} is not a working hosted-engine host")
def not_he_host(state, ctx, host):
    here = state.host(host)
    if state.error or here is None or not here.known:
        return OK, f"{host} shows no hosted-engine status."
    if here.live:
        return INHIBITOR, (f"{host} is a working hosted-engine host (its agent publishes, state "
                           f"{here.state or '?'}): this runbook is for a failed install.")
    return WARNING, f"{host} has hosted-engine status from its agent, not up to date: check it is the failed install."


@check("host-live", "{host}'s HA data is up to date")
def host_live(state, ctx, host):
    if state.error:
        return _unknown(state)
    here = state.host(host)
    if here is None or not here.live:
        return INHIBITOR, f"{host}'s HA data is not up to date: its agent must publish to run this there."
    return OK, f"{host}'s HA data is up to date."


# ---- he-upgrade -----------------------------------------------------------------

@condition("engine-vm-on", "the engine VM runs on one of {hosts} and its agent sees the engine up")
def engine_vm_on(state, ctx, hosts):
    """EngineUp: the engine answers its health check there (a VM the agents moved boots
    first, in EngineStarting)."""
    vm_host = state.engine_vm_host
    if vm_host is None:
        return False, "the engine VM is not up on any live host"
    return vm_host.name in hosts.split(",") and vm_host.state == "EngineUp", \
        f"the engine VM runs on {vm_host.name} ({vm_host.state})"


@check("engine-vm-can-move", "at least two hosts can run the engine VM")
def engine_vm_can_move(state, ctx):
    if state.error:
        return _unknown(state)
    able = [h.name for h in state.hosts if h.can_run_engine_vm]
    if len(able) < 2:
        return INHIBITOR, (f"Only {', '.join(able) or 'no host'} can run the engine VM: a rolling "
                           "upgrade needs a second host to move it to.")
    return OK, f"Hosts able to run the engine VM: {', '.join(able)}."


def _when(moment):
    from .templatetags.portal import when

    return when(moment)


@check("vms-can-migrate", "every VM can leave its host when the host goes to maintenance")
def vms_can_migrate(state, ctx):
    """On 4.x the plan reads the engine's view the poller stored (a page never calls the
    engine); the run's start asks the engine again. A 3.x engine has no API v4."""
    from .engine_view import cannot_migrate
    from .plan import release_of
    from .remote.base import RemoteError
    from .remote.engine_api import EngineClient

    release = release_of(ctx.cluster)
    if release is not None and release < (4, 0):
        return WARNING, ("A 3.x engine cannot be asked through its API: check in the web admin that "
                         "no VM is pinned to a host (Virtual Machines, Host tab, migration mode).")
    if ctx.engine_probe is None:
        stuck, read_at = cannot_migrate(ctx.cluster)
        if stuck:
            return INHIBITOR, ("These VMs cannot migrate, so their hosts cannot go to maintenance: "
                               + ", ".join(f"{name} on {host}" for name, host in stuck)
                               + f" (the engine's view read {_when(read_at)}).")
        if read_at is not None:
            return OK, (f"The engine listed no VM that cannot migrate ({_when(read_at)}); "
                        "it is asked again when the run starts.")
        return OK, "The engine is asked for VMs that cannot migrate when the run starts."
    try:
        with EngineClient.for_cluster(ctx.cluster) as client:
            stuck = client.vms_that_cannot_migrate()
    except RemoteError as exc:
        return INHIBITOR, f"The engine could not list the VMs: {exc.message}"
    if stuck:
        return INHIBITOR, ("These VMs cannot migrate, so their hosts cannot go to maintenance: "
                           + ", ".join(f"{name} on {host}" for name, host in stuck) + ".")
    return OK, "Every VM can migrate (or none runs besides the engine VM)."


@condition("engine-vm-running", "vm-status shows the engine VM up on a host")
def engine_vm_running(state, ctx):
    vm_host = state.engine_vm_host
    if vm_host is None:
        return False, "the engine VM is not up on any live host"
    return True, f"the engine VM runs on {vm_host.name} ({vm_host.state})"


# -- deploy-host and host-os-upgrade ------------------------------------------------

# The OS a host OS upgrade starts from, per oVirt release (upgrades.runbooks.host_os_upgrade).
UPGRADE_SOURCE_OS = {(3, 5): "el6", (4, 5): "el8"}


@check("host-key-pinned", "{host}'s SSH host key is pinned in the portal")
def host_key_pinned(state, ctx, host):
    from django.urls import reverse

    from .remote import ssh
    from .remote.base import RemoteError

    row = ctx.cluster.hosts.filter(name=host).first()
    if row is None:
        return INHIBITOR, f"{host} is not a host of cluster {ctx.cluster.name}."
    try:
        pinned = ssh.pinned_keys(row.known_hosts, row.address, row.ssh_port) if row.known_hosts.strip() else []
    except RemoteError as exc:
        return INHIBITOR, f"The pinned SSH host keys of {host} cannot be read: {exc.message}"
    if not pinned:
        return INHIBITOR, (f"{host} has no pinned SSH host key for {ssh.known_hosts_name(row.address, row.ssh_port)}, "
                           "so the portal does not trust it. An admin compares the key it offers with the "
                           "host's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console) and "
                           f"accepts it at {reverse('host-key', args=[row.pk])}, or imports it with the inventory.")
    key_type, fingerprint = pinned[0]
    return OK, f"The SSH host key of {host} is pinned ({key_type} {fingerprint})."


@check("not-deployed", "{host} is not a hosted-engine host yet")
def not_deployed(state, ctx, host):
    if state.error:
        return _unknown(state)
    here = state.host(host)
    if here is not None and here.known and here.live:
        return INHIBITOR, (f"{host} is a hosted-engine host already: vm-status shows it live "
                           f"(state {here.state or '?'}, score {here.score}).")
    if here is not None and here.known:
        return WARNING, f"vm-status still lists {host}, stale: its old entry stays until it is cleaned."
    return OK, f"{host} is not in vm-status."


@check("engine-vm-running", "the engine VM runs on a live host")
def engine_vm_runs(state, ctx):
    """The check of the same name as the condition above: an inhibitor at start and as a guard."""
    if state.error:
        return _unknown(state)
    vm_host = state.engine_vm_host
    if vm_host is None:
        return INHIBITOR, "No live host runs the engine VM: hosts are added to the engine, which must be up."
    return OK, f"The engine VM runs on {vm_host.name}."


@check("engine-hosts-at-least", "at least {count} hosts can run the engine VM")
def engine_hosts_at_least(state, ctx, count):
    if state.error:
        return _unknown(state)
    able = [h.name for h in state.hosts if h.can_run_engine_vm]
    if len(able) < count:
        return INHIBITOR, (f"Only {len(able)} host(s) can run the engine VM ({', '.join(able) or 'none'}): "
                           f"one host at a time is taken out, so at least {count} live hosts out of local "
                           "maintenance with a positive score are needed.")
    return OK, f"{len(able)} hosts can run the engine VM: {', '.join(able)}."


@check("hosts-on-os", "the hosts run the OS the upgrade starts from")
def hosts_on_os(state, ctx):
    import re

    match = re.match(r"oVirt (\d+)\.(\d+)\b", ctx.cluster.detected_release or "")
    source = UPGRADE_SOURCE_OS.get((int(match[1]), int(match[2])) if match else None)
    if source is None:
        return OK, "The hosts' OS is checked on each host after its reinstall."
    other = [f"{h.name} ({h.os_release})" for h in ctx.cluster.hosts.order_by("he_host_id", "name")
             if h.os_release and h.os_release != source]
    if other:
        return WARNING, (f"The inventory records {', '.join(other)}, not {source}: every host is reinstalled "
                         "and deployed again all the same.")
    return OK, f"The inventory records no host on another OS than {source}."


@condition("other-engine-host", "a live host other than {host}, out of local maintenance, has a positive score")
def other_engine_host(state, ctx, host):
    others = [h for h in state.hosts if h.name != host and h.can_run_engine_vm]
    if not others:
        return False, f"no host other than {host} can run the engine VM"
    return True, "can run the engine VM: " + ", ".join(f"{h.name} (score {h.score})" for h in others)


@check("updates-pending", "a host or the engine VM has updates pending")
def updates_pending(state, ctx, skipped="", scope="minor"):
    """he-upgrade with nothing to update would only restart services and move the engine VM."""
    from django.conf import settings

    from . import packages

    cluster = ctx.cluster
    if scope == "release":
        return OK, ("A new release: its updates are known only once its repo is added, so every host "
                    "is upgraded.")
    if cluster.packages_read_at is None:
        return WARNING, (f"Pending updates are not known yet (the HA poller reads them every "
                         f"{settings.PACKAGES_POLL_SECONDS / 60:g} min): nothing tells whether there is "
                         "anything to update, and no host is skipped.")
    machines = cluster.packages.get("machines", {})
    when = packages.read_when(cluster, "this check")
    again = [name for name in skipped.split(",") if name and packages.pending(cluster, name)]
    if again:
        return INHIBITOR, (f"{', '.join(again)} had nothing to update when the run was planned and now "
                           f"has updates pending ({when}): plan the run again.")
    unknown = [f"{packages.machine_label(n, d)}: {d['error']}" for n, d in machines.items() if d.get("error")]
    found = [f"{packages.machine_label(n, d)} ({len(d['updates'])})" for n, d in machines.items()
             if not d.get("error") and d["updates"]]
    if not found and not unknown:
        return INHIBITOR, (f"Nothing to update: yum check-update finds no pending update on any host or in "
                           f"the engine VM ({when}). The run would only restart services and move the "
                           "engine VM.")
    if unknown:
        return WARNING, (f"Pending updates are not known for {'; '.join(unknown)} ({when}). Updates pending: "
                         f"{', '.join(found) or 'none found'}.")
    return OK, f"Updates pending: {', '.join(found)} ({when})."
