"""Full-log downloads through the real daphne: streamed, named, headed, bounded in memory."""
import http.client
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_host, make_run
from upgrades.models import StepOutput
from upgrades.output import insert_rows

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = " the quick brown fox jumps over the lazy dog"  # ~55 bytes a line with its number


def fill_step(step, count):
    """``count`` lines "line <seq> ..." stored in one statement: a million rows
    take seconds this way, not the minute a recorder would."""
    table = connection.ops.quote_name(StepOutput._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(StepOutput._meta.get_field(name).column)
                        for name in ("step", "seq", "stream", "text"))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"""INSERT INTO {table} ({columns})
            WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %s)
            SELECT %s, x, 'stdout', 'line ' || x || %s FROM n""", [count, step.pk, TEXT])


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def daphne_pid(base_url):
    """The live_portal daphne: our child process listening on that port."""
    port = str(urlsplit(base_url).port)
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"daphne" in cmdline and port.encode() in cmdline:
            return int(proc.name)
    raise AssertionError("daphne process not found")


def memory_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def get(base_url, path, cookie=None):
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    return conn, conn.getresponse()


def test_a_million_line_step_streams_in_order_in_bounded_memory(live_portal, make_user):
    user = make_user("viewer")
    run = make_run(user, make_host(), ["seq 1000000"])
    step = run.steps.get()
    count = 1_000_000
    fill_step(step, count)
    pid = daphne_pid(live_portal)
    # Reset the peak RSS (VmHWM) to now, and also sample VmRSS meanwhile, in
    # case the kernel refuses the reset.
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = memory_kib(pid, "VmRSS")
    peak, done = [before], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak.append(memory_kib(pid, "VmRSS"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        conn, response = get(live_portal, reverse("step-log", args=[run.pk, step.pk]), session_cookie(user))
        assert response.status == 200
        assert response.getheader("Content-Disposition") == f'attachment; filename="run-{run.pk}-step-1.log"'
        assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
        expected, rest, size = 1, b"", 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                assert line == b"line %d%s" % (expected, TEXT.encode()), f"line {expected} is {line[:80]!r}"
                expected += 1
        conn.close()
    finally:
        done.set()
        sampler.join()
    assert rest == b"" and expected - 1 == count  # every line, in order, nothing after the last
    grown_mib = (max(max(peak), memory_kib(pid, "VmHWM")) - before) / 1024
    # The log is ~50 MiB; buffering it costs daphne ~300 MiB (issue #7). A
    # stream holds a chunk or a few: allow generous room for allocator noise.
    assert size > 50 * 2**20
    assert grown_mib < 40, f"daphne grew by {grown_mib:.0f} MiB while streaming {size / 2**20:.0f} MiB"


def test_the_run_log_heads_every_step_with_what_ran_where(live_portal, make_user):
    user = make_user("operator")
    host = make_host(name="he1.lab.local", address="127.0.1.1", ssh_port=2201)
    run = make_run(user, host, ["hostname", "cat /etc/redhat-release", "never run"])
    first, second, third = run.steps.order_by("order")
    now = timezone.now()
    run.steps.filter(pk=first.pk).update(status="succeeded", exit_code=0, started_at=now, finished_at=now)
    run.steps.filter(pk=second.pk).update(status="failed", exit_code=1, error="he1.lab.local: it broke")
    insert_rows([(first.pk, 1, "stdout", "he1.lab.local")] +
                [(second.pk, seq, "stderr", f"err {seq}") for seq in range(1, 2502)])

    conn, response = get(live_portal, reverse("run-log", args=[run.pk]), session_cookie(user))
    body = response.read().decode()
    conn.close()
    assert response.status == 200
    assert response.getheader("Content-Disposition") == f'attachment; filename="run-{run.pk}.log"'
    assert body.startswith(f"Run #{run.pk}: Diagnostic on cluster Default\nrequested by operator at ")
    heading_1 = body.index("===== Step 1/3: Step 1 =====\nhost:      he1.lab.local (127.0.1.1:2201)\n"
                           "command:   hostname\nstatus:    succeeded, exit code 0\n")
    heading_2 = body.index("===== Step 2/3: Step 2 =====\n")
    heading_3 = body.index("===== Step 3/3: Step 3 =====\n")
    assert heading_1 < heading_2 < heading_3
    step_1 = body[heading_1:heading_2]
    assert step_1.endswith("-----\nhe1.lab.local\n\n")
    step_2 = body[heading_2:heading_3]
    assert "status:    failed, exit code 1\n" in step_2 and "error:     he1.lab.local: it broke\n" in step_2
    assert step_2.split("-----\n", 1)[1] == "".join(f"err {seq}\n" for seq in range(1, 2502)) + "\n"
    assert body[heading_3:].endswith("status:    pending, exit code -\nstarted:   -, finished: -\n-----\n\n")


def test_downloads_need_a_login_and_an_existing_step(live_portal, make_user):
    user = make_user("viewer")
    run = make_run(user, make_host(), ["true"])
    step = run.steps.get()
    for path in (reverse("step-log", args=[run.pk, step.pk]), reverse("run-log", args=[run.pk])):
        conn, response = get(live_portal, path)
        response.read()
        conn.close()
        assert response.status == 302 and response.getheader("Location").startswith("/login/?next=")
    cookie = session_cookie(user)
    for path, reason in ((reverse("step-log", args=[run.pk + 1, step.pk]), f"Run #{run.pk + 1} has no step"),
                         (f"/runs/{run.pk}/steps/{'9' * 30}/log.txt", "There is no page at this address."),
                         (reverse("run-log", args=[run.pk + 1]), f"There is no run #{run.pk + 1}.")):
        started = time.monotonic()
        conn, response = get(live_portal, path, cookie)
        page = response.read().decode()
        conn.close()
        assert response.status == 404 and reason in page and 'class="brand"' in page, path
        assert time.monotonic() - started < 10  # an answer, not a hang
