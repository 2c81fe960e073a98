"""Lossless, low-latency recording of a step's output.

The command's reader only appends lines to a buffer; a flusher thread
writes each batch to the database and then publishes it to the run's group.
A batch closes when it is OUTPUT_BATCH_SECONDS old or OUTPUT_BATCH_LINES big,
so a fast command gets large batches and a slow one gets each line at once,
and a slow database never blocks the reader (batches just grow).
"""
import asyncio
import threading
import time

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Max

from .events import run_group
from .models import StepOutput

MAX_LINE_CHARS = 16_384
MAX_LINES_PER_MESSAGE = 1_000


def clean_line(text):
    """What a terminal would show: the text after the last carriage return,
    without NULs (PostgreSQL refuses them), cut at MAX_LINE_CHARS."""
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    text = text.replace("\x00", "\ufffd")
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " [line cut at %d characters]" % MAX_LINE_CHARS
    return text


class OutputRecorder:
    """Collects lines of one step; use as a context manager around the command."""

    def __init__(self, step, *, batch_seconds=None, batch_lines=None):
        self.step_id = step.pk
        self.group = run_group(step.run_id)
        self.batch_seconds = settings.OUTPUT_BATCH_SECONDS if batch_seconds is None else batch_seconds
        self.batch_lines = settings.OUTPUT_BATCH_LINES if batch_lines is None else batch_lines
        last = StepOutput.objects.filter(step_id=step.pk).aggregate(m=Max("seq"))["m"]
        self.next_seq = (last or 0) + 1
        self._pending = []
        self._first_at = None
        self._cond = threading.Condition()
        self._closed = False
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"output-{step.pk}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self, stream, text):
        with self._cond:
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append((stream, clean_line(text)))
            if len(self._pending) in (1, self.batch_lines):
                self._cond.notify()

    def close(self):
        """Flush what is left and stop; re-raises a failure of the flusher."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _take_batch(self):
        with self._cond:
            while True:
                if self._pending:
                    age = time.monotonic() - self._first_at
                    if self._closed or len(self._pending) >= self.batch_lines or age >= self.batch_seconds:
                        batch, self._pending = self._pending, []
                        return batch
                    self._cond.wait(self.batch_seconds - age)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()

    def _run(self):
        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        try:
            while (batch := self._take_batch()) is not None:
                self._flush(batch, loop, layer)
        except BaseException as exc:  # surfaced by close() in the job's thread
            self._error = exc
            with self._cond:
                self._pending = []
        finally:
            if layer is not None:
                loop.run_until_complete(layer.close_pools())
            loop.close()
            connection.close()
            close_old_connections()

    def _flush(self, batch, loop, layer):
        rows = []
        for stream, text in batch:
            rows.append(StepOutput(step_id=self.step_id, seq=self.next_seq, stream=stream, text=text))
            self.next_seq += 1
        StepOutput.objects.bulk_create(rows, batch_size=2000)
        lines = [[row.seq, row.stream, row.text] for row in rows]
        for start in range(0, len(lines), MAX_LINES_PER_MESSAGE):
            chunk = lines[start:start + MAX_LINES_PER_MESSAGE]
            loop.run_until_complete(layer.group_send(
                self.group, {"type": "output.lines", "step": self.step_id, "lines": chunk}))
