"""RQ entry points: ids in, work done, result recorded in the database."""
import logging
import threading
import time
import traceback

from django.db import DatabaseError, InterfaceError, close_old_connections, connection

from . import engine, events, services
from .models import RunStatus, UpgradeRun
from .outage import UNAVAILABLE
from .remote.ssh import SshPool

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
FLAG_SECONDS = 1.0

# Set in a work horse when its worker is asked to stop (upgrades.worker): the run it
# executes is handed over after the current step (engine.advance, services.hand_over_run).
HANDOVER = threading.Event()


def request_handover(signum=None, frame=None):
    """A signal handler: only sets a flag, the engine looks at it between steps."""
    HANDOVER.set()


class Heartbeat:
    """Touches the run row every few seconds while this process executes it,
    and watches for a cancel request every second.

    The sweeper (``upgrades.sweeper``) marks a run whose heartbeat stopped as
    interrupted; ``lost`` is set when the run is no longer ours (the sweeper
    took it after a long stall), so we stop before the next step. ``stop`` is
    set on a cancel request: the current command or wait ends at once.
    ``handover`` is set when this process's worker is stopping: the engine hands the
    run over once the current step has ended.
    """

    def __init__(self, run_id, token, every=HEARTBEAT_SECONDS):
        self.run_id, self.token, self.every = run_id, token, every
        self.lost = threading.Event()
        self.stop = threading.Event()
        self.handover = HANDOVER
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _beat(self):
        last_beat, failing = time.monotonic(), False
        try:
            while not self._done.wait(FLAG_SECONDS):
                try:
                    if time.monotonic() - last_beat >= self.every:
                        last_beat = time.monotonic()
                        if not services.heartbeat(self.run_id, self.token):
                            log.warning("run %s is no longer executed by %s", self.run_id, self.token)
                            self.lost.set()
                            self.stop.set()
                            return
                    if services.cancel_requested(self.run_id):
                        self.stop.set()
                except (DatabaseError, InterfaceError) as exc:  # a locked or restarting database: try again
                    if not failing:  # once an outage, not every second
                        log.warning("run %s: heartbeat not written: %s", self.run_id, exc)
                    failing = True
                    close_old_connections()
                else:
                    if failing:
                        log.warning("run %s: the database answers again", self.run_id)
                    failing = False
        finally:
            connection.close()


def advance_run(run_id):
    """Claim the run and execute its next steps until it ends or waits for a person."""
    try:
        token = services.claim_run(run_id)
    except UNAVAILABLE as exc:  # no traceback per job: the sweeper queues the run again once it is back
        log.warning("run %s: not claimed, database unavailable: %s", run_id, exc)
        return
    if token is None:
        log.info("run %s: nothing to advance (another worker has it, or it is not runnable)", run_id)
        return
    execute_claimed(UpgradeRun.objects.select_related("cluster").get(pk=run_id), token)


def execute_claimed(run, token, *, interrupt_reason="the process executing it was stopped"):
    """Execute a run this process has claimed, then release it with its new status.

    Also ``manage.py runbook --sync``: a KeyboardInterrupt marks the run
    interrupted (as the sweeper would once the heartbeat stops) and goes on up.
    """
    status, error = RunStatus.FAILED, ""
    try:
        with Heartbeat(run.pk, token) as beat, SshPool() as pool:
            status, error = engine.advance(run, beat=beat, pool=pool)
        if status == engine.HANDED_OVER:
            status = None
            if services.hand_over_run(run, token, reason="its worker was asked to stop (SIGTERM); another "
                                      "worker goes on from the next step"):
                log.warning("run %s handed over: this worker is stopping", run.pk)
    except KeyboardInterrupt:
        status = None
        try:
            services.interrupt_run(run, executor=token, reason=interrupt_reason)
        except UNAVAILABLE as exc:  # the interrupt still goes up; the sweeper marks the run
            log.warning("run %s not marked interrupted (database unavailable: %s)", run.pk, exc)
        raise
    except Exception:
        log.exception("run %s crashed", run.pk)
        error = "internal error: " + traceback.format_exc(limit=3).splitlines()[-1]
        raise
    finally:
        if status is not None:  # None: the run was taken from us, or interrupted
            services.release_run(run, token, status, error=error)
        events.flush()  # a work horse exits right after its job
