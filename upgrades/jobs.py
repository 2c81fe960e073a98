"""RQ entry points: ids in, work done, result recorded in the database."""
import logging
import traceback

from .models import RunStatus, StepStatus, UpgradeRun
from .output import OutputRecorder
from .remote.base import RemoteError
from .remote.local import run_local
from . import services

log = logging.getLogger(__name__)


def execute_run(run_id):
    """Run every pending step in order; stop at the first failure."""
    if not services.claim_run(run_id):
        log.info("run %s already claimed", run_id)
        return
    run = UpgradeRun.objects.get(pk=run_id)
    try:
        for step in run.steps.filter(status=StepStatus.PENDING).order_by("order"):
            if not execute_step(step):
                services.finish_run(run, RunStatus.FAILED)
                return
        services.finish_run(run, RunStatus.SUCCEEDED)
    except Exception:
        log.exception("run %s crashed", run_id)
        services.finish_run(run, RunStatus.FAILED)
        raise


def execute_step(step):
    services.start_step(step)
    exit_code, error = None, ""
    try:
        with OutputRecorder(step) as recorder:
            try:
                result = run_local(step.command, recorder.line)
                exit_code = result.exit_status
            except RemoteError as exc:
                error = exc.message
                recorder.line("system", error)
    except Exception:
        error = "internal error: " + traceback.format_exc(limit=3).splitlines()[-1]
    return services.finish_step(step, exit_code=exit_code, error=error)
