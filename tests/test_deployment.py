"""The production deployment as shipped in deploy/ and docs/deployment.md: the systemd
units verified by systemd itself, `check --deploy` under the documented settings, the
sharded HA pollers, and the portal behind a real nginx with TLS (two web processes
sharing the channel layer)."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from heportal import config
from tests.conftest import ROOT, Processes, child_env, free_port, wait_until

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())
# One instance of each template, as docs/deployment.md enables them.
INSTANCES = {"heportal-web@.service": "heportal-web@8001.service",
             "heportal-web-uvicorn@.service": "heportal-web-uvicorn@8001.service",
             "heportal-rqworker@.service": "heportal-rqworker@1.service",
             "heportal-ha-poller@.service": "heportal-ha-poller@0-2.service"}


def test_the_units_pass_systemd_analyze_verify_in_a_scratch_root(tmp_path):
    """Installed as docs/deployment.md says (/etc/systemd/system, the portal in /opt/heportal),
    every unit verifies without a single warning (an unknown key is only a warning there)."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    # The base units (multi-user.target, sysinit.target...) the portal's units hang from.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    python = root / "opt/heportal/.venv/bin/python"  # ExecStart's program must exist in the root
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    names = [INSTANCES.get(unit.name, unit.name) for unit in UNITS]
    assert sorted(names) == ["heportal-ha-poller@0-2.service", "heportal-rqworker-emergency.service",
                             "heportal-rqworker-hooks.service", "heportal-rqworker@1.service", "heportal-web-uvicorn@8001.service",
                             "heportal-web@8001.service", "heportal.target"]
    for name in names:
        done = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "--man=no", "--generators=no", name],
                              cwd=root / "etc/systemd/system", capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout + done.stderr) == (0, ""), name

    # The check has teeth: a misspelt key and a wrong program are reported.
    unit = root / "etc/systemd/system/heportal-rqworker@.service"
    unit.write_text(unit.read_text().replace("ExecStart=/opt/heportal/.venv/bin/python",
                                             "ExecStrat=/opt/heportal/.venv/bin/python\n"
                                             "ExecStart=/opt/heportal/.venv/bin/pyhton"))
    done = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "--man=no", "--generators=no",
                           "heportal-rqworker@1.service"], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'ExecStrat'" in done.stderr and "pyhton is not executable" in done.stderr


def exec_start(unit, instance):
    """The unit's command line with %i/%I filled in as systemd does ("-" unescapes to "/")."""
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    return line.removeprefix("ExecStart=").replace("%I", instance.replace("-", "/")).replace("%i", instance).split()


def test_each_unit_starts_a_command_the_portal_has():
    """Every ExecStart, with its instance, is a command line the portal's own parsers take
    (daphne's, uvicorn's, manage.py's), the ASGI application imports: a renamed command, option or
    module breaks this test."""
    from daphne.cli import CommandLineInterface
    from django.core.management import get_commands, load_command_class

    started = set()
    for unit in UNITS:
        if unit.suffix != ".service":
            continue
        instance = INSTANCES.get(unit.name, "").partition("@")[2].removesuffix(".service")
        argv = exec_start(unit, instance)
        assert argv[0] == "/opt/heportal/.venv/bin/python", unit.name
        if argv[1:3] == ["-m", "daphne"]:
            args = CommandLineInterface().parser.parse_args(argv[3:])
            assert (args.host, args.port, args.application) == ("127.0.0.1", 8001, "heportal.asgi:application")
            __import__("heportal.asgi")
            started.add("daphne")
            continue
        if argv[1:3] == ["-m", "uvicorn"]:
            from uvicorn.main import main as uvicorn_cli

            context = uvicorn_cli.make_context("uvicorn", argv[3:])
            params = context.params
            assert (params["host"], params["port"], params["app"]) == ("127.0.0.1", 8001, "heportal.asgi:application")
            # The loop, HTTP and websocket implementations are installed; the proxy headers are the portal's.
            assert (params["loop"], params["http"], params["ws"]) == ("uvloop", "httptools", "websockets-sansio")
            assert (params["lifespan"], params["proxy_headers"]) == ("off", False)
            __import__("uvloop"), __import__("httptools"), __import__("websockets")
            started.add("uvicorn")
            continue
        assert argv[1] == "manage.py", unit.name
        name = argv[2]
        command = load_command_class(get_commands()[name], name)
        options = vars(command.create_parser("manage.py", name).parse_args(argv[3:]))
        if name == "ha_poller":
            from upgrades.management.commands.ha_poller import parse_shard

            assert parse_shard(options["shard"]) == (0, 2)
        started.add(" ".join(argv[2:]).replace("--shard 0/2", "--shard I/N"))
    assert started == {"daphne", "uvicorn", "rqworker default poll", "rqworker emergency", "rqworker hooks --with-scheduler",
                       "ha_poller --shard I/N"}


def deploy_env(tmp_path, **extra):
    """A clean environment that reads deploy/heportal.env.example, with the data folder here."""
    data = tmp_path / "data"
    return {"PATH": os.environ["PATH"], "HEPORTAL_CONFIG": str(DEPLOY / "heportal.env.example"),
            "HEPORTAL_DATA_DIR": str(data), "STATIC_ROOT": str(data / "static"),
            "SSH_KEY_FILE": str(data / "ssh/id_ed25519"), **extra}


def test_check_deploy_is_clean_under_the_documented_settings(tmp_path):
    # The example file is read by the portal's own parser without complaint.
    assert config.parse((DEPLOY / "heportal.env.example").read_text(), "example")["BEHIND_TLS_PROXY"] == "true"
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=deploy_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
    # Without the proxy setting the same check complains: the setting is what makes it clean.
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=deploy_env(tmp_path, BEHIND_TLS_PROXY="false"), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr


@pytest.mark.django_db(transaction=True)
def test_two_poller_shards_split_the_clusters_with_none_missed(tmp_path):
    """Each shard polls its clusters only (id modulo N); together every cluster."""
    from tests.factories import make_cluster, make_host
    from upgrades.models import Cluster

    closed = free_port()  # nothing listens there: every poll fails at once and says so
    ids = []
    for n in range(5):
        cluster = make_cluster(name=f"C{n}", poll_interval=0.2)
        make_host(cluster, name=f"h{n}.example.com", address="127.0.0.1", ssh_port=closed)
        ids.append(cluster.pk)
    polled = {}
    for index in (0, 1):
        Cluster.objects.update(poll_error="")
        procs = Processes(tmp_path)
        procs.start(f"poller-{index}", [sys.executable, "manage.py", "ha_poller", "--shard", f"{index}/2"])
        try:
            mine = [pk for pk in ids if pk % 2 == index]
            wait_until(lambda: Cluster.objects.filter(pk__in=mine).exclude(poll_error="").count() == len(mine),
                       60, f"shard {index}/2 polled its clusters")
            time.sleep(2)  # ten poll intervals: time enough for a shard that took every cluster
            procs.check_alive()
        finally:
            procs.stop()
        polled[index] = set(Cluster.objects.exclude(poll_error="").values_list("pk", flat=True))
        assert all("no host answered" in error for error in
                   Cluster.objects.exclude(poll_error="").values_list("poll_error", flat=True))
    assert polled[0] & polled[1] == set()
    assert polled[0] | polled[1] == set(ids)


def self_signed(folder):
    """A certificate for 127.0.0.1 and its key, made here; returns (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def replace_once(text, old, new):
    assert text.count(old) == 1, f"deploy/nginx/heportal.conf no longer has {old!r} once"
    return text.replace(old, new)


class TlsProxy:
    """deploy/nginx/heportal.conf as shipped, its ports, certificate and web processes
    replaced, run by Debian's nginx as one unprivileged-friendly process with its own prefix."""

    def __init__(self, folder, web_ports, port):
        self.folder = folder
        self.port, self.http_port = port, free_port()
        self.cert, key = self_signed(folder)
        site = (DEPLOY / "nginx/heportal.conf").read_text()
        site = replace_once(site, "    server 127.0.0.1:8001;\n    server 127.0.0.1:8002;\n",
                            "".join(f"    server 127.0.0.1:{port};\n" for port in web_ports))
        site = replace_once(site, "    listen 80;\n", f"    listen 127.0.0.1:{self.http_port};\n")
        site = replace_once(site, "    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{self.port} ssl http2;\n")
        site = replace_once(site, "    listen [::]:80;\n", "")
        site = replace_once(site, "    listen [::]:443 ssl http2;\n", "")
        site = replace_once(site, "/etc/ssl/certs/heportal.example.com.pem", str(self.cert))
        site = replace_once(site, "/etc/ssl/private/heportal.example.com.key", str(key))
        (folder / "heportal.conf").write_text(site)
        temp = "".join(f"    {kind}_temp_path {folder}/{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(f"""daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
{temp}    include {folder}/heportal.conf;
}}
""")
        from tests.conftest import die_with_parent

        self.proc = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"),
                                      "-e", str(folder / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        wait_until(lambda: self._listening(), 30, "nginx listening")
        self.url = f"https://127.0.0.1:{self.port}"

    def _listening(self):
        import socket

        assert self.proc.poll() is None, (self.folder / "error.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


# The web process under each server its units offer: the command line is the unit's own.
WEB_UNITS = {"daphne": "heportal-web@.service", "uvicorn": "heportal-web-uvicorn@.service"}
# Each server's access log lines: a websocket accepted, and a page answered.
ACCESS = {"daphne": (r"WSCONNECT /ws/runs/{run}/", r'"GET /runs/{run}/" 200'),
          "uvicorn": (r'"WebSocket /ws/runs/{run}/" \[accepted\]', r'"GET /runs/{run}/ HTTP/1\.1" 200')}


def start_web(procs, server, count, env):
    ports = [free_port() for _ in range(count)]
    for n, port in enumerate(ports):
        command = exec_start(DEPLOY / "systemd" / WEB_UNITS[server], str(port))
        procs.start(f"web{n}", [sys.executable, *command[1:]], env=env)
    import socket

    def listening(port):
        procs.check_alive()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    for port in ports:
        wait_until(lambda: listening(port), 60, f"{server} on {port}")
    return ports


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_behind_nginx_with_tls_a_login_a_page_and_live_output_across_two_web_processes(
        rq_worker, lab_cluster, make_user, tmp_path, server):
    """The production settings behind the shipped nginx configuration: a login, a page and a
    websocket through TLS; and two web processes sharing the channel layer: the viewer's
    socket is held by one web process while the other serves the run page, and the run's
    output, published by the worker, reaches the viewer line by line. Once under each server
    a unit offers (daphne; uvicorn with uvloop), started with the unit's own command line."""
    import asyncio

    from tests.conftest import PASSWORD
    from tests.factories import make_run
    from upgrades.services import enqueue_run

    user = make_user("operator")
    host = lab_cluster.hosts.order_by("he_host_id").first()
    count = 200
    run = make_run(user, host, [f"for i in $(seq 1 {count}); do echo line $i; sleep 0.01; done"])
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=child_env(),
                   check=True, timeout=120)
    procs = Processes(tmp_path)
    proxy_port = free_port()
    url = f"https://127.0.0.1:{proxy_port}"
    env = {**child_env(), "BEHIND_TLS_PROXY": "true", "PORTAL_URL": url}
    proxy = None
    try:
        web_ports = start_web(procs, server, 2, env)
        (tmp_path / "nginx").mkdir()
        proxy = TlsProxy(tmp_path / "nginx", web_ports, proxy_port)
        logs = [tmp_path / f"web{n}.log" for n in range(2)]
        asyncio.run(_drive(url, proxy, user.username, PASSWORD, run, count, logs, enqueue_run, ACCESS[server]))
    finally:
        if proxy is not None:
            proxy.stop()
        procs.stop()


async def logged(logs, pattern, more_than=0):
    """The web processes that logged ``pattern``, once more than ``more_than`` such lines are
    logged in all (daphne writes its access line as the answer ends)."""
    import asyncio

    for _ in range(100):
        lines = [n for n, log in enumerate(logs) for _ in re.finditer(pattern, log.read_text(), re.M)]
        if len(lines) > more_than:
            return set(lines)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no web process logged {pattern!r}")


async def _drive(url, proxy, username, password, run, count, logs, enqueue_run, access):
    import asyncio
    import ssl

    import aiohttp

    tls = ssl.create_default_context(cafile=str(proxy.cert))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        # Plain HTTP at the proxy is sent to HTTPS.
        async with http.get(f"http://127.0.0.1:{proxy.http_port}/login/", allow_redirects=False) as answer:
            assert answer.status == 301
            assert answer.headers["Location"] == "https://127.0.0.1/login/"
        async with http.get(f"{url}/login/", ssl=tls) as answer:
            assert answer.status == 200
            assert answer.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await answer.text())[1]
        async with http.post(f"{url}/login/", ssl=tls, allow_redirects=False,
                             data={"username": username, "password": password, "csrfmiddlewaretoken": token},
                             headers={"Origin": url, "Referer": f"{url}/login/"}) as answer:
            assert answer.status == 302, await answer.text()
            cookie = answer.cookies["sessionid"]
            assert cookie["secure"] and cookie["httponly"]
        async with http.get(f"{url}/", ssl=tls) as answer:
            assert answer.status == 200
            assert username in await answer.text()
        async with http.get(f"{url}/static/js/fragments.js", ssl=tls) as answer:  # WhiteNoise, in the web process
            assert answer.status == 200
            assert "keepChecking" in await answer.text()

        # The viewer's socket, through the proxy, before the run starts: every line must come live.
        # It offers compression as browsers do; neither server takes it (a deflate per socket and frame).
        async with http.ws_connect(f"wss://127.0.0.1:{proxy.port}/ws/runs/{run.pk}/", ssl=tls,
                                   origin=url, compress=15) as socket:
            assert socket.compress == 0, "the web process took permessage-deflate"
            first = await socket.receive_json(timeout=30)
            assert first["type"] == "step.status", first
            holder = await logged(logs, access[0].format(run=run.pk))
            assert len(holder) == 1
            # The run page, until the other web process is the one that served it.
            tried = 0
            for _ in range(6):
                async with http.get(f"{url}/runs/{run.pk}/", ssl=tls) as answer:
                    assert answer.status == 200
                if await logged(logs, access[1].format(run=run.pk), more_than=tried) - holder:
                    break
                tried += 1
            else:
                raise AssertionError("the proxy never sent the run page to the other web process")

            await asyncio.to_thread(enqueue_run, run)
            texts = []
            while True:
                event = await socket.receive_json(timeout=120)
                if event["type"] == "output.lines":
                    texts += [text for _seq, _stream, text in event["lines"]]
                elif event["type"] == "run.status" and event["status"] in ("succeeded", "failed"):
                    break
            assert event["status"] == "succeeded"
            assert texts == [f"line {i}" for i in range(1, count + 1)]
