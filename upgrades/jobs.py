"""RQ entry points: ids in, work done, result recorded in the database."""
import logging
import traceback

from . import services
from .models import RunStatus, StepStatus, UpgradeRun
from .output import OutputRecorder
from .remote.base import RemoteError
from .remote.ssh import SshPool, SshTarget

log = logging.getLogger(__name__)


def execute_run(run_id):
    """Run every pending step in order; stop at the first failure.

    One SSH connection per host serves all the run's steps on that host.
    """
    if not services.claim_run(run_id):
        log.info("run %s already claimed", run_id)
        return
    run = UpgradeRun.objects.get(pk=run_id)
    try:
        with SshPool() as pool:
            for step in run.steps.filter(status=StepStatus.PENDING).select_related("host").order_by("order"):
                if not execute_step(step, pool):
                    services.finish_run(run, RunStatus.FAILED)
                    return
        services.finish_run(run, RunStatus.SUCCEEDED)
    except Exception:
        log.exception("run %s crashed", run_id)
        services.finish_run(run, RunStatus.FAILED)
        raise


def execute_step(step, pool):
    services.start_step(step)
    exit_code, error = None, ""
    try:
        with OutputRecorder(step) as recorder:
            try:
                session = pool.session(SshTarget.for_host(step.host))
                exit_code = session.run(step.command, recorder.line).exit_status
            except RemoteError as exc:
                error = exc.message
                recorder.line("system", error)
    except Exception:
        log.exception("step %s crashed", step.pk)
        error = "internal error: " + traceback.format_exc(limit=3).splitlines()[-1]
    return services.finish_step(step, exit_code=exit_code, error=error)
