"""Fixtures for lab tests: real `python -m lab up` subprocesses, real paramiko clients.

`lab` is shared by a test module (read-mostly tests); `fresh_lab` gives a test its own
lab when it injects faults or changes the HA state. Both run at high speed.
"""

import json
import time
from dataclasses import dataclass

import pytest

from lab.launcher import start_lab

SPEED = 60  # one simulated minute per real second


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)


class Shell:
    """Runs commands on lab machines over real SSH (one cached client per machine)."""

    def __init__(self, lab):
        self.lab = lab
        self.clients = {}

    def client(self, host):
        if host not in self.clients:
            self.clients[host] = self.lab.connect(host)
        return self.clients[host]

    def __call__(self, host, command, stdin=None, timeout=60):
        client = self.client(host)
        chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
        if stdin is not None:
            chan_in.write(stdin)
        chan_in.channel.shutdown_write()
        out = chan_out.read().decode()
        err = chan_err.read().decode()
        return Result(chan_out.channel.recv_exit_status(), out, err)

    def close(self):
        for client in self.clients.values():
            client.close()
        self.clients.clear()


def engine_request(lab, method, path, body=None):
    """What the web admin does, on API paths with basic auth (a 3.x engine has no SSO);
    returns (status, text)."""
    import base64
    import ssl
    import urllib.error
    import urllib.request

    engine = lab.manifest["engine"]
    token = base64.b64encode(f"{engine['username']}:{engine['password']}".encode()).decode()
    request = urllib.request.Request(engine["url"] + path, method=method,
                                     data=body.encode() if body else None,
                                     headers={"Authorization": f"Basic {token}",
                                              "Content-Type": "application/xml"})
    context = ssl.create_default_context(cafile=engine["ca_file"])
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def engine_host_id(lab, name):
    import re
    _, text = engine_request(lab, "GET", f"/hosts?search=name%3D{name}")
    return re.search(r'<host href="[^"]+" id="([^"]+)"', text).group(1)


def release_lab(**options):
    """A module-scoped fixture: a lab of one release, shared by the module's tests."""
    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):
        with start_lab(tmp_path_factory.mktemp("lab"), speed=SPEED, timeout=120,
                       **options) as running:
            yield running
    return fixture


def module_shell(lab_fixture):
    """A module-scoped Shell on the lab fixture named `lab_fixture`."""
    @pytest.fixture(scope="module")
    def fixture(request):
        shell = Shell(request.getfixturevalue(lab_fixture))
        yield shell
        shell.close()
    return fixture


def reinstall(lab, shell, host, os_name="el7"):
    """The reinstall-host fault, then wait until the host answers SSH again."""
    lab.fault("reinstall-host", host=host, os=os_name)
    lab.wait_for(lambda s: s["hosts"][f"{host}.lab.local"]["power"] == "on", sim_seconds=90)
    for _ in range(50):
        shell.clients.pop(host, None)
        try:
            shell(host, "true")
            return
        except Exception:
            time.sleep(0.1)
    raise AssertionError(f"{host} does not answer SSH after its reinstall")


def agent_states(state):
    return {name: h["agent_state"] for name, h in state["hosts"].items()}


# The default release (4.3 on el7) unless a test says otherwise with
# ``@pytest.mark.lab(...)`` (fresh_lab) or uses a ``release_lab`` fixture.
DEFAULT_RELEASE = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory.mktemp("lab"), hosts=3, speed=SPEED, **DEFAULT_RELEASE) as running:
        yield running


@pytest.fixture
def fresh_lab(tmp_path, request):
    marker = request.node.get_closest_marker("lab")
    options = dict(DEFAULT_RELEASE, **(marker.kwargs if marker else {}))
    with start_lab(tmp_path / "lab", hosts=3, speed=SPEED, **options) as running:
        yield running


@pytest.fixture
def ssh(lab):
    shell = Shell(lab)
    yield shell
    shell.close()


@pytest.fixture
def fresh_ssh(fresh_lab):
    shell = Shell(fresh_lab)
    yield shell
    shell.close()
