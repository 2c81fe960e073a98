"""``manage.py runbook VERB --wait|--sync`` follows the run from the action on and exits
with the code of where it stopped (docs/cli.md "Exit codes"), for every verb; and a
reader that leaves early (``| head -1``) gets no traceback. Against the lab over SSH."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT, child_env, wait_until
from tests.factories import make_run
from tests.test_cli import cli, last_run, settled
from upgrades import services
from upgrades import state as cluster_state
from upgrades.management.commands.runbook import (CTRL_C, READER_GONE, RUN_CANCELLED, RUN_FAILED,
                                                  RUN_INTERRUPTED, RUN_PAUSED, SUCCEEDED, WAITING)
from upgrades.models import AuditEvent, RunStatus, StepStatus
from upgrades.remote.ssh import SshPool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The test runbooks exist only where tests.runbooks is imported: a real process that imports it.
PROGRAM = ("import sys, django; django.setup(); import tests.runbooks; "
           "from django.core.management import execute_from_command_line; "
           "execute_from_command_line(['manage.py', 'runbook'] + sys.argv[1:])")


def test_the_codes_are_distinct():
    assert len({SUCCEEDED, WAITING, RUN_FAILED, RUN_CANCELLED, RUN_INTERRUPTED, RUN_PAUSED, CTRL_C, READER_GONE,
                1, 2}) == 10


def stored_run(cluster, slug, user, **params):
    """A run started through the service on the state read now, not queued: nothing
    executes it until a command here does."""
    with SshPool() as pool:
        state = cluster_state.read(cluster, pool)
    return services.start_run(cluster=cluster, slug=slug, params=params, user=user, acknowledge=True, state=state,
                              queue=False)


def cut_off(run, step_order):
    """The run as a worker killed during step ``step_order`` leaves it: interrupted, through
    the services the worker and the sweeper use."""
    token = services.claim_run(run.pk)
    for step in run.steps.order_by("order"):
        services.start_step(step)
        if step.order == step_order:
            break
        services.finish_step(step, status=StepStatus.SUCCEEDED, exit_code=0)
    assert services.interrupt_run(run, executor=token, reason="its worker was killed (test)")
    run.refresh_from_db()
    return run


def test_approve_sync_executes_the_approved_start_and_exits_with_how_it_ended(lab, lab_cluster, make_user,
                                                                              settings):
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True  # a run that changes hosts waits for a second person
    make_user("operator")
    make_user("approver")
    settled(lab)
    lab.fault("fail-next-command", host="he2.lab.local", pattern="retry-me")
    code, out, err = cli("start", "test-failing", "--cluster", "Lab", "--host", "he2.lab.local", "--user",
                         "operator", "--yes", "--sync")
    run = last_run()
    assert code == WAITING, out + err
    assert run.status == RunStatus.AWAITING_APPROVAL and "approval to start: 0 of 1 approver(s)" in out
    # The approver executes it here and learns how it ended (it used to exit 0 at once).
    code, out, err = cli("approve", str(run.pk), "--user", "approver", "--comment", "window", "--sync")
    assert code == RUN_FAILED, out + err
    assert out.splitlines()[0] == f"Run #{run.pk} approved by approver; it starts. Executing it here."
    assert "--- step 1 failed; exit 1; " in out
    assert out.splitlines()[-1].startswith(f"Run #{run.pk}: failed. Next: step 1 (Flaky) failed")
    code, out, err = cli("retry", str(run.pk), "--step", "1", "--user", "operator", "--sync")
    assert code == SUCCEEDED, out + err
    assert "[2] after" in out and out.splitlines()[-1] == f"Run #{run.pk} succeeded."


def test_reject_with_sync_or_wait_exits_with_the_run_ended(lab, lab_cluster, make_user, settings):
    make_user("operator")
    make_user("approver")
    settled(lab)
    code, out, err = cli("start", "test-approval", "--cluster", "Lab", "--host", "he1.lab.local", "--user",
                         "operator", "--yes", "--sync")
    assert code == WAITING, out + err
    run = last_run()
    code, out, err = cli("reject", str(run.pk), "--user", "approver", "--comment", "not now", "--sync")
    assert code == RUN_FAILED, out + err
    assert out.splitlines()[-1] == (f"Run #{run.pk}: failed. Next: nothing: step 1 (Sign-off) was rejected. "
                                    "Start a new run.")
    # A start request rejected: the run is cancelled before any step.
    settings.APPROVAL_REQUIRED_BY_DEFAULT = True
    assert cli("start", "test-steps", "--cluster", "Lab", "--host", "he1.lab.local", "--user", "operator",
               "--yes", "--sync")[0] == WAITING
    run = last_run()
    code, out, err = cli("reject", str(run.pk), "--user", "approver", "--comment", "no", "--wait")
    assert code == RUN_CANCELLED, out + err
    lines = out.splitlines()
    assert lines[0] == f"Run #{run.pk} rejected by approver; nothing runs."
    assert lines[-1] == f"Run #{run.pk}: cancelled. Next: nothing: it has ended (Rejected by approver: no)"


def test_confirm_sync_finishes_the_run_here(lab, lab_cluster, make_user):
    make_user("operator")
    settled(lab)
    assert cli("start", "test-manual", "--cluster", "Lab", "--host", "he2.lab.local", "--user", "operator",
               "--yes", "--sync")[0] == WAITING
    run = last_run()
    code, out, err = cli("confirm", str(run.pk), "--user", "operator", "--comment", "reinstalled", "--sync")
    assert code == SUCCEEDED, out + err
    assert "Executing it here." in out.splitlines()[0] and "[3] after" in out


def test_pause_skip_resume_and_cancel_with_sync(lab, lab_cluster, make_user):
    operator = make_user("operator")
    settled(lab)
    run = stored_run(lab_cluster, "test-steps", operator, host="he1.lab.local", sim_seconds=0,
                     marker="/tmp/cli-follow")
    code, out, err = cli("pause", str(run.pk), "--user", "operator", "--sync")
    assert code == RUN_PAUSED, out + err
    assert out.splitlines() == [f"Run #{run.pk} paused.", f"Run #{run.pk}: paused. Next: someone to resume it: "
                                f"manage.py runbook resume {run.pk} --user NAME"]
    # Skipping does not resume: the run stays paused, and the code says so.
    code, out, err = cli("skip", str(run.pk), "--step", "1", "--comment", "done by hand", "--user", "operator",
                         "--sync")
    assert code == RUN_PAUSED, out + err
    code, out, err = cli("resume", str(run.pk), "--user", "operator", "--sync")
    assert code == SUCCEEDED, out + err
    assert "Executing it here." in out and "--- step 2/3: Two [he1.lab.local] ---" in out
    assert "--- step 1/3" not in out
    run = stored_run(lab_cluster, "test-steps", operator, host="he1.lab.local", sim_seconds=0,
                     marker="/tmp/cli-follow")
    code, out, err = cli("cancel", str(run.pk), "--user", "operator", "--comment", "wrong host", "--sync")
    assert code == RUN_CANCELLED, out + err
    assert out.splitlines()[-1].startswith(f"Run #{run.pk}: cancelled.")


def test_mark_done_abandon_and_resume_of_an_interrupted_run(lab, lab_cluster, make_user):
    operator = make_user("operator")
    settled(lab)
    run = cut_off(stored_run(lab_cluster, "test-long-changing", operator, host="he1.lab.local"), 1)
    code, out, err = cli("resume", str(run.pk), "--user", "operator", "--sync")
    assert code == 1 and "changes the system and was cut off" in err
    code, out, err = cli("mark-done", str(run.pk), "--step", "1", "--comment", "finished by hand", "--user",
                         "operator", "--sync")
    assert code == RUN_INTERRUPTED, out + err  # marked done, and the run waits for a resume
    assert out.splitlines()[-1].startswith(f"Run #{run.pk}: interrupted. Next: ")
    code, out, err = cli("resume", str(run.pk), "--user", "operator", "--sync")
    assert code == SUCCEEDED and "[2] last" in out, out + err
    run = cut_off(stored_run(lab_cluster, "test-long-changing", operator, host="he1.lab.local"), 1)
    code, out, err = cli("abandon", str(run.pk), "--user", "operator", "--comment", "give up", "--sync")
    assert code == RUN_CANCELLED, out + err
    assert AuditEvent.objects.filter(action="run.abandon", target_id=str(run.pk)).exists()


def test_pause_and_cancel_wait_for_the_worker_executing_the_run(rq_worker, lab, lab_cluster, make_user):
    make_user("operator")
    settled(lab)
    start = ("start", "test-steps", "--cluster", "Lab", "--host", "he1.lab.local", "--user", "operator", "--yes")
    assert cli(*start, "--param", "sim_seconds=60")[0] == SUCCEEDED  # queued for the workers: 1 s a step
    run = last_run()
    wait_until(lambda: run.steps.exclude(started_at=None).exists(), 60, "a worker executing the run")
    code, out, err = cli("pause", str(run.pk), "--user", "operator", "--wait")
    assert code == RUN_PAUSED, out + err
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and run.steps.filter(status=StepStatus.SUCCEEDED).exists()
    code, out, err = cli("resume", str(run.pk), "--user", "operator", "--wait")
    assert code == SUCCEEDED, out + err
    assert cli("start", "test-long", "--cluster", "Lab", "--host", "he1.lab.local", "--user", "operator",
               "--yes")[0] == SUCCEEDED
    run = last_run()
    wait_until(lambda: run.steps.filter(key="ticks", output__text="tick 2").exists(), 60, "the long step under way")
    code, out, err = cli("cancel", str(run.pk), "--user", "operator", "--wait")
    assert code == RUN_CANCELLED, out + err
    assert out.splitlines()[0] == (f"Run #{run.pk}: cancel requested; the worker stops its current command within "
                                   "a second, then runs its clean-up steps."), out
    assert "--- step 2 cancelled; " in out


# A reader that leaves early ----------------------------------------------------

def piped_to_head(args, program=None):
    """``manage.py runbook ARGS | head -1`` with real processes: (its exit code, its
    stderr, what head printed)."""
    command = [sys.executable, "-c", program, *args] if program else [sys.executable, "manage.py", "runbook", *args]
    cli_proc = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=cli_proc.stdout, stdout=subprocess.PIPE)
    cli_proc.stdout.close()  # head holds the pipe's only reading end
    try:
        printed = head.communicate(timeout=120)[0].decode()
        err = cli_proc.stderr.read().decode()
        cli_proc.wait(timeout=120)
    finally:
        cli_proc.kill()
        head.kill()
    return cli_proc.returncode, err, printed


def test_status_piped_into_head_leaves_quietly(lab_cluster, make_user):
    operator = make_user("operator")
    # More lines than a pipe holds (64 KiB): head has left while status still writes.
    run = make_run(operator, lab_cluster.hosts.first(), [f"echo {n}" for n in range(1500)])
    code, err, printed = piped_to_head(["status", str(run.pk)])
    assert printed == f"Run #{run.pk}: Diagnostic (diagnostic) on cluster Lab\n"
    assert err == ""
    assert code == READER_GONE


def test_a_sync_run_piped_into_head_still_runs_to_its_end(lab, lab_cluster, make_user):
    make_user("operator")
    settled(lab)
    code, err, printed = piped_to_head(["start", "test-steps", "--cluster", "Lab", "--host", "he1.lab.local",
                                        "--user", "operator", "--yes", "--sync", "--param", "sim_seconds=60"],
                                       program=PROGRAM)
    assert printed == "Plan: Test: steps (test-steps) on cluster Lab\n"
    assert err == ""
    run = last_run()
    assert (code, run.status) == (SUCCEEDED, RunStatus.SUCCEEDED)  # nobody read it, and it was not left half done
