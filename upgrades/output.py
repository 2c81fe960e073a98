"""Lossless, low-latency recording of a step's output.

The command's reader only appends lines to a queue; a flusher thread wakes
on the first line, waits OUTPUT_BATCH_SECONDS for more (and at least
OUTPUT_MIN_INTERVAL since its previous batch), then writes all it has to the
database in one transaction; a publisher thread then sends it to the run's
group in messages of at most OUTPUT_BATCH_LINES lines. A fast command gets
big batches, a slow one gets each line within a few ms, a slow database
never blocks the reader (batches just grow), and Redis being away never
blocks or fails storing (see ``OutputRecorder``).
"""
import asyncio
import collections
import json
import logging
import threading
import time

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Max

from .events import OutputEvent, run_group
from .models import StepOutput

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 16_384


def output_event(step_id, lines) -> OutputEvent:
    """The batch is JSON-encoded here, once, not once per viewer."""
    return {"type": "output.lines", "step": step_id, "first": lines[0][0], "last": lines[-1][0],
            "json": json.dumps({"type": "output.lines", "step": step_id, "lines": lines})}


def clean_line(text):
    """What a terminal would show: the text after the last carriage return,
    without NULs (PostgreSQL refuses them), cut at MAX_LINE_CHARS."""
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " [line cut at %d characters]" % MAX_LINE_CHARS
    return text


def insert_rows(rows):
    """Store (step_id, seq, stream, text) rows in one transaction, the fastest way
    each database offers: COPY on PostgreSQL (4× executemany), else executemany."""
    quote = connection.ops.quote_name
    table = quote(StepOutput._meta.db_table)
    columns = ", ".join(quote(StepOutput._meta.get_field(name).column) for name in ("step", "seq", "stream", "text"))
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s)", rows)


class OutputRecorder:
    """Collects lines of one step; use as a context manager around the command.

    Two threads: the flusher stores batches (the record of truth), the
    publisher sends stored batches to viewers. Storing never waits for Redis:
    while Redis is away the publisher drops batches (viewers fill the gap
    from the database) and tries again a moment later.
    """

    RETRY_SECONDS = 1.0
    MAX_UNSENT = 100  # batches waiting for the publisher; older ones are dropped

    def __init__(self, step, *, batch_seconds=None, batch_lines=None):
        self.step_id = step.pk
        self.group = run_group(step.run_id)
        self.batch_seconds = settings.OUTPUT_BATCH_SECONDS if batch_seconds is None else batch_seconds
        self.batch_lines = settings.OUTPUT_BATCH_LINES if batch_lines is None else batch_lines
        self.min_interval = settings.OUTPUT_MIN_INTERVAL
        last = StepOutput.objects.filter(step_id=step.pk).aggregate(m=Max("seq"))["m"]
        self.next_seq = (last or 0) + 1
        # deque.append/popleft are atomic: the reader never takes a lock.
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"output-{step.pk}", daemon=True)
        self._unsent = collections.deque()
        self._unsent_wake = threading.Event()
        self._stored_all = threading.Event()
        self._publisher = threading.Thread(target=self._publish_loop, name=f"publish-{step.pk}", daemon=True)

    def __enter__(self):
        self._thread.start()
        self._publisher.start()
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def last_seq(self):
        return self.next_seq - 1

    def line(self, stream, text):
        self._queue.append((stream, clean_line(text)))
        if not self._wake.is_set():
            self._wake.set()

    def close(self):
        """Store what is left and stop; re-raises a failure to store.

        Publishing may still be retrying when Redis is away: it is given a
        moment, then left to the viewers' catch-up from the database.
        """
        self._closed.set()
        self._wake.set()
        self._thread.join()
        self._stored_all.set()
        self._unsent_wake.set()
        self._publisher.join(timeout=5)
        if self._error is not None:
            raise self._error

    def _run(self):
        last_flush = 0.0
        try:
            while True:
                self._wake.wait()
                # A few ms after the first line, and at least min_interval after
                # the previous batch: under sustained output each viewer gets at
                # most 1/min_interval messages a second, which is what the web
                # process can push to many viewers (docs/benchmarks.md).
                delay = max(self.batch_seconds, last_flush + self.min_interval - time.monotonic())
                closing = self._closed.wait(delay)
                # Clear before draining: a line added after the drain sets it again.
                self._wake.clear()
                batch = [self._queue.popleft() for _ in range(len(self._queue))]
                if batch:
                    self._store(batch)
                    last_flush = time.monotonic()
                if closing and not self._queue:
                    break
        except BaseException as exc:  # surfaced by close() in the job's thread
            self._error = exc
        finally:
            connection.close()
            close_old_connections()

    def _store(self, batch):
        """Save, then hand to the publisher: the page must be rebuildable from the database."""
        first = self.next_seq
        rows = [(self.step_id, seq, stream, text) for seq, (stream, text) in enumerate(batch, start=first)]
        insert_rows(rows)
        self.next_seq += len(batch)
        self._unsent.append(rows)
        while len(self._unsent) > self.MAX_UNSENT:
            self._unsent.popleft()
        self._unsent_wake.set()

    def _publish_loop(self):
        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        retry_at = 0.0
        try:
            while True:
                self._unsent_wake.wait()
                self._unsent_wake.clear()
                while self._unsent:
                    rows = self._unsent.popleft()
                    if time.monotonic() < retry_at:
                        continue  # Redis was away a moment ago: drop, viewers catch up
                    try:
                        for start in range(0, len(rows), self.batch_lines):
                            chunk = [[seq, stream, text] for _, seq, stream, text in rows[start:start + self.batch_lines]]
                            loop.run_until_complete(layer.group_send(self.group, output_event(self.step_id, chunk)))
                    except Exception as exc:  # redis errors, OSError, ChannelFull
                        if retry_at == 0.0 or time.monotonic() - retry_at > 10:
                            log.warning("step %s: output not published (stored; viewers catch up): %s",
                                        self.step_id, exc)
                        retry_at = time.monotonic() + self.RETRY_SECONDS
                if self._stored_all.is_set() and not self._unsent:
                    break
        finally:
            try:
                loop.run_until_complete(layer.close_pools())
            except Exception:
                pass  # Redis gone: nothing to close cleanly
            loop.close()
