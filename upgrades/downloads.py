"""Full logs as downloads: one step's, or the whole run's with each step headed.

Under daphne a synchronous iterator is drained into memory before the first
byte goes out (8.6 s and +300 MB for a 1M-line step), so these are async
generators: each reads the next CHUNK_LINES rows after the last ``seq`` it
sent (keyset pagination: every query is an index range, however deep into
the log) and yields them as one piece of text. Memory is a chunk, whatever
the log's size, as long as the client keeps reading (daphne has no
backpressure: what it is given for a stalled client stays buffered).
"""
import asyncio

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

from .models import StepOutput
from .timefmt import format_time

# A line is at most ~16 KiB (output.MAX_LINE_CHARS), so a chunk is at most
# ~16 MiB and usually ~100 KiB; 1,000 rows a query keeps queries few.
CHUNK_LINES = 1_000


def _rows_after(step_id, after):
    return list(StepOutput.objects.filter(step_id=step_id, seq__gt=after).order_by("seq")
                .values_list("seq", "text")[:CHUNK_LINES])


async def step_lines(step_id):
    """Every line of a step in order, newline-terminated, a chunk at a time."""
    after = 0
    while True:
        rows = await sync_to_async(_rows_after)(step_id, after)
        if not rows:
            return
        after = rows[-1][0]
        yield "".join(f"{text}\n" for _, text in rows)


def _when(moment):
    return format_time(moment, "-")


def run_heading(run, step_count):
    return (f"Run #{run.pk}: {run.runbook.name} on cluster {run.cluster.name}\n"
            f"requested by {run.requested_by.get_username()} at {_when(run.created_at)}; "
            f"status {run.get_status_display()}; {step_count} steps\n\n")


def step_heading(step, step_count):
    """What a reader of the file needs to know about the lines that follow."""
    host = f"{step.host.name} ({step.host.address}:{step.host.ssh_port})" if step.host else "-"
    exit_code = "-" if step.exit_code is None else step.exit_code
    lines = [f"===== Step {step.order}/{step_count}: {step.title} =====",
             f"host:      {host}",
             f"command:   {step.command or '-'}",
             f"status:    {step.get_status_display()}, exit code {exit_code}",
             f"started:   {_when(step.started_at)}, finished: {_when(step.finished_at)}"]
    if step.error:
        lines.append(f"error:     {step.error}")
    return "\n".join(lines) + "\n-----\n"


async def run_lines(run, steps):
    """The run's heading, then each step's heading and lines."""
    yield run_heading(run, len(steps))
    for step in steps:
        yield step_heading(step, len(steps))
        async for chunk in step_lines(step.pk):
            yield chunk
        yield "\n"


def log_response(chunks, filename):
    response = StreamingHttpResponse(chunks, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


FILE_CHUNK = 1 << 20


async def file_chunks(path):
    """A file's bytes a MiB at a time, read off the event loop."""
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, FILE_CHUNK):
            yield chunk


def file_response(path, filename):
    response = StreamingHttpResponse(file_chunks(path), content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Length"] = str(path.stat().st_size)
    return response
