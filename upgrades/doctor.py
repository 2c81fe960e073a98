"""The connection check ("doctor"): can the portal work on each host of a cluster?

Run by an RQ worker (``run_check``, queued by ``services.start_check`` on the
``poll`` queue: short, read-only work that never waits behind a long
procedure), never in a web request. Per host, in order, each with what to fix
when it fails; a check whose premise failed is skipped, not guessed:

1. TCP: the SSH port answers.
2. Host key: the key the host offers is pinned (unknown or changed: refused).
3. Authentication: the portal's key logs in as the host's SSH user.
4. Root: the runbooks run their commands as that user as they are (no sudo), so it must be root.
5. ``hosted-engine`` is installed.
6. Release: the setup and HA packages (``rpm -q``), as the poller detects them.
7. ``hosted-engine --vm-status --json`` answers and parses.
8. Clock: the host's clock against the portal's (a warning: HA compares timestamps).

Results are saved after each host, so the page shows them as they come. A
check where every host passed ends with the cluster's first poll.
"""
import logging
import socket
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from . import sshkey
from .models import CheckStatus, ConnectionCheck
from .poller import RPM_COMMAND, ClusterPoller, describe_release
from .remote import ssh
from .remote.base import HostKeyError, RemoteError
from .remote.vmstatus import VmStatusParseError
from .state import fetch_vm_status

log = logging.getLogger(__name__)

TIMEOUT = 15
MAX_SKEW_SECONDS = 5
OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
TITLES = {
    "tcp": "TCP connection",
    "host_key": "SSH host key",
    "auth": "Login with the portal's key",
    "root": "Root",
    "hosted_engine": "hosted-engine installed",
    "release": "Release and HA version",
    "vm_status": "vm-status parses",
    "clock": "Clock against the portal",
}


class HostReport:
    def __init__(self, host):
        self.host = host
        self.checks = []

    def add(self, key, outcome, detail, fix=""):
        self.checks.append({"key": key, "title": TITLES[key], "outcome": outcome, "detail": detail, "fix": fix})
        return outcome

    def skip_rest(self, why):
        done = {check["key"] for check in self.checks}
        for key in TITLES:
            if key not in done:
                self.add(key, SKIPPED, why)

    def as_dict(self):
        return {"host": self.host.name, "address": f"{self.host.address}:{self.host.ssh_port}",
                "checks": self.checks}


def check_host(host, *, timeout=TIMEOUT, now=time.time):
    """Every check on one host: a HostReport."""
    report = HostReport(host)
    where = f"{host.address}:{host.ssh_port}"
    try:
        socket.create_connection((host.address, host.ssh_port), timeout=timeout).close()
    except OSError as exc:
        report.add("tcp", FAIL, f"cannot connect to {where}: {exc.strerror or exc}",
                   f"Check the address and port, that sshd runs on the host, and that a firewall lets "
                   f"the portal reach port {host.ssh_port}.")
        report.skip_rest("no TCP connection")
        return report
    report.add("tcp", OK, f"{where} answers")
    if not _host_key(report, host, timeout):
        report.skip_rest("the host key is not pinned")
        return report
    target = ssh.SshTarget.for_host(host)
    session = ssh.SshSession(target, connect_timeout=timeout)
    try:
        try:
            session.connect()
        except HostKeyError as exc:  # changed between the two handshakes
            report.add("auth", FAIL, exc.message, "Check the host key again.")
            report.skip_rest("not logged in")
            return report
        except RemoteError as exc:
            report.add("auth", FAIL, exc.message,
                       f"Authorise the portal's key for {host.ssh_user} on the host (the cluster's set-up page "
                       f"shows the command): {sshkey.authorize_command(host.ssh_user)}")
            report.skip_rest("not logged in")
            return report
        report.add("auth", OK, f"logged in as {host.ssh_user} with {sshkey.fingerprint()}")
        _remote_checks(report, session, host, timeout, now)
    finally:
        session.close()
    return report


def _host_key(report, host, timeout):
    """Compare the offered key with the pinned ones; True when it is pinned."""
    try:
        offered = ssh.fetch_host_key(host.address, host.ssh_port, timeout=timeout)
        pinned = ssh.pinned_keys(host.known_hosts, host.address, host.ssh_port)
    except RemoteError as exc:
        report.add("host_key", FAIL, exc.message, "Check that an SSH server answers on this port.")
        return False
    if any(fingerprint == offered.fingerprint for _, fingerprint in pinned):
        report.add("host_key", OK, f"offered {offered.fingerprint}, pinned")
        return True
    if pinned:
        report.add("host_key", FAIL,
                   f"HOST KEY CHANGED: the host offers {offered.fingerprint}, pinned is "
                   f"{', '.join(fp for _, fp in pinned)}. The portal refuses to connect.",
                   "If the host was reinstalled, compare the new key's fingerprint on its console "
                   "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and accept it; otherwise find out "
                   "who answers at this address.")
    else:
        report.add("host_key", FAIL, f"no key pinned; the host offers {offered.fingerprint}",
                   "Compare this fingerprint with the host's own (ssh-keygen -lf "
                   "/etc/ssh/ssh_host_ed25519_key.pub on its console) and accept it, or paste its known_hosts line.")
    return False


def _run(session, command, timeout):
    return session.run(command, timeout=timeout, idle_timeout=timeout)


def _remote_checks(report, session, host, timeout, now):
    try:
        uid = _run(session, "id -u", timeout).stdout.strip()
    except RemoteError as exc:
        report.add("root", FAIL, exc.message, "Check the host's shell for this user.")
        report.skip_rest("no shell")
        return
    if uid == "0":
        report.add("root", OK, f"{host.ssh_user} is root (uid 0)")
    else:
        report.add("root", FAIL, f"{host.ssh_user} has uid {uid or 'unknown'}: the runbooks run hosted-engine, yum, "
                   "systemctl and the rest as the SSH user, without sudo",
                   "Log in as root: set the host's SSH user to root and authorise the portal's key for root.")
    try:
        found = _run(session, "command -v hosted-engine", timeout)
    except RemoteError as exc:
        report.add("hosted_engine", FAIL, exc.message)
        report.skip_rest("no answer")
        return
    if found.exit_status != 0:
        report.add("hosted_engine", FAIL, "hosted-engine: command not found",
                   "This is not a hosted-engine host yet: install ovirt-hosted-engine-setup (and deploy), "
                   "or remove the host from this cluster.")
        report.skip_rest("hosted-engine is missing")
        return
    report.add("hosted_engine", OK, found.stdout.strip())
    status = None
    try:
        status = fetch_vm_status(session, timeout=timeout)
    except (RemoteError, VmStatusParseError) as exc:
        vm_status_problem = str(getattr(exc, "message", None) or exc)
    try:
        rpm = _run(session, RPM_COMMAND, timeout).stdout
    except RemoteError:
        rpm = ""
    release = describe_release(rpm, status.setup_series if status else None)
    if release:
        report.add("release", OK, release)
    else:
        report.add("release", FAIL, "neither rpm nor vm-status says which release runs here",
                   "Check that ovirt-hosted-engine-setup and ovirt-hosted-engine-ha are installed from "
                   "oVirt's repository.")
    if status is not None:
        engine = status.engine_host()
        report.add("vm_status", OK, f"{len(status.hosts)} host(s) listed; engine VM "
                   + (f"up on {engine.hostname}" if engine else "not up on any live host"))
    else:
        report.add("vm_status", FAIL, vm_status_problem,
                   "Check the HA services (systemctl status ovirt-ha-agent ovirt-ha-broker) and the "
                   "hosted-engine storage.")
    before = now()
    try:
        answer = _run(session, "date -u +%s.%N", timeout).stdout.strip()
        theirs = float(answer)
    except (RemoteError, ValueError) as exc:
        report.add("clock", WARN, f"cannot read the host's clock: {getattr(exc, 'message', exc)}")
        return
    ours = (before + now()) / 2
    skew = theirs - ours
    if abs(skew) <= MAX_SKEW_SECONDS:
        report.add("clock", OK, f"{skew:+.1f} s from the portal")
    else:
        report.add("clock", WARN, f"{skew:+.0f} s {'ahead of' if skew > 0 else 'behind'} the portal",
                   "Synchronise the host's clock (chronyd or ntpd): HA agents and logs compare timestamps.")


def run_check(check_id):
    """RQ entry point: run a queued ConnectionCheck and record each host's report."""
    close_old_connections()
    updated = ConnectionCheck.objects.filter(pk=check_id, status=CheckStatus.QUEUED).update(
        status=CheckStatus.RUNNING)
    if not updated:
        return
    check = ConnectionCheck.objects.select_related("cluster").get(pk=check_id)
    try:
        sshkey.ensure_key()
        results = []
        for host in check.cluster.hosts.order_by("he_host_id", "name"):
            results.append(check_host(host).as_dict())
            ConnectionCheck.objects.filter(pk=check_id).update(results=results)
        check.results = results
        first_poll = ""
        if check.all_hosts_pass:
            first_poll = _first_poll(check.cluster_id)
        ConnectionCheck.objects.filter(pk=check_id).update(status=CheckStatus.DONE, finished_at=timezone.now(),
                                                           first_poll=first_poll)
    except Exception as exc:
        log.exception("connection check %s failed", check_id)
        ConnectionCheck.objects.filter(pk=check_id).update(status=CheckStatus.FAILED, finished_at=timezone.now(),
                                                           error=f"{type(exc).__name__}: {exc}")
        raise


def _first_poll(cluster_id):
    poller = ClusterPoller(cluster_id, timeout=float(getattr(settings, "SSH_CONNECT_TIMEOUT", TIMEOUT)))
    try:
        ok = poller.poll()
    finally:
        poller.close()
    from .models import Cluster

    cluster = Cluster.objects.get(pk=cluster_id)
    if ok:
        return f"HA state read; release {cluster.detected_release or 'not detected yet'}."
    return f"The first poll failed: {cluster.poll_error}"
