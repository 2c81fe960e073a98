"""What every benchmark needs: a database, Redis, a lab, the portal's processes.

Benchmarks run on demand (`make bench`), never in the test suite. Each one
starts from an empty SQLite file (or DATABASE_URL's database) and a fresh lab
at speed 1, so lab timestamps are wall-clock times.
"""
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bench:
    """Sets up the environment, then Django, then starts processes on request."""

    def __init__(self, name, *, labs=1, hosts=3):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.procs = []
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
        os.environ["REDIS_URL"] = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/14"
        os.environ["CHANNELS_PREFIX"] = f"bench-{name}"
        os.environ["HEPORTAL_DATA_DIR"] = str(self.dir)
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{self.dir / 'bench.sqlite3'}")
        os.environ["DJANGO_SETTINGS_MODULE"] = "heportal.settings"
        os.environ["LOG_LEVEL"] = "WARNING"
        from lab.launcher import start_lab

        self.labs = []
        key = None
        for n in range(labs):
            state = self.dir / f"lab{n}"
            if key:
                (state / "keys").mkdir(parents=True)
                shutil.copy(key, state / "keys" / "client_ed25519")
            self.labs.append(start_lab(state, hosts=hosts, speed=1))
            key = self.labs[0].manifest["ssh_key"]
        if key:  # labs=0: a bench of the portal alone
            os.environ["SSH_KEY_FILE"] = key
        import django

        django.setup()
        import redis
        from django.conf import settings
        from django.core.management import call_command

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        call_command("migrate", verbosity=0)
        call_command("collectstatic", "--noinput", verbosity=0)

    def import_lab(self, index=0, name=None, poll_interval=10.0):
        from upgrades import services

        lab = self.labs[index]
        password = self.dir / f"lab{index}.password"
        password.write_text(lab.manifest["engine"]["password"])
        return services.import_cluster(name=name or f"lab{index}", engine=lab.manifest["engine"],
                                       password_file=str(password), hosts=lab.manifest["hosts"],
                                       poll_interval=poll_interval)

    def start(self, name, *args):
        log = open(self.dir / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start_worker(self, n=1):
        return [self.start(f"worker{i}", "manage.py", "rqworker", "default") for i in range(n)]

    def start_daphne(self):
        port = free_port()
        self.start("daphne", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "heportal.asgi:application")
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start")

    def close(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for lab in self.labs:
            lab.stop()


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) // 1024 // 1024
    db = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    return f"{os.cpu_count()} × {cpu}, {mem} GiB, Python {platform.python_version()}, {db}"


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def report(title, rows, notes):
    """Print a result table and append it to docs/benchmarks.md."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### {title} — {now}", "", f"Machine: {machine()}", "",
             "| measure | result | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", notes.strip(), "", ""]
    text = "\n".join(lines)
    print(text)
    path = ROOT / "docs" / "benchmarks.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nRun with `make bench` (or `.venv/bin/python bench/<name>.py`). "
                        "Newest results last.\n\n")
    with path.open("a") as f:
        f.write(text)
