"""Lossless, low-latency recording of a step's output.

The command's reader only appends lines to a queue; the process's flusher thread wakes
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
import logging
import os
import tempfile
import threading
import time

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction

from .events import OutputEvent, run_group, send_now
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
            # The driver's own cursor: its errors become Django's, as on every other path.
            with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
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


def append_note(step_id, text):
    """A system line after the step's last (why a clean-up step runs, or goes back to
    pending), written once the database takes it; a try whose commit was stored before
    the connection died is not written twice."""
    from .dbwait import until_written

    def write():
        stored = StepOutput.objects.filter(step_id=step_id).order_by("-seq").values_list("seq", "text").first()
        if stored is None or stored[1] != text:
            insert_rows([(step_id, (stored[0] if stored else 0) + 1, "system", text)])

    until_written(f"a note of step {step_id}", write)


class OutputNotStored(RuntimeError):
    """The database refused a step's lines for longer than the worker waits (DB_WAIT_SECONDS)."""


class _Unstored:
    """Numbered rows not stored yet, oldest first: up to ``limit`` characters in memory, the
    rest in a temporary file (a long outage under a chatty command must not exhaust memory).
    Lines still come to the recorder's queue during one try of the database: a refused try
    ends at once on PostgreSQL down, after SQLite's 30 s busy timeout when locked."""

    def __init__(self, limit):
        self.limit = limit
        self.rows, self.chars = [], 0
        self._file, self._read_at, self._spilled = None, 0, 0

    def __len__(self):
        return len(self.rows) + self._spilled

    def add(self, rows):
        chars = sum(len(r[3]) for r in rows)
        if self._file is None and self.chars + chars <= self.limit:
            self.rows.extend(rows)
            self.chars += chars
            return
        if self._file is None:
            log.warning("output not stored past %d characters is kept in a temporary file", self.limit)
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._file.seek(0, os.SEEK_END)
        self._file.writelines(json.dumps(row) + "\n" for row in rows)
        self._spilled += len(rows)

    def head(self):
        """The oldest rows, read back from the file once those in memory are stored."""
        if not self.rows and self._spilled:
            self._file.seek(self._read_at)
            while self._spilled and self.chars <= self.limit:
                row = tuple(json.loads(self._file.readline()))
                self.rows.append(row)
                self.chars += len(row[3])
                self._spilled -= 1
            self._read_at = self._file.tell()
            if not self._spilled:
                self._file.close()
                self._file, self._read_at = None, 0
        return self.rows

    def drop(self, count):
        """The first ``count`` rows of head() are stored."""
        if count >= len(self.rows):
            self.rows, self.chars = [], 0
        else:
            self.chars -= sum(len(r[3]) for r in self.rows[:count])
            del self.rows[:count]


class OutputRecorder:
    """Collects lines of one step; use as a context manager around the command.

    The process's flusher thread stores batches (the record of truth) and then
    hands them to the process's sender (``events.send_now``), which never
    blocks: storing never waits for Redis, and while Redis is away viewers
    fill the gap from the database.

    A line gets its number when it is taken for a batch, once: a batch the
    database refuses (restarting, locked by another process) is kept with its
    numbers and stored again, before newer lines, until the database takes it.
    """

    RETRY_SECONDS = (0.2, 5.0)  # first and longest pause between two tries of a refused batch

    def __init__(self, step, *, batch_seconds=None, batch_lines=None):
        self.step_id = step.pk
        self.group = run_group(step.run_id)
        self.batch_seconds = settings.OUTPUT_BATCH_SECONDS if batch_seconds is None else batch_seconds
        self.batch_lines = settings.OUTPUT_BATCH_LINES if batch_lines is None else batch_lines
        self.min_interval = settings.OUTPUT_MIN_INTERVAL
        self.next_seq = last_seq(step.pk) + 1
        # deque.append/popleft are atomic: the reader never takes a lock.
        self._queue = collections.deque()
        self._unstored = _Unstored(settings.OUTPUT_UNSTORED_CHARS)
        self._first = None  # when the oldest line not yet stored came (None: none waits)
        self._last_flush = 0.0
        self._closed = False
        self._done = threading.Event()
        self._error = None  # the database's last refusal, until it takes the lines
        self._retry_at, self._pause = None, self.RETRY_SECONDS[0]
        self._maybe_stored = False  # the connection died during a commit: it may have been stored

    def __enter__(self):
        _FLUSHER.add(self)
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def last_seq(self):
        return self.next_seq - 1

    def line(self, stream, text):
        self._queue.append((stream, clean_line(text)))
        if self._first is None:  # the flusher resets it before it drains: never missed
            self._first = time.monotonic()
            _FLUSHER.wake()

    def close(self):
        """Store what is left and stop. While the database refuses the lines this waits for
        it, up to DB_WAIT_SECONDS; then raises OutputNotStored (the flusher keeps trying
        while the process lives)."""
        self._closed = True
        _FLUSHER.wake()
        if not self._done.wait(settings.DB_WAIT_SECONDS):
            raise OutputNotStored(f"{len(self._unstored) + len(self._queue)} lines of output not stored: "
                                  f"the database refused them ({self._error})")

    def _due(self):
        """When the flusher should store this recorder's lines (None: nothing waits).
        A few ms after the first line, and at least min_interval after the previous
        batch: under sustained output each viewer gets at most 1/min_interval messages
        a second, which is what the web process can push to many viewers
        (docs/benchmarks.md). A closing recorder is due at once; a refused batch
        when its pause is over."""
        if self._retry_at is not None:
            return self._retry_at
        if self._closed:
            return 0.0
        if self._first is None:
            return None
        return max(self._first + self.batch_seconds, self._last_flush + self.min_interval)

    def _store_pending(self):
        """Number the waiting lines, then store every unstored row in order. A refusal
        keeps them for the next try (raised to the flusher, which logs it)."""
        self._first = None
        batch = [self._queue.popleft() for _ in range(len(self._queue))]
        if batch:
            first, self.next_seq = self.next_seq, self.next_seq + len(batch)
            self._unstored.add([(self.step_id, seq, stream, text)
                                for seq, (stream, text) in enumerate(batch, start=first)])
        try:
            while rows := self._unstored.head():
                self._flush(rows)
        except IntegrityError:
            # Someone else wrote lines of this step meanwhile (the numbers were taken):
            # ours follow theirs, none dropped.
            self._renumber(last_seq(self.step_id) + 1)
            raise
        except DatabaseError:
            self._maybe_stored = True
            raise
        self._last_flush = time.monotonic()

    def _flush(self, rows):
        """Save, then publish: the page must be rebuildable from the database."""
        if self._maybe_stored:
            # A commit the connection died in may have been stored: keep only what is not.
            stored = last_seq(self.step_id)
            if stored >= rows[0][1]:
                self._unstored.drop(min(len(rows), stored - rows[0][1] + 1))
                rows = self._unstored.head()
            self._maybe_stored = False
            if not rows:
                return
        insert_rows(rows)
        self._unstored.drop(len(rows))  # a new list: ``rows`` stays as stored
        for start in range(0, len(rows), self.batch_lines):
            chunk = [[seq, stream, text] for _, seq, stream, text in rows[start:start + self.batch_lines]]
            send_now(self.group, output_event(self.step_id, chunk))

    def _renumber(self, first):
        rows = list(self._unstored.head())
        self._unstored.drop(len(rows))
        rest = []
        while more := self._unstored.head():
            rest.extend(more)
            self._unstored.drop(len(more))
        self._unstored.add([(step, seq, stream, text) for seq, (step, _, stream, text)
                            in enumerate(rows + rest, start=first)])
        self.next_seq = first + len(rows) + len(rest)

    def _refused(self, exc):
        """The flusher's note of a refusal: try again after a pause that grows to 5 s."""
        if self._error is None:
            log.warning("step %s: output not stored, kept to store again: %s", self.step_id, exc)
        self._error = exc
        self._retry_at = time.monotonic() + self._pause
        self._pause = min(self._pause * 2, self.RETRY_SECONDS[1])

    def _stored(self):
        if self._error is not None:
            log.warning("step %s: output stored again, the database is back", self.step_id)
        self._error, self._retry_at, self._pause = None, None, self.RETRY_SECONDS[0]


class _Flusher:
    """One thread per process stores the lines of every open recorder.

    A thread per step cost, on each step's path, a thread start, a database
    connection (a new backend on PostgreSQL) and a join; this one keeps its
    connection while steps follow each other, and closes it once idle.
    """

    IDLE_CLOSE = 2.0  # seconds without a recorder before the connection is closed

    def __init__(self):
        self._reset()
        # A forked child (an RQ work horse) starts its own thread on first use.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self):
        self._pid = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._recorders = []

    def add(self, recorder):
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="output", daemon=True).start()
            self._recorders.append(recorder)

    def wake(self):
        self._wake.set()

    def _run(self):
        """Never ends: a recorder's refused lines are its own (kept and tried again);
        anything else is logged and the loop goes on, or every later step would hang."""
        self._holds_connection, self._idle_since = False, None
        while True:
            try:
                self._round()
            except Exception:
                log.exception("output flusher")
                time.sleep(0.1)

    def _round(self):
        now = time.monotonic()
        with self._lock:
            recorders = list(self._recorders)
        dues = [d for d in (r._due() for r in recorders) if d is not None]
        if dues:
            timeout = max(0.0, min(dues) - now)
        elif self._idle_since is not None:
            timeout = max(0.0, self._idle_since + self.IDLE_CLOSE - now)
        else:
            timeout = None
        self._wake.wait(timeout)
        # Clear, then look: a line or a close after the clear sets it again.
        self._wake.clear()
        now = time.monotonic()
        with self._lock:
            recorders = list(self._recorders)
        for recorder in recorders:
            due = recorder._due()
            if due is None or due > now:
                continue
            self._holds_connection = True
            try:
                recorder._store_pending()
            except Exception as exc:  # kept and tried again; close() waits for it
                recorder._refused(exc)
                connection.close()  # a broken connection is opened afresh next time
            else:
                recorder._stored()
            if recorder._closed and recorder._error is None and not recorder._queue:
                with self._lock:
                    self._recorders.remove(recorder)
                recorder._done.set()
        with self._lock:
            busy = bool(self._recorders)
        if busy or not self._holds_connection:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = time.monotonic()
        elif time.monotonic() - self._idle_since >= self.IDLE_CLOSE:
            connection.close()
            self._holds_connection, self._idle_since = False, None


_FLUSHER = _Flusher()
