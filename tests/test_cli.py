"""``manage.py runbook``: the command line drives the same services as the web,
against the lab over SSH, with real workers where a run is followed."""
import os
import pty
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

import tests.runbooks  # noqa: F401  (registers the test runbooks in this process)
from tests.conftest import ROOT, child_env, free_port
from tests.factories import make_cluster, make_host
from upgrades.models import Approval, AuditEvent, RunStatus, UpgradeRun


def cli(*args):
    """``manage.py runbook ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("runbook", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
        err.write(str(exc))
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def last_run():
    return UpgradeRun.objects.order_by("-pk").first()


def settled(lab):
    """Wait until every lab host's HA data is up to date (the plan's "ha-fresh" interlock)."""
    lab.wait_for(lambda state: all(h["agent_state"] in ("EngineUp", "EngineDown")
                                   for h in state["hosts"].values()), sim_seconds=300)


@pytest.fixture
def dark(db):
    """A cluster whose only host does not answer: its HA state is unknown."""
    cluster = make_cluster(name="Dark")
    make_host(cluster, name="dark1", address="127.0.0.1", ssh_port=free_port(), he_host_id=1)
    return cluster


# Without the lab ------------------------------------------------------------

def test_list_shows_each_runbook_and_its_parameters():
    code, out, _ = cli("list")
    assert code == 0
    assert "maintenance-global     Global maintenance" in out
    assert "--param host=...  Run on: host, optional." in out
    assert "test-steps" in out and "--param sim_seconds=...  Simulated seconds each: int, default 0" in out


def test_the_real_command_line_and_its_exit_codes():
    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", "runbook", *args], cwd=ROOT, env=child_env(),
                              capture_output=True, text=True, timeout=60)

    listed = manage("list")
    assert listed.returncode == 0, listed.stderr
    assert "maintenance-none       No maintenance" in listed.stdout
    unknown = manage("plan", "nope", "--cluster", "Lab")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "CommandError: there is no runbook 'nope' (manage.py runbook list shows them)"
    assert "Traceback" not in unknown.stderr


def test_plan_exits_2_when_an_inhibitor_blocks_and_start_saves_nothing(dark, make_user):
    make_user("operator")
    # Local maintenance needs to know another host can take the engine VM (global maintenance does not).
    code, out, err = cli("plan", "maintenance-local", "--cluster", "Dark", "--host", "dark1")
    assert code == 2
    assert "HA state: HA state unknown (no host answered: dark1:" in out
    assert "  inhibitor not-last-engine-host: The cluster's HA state is unknown: no host answered: dark1:" in out
    assert "  ok        no-other-emergency-run: No other maintenance action or diagnostic is active." in out
    assert err.startswith("Blocked: The cluster's HA state is unknown")
    code, _, err = cli("start", "maintenance-local", "--cluster", "Dark", "--host", "dark1", "--user", "operator",
                       "--yes", "--sync")
    assert code == 2 and err.startswith("Blocked, nothing was started: The cluster's HA state is unknown")
    assert not UpgradeRun.objects.exists()
    assert not AuditEvent.objects.filter(action="run.start").exists()


def test_bad_input_is_refused_with_a_line_per_problem_and_nothing_is_saved(dark, make_user):
    make_user("operator")
    make_user("viewer")
    start = ("start", "test-steps", "--cluster", "Dark", "--user", "operator", "--yes")
    code, out, err = cli(*start, "--host", "nope", "--param", "sim_seconds=x", "--param", "marker=../etc")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "host: Select a valid choice. nope is not one of the available choices.",
        "sim_seconds: Enter a whole number.",
        "marker: Enter an absolute path of letters, digits and ._+@%=:,/- (no '..').",
    ]
    code, _, err = cli(*start, "--param", "hots=dark1", "--param", "marker", "--host", "dark1",
                       "--param", "host=dark1")
    assert code == 2
    assert err.splitlines() == [
        "--param 'marker': expected KEY=VALUE",
        "hots: test-steps has no such parameter (it takes: host, sim_seconds, marker)",
        "host: given more than once",
    ]
    assert cli("start", "test-long", "--cluster", "Dark", "--user", "operator", "--yes", "--host", "dark1",
               "--param", "changes=maybe")[2] == "changes: Enter true or false."
    assert cli(*start[:-3], "--user", "ghost", "--host", "dark1")[2] == "there is no user 'ghost'"
    assert cli("plan", "diagnostic", "--cluster", "Nowhere")[2] == "there is no cluster 'Nowhere' (clusters: Dark)"
    assert cli("status", "x1") == (2, "", "'x1' is not a run number")
    assert cli("status", "12345") == (2, "", "there is no run #12345")
    # A plan that nothing blocks: a script must say --yes, and only an operator may start it.
    code, out, err = cli("start", "diagnostic", "--cluster", "Dark", "--host", "dark1", "--user", "operator")
    assert code == 2 and err == "Not started: add --yes to start without a question (stdin is not a terminal)."
    assert "1. Host identity" in out
    code, _, err = cli("start", "diagnostic", "--cluster", "Dark", "--host", "dark1", "--user", "viewer", "--yes")
    assert (code, err) == (1, "Only operators can start runs.")
    assert not UpgradeRun.objects.exists()
    assert not AuditEvent.objects.filter(action="run.start").exists()


# Against the lab --------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_on_a_terminal_start_asks_and_names_the_warnings_it_would_acknowledge(lab, lab_cluster, make_user):
    make_user("operator")
    settled(lab)
    terminal, child_side = pty.openpty()
    try:
        os.write(terminal, b"n\n")  # read when the question is asked
        answered = subprocess.run(
            [sys.executable, "manage.py", "runbook", "start", "maintenance-none", "--cluster", "Lab", "--user",
             "operator"], stdin=child_side, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60)
    finally:
        os.close(child_side)
        os.close(terminal)
    assert answered.returncode == 1, answered.stdout + answered.stderr
    assert "  warning   something-in-maintenance: Nothing to undo: he1.lab.local is not in local maintenance and " \
           "the cluster is not in global maintenance." in answered.stdout
    assert answered.stdout.endswith("Start this run, acknowledging the 1 warning(s) above? [y/N] ")
    assert answered.stderr.strip() == "CommandError: Not started."
    assert not UpgradeRun.objects.exists()


@pytest.mark.django_db
def test_plan_shows_the_concrete_steps_their_checks_and_the_state_read_now(lab, lab_cluster):
    settled(lab)
    code, out, err = cli("plan", "maintenance-global", "--cluster", "Lab", "--host", "he2.lab.local")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Plan: Global maintenance (maintenance-global) on cluster Lab"
    assert lines[1] == "Parameters: host=he2.lab.local"
    assert lines[2].startswith("HA state: ") and lines[2].endswith("(read now)")
    assert "he1.lab.local: EngineUp score 3400 engine VM" in lines[2]
    assert lines[3:10] == [
        "Steps:",
        "  1. Set global maintenance (on he2.lab.local)",
        "     command on he2.lab.local; changes the system; safe to rerun",
        "     $ hosted-engine --set-maintenance --mode=global",
        "  2. Wait until vm-status shows global maintenance",
        "     wait; read-only; safe to rerun",
        "     wait until vm-status shows global maintenance on (at most 300 s)",
    ]
    assert "  ok        command-host-live: he2.lab.local publishes up-to-date HA data." in lines
    assert "  ok        global-maintenance-off: The cluster is not in global maintenance." in lines
    assert lines[-1] == "Nothing blocks this plan."
    assert not UpgradeRun.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_start_sync_sets_global_maintenance_and_maintenance_none_undoes_it(fresh_lab_cluster, make_user):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    settled(lab)
    code, out, err = cli("start", "maintenance-global", "--cluster", "Fresh", "--user", "operator", "--yes", "--sync")
    run = last_run()
    assert code == 0, out + err
    assert lab.state()["global_maintenance"] is True
    assert run.status == RunStatus.SUCCEEDED and run.requested_by == operator
    assert f"Run #{run.pk} started by operator; executing it here." in out
    assert "--- step 1/2: Set global maintenance (on he1.lab.local) [he1.lab.local] ---" in out
    assert "[2 system] waiting until vm-status shows global maintenance on" in out
    assert "[2 system] seen: global maintenance on" in out
    assert out.splitlines()[-1] == f"Run #{run.pk} succeeded."
    # Executed here, not by a worker: the claim names this process.
    executor = AuditEvent.objects.get(action="run.running", target_id=str(run.pk)).details["executor"]
    assert executor.split(":")[1] == str(os.getpid())

    code, out, err = cli("start", "maintenance-none", "--cluster", "Fresh", "--user", "operator", "--yes", "--sync")
    assert code == 0, out + err
    assert "  ok        something-in-maintenance: In maintenance now: global maintenance." in out
    assert lab.state()["global_maintenance"] is False
    started = AuditEvent.objects.filter(action="run.start").order_by("pk")
    assert [(e.actor, e.details["runbook"]) for e in started] == [
        (operator, "maintenance-global"), (operator, "maintenance-none")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_start_wait_prints_each_steps_output_as_a_worker_runs_it(rq_worker, lab, lab_cluster, make_user):
    make_user("operator")
    settled(lab)
    code, out, err = cli("start", "test-for-each", "--cluster", "Lab", "--user", "operator", "--yes", "--wait")
    assert code == 0, out + err
    run = last_run()
    assert run.status == RunStatus.SUCCEEDED
    printed = [line for line in out.splitlines() if line.startswith(("[", "---"))]
    assert printed == [
        "--- step 1/3: Name of he2.lab.local [he2.lab.local] ---", "[1] he2.lab.local",
        printed[2], "--- step 2/3: Name of he3.lab.local [he3.lab.local] ---", "[2] he3.lab.local",
        printed[5], "--- step 3/3: Name of he1.lab.local [he1.lab.local] ---", "[3] he1.lab.local",
        printed[8]]
    assert all(printed[n].startswith(f"--- step {n // 3 + 1} succeeded; exit 0; ") for n in (2, 5, 8))
    # A worker executed it, not this process.
    executor = AuditEvent.objects.get(action="run.running", target_id=str(run.pk)).details["executor"]
    assert executor.split(":")[1] != str(os.getpid())


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_manual_step_exits_3_and_confirm_lets_the_run_finish(rq_worker, lab, lab_cluster, make_user):
    operator = make_user("operator")
    make_user("viewer")
    settled(lab)
    code, out, err = cli("start", "test-manual", "--cluster", "Lab", "--host", "he2.lab.local", "--user", "operator",
                         "--yes", "--wait")
    run = last_run()
    assert code == 3, out + err
    assert "[1] before on he2.lab.local" in out
    assert out.splitlines()[-1] == (
        f"Run #{run.pk}: waiting for a person. Next: step 2 (Reinstall he2.lab.local) waits for an operator to "
        f"confirm: Reinstall he2.lab.local as el7, then confirm. manage.py runbook confirm {run.pk} --user NAME")
    code, out, _ = cli("status", str(run.pk))
    assert code == 0
    assert "Status: waiting for a person" in out and "Requested by operator at " in out
    assert "  1. succeeded            Before [he2.lab.local]; exit 0; " in out
    assert "  2. waiting for a person Reinstall he2.lab.local\n" in out
    assert "  3. pending              After [he2.lab.local]\n" in out

    assert cli("confirm", str(run.pk), "--user", "viewer") == (1, "", "Only operators can confirm manual steps.")
    code, out, err = cli("confirm", f"#{run.pk}", "--user", "operator", "--comment", "reinstalled", "--wait")
    assert code == 0, out + err
    assert "[3] after" in out and "[1] before" not in out  # only what happened since the confirmation
    assert out.splitlines()[-1] == f"Run #{run.pk} succeeded."
    event = AuditEvent.objects.get(action="step.confirm")
    assert (event.actor, event.details) == (operator, {"run": run.pk, "comment": "reinstalled"})
    assert cli("confirm", str(run.pk), "--user", "operator")[1:] == (
        "", f"Run #{run.pk} is succeeded: no step waits for a person.")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_approval_by_the_requester_is_refused_and_another_approver_lets_it_go_on(lab_cluster, make_user):
    alice = make_user("admin", "alice")  # an admin, so an approver too
    approver = make_user("approver")
    code, out, err = cli("start", "test-approval", "--cluster", "Lab", "--host", "he1.lab.local", "--user", "alice",
                         "--yes", "--sync")
    run = last_run()
    assert code == 3, out + err
    assert f"waits for an approver other than alice: a change on he1.lab.local. manage.py runbook approve|reject " \
           f"{run.pk} --user NAME" in out
    code, _, err = cli("approve", str(run.pk), "--user", "alice")
    assert (code, err) == (1, f"You requested run #{run.pk}: another approver must decide (four eyes).")
    code, out, err = cli("approve", str(run.pk), "--user", "approver", "--comment", "window agreed", "--sync")
    assert code == 0, out + err
    assert "[2] approved" in out and out.splitlines()[-1] == f"Run #{run.pk} succeeded."
    approval = Approval.objects.get(run=run)
    assert (approval.user, approval.decision, approval.comment) == (approver, "approved", "window agreed")
    assert AuditEvent.objects.get(action="run.start").actor == alice
    assert AuditEvent.objects.get(action="step.approve").actor == approver


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_reject_ends_the_run_and_status_says_so(lab_cluster, make_user):
    make_user("operator")
    make_user("approver")
    assert cli("start", "test-approval", "--cluster", "Lab", "--host", "he1.lab.local", "--user", "operator",
               "--yes", "--sync")[0] == 3
    run = last_run()
    code, out, _ = cli("reject", str(run.pk), "--user", "approver", "--comment", "not this week")
    assert code == 0 and "rejected by approver; the run has ended" in out
    code, out, _ = cli("status", str(run.pk))
    assert "Status: failed" in out and "Error: Rejected by approver: not this week" in out
    assert "  1. rejected             Sign-off; " in out
    assert "; note: not this week; error: rejected by approver\n" in out
    assert "Next: nothing: step 1 (Sign-off) was rejected. Start a new run." in out
    assert cli("resume", str(run.pk), "--user", "operator") == (1, "", "Step 1 was rejected: start a new run.")
    assert AuditEvent.objects.get(action="step.reject").actor_name == "approver"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_failed_step_is_retried_or_skipped_from_the_command_line(lab, lab_cluster, make_user):
    operator = make_user("operator")
    settled(lab)
    lab.fault("fail-next-command", host="he2.lab.local", pattern="retry-me")
    code, out, _ = cli("start", "test-failing", "--cluster", "Lab", "--host", "he2.lab.local", "--user", "operator",
                       "--yes", "--sync")
    run = last_run()
    assert code == 4
    assert out.splitlines()[-1] == (
        f"Run #{run.pk}: failed. Next: step 1 (Flaky) failed: exited with 1. Retry it (manage.py runbook retry "
        f"{run.pk} --step 1 --user NAME), or skip it (skip {run.pk} --step 1 --user NAME --comment WHY) and resume.")
    assert cli("resume", str(run.pk), "--user", "operator")[2] == \
        "Step 1 (Flaky) failed: retry it, or skip it with a reason, first."
    assert cli("skip", str(run.pk), "--step", "1", "--user", "operator")[::2] == (2, "Say why the step is skipped.")
    assert cli("retry", str(run.pk), "--step", "9", "--user", "operator")[::2] == (2, f"run #{run.pk} has no step 9 "
                                                                                      "(it has 2)")
    code, out, err = cli("retry", str(run.pk), "--step", "1", "--user", "operator", "--sync")
    assert code == 0, out + err
    assert f"Step 1 (Flaky) of run #{run.pk} retried by operator. Executing it here." in out
    # The retry's marker line is printed before the new attempt's output (around the
    # step's heading, depending on when the printer looks) and then the rest.
    assert 0 <= out.index("[1 system] --- retried by operator ---") < out.index("[1] retry-me\n") < \
        out.index("[2] after")
    assert cli("cancel", str(run.pk), "--user", "operator")[::2] == (
        1, f"Run #{run.pk} is succeeded: there is nothing to cancel.")
    assert AuditEvent.objects.get(action="step.retry").actor == operator


def lab_exec(lab, host, command):
    client = lab.connect(host)
    try:
        return client.exec_command(command)[1].read().decode()
    finally:
        client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_ctrl_c_during_sync_cancels_the_run_and_stops_the_command(lab, lab_cluster, make_user):
    operator = make_user("operator")
    settled(lab)
    # The test runbooks exist only where tests.runbooks is imported: a real process that imports it.
    program = ("import sys, django; django.setup(); import tests.runbooks; "
               "from django.core.management import execute_from_command_line; "
               "execute_from_command_line(['manage.py', 'runbook'] + sys.argv[1:])")
    child = subprocess.Popen(
        [sys.executable, "-c", program, "start", "test-long", "--cluster", "Lab", "--host", "he3.lab.local",
         "--user", "operator", "--yes", "--sync"], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run := last_run()) or run.steps.get(key="ticks").output.count() < 2:
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 5, out + err
    assert "Ctrl-C: cancelling the run" in err and "Traceback" not in err
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert list(run.steps.order_by("order").values_list("status", flat=True)) == [
        "succeeded", "cancelled", "cancelled"]
    assert "[2] tick 1" in out and "--- step 2 cancelled; " in out
    assert out.splitlines()[-1] == f"Run #{run.pk}: cancelled. Next: nothing: it has ended"
    event = AuditEvent.objects.get(action="run.cancel_request")
    assert (event.actor, event.details) == (operator, {"reason": "Ctrl-C in manage.py runbook --sync"})
    # The loop on the host was stopped: its file stays as it is (it wrote every 0.5 s).
    first = lab_exec(lab, "he3", "cat /tmp/ticks")
    time.sleep(2)
    assert lab_exec(lab, "he3", "cat /tmp/ticks") == first
