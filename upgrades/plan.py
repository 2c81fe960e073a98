"""Expanding a runbook on a cluster's state into its plan.

``make_plan`` turns a runbook, validated parameters and a ``ClusterState``
into concrete steps — host, exact command or action, condition — and the
preflight results. Creating a run stores exactly these steps before anything
runs; shown without storing, the same plan is the dry run an operator
confirms. Parameters are validated by a Django form built from the
runbook's ``Param`` list, for the pages and the CLI alike.
"""
import re
import string
from dataclasses import dataclass, field

from django import forms

from . import checks
from .remote.ssh import build_command
from .runbooks.base import Approval, Engine, Fetch, ForEachHost, Manual, Ssh, Wait

VERSION = r"\d+\.\d+(\.\d+){0,2}"
PATH = r"/[A-Za-z0-9._+@%=:,/-]*"


class PlanError(Exception):
    """The runbook cannot be planned as asked (with the reason)."""


def param_form(runbook, cluster, data=None):
    """A bound (or unbound) form for the runbook's parameters on ``cluster``."""
    form = forms.Form(data=data)
    for param in runbook.params:
        form.fields[param.name] = _field(param, cluster)
    return form


def _field(param, cluster):
    common = {"label": param.label, "required": param.required, "help_text": param.help,
              "initial": param.default}
    if param.kind == "host":
        names = [h.name for h in cluster.hosts.all()]  # a page may have prefetched them
        return forms.ChoiceField(choices=[("", "—")] + [(n, n) for n in names], **common)
    if param.kind == "choice":
        return forms.ChoiceField(choices=[(c, c) for c in param.choices], **common)
    if param.kind == "bool":
        return forms.BooleanField(**{**common, "required": False})
    if param.kind == "int":
        return forms.IntegerField(min_value=0, max_value=2_000_000, **common)
    pattern, message = {
        "version": (VERSION, "a version such as 4.5 or 4.5.7"),
        "path": (PATH, "an absolute path of letters, digits and ._+@%=:,/- (no '..')"),
    }.get(param.kind, (param.pattern or r".*", param.pattern_help or f"text matching {param.pattern}"))
    return _RegexField(pattern, message, max_length=500, strip=True, **common)


class _RegexField(forms.CharField):
    """The whole value must match; say what a valid one looks like."""

    def __init__(self, pattern, message, **kwargs):
        super().__init__(**kwargs)
        self.pattern, self.message = re.compile(pattern), message

    def clean(self, value):
        value = super().clean(value)
        if value and (not self.pattern.fullmatch(value) or "/../" in f"{value}/"):
            raise forms.ValidationError(f"Enter {self.message}.")
        return value


@dataclass
class PlannedStep:
    key: str
    title: str
    kind: str
    command: str  # what it does, for people
    host: object = None  # a Host row, or None (engine, a person, "any live host")
    spec: dict = field(default_factory=dict)
    changes: bool = False
    rerun_safe: bool = True


@dataclass
class PlanContext:
    """What a runbook whose steps depend on the cluster sees when it is expanded."""

    cluster: object
    state: object
    params: dict
    release: tuple | None  # (major, minor) of the cluster's detected oVirt release, None if unknown
    notes: list = field(default_factory=list)  # the runbook says here which way it picked, and why

    def note(self, text):
        self.notes.append(text)


def release_of(cluster):
    """(major, minor) from the release the poller detected, e.g. "oVirt 3.6 (...)" -> (3, 6)."""
    match = re.match(r"oVirt (\d+)\.(\d+)\b", cluster.detected_release or "")
    return (int(match[1]), int(match[2])) if match else None


@dataclass
class Plan:
    runbook: object
    cluster: object
    params: dict
    steps: list
    checks: list  # checks.Result
    state: object
    check_specs: list = field(default_factory=list)  # [{"name", "args"}], evaluated again at the start
    notes: list = field(default_factory=list)  # which way the runbook goes on this cluster, and why

    @property
    def inhibitors(self):
        return [c for c in self.checks if c.level == checks.INHIBITOR]

    @property
    def warnings(self):
        return [c for c in self.checks if c.level == checks.WARNING]

    @property
    def changes(self):
        return any(step.changes for step in self.steps)


def make_plan(runbook, cluster, params, state, *, run_id=None, engine_probe=None):
    """The concrete steps and the preflight results; ``params`` are already clean."""
    hosts = {h.name: h for h in cluster.hosts.all()}
    values = {k: v for k, v in params.items() if v not in (None, "")}
    if runbook.default_host and "host" not in values:
        values["host"] = default_host(runbook.default_host, hosts, state)
    steps = []
    ctx = PlanContext(cluster=cluster, state=state, params=values, release=release_of(cluster))
    for item in runbook.steps(ctx) if callable(runbook.steps) else runbook.steps:
        if isinstance(item, ForEachHost):
            for host_name in host_order(item.order, hosts, state):
                for step in item.steps:
                    steps.append(_expand(step, {**values, "host": host_name}, hosts,
                                         key=f"{item.key}.{host_name}.{step.key}"))
        else:
            steps.append(_expand(item, values, hosts, key=item.key))
    check_ctx = checks.Context(cluster=cluster, run_id=run_id, engine_probe=engine_probe)
    uses_engine = any(step.kind == "engine" for step in steps)
    # Every runbook: the cluster to itself; fresh HA data when it changes anything;
    # the engine when a step needs it.
    changes = any(step.changes for step in steps)
    # The emergency lane has its own lock, and says first which procedure it pauses.
    lock = [("no-other-emergency-run", {})] + ([("pauses-procedure", {})] if changes else []) \
        if runbook.emergency else [("no-other-active-run", {})]
    preflight = ([("ha-fresh", {})] if changes and runbook.needs_fresh_ha else []) + lock + \
        ([("engine-reachable", {})] if uses_engine else []) + \
        [(c.name, _fill_args(c.args, values)) for c in runbook.preflight]
    results = [checks.run_check(name, args, state, check_ctx) for name, args in preflight]
    return Plan(runbook=runbook, cluster=cluster, params=params, steps=steps, checks=results, state=state,
                check_specs=[{"name": name, "args": args} for name, args in preflight], notes=ctx.notes)


def default_host(rule, hosts, state):
    """The host a cluster-wide command runs on when the operator names none."""
    if rule != "live-out-of-local-maintenance":
        raise PlanError(f"unknown default host rule {rule!r}")
    by_id = sorted(hosts, key=lambda n: (hosts[n].he_host_id or 10**9, n))
    live = [n for n in by_id if (s := state.host(n)) is not None and s.live]
    picked = next((n for n in live if not state.host(n).local_maintenance), None) or (live or by_id or [None])[0]
    if picked is None:
        raise PlanError("the cluster has no hosts")
    return picked


def host_order(order, hosts, state):
    """Host names for a for-each block, from live state: ``engine-vm-last`` or ``by-id``."""
    names = sorted(hosts, key=lambda n: (hosts[n].he_host_id or 10**9, n))
    if order == "engine-vm-last":
        vm_host = state.engine_vm_host
        if vm_host is None:
            why = state.error or "no live host runs it"
            raise PlanError(f"The engine VM's host is unknown ({why}), so the hosts cannot be put in order "
                            "(the engine VM's host last).")
        names = [n for n in names if n != vm_host.name] + [vm_host.name]
    elif order != "by-id":
        raise PlanError(f"unknown host order {order!r}")
    return names


def _fill(text, values):
    """A title or description with ``{name}`` fields filled, unquoted."""
    missing = _fields(text) - set(values)
    if missing:
        raise PlanError(f"this needs a value for {', '.join(sorted(missing))}")
    return text.format(**{name: values[name] for name in _fields(text)})


def _fields(template):
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _fill_args(args, values):
    return {k: _fill(v, values) if isinstance(v, str) else v for k, v in args.items()}


def _guards(step, values):
    return [{"name": g.name, "args": _fill_args(g.args, values)} for g in step.guards]


def _expand(step, values, hosts, key):
    planned = _expand_step(step, values, hosts, key)
    if getattr(step, "always", False):
        planned.spec["always"] = True  # runs even when the run fails or is cancelled first
    return planned


def _expand_step(step, values, hosts, key):
    title = _fill(step.title, values)
    if isinstance(step, Ssh):
        _fill(step.command, values)  # every field has a value
        command = build_command(step.command, **{name: values[name] for name in _fields(step.command)})
        target = _fill(step.on, values)
        if target not in ("any", "engine-vm") and target not in hosts:
            raise PlanError(f"step {key}: {target} is not a host of this cluster")
        return PlannedStep(key, title, "ssh", command, host=hosts.get(target), changes=step.changes,
                           rerun_safe=step.rerun_safe,
                           spec={"command": command, "on": target, "expect": list(step.expect),
                                 "output_check": step.output_check, "timeout": step.timeout,
                                 "guards": _guards(step, values)})
    if isinstance(step, Fetch):
        path = _fill(step.path, values)
        if step.mode == "space":
            command = build_command("df -P -B1 {path}", path=path)
            described = f"{command} in the engine VM, and the free space of the portal's backup directory"
        else:
            command = build_command("sha256sum {path}", path=path)
            described = (f"copy {path} off the engine VM into the portal's backup directory (SFTP), "
                         f"then {command} there and compare")
        return PlannedStep(key, title, "ssh", described, spec={
            "command": command, "on": "engine-vm", "expect": [0], "output_check": "", "timeout": step.timeout,
            "guards": [], "fetch": {"mode": step.mode, "path": path}})
    if isinstance(step, Engine):
        args = _fill_args(step.args, values)
        described = f"engine API: {step.action}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
        return PlannedStep(key, title, "engine", described, host=hosts.get(args.get("host")), changes=step.changes,
                           rerun_safe=step.rerun_safe,
                           spec={"action": step.action, "args": args, "timeout": step.timeout,
                                 "guards": _guards(step, values)})
    if isinstance(step, Wait):
        args = _fill_args(step.condition.args, values)
        described = f"wait until {checks.describe_condition(step.condition.name, args)} (at most {step.timeout} s)"
        return PlannedStep(key, title, "wait", described, host=hosts.get(args.get("host")),
                           spec={"condition": {"name": step.condition.name, "args": args},
                                 "timeout": step.timeout, "interval": step.interval,
                                 "guards": _guards(step, values)})
    if isinstance(step, Manual):
        text = _fill(step.instructions, values)
        return PlannedStep(key, title, "manual", text, host=hosts.get(values.get("host")), changes=True,
                           rerun_safe=False, spec={"instructions": text})
    if isinstance(step, Approval):
        reason = _fill(step.reason, values)
        return PlannedStep(key, title, "approval", reason or "an approver signs off", spec={"reason": reason})
    raise PlanError(f"unknown step type {type(step).__name__}")
