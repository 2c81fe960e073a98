"""Shared fixtures: real Redis, real worker and daphne processes, personas.

Each test process (xdist worker) starts its own Redis server, so runs queued
by one test process are never taken by another's worker.
"""
import atexit
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
LAB_SPEED = 60  # one simulated minute per real second


def die_with_parent():
    """In the child: get SIGTERM when the test process dies, even by SIGKILL,
    so an interrupted run leaves no workers or servers behind (Linux only)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """A Redis server of this test process's own, on a unix socket: no shared
    state with other test processes or runs, no port to race for. A missing
    redis-server is a failure, not a skip. Tests of fault tolerance stop and
    start it for real (``restart``): like a production Redis without
    persistence, it comes back empty."""

    def __init__(self, folder):
        self.folder = folder
        self.sock = folder / "redis.sock"
        self.url = f"unix://{self.sock}?db=0"
        self.proc = None
        atexit.register(self.stop)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.sock), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit {self.proc.returncode})")
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.sock.unlink(missing_ok=True)

    def restart(self, down_seconds=0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()


REDIS = None
MAIL_DIR = None


def _configure_worker_services():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    # One directory per test process, so two runs on one machine never share a file.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    folder = Path(tempfile.mkdtemp(prefix=f"heportal-test-{run[:8]}-{worker}-"))
    global REDIS
    REDIS = RedisServer(folder).start()
    url = REDIS.url
    prefix = f"heportal-test-{worker}"
    (folder / "static").mkdir()  # children's collectstatic target, one per process
    # Worker and daphne processes write each mail they send as a file here (MAIL_DIR), for
    # tests to read; this process's own mail goes to pytest-django's outbox (mailoutbox).
    global MAIL_DIR
    MAIL_DIR = folder / "mail"
    os.environ.update(REDIS_URL=url, CHANNELS_PREFIX=prefix, FAST_PASSWORD_HASHER="1",
                      STATIC_ROOT=str(folder / "static"),
                      EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(MAIL_DIR))
    settings.STATIC_ROOT = folder / "static"
    settings.REDIS_URL = url
    layer = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    layer.update(hosts=[{**layer["hosts"][0], "address": url}], prefix=prefix)
    for queue in settings.RQ_QUEUES.values():
        queue["URL"] = url
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Runs start without a four-eyes approval unless a test sets a policy
    # (tests/test_approvals.py turns the default on).
    os.environ["APPROVAL_REQUIRED_BY_DEFAULT"] = "false"
    settings.APPROVAL_REQUIRED_BY_DEFAULT = False
    # Pending updates read every 15 s (not 30 min); engine backups kept in this process's folder.
    os.environ.update(PACKAGES_POLL_SECONDS="15", ENGINE_BACKUP_DIR=str(folder / "backups"))
    settings.PACKAGES_POLL_SECONDS, settings.ENGINE_BACKUP_DIR = 15.0, folder / "backups"
    # The audit chain's anchor belongs to its database: the test databases' heads go here, not
    # into data/audit.anchor beside the demo's database (a test that verifies uses its own file).
    os.environ["HEPORTAL_AUDIT_ANCHOR_FILE"] = settings.AUDIT_ANCHOR_FILE = str(folder / "audit.anchor")
    # Pages render without a collectstatic manifest; daphne children use the real one.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A file, not :memory:, so worker and daphne processes share it.
        settings.DATABASES["default"]["TEST"]["NAME"] = str(folder / "test.sqlite3")


_configure_worker_services()


@pytest.fixture(scope="session", autouse=True)
def redis_ready():
    """Our own Redis answers (started above)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {settings.REDIS_URL} is not reachable: {exc}")
    return client


def wait_until(condition, timeout, what):
    """The condition's first true value, polled every 0.2 s; fails saying what was awaited."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)
    return value


def free_port():
    """A port nothing listens on, below the kernel's ephemeral range: a port from that range
    can go to any outgoing connection (SSH, Redis, PostgreSQL) before the server the test
    starts binds it ("address already in use", met in CI)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    """The test database as a DATABASE_URL for child processes."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env():
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(DATABASE_URL=database_url(), DJANGO_SETTINGS_MODULE="heportal.settings",
               SECRET_KEY=settings.SECRET_KEY, DEBUG="false", PYTHONUNBUFFERED="1")
    return env


class Processes:
    """Child processes that must all stop with the fixture."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = []

    def start(self, name, args, env=None):
        """``env``: the child's environment (default ``child_env()``; a test with a
        database of its own passes ``PrivatePostgres.env()``)."""
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env or child_env(), stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)
        self.procs.append((name, proc))
        return proc

    def check_alive(self):
        for name, proc in self.procs:
            if proc.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text()[-3000:]
                pytest.fail(f"{name} exited with {proc.returncode}:\n{log}")

    def stop(self):
        for _, proc in self.procs:
            proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def rq_worker(django_db_setup, django_db_blocker, lab, tmp_path_factory):
    """Real `manage.py rqworker` processes for the session: one for the procedures, one
    for the emergency lane (maintenance modes, the diagnostic), as in production."""
    procs = Processes(tmp_path_factory.mktemp("worker"))
    procs.start("rqworker", [sys.executable, "manage.py", "rqworker", "default"])
    procs.start("rqworker-emergency", [sys.executable, "manage.py", "rqworker", "emergency"])
    yield procs
    procs.stop()


class PortalUrl(str):
    """The live portal's base URL; ``log`` is daphne's log file."""

    log: Path


@pytest.fixture(scope="session")
def live_portal(rq_worker, tmp_path_factory):
    """daphne serving the real ASGI app on a free port; yields its base URL."""
    procs = Processes(tmp_path_factory.mktemp("daphne"))
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=ROOT, env=child_env(), check=True)
    port = free_port()
    procs.start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                           "heportal.asgi:application"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        pytest.fail("daphne did not start listening in 30 s")
    url = PortalUrl(f"http://127.0.0.1:{port}")
    url.log = procs.log_dir / "daphne.log"
    yield url
    procs.stop()


@pytest.fixture
def redis_server():
    """This test process's Redis, to stop and start; running again after the test."""
    yield REDIS
    if REDIS.proc is None or REDIS.proc.poll() is not None:
        REDIS.start()


@pytest.fixture
def ha_poller(django_db_setup, lab, tmp_path):
    """A real `manage.py ha_poller` process; its loop also runs the run sweeper."""
    procs = Processes(tmp_path)
    procs.start("ha_poller", [sys.executable, "manage.py", "ha_poller"])
    yield procs
    procs.stop()


@pytest.fixture
def make_user(django_user_model):
    """make_user("operator") → a user in that role group, password PASSWORD."""
    from django.contrib.auth.models import Group

    def make(role, username=None):
        user = django_user_model.objects.create_user(username or role, password=PASSWORD)
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    return make


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A 3-host lab per test process, at high speed; the portal reaches it by SSH."""
    from lab.launcher import start_lab

    with start_lab(tmp_path_factory.mktemp("lab"), hosts=3, speed=LAB_SPEED) as running:
        os.environ["SSH_KEY_FILE"] = running.manifest["ssh_key"]
        settings.SSH_KEY_FILE = running.manifest["ssh_key"]
        yield running


@pytest.fixture
def lab_cluster(lab):
    """The lab registered as cluster "Lab" (function scope: transactional tests flush it)."""
    from upgrades import services

    manifest = lab.manifest
    password_file = Path(lab.state_dir) / "engine-password"
    password_file.write_text(manifest["engine"]["password"])
    return services.import_cluster(name="Lab", engine=manifest["engine"], password_file=str(password_file),
                                   engine_vm=manifest.get("engine_vm"),
                                   hosts=manifest["hosts"], poll_interval=10 / lab.speed)


@pytest.fixture
def fresh_lab(lab, tmp_path, request):
    """A lab of its own, for tests that inject faults; it accepts the portal's key.
    ``@pytest.mark.lab(engine_version="4.5", os="el9")`` picks another release."""
    import shutil

    from lab.launcher import start_lab

    keys = tmp_path / "lab" / "keys"
    keys.mkdir(parents=True)
    shutil.copy(lab.manifest["ssh_key"], keys / "client_ed25519")
    marker = request.node.get_closest_marker("lab")
    options = {"speed": LAB_SPEED, **(marker.kwargs if marker else {})}  # the marker may set speed too
    with start_lab(tmp_path / "lab", hosts=3, **options) as running:
        yield running


@pytest.fixture
def fresh_lab_cluster(fresh_lab, tmp_path):
    """A fresh lab registered as cluster "Fresh"; the lab is ``cluster.lab``."""
    from upgrades import services

    manifest = fresh_lab.manifest
    password_file = tmp_path / "engine-password"
    password_file.write_text(manifest["engine"]["password"])
    cluster = services.import_cluster(name="Fresh", engine=manifest["engine"], engine_vm=manifest.get("engine_vm"),
                                      password_file=str(password_file), hosts=manifest["hosts"],
                                      poll_interval=10 / fresh_lab.speed)
    cluster.lab = fresh_lab
    return cluster


def leave_global_maintenance(lab, client):
    """Undo a test's global maintenance on the shared lab and wait until the
    agents have settled again, so the next test sees the usual cluster."""
    assert client.exec_command("hosted-engine --set-maintenance --mode=none")[1].channel.recv_exit_status() == 0
    lab.wait_for(lambda state: {name: h["agent_state"] for name, h in state["hosts"].items()} == {
        "he1.lab.local": "EngineUp", "he2.lab.local": "EngineDown", "he3.lab.local": "EngineDown"},
        sim_seconds=300)


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test its own channel layer object: a test's event loop ends with
    asyncio.run(), and channels_redis keeps a lock bound to the loop that made it
    (one left held by a cancelled receive then breaks the next test's consumer)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
