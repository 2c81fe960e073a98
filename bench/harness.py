"""What every benchmark needs: a database, Redis, a lab, the portal's processes.

Benchmarks run on demand (`make bench`), never in the test suite. Each one
starts from an empty SQLite file (or DATABASE_URL's database) and a fresh lab
at speed 1 (lab timestamps are wall-clock times) unless the bench asks faster.

Every bench has two sizes: the full one (`make bench`) and a tiny one
(`--smoke` or BENCH_SIZE=smoke; `make bench-smoke`, run by CI) that only checks
the bench still works and writes nothing to docs/benchmarks.md. Each phase
runs under a deadline (``phase``): a bench that cannot finish fails with the
phase's name instead of hanging.
"""
import contextlib
import os
import signal
import threading
import platform
import re
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


SMOKE = "--smoke" in sys.argv[1:] or os.environ.get("BENCH_SIZE") == "smoke"
if "--smoke" in sys.argv[1:]:
    sys.argv.remove("--smoke")


def size(full, smoke):
    """The full size, or the tiny one under --smoke."""
    return smoke if SMOKE else full


class BenchFailure(Exception):
    """The bench cannot measure: a phase ran out of time, a websocket was refused..."""


_BENCHES = []  # the Bench objects alive, for the last-resort exit


def _hard_exit(message):
    """The phase's exception did not get through (a call stuck in C code): stop the
    processes the bench started, say why, and exit."""
    print(f"bench FAILED: {message} (forced exit)", file=sys.stderr, flush=True)
    for bench in _BENCHES:
        for proc in bench.procs:
            proc.kill()
        for lab in bench.labs:
            lab.process.kill()
        if bench.redis is not None:
            bench.redis.kill()
    os._exit(3)


@contextlib.contextmanager
def phase(name, seconds):
    """Run the block within ``seconds`` or fail naming the phase.

    SIGALRM raises BenchFailure in the main thread (it interrupts sleeps, socket
    waits and the event loop's select); if that exception cannot get through, a
    watchdog thread ends the process 30 s later. Phases may nest: the inner
    deadline is the sooner of the two."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    message = f"phase '{name}' did not finish within {seconds:.0f} s"
    outer = signal.getsignal(signal.SIGALRM)
    outer_left = signal.alarm(0)

    def expired(signum, frame):
        raise BenchFailure(message)

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(min(seconds, outer_left or seconds) + 0.999)))
    watchdog = threading.Timer(seconds + 30, _hard_exit, args=(message,))
    watchdog.daemon = True
    watchdog.start()
    started = time.monotonic()
    try:
        yield
    finally:
        signal.alarm(0)
        watchdog.cancel()
        signal.signal(signal.SIGALRM, outer)
        if outer_left:
            signal.alarm(max(1, int(outer_left - (time.monotonic() - started) + 0.999)))
        print(f"bench: phase '{name}' {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


def reset_database():
    """DATABASE_URL's PostgreSQL database, emptied of what an earlier bench left (its rows made a
    second run fail); the default SQLite file is new at each run. Not `flush`: it also empties
    the rows the migrations create (the role groups)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def start_redis(directory):
    """A redis-server of the bench's own on a unix socket in ``directory``: benches running at
    once on one shared Redis database took each other's jobs."""
    sock = directory / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=open(directory / "redis.log", "wb"), stderr=subprocess.STDOUT)
    with phase("start redis-server", 10):
        while not sock.exists():
            if proc.poll() is not None:
                raise BenchFailure(f"redis-server exited with status {proc.returncode}; see {directory / 'redis.log'}")
            time.sleep(0.02)
    return proc


def run(main):
    """The bench's entry point: a BenchFailure or any error is a message and exit status 1."""
    try:
        main()
    except BenchFailure as error:
        print(f"bench FAILED: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        for bench in _BENCHES:
            bench.close()


RESETS = []  # websocket connections reset by the web process and tried again (url each)


async def ws_connect(session, url, headers, *, attempts=3, **kwargs):
    """aiohttp's ws_connect, a refusal reported as a failure. A consumer that closes
    before accepting (4401 not logged in, 4403 no role on the cluster, 4404 no such
    object) reaches the client as HTTP 403 at the handshake. A connection reset
    (a web process too busy to accept in time) is tried again, and counted. The client
    offers permessage-deflate, as browsers do: a web process that accepts it pays for it."""
    import asyncio

    import aiohttp

    kwargs.setdefault("compress", 15)
    for attempt in range(attempts):
        try:
            return await session.ws_connect(url, headers=headers, **kwargs)
        except aiohttp.WSServerHandshakeError as error:
            raise BenchFailure(f"websocket {url} refused: HTTP {error.status} (the consumer closed it before "
                               "accepting: not logged in, no role on the cluster, or no such object)") from None
        except (aiohttp.ClientError, OSError) as error:
            if attempt == attempts - 1:
                raise BenchFailure(f"websocket {url} could not connect ({attempts} attempts): {error!r}") from None
            RESETS.append(url)
            await asyncio.sleep(0.5 * (attempt + 1))


def closed_early(ws, url):
    """The failure for a websocket the server closed before the bench was done with it."""
    return BenchFailure(f"websocket {url} closed by the server with code {ws.close_code} before the end "
                        "(4401 not logged in, 4403 no role on the cluster, 4404 no such object)")


async def follow_run(base, path, cookie, ready, gate, on_lines):
    """One browser's websocket on a run page: ``on_lines(received_at, lines)`` for each
    batch of output; returns the run's end status. A refusal fails ``ready``, so the
    bench does not wait for a viewer that will never be ready. ``gate`` bounds the
    connections opened at once (daphne's listen backlog, 50, resets a crowd of them)."""
    import json

    import aiohttp

    headers = {"Cookie": cookie, "Origin": f"http://{base}"}
    url = f"ws://{base}{path}"
    try:
        async with aiohttp.ClientSession() as session:
            async with gate:
                ws = await ws_connect(session, url, headers, max_msg_size=0)
            async with ws:
                ready.set_result(None)
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    received_at = time.time()
                    event = json.loads(msg.data)
                    if event["type"] == "output.lines":
                        on_lines(received_at, event["lines"])
                    elif event["type"] == "run.status" and event["status"] in ("succeeded", "failed"):
                        return event["status"]
                raise closed_early(ws, url)
    except BaseException as error:
        if not ready.done():
            ready.set_exception(error if isinstance(error, Exception) else BenchFailure(repr(error)))
        raise


WEB_UNITS = {"daphne": "heportal-web@.service", "uvicorn": "heportal-web-uvicorn@.service"}


def web_command(server, port):
    """The web process's command line from its systemd unit (one place for its options),
    on ``port``, run by this Python."""
    if server not in WEB_UNITS:
        raise BenchFailure(f"unknown web server {server!r}: one of {', '.join(WEB_UNITS)}")
    unit = (ROOT / "deploy/systemd" / WEB_UNITS[server]).read_text()
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return [sys.executable, *line.removeprefix("ExecStart=").replace("%i", str(port)).split()[1:]]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bench:
    """Sets up the environment, then Django, then starts processes on request."""

    def __init__(self, name, *, labs=1, hosts=3, speed=1):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.procs = []
        self.workers = 0  # started so far (their logs are worker0.log, worker1.log...)
        self.web = {}  # address -> web process
        self.labs = []
        self.redis = None
        _BENCHES.append(self)
        # A Redis of the bench's own: on a shared one, two benches at once took each
        # other's jobs from the same queue (and flushed each other's data).
        self.redis = self.start_redis()
        os.environ["REDIS_URL"] = f"unix://{self.dir / 'redis.sock'}?db=0"
        os.environ["CHANNELS_PREFIX"] = f"bench-{name}"
        os.environ["HEPORTAL_DATA_DIR"] = str(self.dir)
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{self.dir / 'bench.sqlite3'}")
        os.environ["DJANGO_SETTINGS_MODULE"] = "heportal.settings"
        os.environ["LOG_LEVEL"] = "WARNING"
        from lab.launcher import start_lab

        key = None
        for n in range(labs):
            state = self.dir / f"lab{n}"
            if key:
                (state / "keys").mkdir(parents=True)
                shutil.copy(key, state / "keys" / "client_ed25519")
            with phase(f"start lab {n}", 120):
                self.labs.append(start_lab(state, hosts=hosts, speed=speed))
            key = self.labs[0].manifest["ssh_key"]
        if key:  # labs=0: a bench of the portal alone
            os.environ["SSH_KEY_FILE"] = key
        import django

        django.setup()
        import redis
        from django.conf import settings
        from django.core.management import call_command

        with phase("flush Redis, migrate the database", 300):
            redis.Redis.from_url(settings.REDIS_URL).flushdb()
            reset_database()
            call_command("migrate", verbosity=0)
            call_command("collectstatic", "--noinput", verbosity=0)

    def start_redis(self):
        return start_redis(self.dir)

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
        """Start ``n`` workers and wait until they all listen (registered in Redis): a
        worker's start-up (imports, Django's checks) is about a second of CPU, and eight
        starting on two cores would still be starting when the runs are queued."""
        import django_rq
        from rq import Worker

        queue = django_rq.get_queue("default")
        before = Worker.count(queue.connection, queue=queue)
        first, self.workers = self.workers, self.workers + n
        procs = [self.start(f"worker{i}", "manage.py", "rqworker", "default") for i in range(first, first + n)]
        with phase(f"{n} worker(s) listen", 60 + 10 * n):
            while Worker.count(queue.connection, queue=queue) < before + n:
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    raise BenchFailure(f"a worker exited with status {dead[0].returncode}; see {self.dir}")
                time.sleep(0.2)
        return procs

    def start_daphne(self, name="daphne"):
        address = self.start_web("daphne", name)
        self.wait_web()
        return address

    def start_web(self, server, name):
        """Start a web process as deploy/systemd runs it (``server``: daphne or uvicorn) on a
        free port of 127.0.0.1; its address "127.0.0.1:PORT". Several start at once: wait_web()
        waits until they all listen."""
        port = free_port()
        command = web_command(server, port)[1:]
        if os.environ.get("BENCH_PROFILE"):  # the web process under cProfile, its profile written as it stops
            command = ["-m", "cProfile", "-o", str(self.dir / f"{name}.prof"), *command]
        address = f"127.0.0.1:{port}"
        self.web[address] = self.start(name, *command)
        self.web[address].name = name
        return address

    def wait_web(self):
        with phase("web processes listen", 60):
            for address, proc in self.web.items():
                while True:
                    if proc.poll() is not None:
                        raise BenchFailure(f"{proc.name} exited with status {proc.returncode}; "
                                           f"see {self.dir / proc.name}.log")
                    try:
                        host, port = address.split(":")
                        socket.create_connection((host, int(port)), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.1)

    def start_proxy(self, bases, name="nginx"):
        """Debian's nginx on a free port of 127.0.0.1 in front of ``bases``, with the proxy
        settings of deploy/nginx/heportal.conf (its websocket map and ``location /``), in
        plain HTTP: the TLS hop would be measured in the bench's own clients."""
        site = (ROOT / "deploy/nginx/heportal.conf").read_text()
        upgrade = re.search(r"^map \$http_upgrade .*?^}\n", site, re.M | re.S)
        location = re.search(r"^    location / {\n.*?^    }\n", site, re.M | re.S)
        if not (upgrade and location and "proxy_pass http://heportal;" in location.group()):
            raise BenchFailure("deploy/nginx/heportal.conf has no websocket map or 'location /' to proxy with")
        folder = self.dir / name
        folder.mkdir()
        port = free_port()
        servers = "".join(f"    server {base};\n" for base in bases)
        temp = "".join(f"    {kind}_temp_path {folder}/{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(f"""daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}upstream heportal {{
{servers}}}
{upgrade.group()}
server {{
    listen 127.0.0.1:{port};
{location.group()}}}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        log = open(self.dir / f"{name}.log", "wb")
        proc = subprocess.Popen([nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e",
                                 str(folder / "error.log")], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        for _ in range(100):
            if proc.poll() is not None:
                raise BenchFailure(f"nginx exited with status {proc.returncode}; see {folder / 'error.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)
        raise BenchFailure(f"nginx did not listen within 10 s; see {folder / 'error.log'}")

    def close(self):
        signal.alarm(0)  # closing is not a phase: a failed phase still cleans up
        if self in _BENCHES:
            _BENCHES.remove(self)
        # A profiled web process is stopped with SIGINT and given longer: uvicorn raises a
        # SIGTERM again once it has shut down (its default action ends the process before
        # cProfile writes), and waits up to its unit's 10 s for open websockets first.
        profiling = bool(os.environ.get("BENCH_PROFILE"))
        for proc in self.procs:
            if profiling and proc in self.web.values():
                proc.send_signal(signal.SIGINT)
            else:
                proc.terminate()
        patience = 30 if profiling else 10
        for proc in self.procs:
            try:
                proc.wait(patience)
            except subprocess.TimeoutExpired:
                proc.kill()
        for lab in self.labs:
            lab.stop()
        if self.redis is not None:  # last: the processes above used it
            self.redis.terminate()
            self.redis.wait(10)


def cpu_seconds(pids):
    """User and system CPU time the processes used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) // 1024 // 1024
    db = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
    return f"{os.cpu_count()} × {cpu}, {mem} GiB, Python {platform.python_version()}, {db}; load average {load}"


def rss_mib(pid):
    """Resident memory of one process in MiB; nan once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def tree_rss(pid):
    """{pid: RSS in MiB} of a process and all its descendants (an RQ worker and its
    work horse, daphne...), read from /proc; the processes gone meanwhile are left out."""
    found, todo = {}, [pid]
    while todo:
        current = todo.pop()
        rss = rss_mib(current)
        if rss == rss:  # not nan: still alive
            found[current] = rss
        try:
            todo += [int(p) for p in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            pass
    return found


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def report(title, rows, notes, columns=("measure", "result", "target")):
    """Print a result table and append it to docs/benchmarks.md (not at the smoke size)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### {title} — {now}", "", f"Machine: {machine()}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", notes.strip(), "", ""]
    text = "\n".join(lines)
    print(text)
    if SMOKE:
        return
    path = ROOT / "docs" / "benchmarks.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nRun with `make bench` (or `.venv/bin/python bench/<name>.py`). "
                        "Newest results last.\n\n")
    with path.open("a") as f:
        f.write(text)
