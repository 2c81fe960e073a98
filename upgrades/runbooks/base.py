"""The runbook format: parameters, steps and checks, as plain data.

A runbook module builds one ``Runbook`` from these classes; importing it does
no I/O. ``upgrades.plan`` expands it on a cluster's state into concrete
steps, which are stored and then executed by ``upgrades.engine``. Text
fields (titles, commands, check arguments) may name parameters and the
loop's ``{host}`` as ``{name}``; in commands every value is shell-quoted.

``always=True`` on an Ssh, Engine or Wait step makes it a runbook's
``finally``: when the run fails or is cancelled before reaching it, the
engine runs it anyway (see ``upgrades.engine.run_always_steps``).
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    """A typed parameter; ``upgrades.plan.param_form`` validates it.

    kind: ``host`` (a host of the cluster, by name), ``version`` (like 4.5
    or 4.5.7), ``path`` (absolute, no ``..``), ``text`` (matching
    ``pattern``), ``choice`` (one of ``choices``), ``int``, ``bool``.
    """

    name: str
    label: str
    kind: str = "text"
    required: bool = True
    pattern: str = ""
    pattern_help: str = ""
    choices: tuple = ()
    default: object = None
    help: str = ""


@dataclass(frozen=True)
class Check:
    """A named check or condition from ``upgrades.checks`` with its arguments."""

    name: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ssh:
    """A command run over SSH on ``on``: a host name template (``{host}``), ``any``
    (a live host of the cluster, picked when the step runs) or ``engine-vm``."""

    key: str
    title: str
    command: str
    on: str = "{host}"
    expect: tuple = (0,)
    output_check: str = ""  # a regular expression the output must contain, if set
    changes: bool = False
    rerun_safe: bool = True
    timeout: int = 600
    guards: tuple = ()
    always: bool = False


@dataclass(frozen=True)
class Fetch:
    """A file off the engine VM into the portal's backup directory, in the worker
    (``upgrades.backups``): ``copy`` over SFTP, its sha256 compared with ``sha256sum``
    in the VM; ``space``: ``df`` of ``path`` in the VM and the portal's directory, both
    with room for a backup. Stored as an ssh step whose spec has ``fetch``."""

    key: str
    title: str
    path: str
    mode: str = "copy"
    timeout: int = 3600
    always: bool = False


@dataclass(frozen=True)
class Engine:
    """An action of the engine API (``upgrades.remote.engine_api``)."""

    key: str
    title: str
    action: str  # deactivate_host, activate_host, create_cluster, set_cluster_version, migrate_engine_vm
    args: dict = field(default_factory=dict)
    changes: bool = True
    rerun_safe: bool = True
    timeout: int = 900
    guards: tuple = ()
    always: bool = False


@dataclass(frozen=True)
class Wait:
    """Wait until a condition on live state holds, read fresh, re-checked every ``interval``."""

    key: str
    title: str
    condition: Check
    timeout: int = 600
    interval: float = 5.0
    guards: tuple = ()
    always: bool = False


@dataclass(frozen=True)
class Manual:
    """Instructions for a person; the run waits until an operator confirms."""

    key: str
    title: str
    instructions: str


@dataclass(frozen=True)
class Approval:
    """The run waits until an approver who is not the requester approves; a rejection ends it."""

    key: str
    title: str
    reason: str = ""


@dataclass(frozen=True)
class ForEachHost:
    """``steps`` repeated per host with ``{host}`` bound, in an order computed from
    live state when the run is created: ``engine-vm-last`` or ``by-id``."""

    key: str
    steps: tuple
    order: str = "engine-vm-last"


@dataclass(frozen=True)
class Runbook:
    """``steps`` is a tuple, or a function of an ``upgrades.plan.PlanContext``
    (cluster, live state, parameters, detected release) returning one, for a
    procedure done differently per release; it says which way it went with
    ``ctx.note(...)``, shown in the plan."""

    slug: str
    name: str
    description: str
    steps: object
    params: tuple = ()
    preflight: tuple = ()
    # How the launch pages offer it: for the cluster, or from a host's row.
    scope: str = "cluster"
    # When the ``host`` parameter is left empty, the plan picks one from live
    # state: "live-out-of-local-maintenance" (the first such host by HE id).
    default_host: str = ""
    # False for runbooks meant for a cluster whose HA data cannot be fresh (a corrupted
    # lockspace, a failed or partial deployment): the plan then leaves out ``ha-fresh``.
    needs_fresh_ha: bool = True
    # The emergency lane (the maintenance modes, the diagnostic): always available,
    # whatever procedure is active; one that changes the cluster pauses that procedure
    # (upgrades.services.runs, docs/architecture.md "Emergency lane").
    emergency: bool = False

    def param(self, name):
        return next((p for p in self.params if p.name == name), None)
