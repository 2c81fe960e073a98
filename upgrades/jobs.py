"""RQ entry points: ids in, work done, result recorded in the database."""
import logging
import threading
import traceback

from django.db import DatabaseError, close_old_connections, connection

from . import services
from .models import RunStatus, StepStatus, UpgradeRun
from .output import OutputRecorder
from .remote.base import RemoteError
from .remote.ssh import SshPool, SshTarget

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


class Heartbeat:
    """Touches the run row every few seconds while this process executes it.

    The sweeper (``upgrades.sweeper``) marks a run whose heartbeat stopped as
    interrupted. ``lost`` is set when the run is no longer ours (the
    sweeper took it after a long stall), so we stop before the next step.
    """

    def __init__(self, run_id, token, every=HEARTBEAT_SECONDS):
        self.run_id, self.token, self.every = run_id, token, every
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _beat(self):
        try:
            while not self._stop.wait(self.every):
                try:
                    if not services.heartbeat(self.run_id, self.token):
                        log.warning("run %s is no longer executed by %s", self.run_id, self.token)
                        self.lost.set()
                        return
                except DatabaseError as exc:  # a locked or restarting database: try again
                    log.warning("run %s: heartbeat not written: %s", self.run_id, exc)
                    close_old_connections()
        finally:
            connection.close()


def advance_run(run_id):
    """Run every pending step in order; stop at the first failure.

    One SSH connection per host serves all the run's steps on that host.
    """
    token = services.claim_run(run_id)
    if token is None:
        log.info("run %s: nothing to advance (another worker has it, or it is not runnable)", run_id)
        return
    run = UpgradeRun.objects.get(pk=run_id)
    status = RunStatus.FAILED
    try:
        with Heartbeat(run_id, token) as beat, SshPool() as pool:
            for step in run.steps.filter(status=StepStatus.PENDING).select_related("host").order_by("order"):
                if beat.lost.is_set():
                    return
                if not execute_step(step, pool):
                    break
            else:
                status = RunStatus.SUCCEEDED
    except Exception:
        log.exception("run %s crashed", run_id)
        raise
    finally:
        services.release_run(run, token, status)


def execute_step(step, pool):
    services.start_step(step)
    exit_code, error, lines = None, "", None
    try:
        with OutputRecorder(step) as recorder:
            try:
                session = pool.session(SshTarget.for_host(step.host))
                exit_code = session.run(step.command, recorder.line).exit_status
            except RemoteError as exc:
                error = exc.message
                recorder.line("system", error)
        lines = recorder.last_seq
    except Exception:
        log.exception("step %s crashed", step.pk)
        error = "internal error: " + traceback.format_exc(limit=3).splitlines()[-1]
    return services.finish_step(step, exit_code=exit_code, error=error, lines=lines)
