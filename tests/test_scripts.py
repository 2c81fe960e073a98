"""The set-up scripts and files on disk: the Redis address honoured, secrets private."""
import os
import stat
import subprocess
import sys

import redis

from tests.conftest import ROOT, free_port


def source_ensure_redis(cwd, url):
    """Source scripts/ensure-redis.sh as make demo does; returns (rc, output, started pid)."""
    script = f'source {ROOT}/scripts/ensure-redis.sh && echo "pid=$REDIS_STARTED_PID url=$REDIS_URL"'
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env={**os.environ, "REDIS_URL": url},
                          capture_output=True, text=True, timeout=30)
    pid = next((line.split()[0][4:] for line in done.stdout.splitlines() if line.startswith("pid=")), "")
    return done.returncode, done.stdout + done.stderr, pid


def test_a_redis_is_started_at_the_address_redis_url_names_and_only_it_is_stopped(tmp_path):
    first, second = free_port(), free_port()
    url = f"redis://127.0.0.1:{first}/0"
    rc, out, pid = source_ensure_redis(tmp_path, url)
    assert rc == 0, out
    assert f"url={url}" in out
    try:
        assert redis.Redis(port=first).ping()
        assert f":{first}" in open(f"/proc/{pid}/cmdline").read()  # the pid is that server's
        # A second demo on another address gets a Redis of its own, not this one.
        rc, out, other = source_ensure_redis(tmp_path, f"redis://127.0.0.1:{second}/0")
        assert rc == 0 and other and other != pid, out
        os.kill(int(other), 15)
        # Something answers at the first address now: nothing is started, nothing to stop.
        rc, out, again = source_ensure_redis(tmp_path, url)
        assert (rc, again) == (0, ""), out
        assert redis.Redis(port=first).ping()
    finally:
        os.kill(int(pid), 15)


def test_a_redis_url_off_this_machine_is_not_replaced_by_a_local_one(tmp_path):
    rc, out, pid = source_ensure_redis(tmp_path, "redis://192.0.2.1:6379/0")
    assert rc != 0 and pid == ""
    assert "not an address on this machine" in out


def test_the_data_folder_database_and_secret_key_are_private(tmp_path):
    data = tmp_path / "data"
    env = {"PATH": os.environ["PATH"], "HEPORTAL_DATA_DIR": str(data), "REDIS_URL": "redis://127.0.0.1:1/0"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("heportal.sqlite3", "secret_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    # Files SQLite adds beside the database take its mode.
    for extra in data.glob("heportal.sqlite3-*"):
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra.name
