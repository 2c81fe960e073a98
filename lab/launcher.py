"""Start a lab as a subprocess and talk to it: what tests, fixtures and the demo use.

    with start_lab(tmp_path, hosts=3, speed=60) as lab:
        client = lab.connect("he1.lab.local")      # real paramiko, RejectPolicy
        lab.fault("kill-host", host="he1.lab.local")
        lab.admin("host-maintenance", host="he2")  # the web admin, any release
        lab.wait_for(lambda s: ..., sim_seconds=300)
"""

import json
import os as _os  # start_lab() has an `os` parameter (the hosts' OS)
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from .errors import LabError
from .private import make_state_dir

MANIFEST = "manifest.json"
LOG = "lab.log"


class LabStartError(LabError):
    pass


def control_request(control_url, path, body=None):
    """GET (or POST `body` as JSON) on the lab's control endpoint; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(control_url + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def admin_request(control_url, action, **args):
    """A web-admin action on the lab's engine (lab/admin.py); raises LabError when the
    engine refuses it, else returns its message."""
    result = control_request(control_url, "/admin", {"action": action, **args})
    if not result.get("ok"):
        raise LabError(result.get("error", "admin action refused"))
    return result["message"]


class Lab:
    def __init__(self, process, state_dir, manifest):
        self.process = process
        self.state_dir = state_dir
        self.manifest = manifest

    @property
    def speed(self):
        return self.manifest["speed"]

    @property
    def control_url(self):
        return self.manifest["control"]["url"]

    def host(self, name):
        """Manifest entry of a host (name, short name or address) or of `engine`."""
        if name in ("engine", self.manifest["engine_vm"]["name"]):
            return self.manifest["engine_vm"]
        for entry in self.manifest["hosts"]:
            if name in (entry["name"], entry["name"].split(".")[0], entry["address"]):
                return entry
        raise LabError(f"no such host in the lab: {name}")

    def known_hosts_file(self):
        """A known_hosts file with every machine of the lab."""
        path = _os.path.join(self.state_dir, "known_hosts")
        lines = [h["known_hosts"] for h in self.manifest["hosts"]]
        lines.append(self.manifest["engine_vm"]["known_hosts"])
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def connect(self, name, timeout=10):
        """A connected paramiko SSHClient that trusts only the lab's host key."""
        import paramiko

        entry = self.host(name)
        client = paramiko.SSHClient()
        client.load_host_keys(self.known_hosts_file())
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(entry["address"], entry["port"], username=entry["ssh_user"],
                       key_filename=self.manifest["ssh_key"], timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=False, look_for_keys=False)
        return client

    def _request(self, path, body=None):
        return control_request(self.control_url, path, body)

    def fault(self, kind, host=None, **kw):
        """Inject a fault; raises LabError when the lab refuses it."""
        result = self._request("/fault", {"kind": kind, "host": host, **kw})
        if not result.get("ok"):
            raise LabError(result.get("error", "fault refused"))
        return result["message"]

    def admin(self, action, **args):
        """What the engine's web admin would do, e.g. admin("host-maintenance", host="he2");
        `cluster=` names a cluster. Raises LabError with the engine's refusal."""
        return admin_request(self.control_url, action, **args)

    def state(self):
        return self._request("/state")

    def reload_manifest(self):
        """Re-read manifest.json (engine-setup on a first host changes the password)."""
        with open(_os.path.join(self.state_dir, MANIFEST)) as f:
            self.manifest = json.load(f)
        return self.manifest

    def wait_for(self, predicate, sim_seconds, poll=0.05):
        """Poll `state()` until predicate(state) is truthy, for `sim_seconds` of lab time."""
        deadline = time.monotonic() + sim_seconds / self.speed + 2
        last = None
        while time.monotonic() < deadline:
            last = self.state()
            result = predicate(last)
            if result:
                return result
            time.sleep(poll)
        raise TimeoutError(f"lab condition not met within {sim_seconds} simulated seconds; "
                           f"last state: {json.dumps(summary(last))}")

    def stop(self, timeout=15):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def summary(state):
    """The interesting part of a state snapshot, for error messages."""
    if not state:
        return state
    return {"engine_vm": state.get("engine_vm"),
            "hosts": {name: {k: h.get(k) for k in ("power", "agent_state", "score", "vm")}
                      for name, h in state.get("hosts", {}).items()}}


def start_lab(state_dir=None, hosts=3, speed=1.0, os=None, engine_version="4.3",
              ssh_port_base=None, timeout=90, undeployed=False, outdated=False, from_snapshot=None):
    """Spawn `python -m lab up` and wait until it has written its manifest.
    `from_snapshot`: a portal snapshot file the lab is shaped like (lab/snapshot.py)."""
    state_dir = str(state_dir or tempfile.mkdtemp(prefix="lab-"))
    make_state_dir(state_dir)
    manifest_path = _os.path.join(state_dir, MANIFEST)
    if _os.path.exists(manifest_path):
        _os.remove(manifest_path)
    cmd = [sys.executable, "-m", "lab", "up", "--state-dir", state_dir, "--hosts", str(hosts),
           "--speed", str(speed), "--engine-version", engine_version, "--exit-with-parent", str(_os.getpid())]
    if os:
        cmd += ["--os", os]
    if ssh_port_base:
        cmd += ["--ssh-port-base", str(ssh_port_base)]
    if undeployed:
        cmd.append("--undeployed")
    if outdated:
        cmd.append("--outdated")
    if from_snapshot:
        cmd += ["--from-snapshot", str(from_snapshot)]
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    env = dict(_os.environ, PYTHONPATH=root + _os.pathsep + _os.environ.get("PYTHONPATH", ""))
    log = open(_os.path.join(state_dir, LOG), "ab")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabStartError(f"lab exited with status {process.returncode}:\n{tail(state_dir)}")
        if _os.path.exists(manifest_path):
            with open(manifest_path) as f:
                return Lab(process, state_dir, json.load(f))
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise LabStartError(f"lab did not write {manifest_path} within {timeout}s:\n{tail(state_dir)}")


def tail(state_dir, lines=30):
    try:
        with open(_os.path.join(state_dir, LOG), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
