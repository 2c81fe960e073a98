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
from pathlib import Path

import pytest

from heportal import config
from tests.conftest import ROOT, Processes, child_env, free_port, wait_until

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())
# One instance of each template, as docs/deployment.md enables them.
INSTANCES = {"heportal-web@.service": "heportal-web@8001.service",
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
                             "heportal-rqworker@1.service", "heportal-web@8001.service", "heportal.target"]
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
    (daphne's, manage.py's), the ASGI application imports: a renamed command, option or
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
        assert argv[1] == "manage.py", unit.name
        name = argv[2]
        command = load_command_class(get_commands()[name], name)
        options = vars(command.create_parser("manage.py", name).parse_args(argv[3:]))
        if name == "ha_poller":
            from upgrades.management.commands.ha_poller import parse_shard

            assert parse_shard(options["shard"]) == (0, 2)
        started.add(" ".join(argv[2:]).replace("--shard 0/2", "--shard I/N"))
    assert started == {"daphne", "rqworker default poll", "rqworker emergency", "ha_poller --shard I/N"}


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
