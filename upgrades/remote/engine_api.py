"""The oVirt engine REST API (ovirtsdk4), reduced to what the runbooks need.

Returns plain dataclasses, never SDK objects, and raises only EngineError
with a message an operator can act on (wrong password, wrong CA file,
engine down, the engine's own fault text).
"""
import base64
import logging
import os
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pycurl

from .base import CommandStopped, EngineError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30
# oVirt 3.x engines have no SSO, so ovirtsdk4 (API v4 only) cannot log in at all.
API_V3_ONLY = "this engine speaks API v3 only (oVirt 3.x); engine steps are done in the web admin"
HOSTED_ENGINE_VM = "HostedEngine"
# pycurl failures that mean "nothing answered" vs "TLS did not check out".
_UNREACHABLE = {pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_OPERATION_TIMEDOUT,
                pycurl.E_GOT_NOTHING, pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR}
# The SDK's words for an answer that is no API document: a proxy's or JBoss's error page.
_WEB_PAGE = "content type 'text/html"
UNAVAILABLE_RETRY = 5  # s between tries while the engine is not available
UNAVAILABLE_NOTICE_EVERY = 60  # s: how often the waiting is said again

_TLS = {pycurl.E_SSL_CACERT, pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_SSL_CACERT_BADFILE, pycurl.E_SSL_CERTPROBLEM}


@dataclass(frozen=True)
class HostedEngineInfo:
    """A host's HA data as the engine shows it (from vdsm, so it may lag the agents)."""

    configured: bool
    active: bool
    score: int | None
    global_maintenance: bool
    local_maintenance: bool


@dataclass(frozen=True)
class EngineHost:
    id: str
    name: str
    address: str
    status: str
    cluster_id: str | None
    update_available: bool
    hosted_engine: HostedEngineInfo | None


@dataclass(frozen=True)
class EngineCluster:
    id: str
    name: str
    version: str


@dataclass(frozen=True)
class EngineVm:
    id: str
    name: str
    status: str
    host_id: str | None
    host_name: str | None


@dataclass(frozen=True)
class HostView:
    """One host as the engine sees it: status, whether it reports an update, its VMs."""

    name: str
    status: str
    update_available: bool
    vms: int
    cannot_migrate: tuple  # names of its running VMs pinned to it (the engine VM aside)


@dataclass(frozen=True)
class ClusterView:
    """The engine's view of the cluster holding ``hosts``: read in one go by the HA poller."""

    cluster: str
    version: str
    scheduling_policy: str
    engine_vm_host: str | None
    hosts: tuple  # HostView


@dataclass(frozen=True)
class EngineInfo:
    product: str
    version: str


def resolve_secret(ref):
    """The password a ``credentials_ref`` points at: ``env:VAR`` or ``file:/path``."""
    kind, _, where = (ref or "").partition(":")
    if kind == "env" and where:
        value = os.environ.get(where)
        if value is None:
            raise EngineError(f"the engine password variable {where} is not set")
        return value
    if kind == "file" and where:
        try:
            return Path(where).read_text().strip()
        except OSError as exc:
            raise EngineError(f"cannot read the engine password file {where}: {exc.strerror}") from None
    raise EngineError(f"credentials reference {ref!r} must be env:VARIABLE or file:/path")


def _version(text):
    match = re.fullmatch(r"(\d+)\.(\d+)", text or "")
    if not match:
        raise EngineError(f"compatibility version {text!r} must look like 4.7")
    return types.Version(major=int(match[1]), minor=int(match[2]))


def _enum(value):
    return value.value if value is not None else "unknown"


def _to_host(host):
    he = host.hosted_engine
    info = None
    if he is not None:
        info = HostedEngineInfo(configured=bool(he.configured), active=bool(he.active), score=he.score,
                                global_maintenance=bool(he.global_maintenance),
                                local_maintenance=bool(he.local_maintenance))
    return EngineHost(id=host.id, name=host.name, address=host.address or "", status=_enum(host.status),
                      cluster_id=host.cluster.id if host.cluster else None,
                      update_available=bool(host.update_available), hosted_engine=info)


def _to_cluster(cluster):
    version = cluster.version
    return EngineCluster(id=cluster.id, name=cluster.name,
                         version=f"{version.major}.{version.minor}" if version else "")


class EngineClient:
    """One logged-in API connection; a context manager that logs out on exit.

    Every request has ``timeout`` seconds, the login included. ``clock`` and
    ``sleep`` are for the waiting helpers. With ``unavailable_wait`` set, a request the
    engine could not take (down, starting, restarting: ``EngineError.unavailable``) is sent
    again every ``UNAVAILABLE_RETRY`` s for up to that long; ``notice`` is told when the
    waiting begins, once a minute, and when the engine answers again; setting the ``stop``
    event ends the waiting (a cancelled run).
    """

    def __init__(self, url, username, password, ca_file=None, *, timeout=REQUEST_TIMEOUT,
                 clock=time.monotonic, sleep=time.sleep):
        self.url = url
        self.username = username
        self.ca_file = ca_file or None
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.unavailable_wait = 0  # an engine step sets these three (upgrades.engine)
        self.stop = None
        self.notice = None
        self._logged_in = False
        self._password = password
        if self.ca_file and not os.path.exists(self.ca_file):
            raise EngineError(f"the engine CA file {self.ca_file} does not exist")
        self.connection = sdk.Connection(url=url, username=username, password=password,
                                         ca_file=self.ca_file, timeout=timeout)

    @classmethod
    def for_cluster(cls, cluster, **options):
        if not cluster.engine_url:
            raise EngineError(f"cluster {cluster.name} has no engine API URL")
        # The password the portal keeps (encrypted) wins; else where credentials_ref points.
        password = cluster.engine_password() or resolve_secret(cluster.credentials_ref)
        return cls(cluster.engine_url, cluster.engine_username, password,
                   cluster.engine_ca_file, **options)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Log out and release the connection; an engine already gone is no error here."""
        logout, self._logged_in = self._logged_in, False
        try:
            self._bounded(lambda: self.connection.close(logout=logout), "log out")
        except EngineError as exc:
            log.info("engine logout from %s failed: %s", self.url, exc.message)

    # ---- operations ------------------------------------------------------

    def test_connection(self):
        api = self._call("connect to the engine", lambda: self._system.get())
        info = api.product_info
        version = info.version if info else None
        return EngineInfo(product=(info.name if info else "") or "",
                          version=(version.full_version if version else "") or "")

    def list_hosts(self, search=None):
        hosts = self._call("list hosts", lambda: self._system.hosts_service().list(
            search=search, all_content=True))
        return [_to_host(host) for host in hosts]

    def host_updates(self):
        """{host name: update_available}: what the engine's own host upgrade check
        (``upgradecheck``, run by the engine now and then) last found. Read only."""
        hosts = self._call("list hosts", lambda: self._system.hosts_service().list())
        return {host.name: bool(host.update_available) for host in hosts}

    def get_host(self, name):
        # The search narrows the list; the exact comparison is what counts.
        search = f"name={name}" if re.fullmatch(r"[\w.-]+", name) else None
        for host in self.list_hosts(search=search):
            if host.name == name:
                return host
        raise EngineError(f"the engine has no host named {name}")

    def deactivate_host(self, name, reason=None):
        """Ask for maintenance; the engine migrates the VMs away (HostedEngine too)."""
        host = self.get_host(name)
        self._call(f"switch host {name} to maintenance",
                   lambda: self._host_service(host).deactivate(reason=reason))

    def activate_host(self, name):
        host = self.get_host(name)
        self._call(f"activate host {name}", lambda: self._host_service(host).activate())

    def add_host(self, name, address, cluster, *, deploy_hosted_engine=False):
        """A new host (web admin "New Host"); with ``deploy_hosted_engine`` the engine also
        makes it a hosted-engine host ("Hosted Engine: Deploy"). The engine logs in to it as
        root with its own SSH key. Returns at once; the host is ``installing`` meanwhile."""
        spec = types.Host(name=name, address=address, cluster=types.Cluster(name=cluster),
                          ssh=types.Ssh(authentication_method=types.SshAuthenticationMethod.PUBLICKEY))
        added = self._call(f"add host {name} to cluster {cluster}", lambda: self._system.hosts_service().add(
            spec, deploy_hosted_engine=deploy_hosted_engine or None))
        return _to_host(added)

    def remove_host(self, name):
        """Remove a host the engine has in maintenance (web admin "Remove")."""
        host = self.get_host(name)
        self._call(f"remove host {name}", lambda: self._host_service(host).remove())

    def wait_for_host_status(self, name, statuses, timeout, poll=5.0,
                             fail_statuses=("error", "install_failed")):
        """Poll until the host has one of ``statuses``; give up early on ``fail_statuses``."""
        statuses = {statuses} if isinstance(statuses, str) else set(statuses)
        wanted = " or ".join(sorted(statuses))

        def reached(host):
            if host.status in fail_statuses:
                raise EngineError(f"host {name} went to status {host.status} while waiting for {wanted}")
            return host.status in statuses

        return self.wait_for_host(name, reached, f"expected {wanted}", timeout, poll)

    def wait_for_host(self, name, condition, expected, timeout, poll=5.0):
        """Poll until ``condition(host)`` holds, e.g. the HA agent reporting local maintenance.

        The timeout message shows the host's last status and ``expected``.
        """
        deadline = self.clock() + timeout
        while True:
            host = self.get_host(name)
            if condition(host):
                return host
            if self.clock() >= deadline:
                raise EngineError(f"host {name} is still {host.status} after {timeout} s; {expected}",
                                  retryable=True)
            self.sleep(poll)

    def list_clusters(self):
        clusters = self._call("list clusters", lambda: self._system.clusters_service().list())
        return [_to_cluster(cluster) for cluster in clusters]

    def get_cluster(self, name):
        for cluster in self.list_clusters():
            if cluster.name == name:
                return cluster
        raise EngineError(f"the engine has no cluster named {name}")

    def create_cluster(self, name, *, data_center="Default", version=None, description=""):
        """A new cluster (the howto's "el7" cluster); ``version`` like "4.7" or the DC's."""
        spec = types.Cluster(name=name, description=description or None,
                             data_center=types.DataCenter(name=data_center),
                             version=_version(version) if version else None)
        cluster = self._call(f"create cluster {name}",
                             lambda: self._system.clusters_service().add(spec))
        return _to_cluster(cluster)

    def set_cluster_version(self, name, version):
        """Raise a cluster's compatibility version (howto step 10)."""
        wanted = _version(version)
        cluster = self.get_cluster(name)
        updated = self._call(f"change the compatibility version of cluster {name} to {version}",
                             lambda: self._system.clusters_service().cluster_service(cluster.id).update(
                                 types.Cluster(version=wanted)))
        return _to_cluster(updated)

    def scheduling_policies(self):
        """name -> id of the engine's scheduling policies."""
        policies = self._call("list scheduling policies",
                              lambda: self._system.scheduling_policies_service().list())
        return {policy.name: policy.id for policy in policies}

    def scheduling_policy(self, cluster_name):
        """The name of the cluster's scheduling policy."""
        cluster_id = self.get_cluster(cluster_name).id
        cluster = self._call(f"read cluster {cluster_name}",
                             lambda: self._system.clusters_service().cluster_service(cluster_id).get())
        wanted = cluster.scheduling_policy.id if cluster.scheduling_policy else None
        return next((name for name, pid in self.scheduling_policies().items() if pid == wanted), "")

    def set_scheduling_policy(self, cluster_name, policy):
        """Switch the cluster's scheduling policy, e.g. to ``cluster_maintenance`` for an
        upgrade (as ovirt-ansible's cluster_upgrade role); returns the one it had."""
        before = self.scheduling_policy(cluster_name)
        ids = self.scheduling_policies()
        if policy not in ids:
            raise EngineError(f"the engine has no scheduling policy {policy!r} "
                              f"(it has {', '.join(sorted(ids))})")
        cluster_id = self.get_cluster(cluster_name).id
        self._call(f"set the scheduling policy of cluster {cluster_name} to {policy}",
                   lambda: self._system.clusters_service().cluster_service(cluster_id).update(
                       types.Cluster(scheduling_policy=types.SchedulingPolicy(id=ids[policy]))))
        return before

    def vms_that_cannot_migrate(self):
        """(name, host name) of running VMs pinned to their host (placement affinity not
        migratable), which keep a host from entering maintenance; the engine VM aside."""
        vms = self._call("list VMs", lambda: self._system.vms_service().list())
        hosts = {h.id: h.name for h in self.list_hosts()}
        return [(vm.name, hosts.get(vm.host.id, vm.host.id)) for vm in vms
                if vm.name != HOSTED_ENGINE_VM and vm.host is not None and vm.placement_policy
                and vm.placement_policy.affinity not in (None, types.VmAffinity.MIGRATABLE)]

    def guest_vms(self):
        """(name, host name, status, migration mode) of every VM but the engine VM: what a
        twin of the cluster (upgrades.twin) recreates. Migration mode as ovirtsdk4's
        VmAffinity names it (migratable, user_migratable, pinned)."""
        vms = self._call("list VMs", lambda: self._system.vms_service().list())
        hosts = {h.id: h.name for h in self.list_hosts()}
        found = []
        for vm in vms:
            if vm.name == HOSTED_ENGINE_VM:
                continue
            affinity = vm.placement_policy.affinity if vm.placement_policy is not None else None
            found.append((vm.name, hosts.get(vm.host.id) if vm.host is not None else None, _enum(vm.status),
                          _enum(affinity) if affinity is not None else "migratable"))
        return sorted(found)

    def cluster_view(self, host_names):
        """Status, update flag and VMs of each of ``host_names`` the engine knows, and the
        compatibility version and scheduling policy of the engine cluster they are in.
        Five list requests, whatever the number of hosts or VMs."""
        hosts = self._call("list hosts", lambda: self._system.hosts_service().list())
        mine = [h for h in hosts if h.name in set(host_names)]
        vms = self._call("list VMs", lambda: self._system.vms_service().list())
        clusters = self._call("list clusters", lambda: self._system.clusters_service().list())
        policies = {pid: name for name, pid in self.scheduling_policies().items()}
        # The engine cluster most of our hosts are in (they are all in one when set up right).
        ids = [h.cluster.id for h in mine if h.cluster is not None]
        cluster = next((c for c in clusters if ids and c.id == max(set(ids), key=ids.count)), None)
        names = {h.id: h.name for h in hosts}
        views = []
        for host in mine:
            running = [vm for vm in vms if vm.host is not None and vm.host.id == host.id]
            pinned = tuple(sorted(vm.name for vm in running if vm.name != HOSTED_ENGINE_VM
                                  and vm.placement_policy is not None
                                  and vm.placement_policy.affinity not in (None, types.VmAffinity.MIGRATABLE)))
            views.append(HostView(name=host.name, status=_enum(host.status),
                                  update_available=bool(host.update_available), vms=len(running),
                                  cannot_migrate=pinned))
        engine_vm = next((vm for vm in vms if vm.name == HOSTED_ENGINE_VM), None)
        version = cluster.version if cluster is not None else None
        return ClusterView(
            cluster=cluster.name if cluster is not None else "",
            version=f"{version.major}.{version.minor}" if version else "",
            scheduling_policy=policies.get(cluster.scheduling_policy.id, "") if cluster is not None
            and cluster.scheduling_policy is not None else "",
            engine_vm_host=names.get(engine_vm.host.id) if engine_vm is not None and engine_vm.host else None,
            hosts=tuple(views))

    def engine_vm(self):
        """The HostedEngine VM and the host it runs on (None when it is down)."""
        vms = self._call("find the HostedEngine VM", lambda: self._system.vms_service().list(
            search=f"name={HOSTED_ENGINE_VM}"))
        vm = next((vm for vm in vms if vm.name == HOSTED_ENGINE_VM), None)
        if vm is None:
            raise EngineError(f"the engine has no VM named {HOSTED_ENGINE_VM}")
        host_id = vm.host.id if vm.host else None
        host_name = None
        if host_id:
            host = self._call("read the HostedEngine VM's host",
                              lambda: self._system.hosts_service().host_service(host_id).get())
            host_name = host.name
        return EngineVm(id=vm.id, name=vm.name, status=_enum(vm.status), host_id=host_id, host_name=host_name)

    def migrate_engine_vm(self, to_host=None, *, timeout=600, poll=5.0):
        """Live-migrate HostedEngine (to ``to_host`` or where the engine picks); wait until it runs there."""
        vm = self.engine_vm()
        source = vm.host_name
        target = types.Host(id=self.get_host(to_host).id) if to_host else None
        self._call(f"migrate {HOSTED_ENGINE_VM} from {source} to {to_host or 'another host'}",
                   lambda: self._system.vms_service().vm_service(vm.id).migrate(host=target))
        deadline = self.clock() + timeout
        while True:
            vm = self.engine_vm()
            arrived = vm.host_name == to_host if to_host else vm.host_name not in (None, source)
            if vm.status == "up" and arrived:
                return vm
            if self.clock() >= deadline:
                raise EngineError(f"{HOSTED_ENGINE_VM} is {vm.status} on {vm.host_name or 'no host'} "
                                  f"{timeout} s after the migration from {source} started", retryable=True)
            self.sleep(poll)

    # ---- plumbing --------------------------------------------------------

    @property
    def _system(self):
        return self.connection.system_service()

    def _host_service(self, host):
        return self._system.hosts_service().host_service(host.id)

    def _call(self, action, request):
        """One request (logging in first if needed), sent again while the engine is
        unavailable and ``unavailable_wait`` allows: such a request never reached it."""
        began = said = None
        while True:
            try:
                result = self._send(action, request)
                if said is not None and self.notice is not None:
                    self.notice(f"the engine answers again ({self.clock() - began:.0f} s after the first try)")
                return result
            except EngineError as exc:
                if not exc.unavailable or self.unavailable_wait <= 0:
                    raise
                now = self.clock()
                began = began if began is not None else now
                if now + UNAVAILABLE_RETRY > began + self.unavailable_wait:
                    raise EngineError(f"{exc.message} (still so after trying for {now - began:.0f} s)",
                                      unavailable=True) from None
                if self.notice is not None and (said is None or now - said >= UNAVAILABLE_NOTICE_EVERY):
                    # The first wait, then one line a minute: not 12 lines a minute in the step's output.
                    self.notice(f"{exc.message} Trying again every {UNAVAILABLE_RETRY} s"
                                + (f" (for {now - began:.0f} s now)." if said is not None else "."))
                    said = now
                if self.stop is not None:
                    if self.stop.wait(UNAVAILABLE_RETRY):
                        raise CommandStopped("stopped while waiting for the engine") from None
                else:
                    self.sleep(UNAVAILABLE_RETRY)

    def _send(self, action, request):
        self._login()
        try:
            return request()
        except sdk.Error as exc:
            raise self._explain(action, exc) from None
        except pycurl.error as exc:  # the SDK lets a few through, e.g. after close()
            raise EngineError(f"cannot {action}: {exc.args[-1]}") from None

    def _login(self):
        if not self._logged_in:
            self._bounded(self.connection.authenticate, "log in")
            self._logged_in = True

    def _bounded(self, request, action):
        """Run an SSO request with our timeout: the SDK sets none on those."""
        outcome = {}

        def call():
            try:
                request()
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=call, name=f"engine-{action}", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise EngineError(f"the engine at {self._where} did not answer the {action} request within "
                              f"{self.timeout} s", retryable=True)
        error = outcome.get("error")
        if isinstance(error, sdk.Error) and not isinstance(error, sdk.AuthError) and action == "log in":
            version = self._api_v3_version()
            if version:
                raise EngineError(f"{API_V3_ONLY} (the engine at {self._where} is {version})") from None
        if isinstance(error, sdk.Error):
            raise self._explain(action, error) from None
        if isinstance(error, pycurl.error):
            raise EngineError(f"cannot {action}: {error.args[-1]}", retryable=True) from None
        if error is not None:
            raise error

    @property
    def _where(self):
        return urlsplit(self.url).netloc or self.url

    def _explain(self, action, exc):
        """SDK error → EngineError with what happened and what to check."""
        curl_code = exc.__context__.args[0] if isinstance(exc.__context__, pycurl.error) else None
        text = str(exc)
        if isinstance(exc, sdk.AuthError) and exc.code is None:
            detail = text.split(" : ", 1)[-1]
            return EngineError(f"the engine at {self._where} refused the login of {self.username}: "
                               f"{detail} Check the user name and the password its credentials "
                               "reference points at.")
        if isinstance(exc, sdk.AuthError):
            return EngineError(f"the engine refused to {action}: {self.username} is not allowed "
                               f"(HTTP {exc.code})")
        if curl_code in _TLS or "SSL" in text or "certificate" in text:
            return EngineError(f"TLS check of the engine at {self._where} failed ({_curl_detail(exc)}). "
                               f"Check that the CA file {self.ca_file or '(system CAs)'} is the engine's CA "
                               "(https://ENGINE/ovirt-engine/services/pki-resource?resource=ca-certificate"
                               "&format=X509-PEM-CA) and that the URL uses the engine's name.")
        if isinstance(exc, (sdk.ConnectionError, sdk.TimeoutError)) or curl_code in _UNREACHABLE:
            # Only a refused connection surely sent nothing; a timeout may have.
            return EngineError(f"cannot reach the engine at {self._where} to {action}: {_curl_detail(exc)}. "
                               "Is the engine VM up (hosted-engine --vm-status)?", retryable=True,
                               unavailable=curl_code == pycurl.E_COULDNT_CONNECT)
        if exc.fault is not None:
            reason = exc.fault.reason or "engine fault"
            return EngineError(f"the engine refused to {action}: {reason}: {exc.fault.detail or ''}".rstrip(": "))
        status = exc.code if exc.code is not None else self._probe_health()
        # An error page where the API answers (the SDK gives no status for it): Apache's
        # 503 while ovirt-engine is down. The health page is read after it, so it may
        # already answer again; unless the URL's path is off (the SDK then says so).
        page = _WEB_PAGE in text and "Is the path" not in text
        if status in (502, 503, 504) or page:
            health = f"HTTP {status}" if status else "nothing"
            said = health if status in (502, 503, 504) else f"an error page; its health page answers {health} now"
            return EngineError(f"the engine at {self._where} is not available ({said}) and could not "
                               f"{action}: the engine VM or the ovirt-engine service is down, starting or "
                               "restarting. Check hosted-engine --vm-status.", retryable=True, unavailable=True)
        if isinstance(exc, sdk.NotFoundError):
            return EngineError(f"cannot {action}: the engine does not know it ({text})")
        return EngineError(f"cannot {action}: {text}", retryable=status is None or status >= 500)

    def _api_v3_version(self):
        """The version of an engine whose API entry point is v3 (attributes on
        product_info/version), or None: a 3.x engine answers basic auth there."""
        context = ssl.create_default_context(cafile=self.ca_file)
        token = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
        request = urllib.request.Request(self.url, headers={"Authorization": f"Basic {token}",
                                                            "Accept": "application/xml"})
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, 10), context=context) as response:
                version = ET.fromstring(response.read()).find("product_info/version")
        except (OSError, ValueError, ET.ParseError):
            return None
        if version is None or not version.get("major", "").isdigit() or int(version.get("major")) >= 4:
            return None
        return "oVirt " + ".".join(version.get(part, "0") for part in ("major", "minor", "build"))

    def _probe_health(self):
        """HTTP status of the engine's health page, for errors the SDK left without one."""
        return health_page(self.url, self.ca_file, min(self.timeout, 10)).status


@dataclass(frozen=True)
class HealthPage:
    """What the engine's health page answered: HTTP status (None: no answer) and text."""

    status: int | None
    text: str

    @property
    def ok(self):
        return self.status == 200


def health_page(api_url, ca_file=None, timeout=10):
    """Ask the engine's own health page (``/ovirt-engine/services/health``; what
    ``hosted-engine --check-liveliness`` and the HA agents' engine-health check
    read): no login, "DB Up!Welcome to Health Status!" while engine and database are up."""
    parts = urlsplit(api_url)
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/ovirt-engine/services/health",
                                    timeout=timeout, context=context) as response:
            return HealthPage(response.status, response.read(300).decode("utf-8", "replace").strip())
    except urllib.error.HTTPError as exc:
        return HealthPage(exc.code, f"HTTP {exc.code} {exc.reason}")
    except (OSError, ValueError) as exc:
        return HealthPage(None, str(getattr(exc, "reason", None) or exc))


def _curl_detail(exc):
    """libcurl's own words, e.g. 'Failed to connect to ... Connection refused'."""
    context = exc.__context__
    if isinstance(context, pycurl.error) and len(context.args) > 1:
        return str(context.args[1])
    return str(exc)
