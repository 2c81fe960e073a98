"""``manage.py runbook``: list, plan, start, follow and act on runs from a shell.

For automation and for operators at a terminal. Every change goes through
the same service as the web page (``upgrades.services``), so the permission
checks and the audit records are the same; ``--user`` names the person
acting. ``plan`` and ``start`` read the cluster's HA state fresh over SSH (a
shell is not a web request). Output is read from the database, the record of
truth, never from Redis. Exit codes: ``EXIT_CODES`` below (docs/cli.md).
"""
import logging
import os
import signal
import sys
import threading
import time

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from upgrades import events, jobs, services
from upgrades import state as cluster_state
from upgrades.models import STEP_DONE, Cluster, RunStatus, StepKind, StepStatus, UpgradeRun
from upgrades.plan import param_form
from upgrades.remote.ssh import SshPool
from upgrades.timefmt import format_time
from upgrades.runbooks import OUT_OF_SCOPE, UnknownRunbook, all_runbooks, get_runbook

log = logging.getLogger(__name__)

# One table of exit codes (docs/cli.md "Exit codes"): with --wait/--sync the code says
# where the run stopped; without, 0 says the action was done.
SUCCEEDED, ERROR, BAD_INPUT, WAITING = 0, 1, 2, 3
RUN_FAILED, RUN_CANCELLED, RUN_INTERRUPTED, RUN_PAUSED = 4, 5, 6, 7
READER_GONE, CTRL_C = 141, 130  # 141: as a program SIGPIPE ends (128 + 13)
EXIT_FOR_STATUS = {
    RunStatus.SUCCEEDED: SUCCEEDED, RunStatus.WAITING: WAITING, RunStatus.AWAITING_APPROVAL: WAITING,
    RunStatus.FAILED: RUN_FAILED, RunStatus.CANCELLED: RUN_CANCELLED, RunStatus.INTERRUPTED: RUN_INTERRUPTED,
    RunStatus.PAUSED: RUN_PAUSED,
}
POLL_SECONDS = 0.2
PENDING_HINT_SECONDS = 10
LINES_PER_QUERY = 2000
# The run will do nothing more by itself in these states.
STOPPED = (RunStatus.WAITING, RunStatus.AWAITING_APPROVAL, RunStatus.PAUSED, RunStatus.SUCCEEDED,
           RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)
TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0", ""}

EXIT_CODES = ("exit codes: 0 done (with --wait/--sync: the run succeeded), 1 refused or an error, 2 bad input "
              "or a plan blocked by an inhibitor (nothing was saved), 3 the run waits for a person (a manual step "
              "or an approval), 4 the run failed, 5 cancelled, 6 interrupted, 7 paused, 130 Ctrl-C, 141 stdout "
              "was closed (e.g. | head).")
PRINT_ONLY = ("list", "plan", "status")


class PipeGuard:
    """stdout whose reader may leave (``manage.py runbook status 7 | head -1``).

    A write to a closed pipe raises BrokenPipeError, and Python prints a traceback
    when it flushes at exit. Here the first broken write points stdout at
    /dev/null instead (the recipe of the ``signal`` module's docs) and sets
    ``gone``: nothing more is printed, and the command decides whether to stop
    (printing, following) or to carry on (an action, a run executed with --sync,
    which must not be left half done because nobody reads its output).
    """

    def __init__(self, out):
        self.out, self.gone = out, False

    def write(self, text):
        if not self.gone:
            self._guarded(self.out.write, text)

    def flush(self):
        if not self.gone:
            self._guarded(self.out.flush)

    def _guarded(self, call, *args):
        try:
            call(*args)
        except BrokenPipeError:
            self.gone = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.out.fileno())
                os.close(devnull)
            except (AttributeError, OSError, ValueError):  # not a real file (call_command's StringIO)
                pass

    def __getattr__(self, name):
        return getattr(self.out, name)


def bad_input(message):
    return CommandError(message, returncode=BAD_INPUT)


class Command(BaseCommand):
    help = "Plan, start, follow and act on runbook runs, as the web pages do. " + EXIT_CODES

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sub.add_parser("list", help="the runbooks and their parameters")

        def planning(name, help):
            p = sub.add_parser(name, help=help, description=help)
            p.add_argument("slug", metavar="SLUG", help="the runbook (see list)")
            p.add_argument("--cluster", required=True, metavar="NAME")
            p.add_argument("--host", metavar="NAME", help="shorthand for --param host=NAME")
            p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                           help="a runbook parameter; repeat for several")
            return p

        def run_action(name, help, *, comment=None, step=False):
            p = sub.add_parser(name, help=help, description=f"{help}. {EXIT_CODES}")
            p.add_argument("run", metavar="RUN", help="the run's number")
            p.add_argument("--user", required=True, metavar="NAME", help="who acts (for permissions and the audit)")
            if step:
                p.add_argument("--step", required=True, type=int, metavar="N", help="the step's number in the run")
            if comment:
                p.add_argument("--comment", default="", metavar="TEXT", help=comment)
            add_follow(p)
            return p

        def add_follow(p):
            how = p.add_mutually_exclusive_group()
            how.add_argument("--wait", action="store_true",
                             help="then follow the run as the workers execute it, printing each step's output, "
                                  "until it stops; the exit code says how")
            how.add_argument("--sync", action="store_true",
                             help="then execute the run in this process (no worker needed) if it is to go on and "
                                  "no worker has it, else follow it; the exit code says how it stopped")

        planning("plan", "show the concrete steps and preflight results (exit 2 if an inhibitor blocks)")
        start = planning("start", "plan, then store and start the run")
        start.add_argument("--user", required=True, metavar="NAME", help="who starts it (an operator)")
        start.add_argument("--yes", action="store_true",
                           help="start without asking; this also acknowledges the plan's warnings")
        start.add_argument("--reason", default="", metavar="TEXT",
                           help="why (audited); required for a maintenance mode while a procedure is active")
        add_follow(start)
        add_rehearse(planning)
        status = sub.add_parser("status", help="a run's status, its steps, and what it waits for")
        status.add_argument("run", metavar="RUN")
        run_action("confirm", "confirm the manual step the run waits on", comment="what was done")
        run_action("approve", "approve the step the run waits on, or its start (not the requester)", comment="why")
        run_action("reject", "reject the step the run waits on, or its start: the run ends", comment="why")
        run_action("cancel", "cancel the run; a running command is stopped, then its clean-up (always) steps run",
                   comment="why")
        run_action("abandon", "give up a failed or interrupted run: its clean-up (always) steps run, then it ends "
                   "cancelled", comment="why")
        run_action("pause", "pause the run after its current step")
        for name, help in (("resume", "resume a paused, failed or interrupted run"),
                           ("retry", "run a failed, cancelled or interrupted step again")):
            p = run_action(name, help, step=name == "retry")
            p.add_argument("--acknowledge-hold", action="store_true",
                           help="go on with a run an emergency action paused, having read why (status shows it)")
        run_action("skip", "skip a step, with a reason", step=True, comment="why (required)")
        run_action("mark-done", "mark an interrupted step done, with a reason", step=True,
                   comment="why (required)")

    def handle(self, *args, action, **options):
        # OutputWrapper keeps the stream it wraps in ``_out``: the guard goes between them.
        self.stdout._out = self.pipe = PipeGuard(self.stdout._out)
        try:
            code = getattr(self, "do_" + action.replace("-", "_"))(**options)
            events.flush()  # live pages hear of what this process changed
        except UnknownRunbook as exc:
            raise bad_input(str(exc)) from None
        except ValidationError as exc:
            raise bad_input("\n".join(problems(exc))) from None
        except services.Blocked as exc:
            raise bad_input(str(exc)) from None
        except (PermissionDenied, services.Refused, services.RunConflict) as exc:
            raise CommandError(str(exc), returncode=ERROR) from None
        except KeyboardInterrupt:
            self.stderr.write("Interrupted.")
            code = CTRL_C
        finally:
            self.pipe.flush()  # a pipe closed early is found here, not in a traceback at exit
        if self.pipe.gone and action in PRINT_ONLY:
            code = READER_GONE
        if code:
            raise SystemExit(code)

    # Looking things up ------------------------------------------------------

    def find_user(self, name):
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise bad_input(f"there is no user {name!r}")
        if not user.is_active:
            raise bad_input(f"user {name!r} is inactive")
        return user

    def find_cluster(self, name):
        cluster = Cluster.objects.filter(name=name).first()
        if cluster is None:
            known = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none yet"
            raise bad_input(f"there is no cluster {name!r} (clusters: {known})")
        return cluster

    def find_run(self, text):
        number = text.removeprefix("#")
        if not (number.isascii() and number.isdigit() and len(number) <= 18):
            raise bad_input(f"{text!r} is not a run number")
        run = UpgradeRun.objects.select_related("cluster", "runbook", "requested_by").filter(pk=int(number)).first()
        if run is None:
            raise bad_input(f"there is no run #{number}")
        return run

    def find_step(self, run, order):
        step = run.steps.filter(order=order).first()
        if step is None:
            raise bad_input(f"run #{run.pk} has no step {order} (it has {run.steps.count()})")
        return step

    def collect_params(self, slug, host, pairs):
        """``--host`` and ``--param KEY=VALUE`` as form data; unknown or repeated names are refused."""
        runbook = get_runbook(slug)
        given, wrong = ([("host", host)] if host is not None else []), []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if sep and key.strip():
                given.append((key.strip(), value))
            else:
                wrong.append(f"--param {pair!r}: expected KEY=VALUE")
        params = {}
        for key, value in given:
            param = runbook.param(key)
            if param is None:
                takes = ", ".join(p.name for p in runbook.params) or "none"
                wrong.append(f"{key}: {slug} has no such parameter (it takes: {takes})")
            elif key in params:
                wrong.append(f"{key}: given more than once")
            elif param.kind == "bool":
                if value.strip().lower() not in TRUE | FALSE:
                    wrong.append(f"{key}: Enter true or false.")
                params[key] = value.strip().lower() in TRUE
            else:
                params[key] = value
        if wrong:
            raise bad_input("\n".join(wrong))
        # What the page's form shows filled in, unless given.
        return {p.name: p.default for p in runbook.params if p.default is not None} | params

    # Planning and starting ----------------------------------------------------

    def do_list(self, **options):
        for runbook in all_runbooks():
            self.stdout.write(f"{runbook.slug:<22} {runbook.name}" + (" (per host)" if runbook.scope == "host" else ""))
            self.stdout.write(f"    {runbook.description}")
            for p in runbook.params:
                need = f"default {p.default}" if p.default is not None else "required" if p.required else "optional"
                choices = f" ({', '.join(p.choices)})" if p.choices else ""
                self.stdout.write(f"    --param {p.name}=...  {p.label}: {p.kind}{choices}, {need}" +
                                  (f". {p.help}" if p.help else ""))
        for name, note in OUT_OF_SCOPE:
            self.stdout.write(f"{'(not a runbook)':<22} {name}")
            self.stdout.write(f"    {note}")
        return SUCCEEDED

    def make_plan(self, slug, cluster, params):
        """The plan on the HA state read now, printed. Bad parameters are refused before
        any host is asked (the service validates them again with the same form)."""
        form = param_form(get_runbook(slug), cluster, data=params)
        if not form.is_valid():
            raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
        with SshPool() as pool:
            state = cluster_state.read(cluster, pool)
        plan = services.plan_run(cluster=cluster, slug=slug, params=params, state=state)
        self.print_plan(plan)
        return plan

    def do_plan(self, slug, cluster, host, param, **options):
        params = self.collect_params(slug, host, param)
        plan = self.make_plan(slug, self.find_cluster(cluster), params)
        if plan.inhibitors:
            raise bad_input("Blocked: " + " ".join(c.message for c in plan.inhibitors))
        if plan.warnings:
            self.stdout.write(f"{len(plan.warnings)} warning(s): start with --yes (or answer yes) to acknowledge them.")
        else:
            self.stdout.write("Nothing blocks this plan.")
        return SUCCEEDED

    def print_plan(self, plan):
        write = self.stdout.write
        write(f"Plan: {plan.runbook.name} ({plan.runbook.slug}) on cluster {plan.cluster.name}")
        given = {k: v for k, v in plan.params.items() if v not in (None, "")}
        if given:
            write("Parameters: " + ", ".join(f"{k}={v}" for k, v in given.items()))
        write(f"HA state: {plan.state.describe()}")
        for note in plan.notes:
            write(f"Note: {note}")
        write("Steps:")
        for n, step in enumerate(plan.steps, start=1):
            where = (" on any live host" if step.spec.get("on") == "any" else
                     f" on {step.host.name}" if step.host and step.kind == StepKind.SSH else "")
            write(f"  {n}. {step.title}")
            kind = StepKind(step.kind).label
            write(f"     {kind[:1].lower()}{kind[1:]}{where}; "
                  f"{'changes the system' if step.changes else 'read-only'}; "
                  f"{'safe to rerun' if step.rerun_safe else 'not safe to rerun'}")
            for line in step.command.splitlines():
                write(f"     {'$ ' if step.kind == StepKind.SSH else ''}{line}")
        write("Preflight:")
        style = {"ok": self.style.SUCCESS, "warning": self.style.WARNING, "inhibitor": self.style.ERROR}
        for result in plan.checks:
            write(f"  {style[result.level](f'{result.level:<9}')} {result.check}: {result.message}")

    def do_rehearse(self, slug, cluster, host, param, user, sync, **options):
        return rehearse(self, slug, cluster, host, param, user, sync)

    def do_start(self, slug, cluster, host, param, user, yes, wait, sync, reason="", **options):
        params = self.collect_params(slug, host, param)
        user, cluster = self.find_user(user), self.find_cluster(cluster)
        plan = self.make_plan(slug, cluster, params)
        if plan.inhibitors:
            raise bad_input("Blocked, nothing was started: " + " ".join(c.message for c in plan.inhibitors))
        if not yes:
            self.ask(plan)
        # The services plan again on the same state and check again who may start it.
        start = dict(cluster=cluster, slug=slug, params=params, user=user, acknowledge=True, state=plan.state,
                     reason=reason)
        if sync:
            with transaction.atomic():  # never queued: executed here
                run = services.start_run(**start, queue=False)
                token = services.claim_run(run.pk) if run.status != RunStatus.AWAITING_APPROVAL else None
            if token is None:
                return self.awaiting_approval(run)
            self.stdout.write(f"Run #{run.pk} started by {user.username}; executing it here.")
            return self.execute_here(run, token, user)
        run = services.start_run(**start)
        if run.status == RunStatus.AWAITING_APPROVAL:
            return self.awaiting_approval(run)
        self.stdout.write(f"Run #{run.pk} started by {user.username}.")
        run.refresh_from_db()
        if run.queued_at is None:
            self.stderr.write(f"The job queue is unreachable right now. Run #{run.pk} is saved and starts as "
                              "soon as the queue answers again.")
        return self.follow(run) if wait else SUCCEEDED

    def awaiting_approval(self, run):
        self.stdout.write(f"Run #{run.pk} requested by {run.requested_by.get_username()}; it waits for "
                          f"{waits_for(run)}")
        return WAITING

    def ask(self, plan):
        """A person at a terminal says yes; a script must say --yes."""
        if not sys.stdin.isatty():
            raise bad_input("Not started: add --yes to start without a question (stdin is not a terminal).")
        warned = f", acknowledging the {len(plan.warnings)} warning(s) above" if plan.warnings else ""
        self.stdout.write(f"Start this run{warned}? [y/N] ", ending="")
        self.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CommandError("Not started.", returncode=ERROR)

    # Following and executing ---------------------------------------------------

    def follow(self, run, follower=None):
        """Print the run's steps and output as the workers store them, until it stops."""
        follower = follower or Follower(self, run.pk)
        since = time.monotonic()
        hinted = False
        try:
            while follower.poll() not in STOPPED:
                if self.pipe.gone:  # nobody reads any more: stop following; the run goes on
                    return READER_GONE
                if follower.run_status == RunStatus.PENDING and not hinted and \
                        time.monotonic() - since > PENDING_HINT_SECONDS:
                    queue = "emergency" if run.emergency else "default"
                    self.stderr.write(f"Run #{run.pk} is still pending after {PENDING_HINT_SECONDS} s: is a worker "
                                      f"running (manage.py rqworker {queue})? Waiting on.")
                    hinted = True
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self.stderr.write(f"Stopped following run #{run.pk}; it goes on (manage.py runbook status {run.pk}).")
            return CTRL_C
        return self.outcome(run.pk)

    def execute_here(self, run, token, user, follower=None):
        """What a worker's job does (``upgrades.jobs.execute_claimed``), in this process,
        while a thread prints the output from the database.

        Ctrl-C asks ``services.cancel_run`` as ``user`` (audited; the current command
        gets SIGTERM, as a cancel from the page). A second Ctrl-C leaves at once and
        marks the run interrupted, as the sweeper marks a run whose worker died.
        """
        follower = follower or Follower(self, run.pk)
        if token is None:  # not ours after all: someone else executes it
            return self.follow(run, follower)
        run = UpgradeRun.objects.select_related("cluster").get(pk=run.pk)
        done = threading.Event()
        printer = threading.Thread(target=follower.run_until, args=(done,), name=f"print-run-{run.pk}", daemon=True)
        printer.start()

        def on_ctrl_c(signum, frame):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.stderr.write("Ctrl-C: cancelling the run; Ctrl-C again to leave at once (the run is then "
                              "marked interrupted).")
            threading.Thread(target=self.cancel_on_ctrl_c, args=(run, user), daemon=True).start()

        previous = signal.signal(signal.SIGINT, on_ctrl_c) \
            if threading.current_thread() is threading.main_thread() else None
        left = False
        try:
            jobs.execute_claimed(run, token, interrupt_reason="left with Ctrl-C in manage.py runbook --sync")
        except KeyboardInterrupt:
            left = True
        except Exception:
            pass  # logged; the run's record says how it ended
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            done.set()
            printer.join()
        follower.poll()  # what the printer had not shown yet
        code = self.outcome(run.pk)
        return CTRL_C if left else code

    def cancel_on_ctrl_c(self, run, user):
        try:
            services.cancel_run(run=run, user=user, reason="Ctrl-C in manage.py runbook --sync")
        except (PermissionDenied, services.Refused) as exc:
            self.stderr.write(f"Not cancelled: {exc}")
        finally:
            connection.close()

    def outcome(self, run_id):
        """The run's last word and the exit code for it."""
        run = UpgradeRun.objects.select_related("requested_by").get(pk=run_id)
        if run.status == RunStatus.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(f"Run #{run.pk} succeeded."))
            return SUCCEEDED
        self.stdout.write(f"Run #{run.pk}: {run.get_status_display().lower()}. Next: {waits_for(run)}")
        return EXIT_FOR_STATUS.get(run.status, ERROR)

    def proceed(self, run, user, act, wait, sync):
        """A person's action (``act`` does it and returns what to print), then, with --wait,
        follow the run until it stops, or with --sync execute it here when the action handed
        it to the workers: claimed in the same transaction, so no worker takes it first.
        A run no worker is to take (paused, ended, executed elsewhere) is followed.
        Without either, 0 says the action was done."""
        follower = Follower(self, run.pk, history=False) if wait or sync else None
        if not sync:
            self.stdout.write(act())
            return self.follow(run, follower) if wait else SUCCEEDED
        with transaction.atomic():
            done = act()
            token = services.claim_run(run.pk)
        self.stdout.write(done + (" Executing it here." if token else ""))
        return self.execute_here(run, token, user, follower)

    # Status and people's actions ----------------------------------------------

    def do_status(self, run, **options):
        run = self.find_run(run)
        write = self.stdout.write
        write(f"Run #{run.pk}: {run.runbook.name} ({run.runbook.slug}) on cluster {run.cluster.name}")
        write(f"Status: {run.get_status_display().lower()}" +
              (" (pause requested)" if run.pause_requested else "") +
              (" (cancel requested)" if run.cancel_requested else ""))
        write(f"Requested by {run.requested_by.get_username()} at {when(run.created_at)}; started "
              f"{when(run.started_at)}; finished {when(run.finished_at)}")
        if run.params:
            write("Parameters: " + ", ".join(f"{k}={v}" for k, v in run.params.items()))
        if run.error:
            write(f"Error: {run.error}")
        if run.hold_reason:
            write(f"Paused by an emergency action: {run.hold_reason} (resume with --acknowledge-hold)")
        steps = list(run.steps.select_related("host").order_by("order"))
        write("Steps:")
        for step in steps:
            write(f"  {step.order}. {step.get_status_display().lower():<20} {step.title}" +
                  (f" [{step.host.name}]" if step.host and step.action == StepKind.SSH else "") +
                  "".join(f"; {part}" for part in step_facts(step)))
        if run.status != RunStatus.SUCCEEDED:
            write(f"Next: {waits_for(run)}")
        return SUCCEEDED

    def person_step(self, run):
        step = run.steps.filter(status=StepStatus.WAITING).order_by("order").first()
        if step is None:
            raise services.Refused(f"Run #{run.pk} is {run.get_status_display().lower()}: no step waits for a person.")
        return step

    def do_confirm(self, run, user, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)
        step = self.person_step(run)

        def act():
            services.confirm_step(step=step, user=user, comment=comment)
            return f"Step {step.order} ({step.title}) confirmed by {user.username}; run #{run.pk} goes on."
        return self.proceed(run, user, act, wait, sync)

    def start_request(self, run):
        """The run waits for approval to start (no step waits): approve_run / reject_run decide."""
        return run.status == RunStatus.AWAITING_APPROVAL and run.started_at is None and \
            not run.steps.filter(status=StepStatus.WAITING).exists()

    def do_approve(self, run, user, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)
        if self.start_request(run):
            def act():
                approved = services.approve_run(run=run, user=user, comment=comment)
                if approved.status == RunStatus.AWAITING_APPROVAL:
                    return f"Run #{run.pk}: approval by {user.username} recorded; it waits for {waits_for(approved)}"
                return f"Run #{run.pk} approved by {user.username}; it starts."
            code = self.proceed(run, user, act, wait, sync)
            # Without --wait/--sync an approval that is not the last one says the run still waits.
            run.refresh_from_db()
            return WAITING if code == SUCCEEDED and run.status == RunStatus.AWAITING_APPROVAL else code
        step = self.person_step(run)

        def act():
            services.approve_step(step=step, user=user, comment=comment)
            return f"Step {step.order} ({step.title}) approved by {user.username}; run #{run.pk} goes on."
        return self.proceed(run, user, act, wait, sync)

    def do_reject(self, run, user, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)
        if self.start_request(run):
            def act():
                services.reject_run(run=run, user=user, comment=comment)
                return f"Run #{run.pk} rejected by {user.username}; nothing runs."
        else:
            step = self.person_step(run)

            def act():
                services.reject_step(step=step, user=user, comment=comment)
                return (f"Step {step.order} ({step.title}) of run #{run.pk} rejected by {user.username}; "
                        "the run has ended.")
        return self.proceed(run, user, act, wait, sync)

    def do_cancel(self, run, user, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)

        def act():
            cancelled = services.cancel_run(run=run, user=user, reason=comment)
            if not cancelled.cancel_requested:
                return f"Run #{run.pk} cancelled."
            return (f"Run #{run.pk}: cancel requested; the worker stops its current command within a second, "
                    "then runs its clean-up steps." if cancelled.executor else
                    f"Run #{run.pk}: cancel requested; a worker runs its clean-up steps, then it ends.")
        return self.proceed(run, user, act, wait, sync)

    def do_abandon(self, run, user, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)

        def act():
            abandoned = services.abandon_run(run=run, user=user, reason=comment)
            return (f"Run #{run.pk} abandoned: a worker runs its clean-up steps, then it ends cancelled."
                    if abandoned.cancel_requested else f"Run #{run.pk} abandoned: cancelled.")
        return self.proceed(run, user, act, wait, sync)

    def do_pause(self, run, user, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)

        def act():
            paused = services.pause_run(run=run, user=user)
            return f"Run #{run.pk}: pauses after its current step." if paused.pause_requested \
                else f"Run #{run.pk} paused."
        return self.proceed(run, user, act, wait, sync)

    def do_resume(self, run, user, wait, sync, acknowledge_hold=False, **options):
        user, run = self.find_user(user), self.find_run(run)

        def act():
            services.resume_run(run=run, user=user, acknowledge=acknowledge_hold)
            return f"Run #{run.pk} resumed by {user.username}."
        return self.proceed(run, user, act, wait, sync)

    def do_retry(self, run, user, step, wait, sync, acknowledge_hold=False, **options):
        user, run = self.find_user(user), self.find_run(run)
        step = self.find_step(run, step)

        def act():
            services.retry_step(step=step, user=user, acknowledge=acknowledge_hold)
            return f"Step {step.order} ({step.title}) of run #{run.pk} retried by {user.username}."
        return self.proceed(run, user, act, wait, sync)

    def do_skip(self, run, user, step, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)
        step = self.find_step(run, step)

        def act():
            skipped = services.skip_step(step=step, user=user, reason=comment)
            return f"Step {skipped.order} ({skipped.title}) of run #{run.pk} skipped: {skipped.note}"
        return self.proceed(run, user, act, wait, sync)

    def do_mark_done(self, run, user, step, comment, wait, sync, **options):
        user, run = self.find_user(user), self.find_run(run)
        step = self.find_step(run, step)

        def act():
            marked = services.mark_step_done(step=step, user=user, reason=comment)
            return f"Step {marked.order} ({marked.title}) of run #{run.pk} {marked.note}"
        return self.proceed(run, user, act, wait, sync)


class Follower:
    """Prints a run's step changes and output lines stored since the last ``poll``.

    Each round reads the run's status first, then its steps, then their new
    lines: the round that sees the run stopped prints everything stored
    before it stopped. Each line starts with its step's number. With
    ``history=False`` only what happens from now on is printed.
    """

    def __init__(self, command, run_id, history=True):
        self.command, self.run_id = command, run_id
        self.shown = {}  # step id -> ((status, started_at, finished_at) last shown, last seq printed)
        self.run_status = None
        if not history:
            for step in self._steps():
                self.shown[step.pk] = (self._seen(step), step.output.order_by("-seq").values_list(
                    "seq", flat=True).first() or 0)

    def _steps(self):
        return list(UpgradeRun.objects.get(pk=self.run_id).steps.select_related("host").order_by("order"))

    @staticmethod
    def _seen(step):
        return step.status, step.started_at, step.finished_at

    def poll(self):
        write = self.command.stdout.write
        self.run_status = UpgradeRun.objects.filter(pk=self.run_id).values_list("status", flat=True).get()
        steps = self._steps()
        for step in steps:
            before, seq = self.shown.get(step.pk, ((StepStatus.PENDING, None, None), 0))
            seen = self._seen(step)
            if seen == before and step.status != StepStatus.RUNNING:
                continue
            if step.status != StepStatus.PENDING and step.started_at != before[1]:  # a new attempt
                write(f"--- step {step.order}/{len(steps)}: {step.title}" +
                      (f" [{step.host.name}]" if step.host and step.action == StepKind.SSH else "") + " ---")
            seq = self._lines(step, seq)
            if seen != before and step.status not in (StepStatus.PENDING, StepStatus.RUNNING):
                write(f"--- step {step.order} {step.get_status_display().lower()}" +
                      "".join(f"; {part}" for part in step_facts(step)) + " ---")
            self.shown[step.pk] = (seen, seq)
        self.command.stdout.flush()
        return self.run_status

    def _lines(self, step, after):
        """Print the step's lines after ``after``; the last seq printed."""
        prefix = {"stdout": f"[{step.order}] ", "stderr": f"[{step.order} stderr] ",
                  "system": f"[{step.order} system] "}
        while True:
            rows = list(step.output.filter(seq__gt=after).order_by("seq")
                        .values_list("seq", "stream", "text")[:LINES_PER_QUERY])
            for seq, stream, text in rows:
                self.command.stdout.write(prefix.get(stream, "") + text)
            if rows:
                after = rows[-1][0]
            if len(rows) < LINES_PER_QUERY:
                return after

    def run_until(self, done):
        """In a thread, while this process executes the run."""
        try:
            while not done.wait(POLL_SECONDS):
                try:
                    self.poll()
                except DatabaseError as exc:  # a busy database: the next round catches up
                    log.warning("run %s: output not read: %s", self.run_id, exc)
                    close_old_connections()
        finally:
            connection.close()


def problems(exc):
    """A ValidationError as lines, ``field: message`` for a form's."""
    if hasattr(exc, "error_dict"):
        return [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
    return exc.messages


def when(moment):
    return format_time(moment, "-")


def step_facts(step):
    """Exit code, duration, note and error, those that apply."""
    facts = []
    if step.exit_code is not None:
        facts.append(f"exit {step.exit_code}")
    if step.started_at and step.finished_at:
        facts.append(f"{(step.finished_at - step.started_at).total_seconds():.1f} s")
    elif step.started_at and step.status == StepStatus.RUNNING:
        facts.append(f"running for {(timezone.now() - step.started_at).total_seconds():.0f} s")
    if step.note:
        facts.append(f"note: {step.note}")
    if step.error:
        facts.append(f"error: {step.error}")
    return facts


def waits_for(run):
    """What has to happen next for the run to go on, and the command that does it."""
    step = run.steps.filter(status=StepStatus.WAITING).order_by("order").first()
    if step is None and run.status == RunStatus.AWAITING_APPROVAL and run.started_at is None:
        given = run.approvals.filter(step=None, decision="approved").count()
        return (f"approval to start: {given} of {run.approvals_required} approver(s) other than "
                f"{run.requested_by.get_username()}. manage.py runbook approve|reject {run.pk} --user NAME")
    if step is not None and step.action == StepKind.APPROVAL:
        return (f"step {step.order} ({step.title}) waits for an approver other than "
                f"{run.requested_by.get_username()}: {step.command}. "
                f"manage.py runbook approve|reject {run.pk} --user NAME")
    if step is not None:
        return (f"step {step.order} ({step.title}) waits for an operator to confirm: {step.command} "
                f"manage.py runbook confirm {run.pk} --user NAME")
    if run.status == RunStatus.PENDING:
        return ("a worker to take it (it is queued)" if run.queued_at else
                "the job queue, unreachable when it was started (the sweeper queues it)")
    if run.status == RunStatus.RUNNING:
        return (f"its worker {run.executor} (last heartbeat {when(run.heartbeat_at)})" if run.executor
                else "a worker to take it")
    if run.status == RunStatus.PAUSED:
        return f"someone to resume it: manage.py runbook resume {run.pk} --user NAME"
    if run.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        return "nothing: it has ended" + (f" ({run.error})" if run.error else "")
    blocking = run.steps.exclude(status__in=STEP_DONE).order_by("order").first()
    resume = f"manage.py runbook resume {run.pk} --user NAME"
    if blocking is None or blocking.status == StepStatus.PENDING:
        return f"{run.error or 'it stopped'}. Resume it: {resume}"
    if blocking.status == StepStatus.REJECTED:
        return f"nothing: step {blocking.order} ({blocking.title}) was rejected. Start a new run."
    why = f"step {blocking.order} ({blocking.title}) {blocking.get_status_display().lower()}: " + \
        (blocking.error or run.error or "no reason recorded")
    step_args = f"{run.pk} --step {blocking.order} --user NAME"
    if blocking.status == StepStatus.INTERRUPTED and not (blocking.changes and blocking.action != StepKind.WAIT):
        return f"{why}. Resume runs it again: {resume}"
    if blocking.status == StepStatus.INTERRUPTED:
        return (f"{why}. It changes the system: check the host, then retry it (manage.py runbook retry "
                f"{step_args}), or mark it done or skip it (mark-done|skip {step_args} --comment WHY) and resume.")
    return (f"{why}. Retry it (manage.py runbook retry {step_args}), or skip it "
            f"(skip {step_args} --comment WHY) and resume.")


# rehearse --------------------------------------------------------------------------

def add_rehearse(planning):
    p = planning("rehearse", "plan as for the real run, then run that plan on a twin of the cluster in the lab "
                             "(docs/rehearsal.md); exit 0 when the rehearsal succeeded")
    p.add_argument("--user", required=True, metavar="NAME", help="who rehearses (an operator)")
    p.add_argument("--sync", action="store_true",
                   help="execute the rehearsal in this process (no worker needed); else the workers do")


def rehearse(command, slug, cluster, host, param, user, sync):
    """Request a rehearsal; with --sync execute it here and print its result."""
    from upgrades import rehearsal as rehearsals

    params = command.collect_params(slug, host, param)
    user, cluster = command.find_user(user), command.find_cluster(cluster)
    try:
        # --sync: not queued, this process executes it
        found = rehearsals.request(cluster=cluster, slug=slug, params=params, user=user, queue=not sync)
    except rehearsals.RehearsalRefused as exc:
        raise CommandError(str(exc), returncode=ERROR) from None
    write = command.stdout.write
    write(f"Rehearsal #{found.pk}: {found.runbook} on a twin of {cluster.name}; plan sha256 {found.plan_sha256}")
    if not sync:
        write("Queued for the workers; the rehearsal page shows its result.")
        return SUCCEEDED
    rehearsals.execute(found.pk)
    found.refresh_from_db()
    result = rehearsals.result(found)
    for step in result["steps"]:
        write(f"  {step['order']}. {step['title']}: {step['status']}" + (f" ({step['error']})" if step["error"] else ""))
    for played in found.played:
        write(f"  played: step {played['order']} ({played['title']}): {played['how']}")
    for row in result["packages"]:
        write(f"  {row['machine']}: {row['package']} {row['before'] or '-'} -> {row['after'] or '-'}")
    if result["estimate"]:
        write(f"Real run's duration: {result['estimate']}")
    write(f"Rehearsal #{found.pk} {found.get_status_display()}" + (f": {found.error}" if found.error else "."))
    return SUCCEEDED if found.status == "succeeded" else RUN_FAILED
