"""What a run that did not succeed left behind.

When a run's first step is about to run, the cluster's state is recorded on the
run (``take_snapshot``: the HA poller's last vm-status and the engine's view,
from the database). When the run ends failed, cancelled or interrupted,
``left_behind`` compares that record with the state now and with what the run's
own succeeded steps did: global maintenance, hosts in engine or local
maintenance, the scheduling policy, the engine VM's host, the compatibility
version, the packages the poller knows. Each difference says what the
``return-to-normal`` runbook does about it (``restore_actions``), or why
nothing. What cannot be known (the engine on 3.x, data too old) is said, not
guessed.
"""
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import Cluster, RunStatus, StepStatus, UpgradeRun
from .state import from_poll

NOT_SUCCEEDED = (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)
RETURN_TO_NORMAL = "return-to-normal"
# Engine statuses of a host in (or on its way to) maintenance: activating it returns it to up.
IN_MAINTENANCE = ("maintenance", "preparing_for_maintenance")
PACKAGES = ": packages"  # a difference in installed versions: never restored
PACKAGES_UNKNOWN = ("Package versions: the HA poller has not read them (rpm -q, every "
                    "PACKAGES_POLL_SECONDS) {}.")


def take_snapshot(cluster):
    """The cluster as the portal knows it now (the poller's last results; no remote call)."""
    cluster = Cluster.objects.get(pk=cluster.pk)
    hosts = list(cluster.hosts.order_by("he_host_id", "name"))
    ha = from_poll(cluster, hosts)
    view = cluster.engine_view or {}
    return {
        "at": timezone.now().isoformat(),
        "ha": {"error": ha.error, "notes": ha.notes, "read_at": _iso(ha.read_at),
               "global_maintenance": ha.global_maintenance,
               "hosts": {h.name: {"live": h.live, "local_maintenance": h.local_maintenance,
                                  "engine_vm_here": h.engine_vm_here, "state": h.state, "score": h.score}
                         for h in ha.hosts}},
        "engine": {"api": view.get("api"), "error": cluster.engine_view_error,
                   "read_at": _iso(cluster.engine_view_at),
                   "cluster": (view.get("cluster") or {}).get("name", ""),
                   "scheduling_policy": (view.get("cluster") or {}).get("scheduling_policy"),
                   "version": (view.get("cluster") or {}).get("version"),
                   "engine_vm_host": view.get("engine_vm_host"),
                   "hosts": {name: {"status": h["status"], "update_available": h["update_available"]}
                             for name, h in (view.get("hosts") or {}).items()}},
        "release": cluster.detected_release,
        # Installed versions per host and in the engine VM, as the poller last read them.
        "packages": {"read_at": _iso(cluster.packages_read_at),
                     "machines": {name: data.get("installed") or {}
                                  for name, data in (cluster.packages or {}).get("machines", {}).items()
                                  if not data.get("error")}},
    }


def _iso(moment):
    return moment.isoformat() if moment else None


@dataclass
class Difference:
    """One thing that is not as it was when the run started."""

    what: str
    before: str
    now: str
    by_run: str = ""  # the run's step that did it ("" when no step of the run did)
    restore: str = ""  # what return-to-normal does, or why nothing
    action: tuple = ()  # for return-to-normal: ("activate", host), ("policy", cluster, name), ...


@dataclass
class LeftBehind:
    run: object
    differences: list = field(default_factory=list)
    unknown: list = field(default_factory=list)  # what cannot be compared, and why
    now_read: dict = field(default_factory=dict)  # when the "now" side was read: {"ha": dt, "engine": dt}

    @property
    def actions(self):
        return [d.action for d in self.differences if d.action]


# The effects of a run's succeeded steps ------------------------------------

def step_effects(step):
    """[(key, value)] a succeeded step set: ("global", bool), ("local:HOST", bool),
    ("engine:HOST", status), ("policy", name). Keys the diff shares."""
    spec, host = step.spec or {}, step.host.name if step.host else ""
    if step.action == "ssh":
        command = spec.get("command", step.command)
        if command.endswith("--mode=global"):
            return [("global", True)]
        if command.endswith("--mode=local") and host:
            return [("local:" + host, True), ("global", False)]
        if command.endswith("--mode=none"):
            return [("global", False)] + ([("local:" + host, False)] if host else [])
        return []
    if step.action == "engine":
        args = spec.get("args") or {}
        if spec.get("action") == "deactivate_host":
            return [("engine:" + args["host"], "maintenance")]
        if spec.get("action") in ("activate_host", "add_host"):
            return [("engine:" + args["host"], "up")]
        if spec.get("action") == "set_scheduling_policy":
            return [("policy", args["policy"])]
        return []
    if step.action == "manual" and step.key.startswith("hosts."):
        # he-upgrade's web-admin steps on 3.x, keyed hosts.HOST.maintenance / .activate
        name, _, what = step.key.removeprefix("hosts.").rpartition(".")
        status = {"maintenance": "maintenance", "activate": "up"}.get(what)
        return [("engine:" + name, status)] if status and name else []
    return []


def run_effects(run):
    """{key: (value, step)}: the last value each key got from the run's succeeded steps."""
    effects = {}
    steps = run.steps.filter(status=StepStatus.SUCCEEDED).select_related("host").order_by("order")
    for step in steps:
        for key, value in step_effects(step):
            effects[key] = (value, step)
    return effects


# The comparison ------------------------------------------------------------

def _onoff(value):
    return {True: "on", False: "off", None: "unknown"}[value]


def _by(effects, key, now_value):
    """The step of the run that left ``key`` as it is now, if one did."""
    value, step = effects.get(key, (None, None))
    if step is None or value != now_value:
        return ""
    return f"step {step.order} ({step.title})"


def left_behind(run, *, now_snapshot=None):
    """The differences between the run's snapshot and now, for a run that did not succeed
    (None for any other run, or one that never reached its first step)."""
    if run.status not in NOT_SUCCEEDED or not run.snapshot:
        return None
    before = run.snapshot
    now = now_snapshot or take_snapshot(run.cluster)
    effects = run_effects(run)
    found = LeftBehind(run=run, now_read={"ha": parse_datetime(now["ha"]["read_at"] or ""),
                                          "engine": parse_datetime(now["engine"]["read_at"] or "")})
    _compare_ha(before["ha"], now["ha"], effects, found)
    _compare_engine(before["engine"], now["engine"], effects, found)
    last_step = max(filter(None, run.steps.values_list("started_at", flat=True)), default=None)
    _compare_packages(before.get("packages") or {}, now["packages"], found, last_step=last_step)
    return found


def _compare_packages(before, now, found, *, last_step=None):
    """Installed versions that changed since the run started (packages are never downgraded).
    A read older than the run's last step may have missed what that step installed: unknown."""
    if not before.get("read_at") or not now.get("read_at"):
        found.unknown.append(PACKAGES_UNKNOWN.format("when the run started" if not before.get("read_at")
                                                     else "since"))
        return
    if before["read_at"] == now["read_at"]:
        found.unknown.append(PACKAGES_UNKNOWN.format("again since the run started"))
        return
    read_at = parse_datetime(now["read_at"])
    if last_step is not None and read_at is not None and read_at < last_step:
        found.unknown.append(PACKAGES_UNKNOWN.format("again since the run's last step started"))
        return
    for machine, installed in now["machines"].items():
        then = before["machines"].get(machine) or {}
        changed = [f"{name} {then[name]} -> {version}" for name, version in sorted(installed.items())
                   if then.get(name) and then[name] != version]
        if changed:
            found.differences.append(Difference(
                f"{machine}{PACKAGES}", "as installed when the run started", ", ".join(changed),
                restore="Nothing: packages are not downgraded."))


def _compare_ha(before, now, effects, found):
    if before["error"] or now["error"]:
        found.unknown.append("Global and local maintenance: the HA state "
                             f"{'when the run started' if before['error'] else 'now'} is unknown "
                             f"({before['error'] or now['error']}).")
        return
    was, is_ = before["global_maintenance"], now["global_maintenance"]
    if was != is_:
        found.differences.append(Difference(
            "Global maintenance", _onoff(was), _onoff(is_), by_run=_by(effects, "global", is_),
            restore="Maintenance none." if is_ else "Nothing: the cluster is out of global maintenance.",
            action=("global-none",) if is_ and was is False else ()))
    for name, host in now["hosts"].items():
        then = before["hosts"].get(name)
        if then is None or then["local_maintenance"] == host["local_maintenance"]:
            continue
        if not host["live"]:
            found.unknown.append(f"{name}: local maintenance: its HA data is not up to date.")
            continue
        on = host["local_maintenance"]
        found.differences.append(Difference(
            f"{name}: local maintenance", _onoff(then["local_maintenance"]), _onoff(on),
            by_run=_by(effects, "local:" + name, on),
            restore=f"Maintenance none on {name}." if on else "Nothing.",
            action=("local-none", name) if on else ()))


def _compare_engine(before, now, effects, found):
    if now["api"] == "v3" or before["api"] == "v3":
        found.unknown.append("The engine's side (host maintenance, scheduling policy, the engine VM's host "
                             "as the engine sees it) is not available through API v3 (oVirt 3.x).")
        # What the run's own web-admin steps did is known: a host it put into maintenance
        # and did not activate again.
        for key, (value, step) in sorted(effects.items()):
            if key.startswith("engine:") and value == "maintenance":
                name = key.split(":", 1)[1]
                found.differences.append(Difference(
                    f"{name}: engine status", "up (the run's step put it into maintenance later)",
                    "unknown (API v3); the run did not activate it again",
                    by_run=f"step {step.order} ({step.title})",
                    restore=f"Activate {name} in the web admin.", action=("activate", name)))
        return
    if before["api"] != "v4" or now["api"] != "v4":
        side = "when the run started" if before["api"] != "v4" else "now"
        why = (before if before["api"] != "v4" else now)["error"] or "not read yet"
        found.unknown.append(f"The engine's view {side} is unknown ({why}).")
        return
    for name, host in now["hosts"].items():
        then = before["hosts"].get(name)
        if then is None or then["status"] == host["status"]:
            continue
        activate = host["status"] in IN_MAINTENANCE and then["status"] == "up"
        found.differences.append(Difference(
            f"{name}: engine status", then["status"], host["status"],
            by_run=_by(effects, "engine:" + name, "maintenance" if host["status"] in IN_MAINTENANCE
                       else host["status"]),
            restore=f"Activate {name} through the engine." if activate else "Nothing: look at the host.",
            action=("activate", name) if activate else ()))
    if before["scheduling_policy"] and now["scheduling_policy"] and \
            before["scheduling_policy"] != now["scheduling_policy"]:
        found.differences.append(Difference(
            "Scheduling policy", before["scheduling_policy"], now["scheduling_policy"],
            by_run=_by(effects, "policy", now["scheduling_policy"]),
            restore=f"Scheduling policy {before['scheduling_policy']} again.",
            action=("policy", now["cluster"] or before["cluster"], before["scheduling_policy"])))
    if before["engine_vm_host"] != now["engine_vm_host"]:
        found.differences.append(Difference(
            "The engine VM's host", before["engine_vm_host"] or "none", now["engine_vm_host"] or "none",
            restore="Nothing: the engine VM is not moved back."))
    if before["version"] and now["version"] and before["version"] != now["version"]:
        found.differences.append(Difference("Compatibility version", before["version"], now["version"],
                                            restore="Nothing: a compatibility version is never lowered."))


# Which run the cluster page shows --------------------------------------------

def last_unsuccessful_run(cluster):
    """The cluster's latest finished run that changes the system (return-to-normal and
    read-only runs aside), if it did not succeed: what the cluster page compares with now."""
    last = (UpgradeRun.objects.filter(cluster=cluster, finished_at__isnull=False)
            .exclude(runbook__slug=RETURN_TO_NORMAL).filter(steps__changes=True).distinct()
            .select_related("runbook", "cluster").order_by("-finished_at", "-pk").first())
    if last is None or last.status not in NOT_SUCCEEDED:
        return None
    return last


def for_cluster(cluster):
    """The cluster page's "left behind": the latest such run's differences, None when none.
    Newer packages alone do not keep it there: nothing returns them (the run page lists them)."""
    run = last_unsuccessful_run(cluster)
    if run is None:
        return None
    found = left_behind(run)
    if found is None or all(d.what.endswith(PACKAGES) for d in found.differences):
        return None
    return found
