"""Real database faults for tests: a PostgreSQL server of the test's own, stopped and
started for real, and SQLite locked by another process.

The suite's own database (SQLite file or the CI's PostgreSQL) is shared by the
test process's workers and daphne; stopping it would break every other test.
A test of a database fault therefore runs its portal processes on a database
it owns: ``PrivatePostgres`` is Debian's PostgreSQL server (initdb, pg_ctl) on
loopback and a port of its own, in a temporary folder, run as the ``postgres``
user when the test runs as root (PostgreSQL refuses root). A missing server
binary is a failure, not a skip (``scripts/bootstrap.sh`` installs it).
"""
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
from django.db import connections

from .conftest import ROOT, child_env, die_with_parent, free_port


def _pg_bin():
    base = Path("/usr/lib/postgresql")
    versions = sorted((p for p in base.glob("*/bin/pg_ctl")), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL's server is not installed (Debian package postgresql; "
                           "scripts/bootstrap.sh installs it)")
    return versions[-1].parent


class PrivatePostgres:
    """A throw-away PostgreSQL server: ``start``, ``stop`` (``pg_ctl -m fast``),
    ``restart(down_seconds)``; ``url`` for DATABASE_URL, ``env()`` for child processes,
    ``migrate()`` to create the portal's tables, ``alias()`` for the ORM in the test
    (inside ``django_db_blocker.unblock()``: pytest-django guards every alias)."""

    def __init__(self, folder, name="heportal"):
        self.folder = Path(folder)
        self.data = self.folder / "pgdata"
        self.run_dir = self.folder / "pgrun"
        self.port = free_port()
        self.name = name
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{name}"
        self.bin = _pg_bin()
        self._as_user = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args, check=True):
        return subprocess.run([*self._as_user, *args], check=check, capture_output=True, text=True,
                              preexec_fn=die_with_parent)

    def init(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in (self.data, self.run_dir):
            path.mkdir(exist_ok=True)
        if self._as_user:
            user = pwd.getpwnam("postgres")
            for path in (self.folder, self.data, self.run_dir):
                shutil.chown(path, user.pw_uid, user.pw_gid)
            # runuser's postgres must reach the folder through the test's temporary parents.
            parent = self.folder.parent
            while parent != parent.parent and str(parent).startswith(("/tmp", tempdir_root())):
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
                parent = parent.parent
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.run_dir}'\nfsync = off\n"
                       "synchronous_commit = off\nfull_page_writes = off\n")
        return self

    def start(self):
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-w", "-t", "30", "start")
        return self

    def stop(self, mode="fast"):
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_seconds=0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def create_database(self):
        self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-d", "postgres", "-qc", f'create database "{self.name}"')
        return self

    def env(self, **extra):
        """child_env() with this server as the database."""
        return {**child_env(), "DATABASE_URL": self.url, **extra}

    def migrate(self):
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                       env=self.env(), check=True)
        return self

    def alias(self, name="faulty"):
        """A Django database alias for this server in the test process (``using=``)."""
        config = dj_database_url.parse(self.url)
        filled = connections.configure_settings({"default": connections.settings["default"], name: config})
        connections.settings[name] = filled[name]
        return name

    def drop_alias(self, name="faulty"):
        if name in connections.settings:
            connections[name].close()
            del connections[name]  # else a later alias of that name reuses this connection
            del connections.settings[name]

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def tempdir_root():
    import tempfile

    return tempfile.gettempdir()


class SqliteLock:
    """Another process holding ``BEGIN EXCLUSIVE`` on a SQLite file for ``seconds``:
    every other writer and reader gets "database is locked" once its timeout passes."""

    SCRIPT = ("import sqlite3, sys, time\n"
              "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
              "db.execute('BEGIN EXCLUSIVE')\n"
              "print('locked', flush=True)\n"
              "time.sleep(float(sys.argv[2]))\n"
              "db.execute('COMMIT')\n")

    def __init__(self, path, seconds):
        self.path, self.seconds = str(path), seconds
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.SCRIPT, self.path, str(self.seconds)],
                                     stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        if self.proc.stdout.readline().strip() != "locked":
            raise RuntimeError(f"could not lock {self.path}")
        return self

    def wait(self):
        self.proc.wait(self.seconds + 30)

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
