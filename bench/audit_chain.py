"""The audit chain's cost: events appended per second from one process and
from several writing at once (the chain must stay one line: audit_verify
intact), and how fast audit_verify walks it.

Standalone (no lab): a fresh SQLite file, or DATABASE_URL's database
(its audit table is emptied first: use a database of its own).
Usage: python bench/audit_chain.py [--smoke] [events per writer] [writers]
(--smoke: 50 events, 2 writers).
"""
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone

from harness import BenchFailure, phase, run, size  # also puts the repository on sys.path


def setup(folder):
    os.environ["HEPORTAL_DATA_DIR"] = folder
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder}/bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "heportal.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def writer(folder, count, start_at):
    setup(folder)
    from upgrades import audit

    while time.time() < start_at:
        time.sleep(0.001)
    for n in range(count):
        audit.record(None, "bench.event", None, n=n, pid=os.getpid(), text="x" * 100)


def timed_writers(folder, count, writers):
    start_at = time.time() + 1.0
    procs = [multiprocessing.Process(target=writer, args=(folder, count, start_at)) for _ in range(writers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise BenchFailure(f"a writer exited with status {proc.exitcode}")
    return time.time() - start_at


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else size(2000, 50)
    writers = int(sys.argv[2]) if len(sys.argv) > 2 else size(4, 2)
    folder = tempfile.mkdtemp(prefix="bench-audit-")
    setup(folder)
    from django.core.management import call_command
    from django.db import connection

    from upgrades import audit
    from upgrades.models import AuditEvent, AuditHead

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table}")
    AuditHead.objects.all().delete()
    connection.close()
    with phase("one writer", 60 + count / 10):
        one = timed_writers(folder, count, 1)
    with phase(f"{writers} writers", 60 + count * writers / 10):
        many = timed_writers(folder, count, writers)
    with phase("audit_verify", 60 + count * writers / 100):
        started = time.monotonic()
        checked, problem = audit.verify()
        walk = time.monotonic() - started
    if problem is not None or checked != count * (writers + 1):
        raise BenchFailure(f"the chain is broken: {checked} events checked, {problem}")
    engine = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    print(f"### Audit chain — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {engine}\n")
    print("| measure | result | target |\n|---|---|---|")
    print(f"| append, 1 process | {count / one:,.0f} events/s ({count:,} events) | far above the app's rate (a few per step) |")
    print(f"| append, {writers} processes at once | {count * writers / many:,.0f} events/s in all | the chain stays one line |")
    print(f"| audit_verify | {checked / walk:,.0f} events/s ({checked:,} events, intact) | minutes for millions |")


if __name__ == "__main__":
    run(main)
