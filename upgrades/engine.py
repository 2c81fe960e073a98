"""Walks a run's stored steps; never imports rq, channels or django.http.

``advance`` is called by the job that claimed the run (``upgrades.jobs``) or
by ``manage.py runbook start --sync``. It executes pending steps in order
until the run ends, fails, or waits for a person, and returns the status the
run should take (or HANDED_OVER when its worker is stopping: between two
steps, so another worker goes on from the next one). Between steps it re-reads the run's pause and cancel
requests; a cancel also stops the current command (via ``Heartbeat.stop``).
Every state change goes through ``upgrades.services``.
"""
import logging
import re
import time
import traceback
from types import SimpleNamespace

from . import backups, checks, dbwait, events, packages, services, state
from .models import STEP_DONE, RunStatus, RunStep, StepKind, StepStatus, UpgradeRun
from .output import OutputNotStored, OutputRecorder, append_note
from .remote.base import CommandStopped, EngineError, RemoteError
from .remote.engine_api import EngineClient
from .remote.ssh import SshTarget

log = logging.getLogger(__name__)

ENGINE_ACTIONS = {
    "deactivate_host": lambda client, timeout, host, reason="": (
        client.deactivate_host(host, reason=reason or None),
        client.wait_for_host_status(host, "maintenance", timeout)),
    "activate_host": lambda client, timeout, host: (
        client.activate_host(host), client.wait_for_host_status(host, "up", timeout)),
    "create_cluster": lambda client, timeout, name, version="", data_center="Default": client.create_cluster(
        name, version=version or None, data_center=data_center),
    "set_cluster_version": lambda client, timeout, name, version: client.set_cluster_version(name, version),
    "migrate_engine_vm": lambda client, timeout, host="": client.migrate_engine_vm(host or None, timeout=timeout),
    "remove_host": lambda client, timeout, host: client.remove_host(host),
    "add_host": lambda client, timeout, host, address, cluster, deploy_hosted_engine=False: (
        client.add_host(host, address, cluster, deploy_hosted_engine=deploy_hosted_engine),
        client.wait_for_host_status(host, "up", timeout)),
    "set_scheduling_policy": lambda client, timeout, cluster, policy: (
        f"scheduling policy of {cluster}: was {client.set_scheduling_policy(cluster, policy) or '?'}, "
        f"now {policy}"),
    "engine_vm_to_upgraded_host": lambda client, timeout, upgraded, host: _engine_vm_to(
        client, timeout, upgraded.split(","), host),
}


# How long an engine step waits for an engine that is down or restarting (the engine VM
# boots and ovirt-engine starts in a few minutes; the howto's FAQ says up to 10).
ENGINE_UNAVAILABLE_WAIT = 600


def _engine_vm_to(client, timeout, upgraded, host):
    """Where the upgraded hosts score no higher than the others, the agents leave the
    engine VM where it is: migrate it through the engine, unless it is on one already."""
    deadline = client.clock() + min(timeout, 300)
    while True:
        vm = client.engine_vm()
        if vm.host_name in upgraded:
            return f"HostedEngine runs on {vm.host_name}, an upgraded host: nothing to migrate"
        try:
            client.migrate_engine_vm(host, timeout=timeout)
            return f"HostedEngine migrated from {vm.host_name} to {host}"
        except EngineError as exc:
            # The engine learns a host's new HA score from its own polls, a little after
            # vm-status shows it: its HA filter refuses the host until then.
            if "did not satisfy internal filter HA" not in str(exc) or client.clock() >= deadline:
                raise
            client.sleep(10)


# advance's status for a run whose worker is stopping: it is handed to another worker
# (services.hand_over_run) between two steps, never in the middle of one, except a
# wait step: it only reads, so it goes back to pending and starts again there.
HANDED_OVER = "handed-over"


class Outcome:
    DONE, FAILED, WAITING, APPROVAL, STOPPED = "done", "failed", "waiting", "approval", "stopped"
    HANDED_OVER = "handed-over"


class WaitHandedOver(Exception):
    """A wait step is a safe point: it only reads, so it starts again on the next worker."""


def advance(run, *, beat, pool, engine_client=EngineClient.for_cluster):
    """Execute the run's next steps; returns (run status, error text)."""
    if not run.cancel_requested and not run.steps.exclude(status=StepStatus.PENDING).exists():
        # Before the first step (also when a run its preflight stopped is resumed).
        services.record_snapshot(run)
        error = start_preflight(run, pool, engine_client)
        if error:
            return RunStatus.FAILED, error
    handover = getattr(beat, "handover", None)
    while True:
        if beat.lost.is_set():
            return None, ""
        # The next step with the run's pause/cancel flags as they are now: one query a step.
        step = (RunStep.objects.filter(run_id=run.pk).exclude(status__in=STEP_DONE)
                .select_related("host", "run").order_by("order").first())
        flags = step.run if step is not None else UpgradeRun.objects.only(
            "pause_requested", "cancel_requested", "error").get(pk=run.pk)
        if flags.cancel_requested:
            # Also a run handed over to end (services.runs._end_through_worker): its
            # error says why; a rejected or expired approval ends it failed.
            rejected = run.steps.filter(status=StepStatus.REJECTED).exists()
            run_always_steps(run, "the approval was rejected or expired" if rejected else "the run was cancelled",
                             beat=beat, pool=pool, engine_client=engine_client, cancelled=True)
            return (RunStatus.FAILED if rejected else RunStatus.CANCELLED), flags.error
        if flags.pause_requested:
            return RunStatus.PAUSED, ""
        if step is None:
            return RunStatus.SUCCEEDED, ""
        if step.status == StepStatus.WAITING:
            return (RunStatus.AWAITING_APPROVAL if step.action == StepKind.APPROVAL else RunStatus.WAITING), ""
        if step.status != StepStatus.PENDING:
            return RunStatus.FAILED, f"step {step.order} is {step.get_status_display()}"
        if handover is not None and handover.is_set():  # a step is left to run: another worker runs it
            return HANDED_OVER, ""
        outcome = execute_step(step, run, beat=beat, pool=pool, engine_client=engine_client)
        if outcome == Outcome.HANDED_OVER:
            return HANDED_OVER, ""
        if outcome == Outcome.STOPPED:
            run_always_steps(run, "the run was cancelled", beat=beat, pool=pool, engine_client=engine_client,
                             cancelled=True)
            return RunStatus.CANCELLED, ""
        if outcome == Outcome.FAILED:
            run_always_steps(run, "the run failed", beat=beat, pool=pool, engine_client=engine_client)
            return RunStatus.FAILED, ""
        if outcome == Outcome.WAITING:
            return RunStatus.WAITING, ""
        if outcome == Outcome.APPROVAL:
            return RunStatus.AWAITING_APPROVAL, ""


def run_always_steps(run, why, *, beat, pool, engine_client, cancelled=False):
    """A run that stops early still runs its pending ``always`` steps (a runbook's
    ``finally``: e.g. restore the cluster's scheduling policy), in order, each recorded
    as usual. After a failure each goes back to pending, so a retried or resumed run
    does it again at its place; a cancelled run never goes on, so there they keep how
    they ended (also a rejected or expired approval's run, which never goes on). A
    cancel does not stop them (only losing the run does); a worker killed outright
    runs none: they run when the interrupted run is resumed or abandoned."""
    cleanup = SimpleNamespace(lost=beat.lost, stop=beat.lost)
    for step in run.steps.select_related("host").filter(status=StepStatus.PENDING).order_by("order"):
        if not step.spec.get("always") or beat.lost.is_set():
            continue
        append_note(step.pk, f"--- runs now because {why} ---")
        execute_step(step, run, beat=cleanup, pool=pool, engine_client=engine_client)
        if cancelled:
            continue
        append_note(step.pk, "--- back to pending: runs again at its place if the run goes on ---")
        dbwait.until_written(f"step {step.pk} back to pending",
                             lambda: RunStep.objects.filter(pk=step.pk).update(status=StepStatus.PENDING))
        step.status = StepStatus.PENDING
        events.publish(events.run_group(run.pk), events.step_event(step))


def start_preflight(run, pool, engine_client):
    """The plan's checks again, on state read now; an inhibitor fails the run before any step."""
    wanted = run.preflight.get("checks", [])
    if not wanted:
        services.record_start_preflight(run, [])
        return ""
    fresh = state.read(run.cluster, pool)
    if any(c["name"] == "updates-pending" for c in wanted):
        # The plan had the poller's last read; the start reads them now, and keeps them
        # as the versions before (the run page compares its end with them).
        services.record_packages_before(run, packages.poll_packages(run.cluster, pool,
                                                                    engine_client=engine_client))

    def engine_probe():
        try:
            with engine_client(run.cluster) as client:
                client.test_connection()
        except RemoteError as exc:
            return exc.message
        return ""

    ctx = checks.Context(cluster=run.cluster, run_id=run.pk, engine_probe=engine_probe)
    results = [checks.run_check(c["name"], c["args"], fresh, ctx) for c in wanted]
    services.record_start_preflight(run, [r.to_dict() for r in results])
    blocked = [r.message for r in results if r.level == checks.INHIBITOR]
    return ("Preflight when the run started: " + " ".join(blocked)) if blocked else ""


def execute_step(step, run, *, beat, pool, engine_client):
    """Run one step; the step's record says how it ended. A database that is away when the
    command ends is waited for: its output is stored, then its end with the real exit
    status (``OutputRecorder.close``, ``services.finish_step``)."""
    if step.action in (StepKind.MANUAL, StepKind.APPROVAL):
        services.wait_for_person(step)
        return Outcome.APPROVAL if step.action == StepKind.APPROVAL else Outcome.WAITING
    if not services.start_step(step):
        return Outcome.DONE  # skipped by someone meanwhile: look at the steps again
    status, exit_code, error, lines = StepStatus.FAILED, None, "", None
    quiet = False  # the exit status is in the step's record; no need to repeat it in the log
    try:
        with OutputRecorder(step) as out:
            try:
                blocked = run_guards(step, run, pool, out)
                if blocked:
                    error = blocked
                elif step.action == StepKind.SSH:
                    exit_code, error = run_ssh(step, run, pool, out, beat)
                    quiet = exit_code is not None and error.startswith("exited with")
                elif step.action == StepKind.ENGINE:
                    error = run_engine_action(step, run, out, engine_client, beat)
                elif step.action == StepKind.WAIT:
                    error = run_wait(step, run, pool, out, beat)
                else:
                    error = f"unknown step kind {step.action!r}"
            except CommandStopped as exc:
                status, error = StepStatus.CANCELLED, exc.message
            except WaitHandedOver:
                out.line("system", "--- its worker is stopping: the wait starts again on another worker ---")
                status = StepStatus.PENDING
            except RemoteError as exc:
                error = exc.message
            if error and status != StepStatus.CANCELLED and beat.stop.is_set():
                status = StepStatus.CANCELLED
            if error and not quiet:
                out.line("system", error)
            if not error and status != StepStatus.PENDING:
                status = StepStatus.SUCCEEDED
        lines = out.last_seq
    except OutputNotStored as exc:  # the command's exit status is kept; its output is not all there
        log.error("step %s: %s", step.pk, exc)
        status, error = StepStatus.FAILED, str(exc)
    except Exception:
        log.exception("step %s crashed", step.pk)
        status, error = StepStatus.FAILED, "internal error: " + traceback.format_exc(limit=3).splitlines()[-1]
    services.finish_step(step, status=status, exit_code=exit_code, error=error, lines=lines)
    if status == StepStatus.PENDING:
        return Outcome.HANDED_OVER
    if status == StepStatus.CANCELLED:
        return Outcome.STOPPED
    return Outcome.DONE if status == StepStatus.SUCCEEDED else Outcome.FAILED


def run_guards(step, run, pool, out):
    """The step's checks again, right before it; the reason when one blocks."""
    guards = step.spec.get("guards") or []
    if not guards:
        return ""
    fresh = state.read(run.cluster, pool)
    ctx = checks.Context(cluster=run.cluster, run_id=run.pk)
    for guard in guards:
        result = checks.run_check(guard["name"], guard["args"], fresh, ctx)
        out.line("system", f"check {result.check}: {result.level}: {result.message}")
        if result.level == checks.INHIBITOR:
            return f"Not run: {result.message}"
    return ""


def run_ssh(step, run, pool, out, beat):
    """The command on its host; (exit code, error or "")."""
    spec = step.spec
    if spec.get("fetch"):
        return backups.run_fetch(step, run, pool, out, beat)
    command = spec.get("command", step.command)
    host = step.host
    if spec.get("on") == "engine-vm":
        target = SshTarget.for_engine_vm(run.cluster)
    elif spec.get("on") == "any":
        fresh = state.read(run.cluster, pool)
        live = [h.name for h in fresh.hosts if h.live]
        host = run.cluster.hosts.filter(name__in=live).order_by("he_host_id", "name").first()
        if host is None:
            return None, "no live host to run the command on"
        out.line("system", f"on {host.name}")
    if spec.get("on") != "engine-vm":
        target = SshTarget.for_host(host)
    seen = [] if spec.get("output_check") else None

    def on_line(stream, text):
        out.line(stream, text)
        if seen is not None:
            seen.append(text)

    timeout = spec.get("timeout", 3600)
    result = pool.session(target).run(command, on_line, timeout=timeout, stop=beat.stop)
    expected = spec.get("expect", [0])
    if result.exit_status not in expected:
        return result.exit_status, (f"exited with {result.exit_status}" +
                                    (f" (expected {', '.join(map(str, expected))})" if expected != [0] else ""))
    if seen is not None and not re.search(spec["output_check"], "\n".join(seen), re.MULTILINE):
        return result.exit_status, f"the output does not show {spec['output_check']!r}"
    return result.exit_status, ""


def run_engine_action(step, run, out, engine_client, beat):
    spec = step.spec
    action = ENGINE_ACTIONS.get(spec["action"])
    if action is None:
        return f"unknown engine action {spec['action']!r}"
    out.line("system", step.command)
    timeout = spec.get("timeout", 900)
    with engine_client(run.cluster) as client:
        if hasattr(client, "sleep"):
            # The engine's status waits re-read as often as the cluster is polled (at most
            # every 5 s), not a fixed 5 s: a host that is ready is seen ready soon.
            poll = max(0.2, min(5.0, run.cluster.poll_interval))
            client.sleep = lambda seconds, sleep=client.sleep: sleep(min(seconds, poll))
        # The engine may be restarting when a step begins (the HA agents restart its VM
        # once global maintenance is left): a request it could not take is sent again,
        # the waiting said in the step's output, a cancel ending it.
        client.unavailable_wait = min(timeout, ENGINE_UNAVAILABLE_WAIT)
        client.stop = beat.stop
        client.notice = lambda text: out.line("system", text)
        result = action(client, timeout, **spec.get("args", {}))
    out.line("system", result if isinstance(result, str) else "done")
    return ""


def run_wait(step, run, pool, out, beat):
    """Re-read the state until the condition holds; say what it waits for and what it sees."""
    spec = step.spec
    name, args = spec["condition"]["name"], spec["condition"]["args"]
    ctx = checks.Context(cluster=run.cluster, run_id=run.pk)
    out.line("system", f"waiting until {checks.describe_condition(name, args)}")
    interval = min(spec.get("interval", 5.0), max(0.5, run.cluster.poll_interval))
    deadline = time.monotonic() + spec.get("timeout", 600)
    last = None
    handover = getattr(beat, "handover", None)
    while True:
        fresh = state.read(run.cluster, pool)
        if ctx.baseline is None and not fresh.error:
            ctx.baseline = fresh  # what was there before this wait: not new data
        holds, seen = (False, f"HA state unknown: {fresh.error}") if fresh.error else \
            checks.test_condition(name, args, fresh, ctx)
        if seen != last:
            out.line("system", f"seen: {seen}")
            last = seen
        if holds:
            return ""
        if time.monotonic() >= deadline:
            return f"timed out after {spec.get('timeout', 600)} s; last seen: {seen}"
        if handover is not None and handover.is_set():
            raise WaitHandedOver
        if beat.stop.wait(interval):
            raise CommandStopped("the wait was stopped")
