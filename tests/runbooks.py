"""Runbooks that exist only for the tests: each exercises a kind of step.

Registered into the registry when imported. Runs store their concrete
steps, so the worker processes execute them without knowing these.
"""
from upgrades.runbooks import register
from upgrades.runbooks.base import Approval, Check, Engine, ForEachHost, Manual, Param, Runbook, Ssh, Wait

HOST = (Param("host", "Host", kind="host"),)

WAIT_OK = register(Runbook(
    slug="test-wait", name="Test: wait", description="A wait that holds.", params=HOST,
    steps=(Wait("vm-up", "Wait for the engine VM", Check("engine-vm-up", {"not_on": ""}), timeout=60),),
))

WAIT_TIMEOUT = register(Runbook(
    slug="test-wait-timeout", name="Test: wait times out", description="A wait that never holds.", params=HOST,
    steps=(Wait("never", "Wait for global maintenance", Check("global-maintenance", {"on": True}), timeout=3),),
))

MANUAL = register(Runbook(
    slug="test-manual", name="Test: manual", description="A person confirms.", params=HOST,
    steps=(Ssh("before", "Before", "echo before on {host}"),
           Manual("reinstall", "Reinstall {host}", "Reinstall {host} as el7, then confirm."),
           Ssh("after", "After", "echo after")),
))

APPROVAL = register(Runbook(
    slug="test-approval", name="Test: approval", description="An approver signs off.", params=HOST,
    steps=(Approval("sign-off", "Sign-off", "a change on {host}"),
           Ssh("after", "After the approval", "echo approved")),
))

FOR_EACH = register(Runbook(
    slug="test-for-each", name="Test: for each host", description="Per host, the engine VM's host last.",
    steps=(ForEachHost("hosts", (Ssh("name", "Name of {host}", "hostname"),)),),
))

STEPS = register(Runbook(
    slug="test-steps", name="Test: steps", description="Three commands of a given length.",
    params=HOST + (Param("sim_seconds", "Simulated seconds each", kind="int", default=0),
                   Param("marker", "Marker file", kind="path", default="/tmp/steps")),
    steps=(Ssh("one", "One", "echo one >> {marker}; sleep {sim_seconds}", changes=True),
           Ssh("two", "Two", "echo two >> {marker}; sleep {sim_seconds}"),
           Ssh("three", "Three", "echo three >> {marker}")),
))

LONG = register(Runbook(
    slug="test-long", name="Test: long command", description="Ticks into a file until stopped.",
    params=HOST + (Param("changes", "Changes the system", kind="bool"),),
    steps=(Ssh("first", "First", "echo first >> /tmp/long-first", changes=True),
           Ssh("ticks", "Ticks", "for i in $(seq 1 600); do echo tick $i; echo $i > /tmp/ticks; sleep 30; done"),
           Ssh("last", "Last", "echo last")),
))

LONG_CHANGING = register(Runbook(
    slug="test-long-changing", name="Test: long changing command", description="A changing step cut off.",
    params=HOST,
    steps=(Ssh("ticks", "Ticks", "for i in $(seq 1 600); do echo tick $i; sleep 30; done", changes=True),
           Ssh("last", "Last", "echo last")),
))

FAILING = register(Runbook(
    slug="test-failing", name="Test: failing", description="A command that fails once, then passes.",
    params=HOST,
    steps=(Ssh("flaky", "Flaky", "echo retry-me", changes=True),
           Ssh("after", "After", "echo after")),
))

ENGINE_STEPS = (
    Engine("deactivate", "{host} to maintenance", "deactivate_host", {"host": "{host}"}, timeout=120),
    Wait("local", "{host} in local maintenance", Check("local-maintenance", {"host": "{host}", "on": True}),
         timeout=120),
    Engine("activate", "Activate {host}", "activate_host", {"host": "{host}"}, timeout=120),
)

ENGINE = register(Runbook(
    slug="test-engine", name="Test: engine", description="Host to maintenance and back through the engine.",
    params=HOST, steps=ENGINE_STEPS,
))

ENGINE_RESTARTING = register(Runbook(
    slug="test-engine-restarting", name="Test: engine restarting",
    description="ovirt-engine stops after the preflight (as when the HA agents restart its VM), "
                "then the engine steps.",
    params=HOST,
    steps=(Ssh("engine-stop", "Stop ovirt-engine", "systemctl stop ovirt-engine", on="engine-vm",
               changes=True),) + ENGINE_STEPS,
))
