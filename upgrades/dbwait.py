"""A write the worker must not lose, tried again while the database is away.

A database restarting (PostgreSQL's fast shutdown ends every connection) or
locked by another process (SQLite) refuses writes for a while; a step's end
or a run's release is then written once it is back, up to DB_WAIT_SECONDS.
The outage is logged once, and again when the database is back.
"""
import logging
import time

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection

log = logging.getLogger(__name__)


def until_written(what, write, *, limit=None):
    """``write()``'s result once the database takes it; re-raises the last refusal after
    ``limit`` seconds (default DB_WAIT_SECONDS). ``write`` is called again after a
    refusal, also one whose commit may have been stored before the connection died:
    it must be idempotent. Inside a transaction nothing is retried (it is the caller's)."""
    limit = settings.DB_WAIT_SECONDS if limit is None else limit
    deadline = time.monotonic() + limit
    pause, refused = 0.2, None
    while True:
        try:
            result = write()
        except IntegrityError:
            raise
        except DatabaseError as exc:
            if connection.in_atomic_block:
                raise
            connection.close()  # a dead or broken connection is opened afresh
            if refused is None:
                log.warning("%s not written, trying again for up to %d s: %s", what, limit, exc)
            refused = exc
            if time.monotonic() + pause > deadline:
                log.error("%s not written: the database refused it for %d s", what, limit)
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
            continue
        if refused is not None:
            log.warning("%s written, the database is back", what)
        return result
