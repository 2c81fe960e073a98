"""A database outage in a long-lived process: said once when it starts and once
when it ends, however many passes of a loop meet it in between.

The HA poller (its polls, its sweeper, its package reads) goes on through an
outage of any length: each pass that needs the database runs in
``riding_out``, which logs the first failure, drops the broken connection so
the next pass connects afresh, and says when a pass succeeds again. The web
process answers 503 meanwhile (``upgrades.errors.DatabaseUnavailable``); the
workers' parents need the database only when a work horse dies
(``upgrades.worker``).
"""
import contextlib
import logging
import threading
import time

from django.db import Error, InterfaceError, OperationalError, connections

log = logging.getLogger(__name__)

# A server stopped, restarting or out of reach, a connection cut, SQLite locked:
# what waiting cures. Other database errors are bugs and keep their traceback.
UNAVAILABLE = (OperationalError, InterfaceError)


class Outage:
    """Whether this process currently finds the database unavailable (shared by its threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.since = None  # monotonic time of the first failure of the current outage
        self.back_at = None  # monotonic time the last outage ended

    def down(self, exc, doing):
        with self._lock:
            first, self.since = self.since is None, self.since or time.monotonic()
        if first:
            log.warning("database unavailable while %s (%s); carrying on and retrying until it is back",
                        doing, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    def up(self):
        with self._lock:
            since, self.since = self.since, None
            if since is not None:
                self.back_at = time.monotonic()
        if since is not None:
            log.warning("database back after %.0f s", time.monotonic() - since)

    def back_within(self, seconds):
        """Down now, or back for less than ``seconds``: what others wrote meanwhile may be missing."""
        return self.since is not None or (self.back_at is not None and time.monotonic() - self.back_at < seconds)


DATABASE = Outage()


def drop_connections():
    """Close this thread's connections after a failure: the next query connects afresh."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Error:
            pass


@contextlib.contextmanager
def riding_out(doing):
    """Run one database-using pass of a loop; an outage is logged once and swallowed."""
    try:
        for conn in connections.all(initialized_only=True):
            conn.close_if_unusable_or_obsolete()
    except Error:
        drop_connections()
    try:
        yield
    except UNAVAILABLE as exc:
        DATABASE.down(exc, doing)
        drop_connections()
    else:
        DATABASE.up()
