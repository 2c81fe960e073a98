"""One configuration for every process: the environment, then the HEPORTAL_CONFIG file.

Real processes with a clean environment (only PATH and what the test names), as
a second shell or a systemd unit starts them; and the real `make demo`.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.core.exceptions import ImproperlyConfigured

from heportal import config
from tests.conftest import ROOT, free_port, wait_until

PRINT = "from django.conf import settings as s; print(s.REDIS_URL, s.SSH_KEY_FILE, s.DATA_DIR, s.ENGINE_POLL_EVERY)"


def manage(args, env, timeout=60):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=timeout)


def write(path, text):
    path.write_text(text)
    return path


def test_manage_py_in_a_clean_shell_reads_the_file_and_the_environment_wins(tmp_path):
    data = tmp_path / "data"
    conf = write(tmp_path / "heportal.env", f"""# the portal's settings
HEPORTAL_DATA_DIR={data}
REDIS_URL=redis://127.0.0.1:6390/3
; quoted values lose their quotes, as systemd's EnvironmentFile= reads them
SSH_KEY_FILE="/srv/keys/portal key"

ENGINE_POLL_EVERY='9'
""")
    done = manage(["shell", "-v0", "-c", PRINT], {"HEPORTAL_CONFIG": str(conf)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == f"redis://127.0.0.1:6390/3 /srv/keys/portal key {data} 9"
    assert data.is_dir()  # the data folder the file names, not the checkout's

    done = manage(["shell", "-v0", "-c", PRINT], {"HEPORTAL_CONFIG": str(conf), "REDIS_URL": "redis://10.0.0.1:6379/0",
                                           "ENGINE_POLL_EVERY": "4"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["redis://10.0.0.1:6379/0", "/srv/keys/portal", "key", str(data), "4"]


@pytest.mark.parametrize("line, why", [
    ("export REDIS_URL=redis://x", "expected KEY=VALUE"),
    ("REDIS_URL", "expected KEY=VALUE"),
    ("2FA=on", "expected KEY=VALUE"),
    ('SSH_KEY_FILE="/srv/key', "SSH_KEY_FILE: unmatched quote"),
    ("REDIS_URL=redis://127.0.0.1:1/0", "REDIS_URL is set twice"),
])
def test_a_bad_line_is_refused_naming_the_file_and_line_and_nothing_starts(tmp_path, line, why):
    data = tmp_path / "data"
    conf = write(tmp_path / "heportal.env", f"HEPORTAL_DATA_DIR={data}\nREDIS_URL=redis://127.0.0.1:6390/0\n\n{line}\n")
    done = manage(["migrate", "-v0"], {"HEPORTAL_CONFIG": str(conf)})
    assert done.returncode != 0
    assert f"ImproperlyConfigured: {conf}, line 4: {why}" in done.stderr
    assert not data.exists()  # refused before the settings made anything


def test_a_named_file_that_does_not_exist_is_refused(tmp_path):
    done = manage(["check"], {"HEPORTAL_CONFIG": str(tmp_path / "missing.env"),
                              "HEPORTAL_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode != 0
    assert f"HEPORTAL_CONFIG={tmp_path / 'missing.env'}: no such file" in done.stderr


def test_the_default_file_is_data_heportal_env_in_the_checkout():
    assert config.config_path({}) == ROOT / "data" / "heportal.env"
    assert str(config.config_path({"HEPORTAL_CONFIG": "/etc/heportal/heportal.env"})) == "/etc/heportal/heportal.env"
    with pytest.raises(ImproperlyConfigured, match=r"^f, line 2: A is set twice$"):
        config.parse("A=1\nA=2\n", "f")
    assert config.parse("A=\n  # note\nB=x=y \n", "f") == {"A": "", "B": "x=y"}


def test_daphne_started_with_only_the_file_uses_its_settings(tmp_path):
    """The web process reads the file too (heportal.asgi imports the same settings): a body
    limit set only there refuses a request the default 4 MB limit would take."""
    conf = write(tmp_path / "heportal.env", f"HEPORTAL_DATA_DIR={tmp_path / 'data'}\nMAX_REQUEST_BODY_BYTES=1000\n")
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HEPORTAL_CONFIG": str(conf)}
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "heportal.asgi:application"], cwd=ROOT, env=env,
                            stdout=open(tmp_path / "daphne.log", "w"), stderr=subprocess.STDOUT)
    try:
        def listening():
            assert proc.poll() is None, "daphne exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_until(listening, 30, "daphne listening")

        def post(size):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/login/", data=b"x" * size, method="POST")
            try:
                return urllib.request.urlopen(request, timeout=10).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(500) != 413  # under the limit: read (and refused further on)
        assert post(5000) == 413
    finally:
        proc.terminate()
        proc.wait(10)


def children(pid):
    """{pid: command line} of a process's children."""
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
    found = {}
    for child in map(int, out.split()):
        try:
            found[child] = open(f"/proc/{child}/cmdline").read().replace("\0", " ").strip()
        except FileNotFoundError:
            pass
    return found


def terminal_signals():
    """Ctrl-C and Ctrl-\\ as a shell at a terminal has them. A suite started in the background
    (`make test &`) has them ignored, and bash can trap no signal ignored when it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.mark.slow
def test_make_demo_writes_the_file_a_second_shell_needs_and_a_process_that_dies_is_started_again(tmp_path):
    data, conf, port, redis_port = tmp_path / "data", tmp_path / "heportal.env", free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYENV_ROOT", "LANG")},
           "HEPORTAL_DATA_DIR": str(data), "HEPORTAL_CONFIG": str(conf), "PORT": str(port),
           "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "LAB_SPEED": "60"}
    out, after = open(tmp_path / "demo.out", "w+"), {}
    demo = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=terminal_signals)
    try:
        wait_until(lambda: "HE Portal is at" in (tmp_path / "demo.out").read_text() or demo.poll() is not None,
                   240, "the demo up")
        text = (tmp_path / "demo.out").read_text()
        assert demo.poll() is None, text
        lines = conf.read_text().splitlines()
        assert lines[0].startswith("# Written by make demo")
        assert set(lines[1:]) == {
            f"HEPORTAL_DATA_DIR={data}", f"REDIS_URL=redis://127.0.0.1:{redis_port}/0",
            f"SSH_KEY_FILE={data}/lab/keys/client_ed25519", f"PORTAL_URL=http://localhost:{port}",
            "EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend", f"EMAIL_FILE_PATH={data}/mail"}
        assert oct(conf.stat().st_mode & 0o777) == "0o600"

        # A second shell: no exports but where the file is (make demo's own default needs none).
        plan = manage(["runbook", "plan", "diagnostic", "--cluster", "Lab", "--host", "he1.lab.local"],
                      {"HEPORTAL_CONFIG": str(conf)})
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "$ hosted-engine --vm-status" in plan.stdout and "Nothing blocks this plan." in plan.stdout

        before = children(demo.pid)
        assert sorted(re.sub(r" -p \d+", "", cmd).split("manage.py ")[-1] for cmd in before.values()) == sorted([
            ".venv/bin/python -m daphne -b 127.0.0.1 heportal.asgi:application",
            f".venv/bin/python -m lab up --hosts 3 --speed 60 --state-dir {data}/lab --outdated",
            "ha_poller", "rqworker default poll", "rqworker default poll", "rqworker emergency",
            "rqworker hooks --with-scheduler"])
        worker = next(pid for pid, cmd in before.items() if "rqworker emergency" in cmd)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: "worker-emergency exited (status 137); starting it again" in
                   (tmp_path / "demo.out").read_text(), 30, "the demo says which process died")
        def restarted():
            now = children(demo.pid)
            return now if any("rqworker emergency" in cmd for pid, cmd in now.items() if pid not in before) else None

        after = wait_until(restarted, 30, "a new emergency worker")
        # Ctrl-C once the new worker listens, so the demo is back in its wait: sent the moment
        # the worker started, it was once not trapped (the demo ran on, restarting what stopped).
        wait_until(lambda: (data / "logs" / "worker-emergency.log").read_text().count("Listening on emergency") >= 2,
                   60, "the new emergency worker listening")
        assert demo.poll() is None
        assert set(before) - set(after) == {worker}  # the others ran on, untouched
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C at its terminal: the demo stops what it started
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            left = subprocess.run(["ps", "-s", str(demo.pid), "-o", "pid,stat,etime,args"], capture_output=True,
                                  text=True).stdout
            os.killpg(demo.pid, signal.SIGKILL)
            pytest.fail(f"the demo had not stopped 60 s after Ctrl-C; still running:\n{left}\n"
                        f"its output:\n{(tmp_path / 'demo.out').read_text()}\n" +
                        "".join(f"--- {log.name} (end)\n" + "".join(log.read_text().splitlines(True)[-15:])
                                for log in sorted((data / "logs").glob("*.log"))))
    assert "demo: stopping" in (tmp_path / "demo.out").read_text()
    for pid in after:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
                   open(f"/proc/{pid}/stat").read().split()[2] == "Z", 20, f"process {pid} stopped")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", redis_port), timeout=1)
