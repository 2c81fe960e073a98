"""Lossless, low-latency recording of a step's output.

The command's reader only appends lines to a queue; a flusher thread wakes
on the first line, waits OUTPUT_BATCH_SECONDS for more (and at least
OUTPUT_MIN_INTERVAL since its previous batch), then writes all it has to the
database in one transaction, then hands it to the process's sender, which
publishes it to the run's group in messages of at most OUTPUT_BATCH_LINES
lines. A fast command gets big batches, a slow one gets each line within a
few ms, a slow database never blocks the reader (batches just grow), and
Redis being away never blocks or fails storing.
"""
import collections
import json
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from .events import OutputEvent, run_group, send_now
from .models import StepOutput

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


def last_seq(step_id):
    """The step's last stored line number (0: none). Plain SQL: it runs once per step
    on the runbook engine's path, where the ORM's aggregate costs ten times more."""
    quote = connection.ops.quote_name
    table, step = quote(StepOutput._meta.db_table), quote(StepOutput._meta.get_field("step").column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(seq) FROM {table} WHERE {step} = %s", [step_id])
        return cursor.fetchone()[0] or 0


class OutputRecorder:
    """Collects lines of one step; use as a context manager around the command.

    The flusher thread stores batches (the record of truth) and then hands
    them to the process's sender (``events.send_now``), which never blocks:
    storing never waits for Redis, and while Redis is away viewers fill the
    gap from the database.
    """

    def __init__(self, step, *, batch_seconds=None, batch_lines=None):
        self.step_id = step.pk
        self.group = run_group(step.run_id)
        self.batch_seconds = settings.OUTPUT_BATCH_SECONDS if batch_seconds is None else batch_seconds
        self.batch_lines = settings.OUTPUT_BATCH_LINES if batch_lines is None else batch_lines
        self.min_interval = settings.OUTPUT_MIN_INTERVAL
        self.next_seq = last_seq(step.pk) + 1
        # deque.append/popleft are atomic: the reader never takes a lock.
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"output-{step.pk}", daemon=True)

    def __enter__(self):
        self._thread.start()
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
        """Store what is left and stop; re-raises a failure to store."""
        self._closed.set()
        self._wake.set()
        self._thread.join()
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
                self._closed.wait(delay)
                # Clear, then read the flag and drain: a line or a close after the
                # clear sets it again. (The flag read before the clear missed a close
                # in between, and the thread then waited for good: the job hung.)
                self._wake.clear()
                closing = self._closed.is_set()
                batch = [self._queue.popleft() for _ in range(len(self._queue))]
                if batch:
                    self._flush(batch)
                    last_flush = time.monotonic()
                if closing and not self._queue:
                    break
        except BaseException as exc:  # surfaced by close() in the job's thread
            self._error = exc
        finally:
            connection.close()
            close_old_connections()

    def _flush(self, batch):
        """Save, then publish: the page must be rebuildable from the database."""
        first = self.next_seq
        rows = [(self.step_id, seq, stream, text) for seq, (stream, text) in enumerate(batch, start=first)]
        insert_rows(rows)
        self.next_seq += len(batch)
        for start in range(0, len(rows), self.batch_lines):
            chunk = [[seq, stream, text] for _, seq, stream, text in rows[start:start + self.batch_lines]]
            send_now(self.group, output_event(self.step_id, chunk))
