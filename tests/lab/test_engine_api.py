"""The lab's fake engine REST API, driven by the real ovirtsdk4 over HTTPS.

The server runs on its own event loop in a thread (the SDK is synchronous
pycurl); `FakeBackend` stands in for the lab's HA model, which the engine only
reads and pokes through the documented backend interface.
"""
import asyncio
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from lab.clock import ScaledClock
from lab.engine import start_engine_api
from lab.engine.documents import Fault
from lab.engine.tls import ensure_certificates
from lab.errors import LabError

SPEED = 400  # 30 simulated seconds take 75 ms


class FakeBackend:
    """Three healthy HE hosts, the engine VM on he1; plays the HA side."""

    engine_fqdn = "engine.lab.local"

    def __init__(self, speed=SPEED):
        self.clock = ScaledClock(speed)
        self.engine_version = "4.x"
        self.hosts = {
            f"he{i}": {
                "name": f"he{i}", "address": f"127.0.1.{i}", "os": "el7", "host_id": i,
                "reachable": True, "score": 3400, "live": True, "local_maintenance": False,
                "global_maintenance": False, "configured": True, "agent_version": "2.5.1-1",
                "packages_outdated": False,
            }
            for i in (1, 2, 3)
        }
        self.vm_host, self.vm_status, self.healthy = "he1", "up", True
        self.hold_migration = False  # a test holds a migration to observe the states during it
        self.upgrades = []
        self.engine = None

    def attach_engine(self, engine):
        self.engine = engine

    def host_names(self):
        return list(self.hosts)

    def host_info(self, name):
        return dict(self.hosts[name])

    def engine_vm_host(self):
        return self.vm_host

    def engine_vm_status(self):
        return self.vm_status

    def engine_healthy(self):
        return self.healthy

    def set_local_maintenance(self, name, on):
        self.hosts[name]["local_maintenance"] = on
        self.hosts[name]["score"] = 0 if on else 3400

    async def migrate_engine_vm(self, dest_name):
        if not self.hosts[dest_name]["reachable"]:
            raise LabError(f"host {dest_name} is down")
        self.vm_status = "migrating"
        await self.clock.sleep(20)
        while self.hold_migration:
            await asyncio.sleep(0.01)
        self.vm_host, self.vm_status = dest_name, "up"

    async def upgrade_host(self, name, reboot):
        await self.clock.sleep(60)
        self.hosts[name]["packages_outdated"] = False
        if reboot:
            self.hosts[name]["reachable"] = False
            await self.clock.sleep(120)
            self.hosts[name]["reachable"] = True
        self.upgrades.append((name, reboot))


class LoopThread:
    """A private event loop in a daemon thread, for servers the synchronous SDK calls."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def call(self, fn, *args):
        async def wrapper():
            return fn(*args)
        return self.run(wrapper())

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class EngineThread(LoopThread):
    """The engine API alone, on its own loop."""

    def __init__(self, backend, state_dir):
        super().__init__()
        self.api = self.run(start_engine_api(backend, state_dir=state_dir))

    def stop(self):
        self.run(self.api.stop())
        self.close()


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def engine(backend, tmp_path):
    server = EngineThread(backend, tmp_path / "state")
    server.ids = {name: server.call(server.api.register_host, name, info["address"])
                  for name, info in backend.hosts.items()}
    yield server
    server.stop()


def connect(api, **overrides):
    options = dict(url=api.url, username=api.username, password=api.password,
                   ca_file=api.ca_file, timeout=20)
    options.update(overrides)
    return sdk.Connection(**options)


@pytest.fixture
def conn(engine):
    connection = connect(engine.api)
    yield connection
    connection.close()


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def host_status(conn, host_id):
    return conn.system_service().hosts_service().host_service(host_id).get().status


def event_codes(conn, **kwargs):
    return [e.code for e in conn.system_service().events_service().list(**kwargs)]


def raw_request(api, method, path, *, token=None, body=None, headers=None):
    """A plain HTTPS request (what ansible's `uri` module sends); returns (status, body, type)."""
    context = ssl.create_default_context(cafile=api.ca_file)
    base = api.url.split("/ovirt-engine/api")[0]
    request = urllib.request.Request(base + path, data=body, method=method,
                                     headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers["Content-Type"]


def sso_token(api):
    form = urllib.parse.urlencode({"grant_type": "password", "scope": "ovirt-app-api",
                                   "username": api.username, "password": api.password}).encode()
    status, body, content_type = raw_request(
        api, "POST", "/ovirt-engine/sso/oauth/token", body=form,
        headers={"Accept": "application/json",
                 "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and content_type.startswith("application/json")
    reply = json.loads(body)
    assert reply["token_type"] == "bearer" and int(reply["exp"]) > time.time() * 1000
    return reply["access_token"]


# ---- connection and authentication --------------------------------------

def test_it_connects_and_reports_the_lab_engine_version(engine, backend, conn):
    assert conn.test(raise_exception=True)
    info = conn.system_service().get().product_info
    assert (info.version.major, info.version.minor, info.version.build) == (4, 5, 7)
    assert info.version.full_version.startswith("4.5.7")
    # The lab's engine-setup changes the version the API reports (a 3.x engine
    # would speak API v3 only: test_release_3x covers that).
    backend.engine_version = "4.3"
    version = conn.system_service().get().product_info.version
    assert (version.major, version.minor) == (4, 3)


def test_it_raises_auth_error_for_a_wrong_password(engine):
    bad = connect(engine.api, password="wrong")
    with pytest.raises(sdk.AuthError, match="incorrect"):
        bad.system_service().get()


def test_it_answers_401_without_a_token_and_accepts_the_sso_token(engine):
    assert raw_request(engine.api, "GET", "/ovirt-engine/api/hosts")[0] == 401
    token = sso_token(engine.api)
    status, body, content_type = raw_request(engine.api, "GET", "/ovirt-engine/api/hosts",
                                             token=token)
    assert status == 200 and content_type.startswith("application/xml") and "<hosts>" in body
    # After sso-logout the same token no longer works.
    form = urllib.parse.urlencode({"scope": "ovirt-app-api", "token": token}).encode()
    assert raw_request(engine.api, "POST", "/ovirt-engine/services/sso-logout", body=form)[0] == 200
    assert raw_request(engine.api, "GET", "/ovirt-engine/api", token=token)[0] == 401


def test_it_fails_tls_verification_with_another_ca(engine, tmp_path):
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_ca, _, _ = ensure_certificates(other_dir, "127.0.0.1")
    stranger = connect(engine.api, ca_file=str(other_ca))
    with pytest.raises(sdk.Error, match="(?i)certificate|SSL"):
        stranger.system_service().get()


# ---- hosts ---------------------------------------------------------------

def test_it_lists_hosts_and_adds_hosted_engine_only_with_all_content(engine, backend, conn):
    hosts_service = conn.system_service().hosts_service()
    hosts = hosts_service.list()
    assert [h.name for h in hosts] == ["he1", "he2", "he3"]
    assert all(h.status == types.HostStatus.UP for h in hosts)
    assert all(h.hosted_engine is None for h in hosts)
    assert hosts[0].cluster.id == hosts_service.list(search="name=he2")[0].cluster.id

    backend.hosts["he3"].update(score=1800, local_maintenance=False, live=False)
    full = {h.name: h for h in hosts_service.list(all_content=True)}
    he = full["he3"].hosted_engine
    assert (he.score, he.active, he.configured, he.local_maintenance) == (1800, False, True, False)
    assert full["he1"].hosted_engine.score == 3400 and full["he1"].summary.active == 1


def test_it_searches_hosts_like_the_cluster_upgrade_role(engine, backend, conn):
    hosts_service = conn.system_service().hosts_service()

    def names(query):
        return [h.name for h in hosts_service.list(search=query)]

    assert names("name=he2") == ["he2"]
    assert names("name=he*  and status=up") == ["he1", "he2", "he3"]
    assert names("name=he1 or name=he3") == ["he1", "he3"]
    assert names("cluster=Default update_available=true name=* status=up") == []
    assert names("cluster=Other") == []
    backend.hosts["he3"]["reachable"] = False
    assert names("status=nonresponsive") == ["he3"]
    assert host_status(conn, engine.ids["he3"]) == types.HostStatus.NON_RESPONSIVE
    # Host monitoring logs it once.
    wait_for(lambda: event_codes(conn, search="type=12"), what="event 12")
    with pytest.raises(sdk.Error) as error:
        hosts_service.list(search="colour=blue")
    assert error.value.code == 400


def test_it_moves_the_engine_vm_away_on_deactivate_and_activates_again(engine, backend, conn):
    he1 = engine.ids["he1"]
    host_service = conn.system_service().hosts_service().host_service(he1)
    last = conn.system_service().events_service().list(max=1)[0].id

    backend.hold_migration = True
    host_service.deactivate(reason="kernel update")
    # The POST returns while the migration runs, as with the real engine.
    assert host_status(conn, he1) == types.HostStatus.PREPARING_FOR_MAINTENANCE
    backend.hold_migration = False
    wait_for(lambda: host_status(conn, he1) == types.HostStatus.MAINTENANCE, what="maintenance")
    assert backend.vm_host in ("he2", "he3")
    assert backend.hosts["he1"]["local_maintenance"] is True
    codes = event_codes(conn, from_=int(last))
    assert {67, 63, 15, 600} <= set(codes)
    reason = conn.system_service().events_service().list(from_=int(last), search="type=600")[0]
    assert "kernel update" in reason.description and reason.host.id == he1

    backend.clock.speed = 10  # slow enough to see the short unassigned phase (0.5 s)
    host_service.activate()
    assert host_status(conn, he1) == types.HostStatus.UNASSIGNED
    wait_for(lambda: host_status(conn, he1) == types.HostStatus.UP, what="up")
    assert backend.hosts["he1"]["local_maintenance"] is False
    assert 16 in event_codes(conn, from_=int(last))


def test_it_refuses_deactivate_when_no_other_host_can_run_the_engine_vm(engine, backend, conn):
    backend.hosts["he2"]["local_maintenance"] = True
    backend.hosts["he3"]["score"] = 0
    host_service = conn.system_service().hosts_service().host_service(engine.ids["he1"])
    with pytest.raises(sdk.Error, match="None of the hosts capable of running the engine VM has "
                                        "score more than 0 and is in Up state") as error:
        host_service.deactivate()
    assert error.value.code == 409
    assert error.value.fault.reason == "Operation Failed"
    assert host_status(conn, engine.ids["he1"]) == types.HostStatus.UP
    # A host without the engine VM may still go to maintenance.
    conn.system_service().hosts_service().host_service(engine.ids["he2"]).deactivate()
    wait_for(lambda: host_status(conn, engine.ids["he2"]) == types.HostStatus.MAINTENANCE)
    assert backend.vm_host == "he1"


# ---- clusters ------------------------------------------------------------

def test_it_adds_a_cluster_and_updates_its_compatibility_version(engine, conn):
    clusters_service = conn.system_service().clusters_service()
    added = clusters_service.add(types.Cluster(
        name="el7", version=types.Version(major=4, minor=6),
        data_center=types.DataCenter(name="Default")))
    assert added.id and (added.version.major, added.version.minor) == (4, 6)
    assert [c.name for c in clusters_service.list(search="name=el7")] == ["el7"]

    service = clusters_service.cluster_service(added.id)
    updated = service.update(types.Cluster(version=types.Version(major=4, minor=7)))
    assert (updated.version.major, updated.version.minor) == (4, 7)
    assert service.get().version.minor == 7
    # 4.5 engines offer cluster levels up to 4.7.
    with pytest.raises(sdk.Error, match="not supported") as error:
        service.update(types.Cluster(version=types.Version(major=4, minor=8)))
    assert error.value.code == 409
    with pytest.raises(sdk.Error, match="already in use"):
        clusters_service.add(types.Cluster(name="el7",
                                           data_center=types.DataCenter(name="Default")))


def test_it_raises_the_cluster_level_only_after_the_engine_is_upgraded(engine, backend, tmp_path):
    old = FakeBackend()
    old.engine_version = "4.3"
    server = EngineThread(old, tmp_path / "old")
    try:
        connection = connect(server.api)
        default = connection.system_service().clusters_service().list()[0]
        assert (default.version.major, default.version.minor) == (4, 3)
        service = connection.system_service().clusters_service().cluster_service(default.id)
        with pytest.raises(sdk.Error, match="not supported"):
            service.update(types.Cluster(version=types.Version(major=4, minor=7)))
        old.engine_version = "4.5"  # engine-setup ran in the engine VM (howto step 10)
        updated = service.update(types.Cluster(version=types.Version(major=4, minor=7)))
        assert updated.version.minor == 7
        connection.close()
    finally:
        server.stop()


def test_a_cluster_with_hosts_is_not_lowered_nor_raised_above_its_active_hosts(engine, backend,
                                                                                conn):
    clusters = conn.system_service().clusters_service()
    default = clusters.list(search="name=Default")[0]
    service = clusters.cluster_service(default.id)
    with pytest.raises(sdk.Error, match="decrease the Compatibility Version"):
        service.update(types.Cluster(version=types.Version(major=4, minor=6)))
    empty = clusters.add(types.Cluster(name="old", version=types.Version(major=4, minor=2),
                                       data_center=types.DataCenter(name="Default")))
    assert clusters.cluster_service(empty.id).update(
        types.Cluster(version=types.Version(major=4, minor=1))).version.minor == 1
    # he3's vdsm supports level 4.3 only; moved into "old" and active there
    backend.hosts["he3"]["cluster_level"] = (4, 3)
    engine.call(lambda: engine.api._engine.store.host(engine.ids["he3"]).update(cluster=empty.id))
    old = clusters.cluster_service(empty.id)
    assert old.update(types.Cluster(version=types.Version(major=4, minor=3))).version.minor == 3
    with pytest.raises(sdk.Error, match="active Hosts with lower version"):
        old.update(types.Cluster(version=types.Version(major=4, minor=7)))


def test_a_3_x_engine_has_no_sso_and_answers_api_v3_with_basic_auth(tmp_path):
    old = FakeBackend()
    old.engine_version = "3.6"
    server = EngineThread(old, tmp_path / "old")
    try:
        form = urllib.parse.urlencode({"grant_type": "password", "scope": "ovirt-app-api",
                                       "username": server.api.username,
                                       "password": server.api.password}).encode()
        status, _, content_type = raw_request(server.api, "POST", "/ovirt-engine/sso/oauth/token",
                                              body=form)
        assert (status, content_type.split(";")[0]) == (404, "text/html")
        with pytest.raises(sdk.Error, match="isn't the expected JSON"):
            connect(server.api).test(raise_exception=True)
        import base64
        basic = base64.b64encode(f"{server.api.username}:{server.api.password}".encode()).decode()
        status, body, _ = raw_request(server.api, "GET", "/ovirt-engine/api",
                                      headers={"Authorization": f"Basic {basic}"})
        assert status == 200
        assert '<version major="3" minor="6" build="7" revision="5"' in body
    finally:
        server.stop()


def test_it_toggles_cluster_upgrade_mode_over_xml(engine, conn):
    default = conn.system_service().clusters_service().list(search="name=Default")[0]
    service = conn.system_service().clusters_service().cluster_service(default.id)
    assert service.get().upgrade_in_progress is False
    service.upgrade(upgrade_action=types.ClusterUpgradeAction.START)
    assert service.get().upgrade_in_progress is True
    service.upgrade(upgrade_action=types.ClusterUpgradeAction.UPDATE_PROGRESS,
                    upgrade_percent_complete=40)
    assert service.get().upgrade_percent_complete == 40
    with pytest.raises(sdk.Error, match="already upgrading"):
        service.upgrade(upgrade_action=types.ClusterUpgradeAction.START)
    service.upgrade(upgrade_action=types.ClusterUpgradeAction.FINISH)
    assert service.get().upgrade_in_progress is False


def test_it_accepts_the_cluster_upgrade_role_json_posts(engine, conn):
    default = conn.system_service().clusters_service().list()[0]
    token = sso_token(engine.api)
    path = f"/ovirt-engine/api/clusters/{default.id}/upgrade"
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "Correlation-Id": "upgrade-42"}

    status, body, content_type = raw_request(
        engine.api, "POST", path, token=token, headers=headers,
        body=json.dumps({"upgrade_action": "start"}).encode())
    assert status == 200 and content_type.startswith("application/json")
    assert json.loads(body)["status"] == "complete"
    cluster = conn.system_service().clusters_service().cluster_service(default.id).get()
    assert cluster.upgrade_in_progress is True and cluster.upgrade_correlation_id == "upgrade-42"

    status, body, _ = raw_request(engine.api, "POST", path, token=token, headers=headers,
                                  body=json.dumps({"upgrade_action": "start"}).encode())
    assert status == 409 and "already upgrading" in json.loads(body)["detail"]
    status, _, _ = raw_request(engine.api, "POST", path, token=token, headers=headers,
                               body=json.dumps({"upgrade_action": "finish"}).encode())
    assert status == 200
    assert conn.system_service().clusters_service().cluster_service(
        default.id).get().upgrade_in_progress is False


# ---- the HostedEngine VM -------------------------------------------------

def test_it_shows_and_migrates_the_hosted_engine_vm(engine, backend, conn):
    vms_service = conn.system_service().vms_service()
    [vm] = vms_service.list(search="name=HostedEngine")
    assert vm.status == types.VmStatus.UP and vm.origin == "managed_hosted_engine"
    assert vm.host.id == engine.ids["he1"]
    assert vm.placement_policy.affinity == types.VmAffinity.MIGRATABLE
    assert vms_service.list(search="name=other") == []

    vm_service = vms_service.vm_service(vm.id)
    backend.hold_migration = True
    vm_service.migrate(host=types.Host(id=engine.ids["he2"]), force=True)
    wait_for(lambda: vm_service.get().status == types.VmStatus.MIGRATING, what="migrating")
    backend.hold_migration = False
    wait_for(lambda: vm_service.get().host.id == engine.ids["he2"], what="migration")
    assert backend.vm_host == "he2"
    assert {62, 63} <= set(event_codes(conn, search="type=62 or type=63"))

    backend.hosts["he3"]["score"] = 0
    with pytest.raises(sdk.Error, match="did not satisfy internal filter HA") as error:
        vm_service.migrate(host=types.Host(name="he3"))
    assert error.value.code == 409


# ---- upgrades --------------------------------------------------------------

def test_it_checks_for_updates_and_upgrades_a_host_with_reboot(engine, backend, conn):
    he2 = engine.ids["he2"]
    hosts_service = conn.system_service().hosts_service()
    host_service = hosts_service.host_service(he2)
    events = conn.system_service().events_service()
    with pytest.raises(sdk.Error, match="no available updates"):
        host_service.upgrade(reboot=True)

    backend.hosts["he2"]["packages_outdated"] = True
    last = int(events.list(max=1)[0].id)
    host_service.upgrade_check()
    assert 884 in event_codes(conn, from_=last)
    done = wait_for(lambda: events.list(from_=last, search="type=885"), what="event 885")
    assert "found updates" in done[0].description and done[0].host.id == he2
    assert [h.name for h in hosts_service.list(
        search="cluster=Default update_available=true name=* status=up")] == ["he2"]

    seen = set()

    def upgraded():
        seen.add(host_status(conn, he2))
        back = host_status(conn, he2) == types.HostStatus.UP
        return back and 888 in event_codes(conn, from_=last)

    host_service.upgrade(reboot=True, timeout=60)
    wait_for(upgraded, what="upgrade back to up")
    # Maintenance only lasts an instant before installing starts; event 15 shows it.
    assert {types.HostStatus.INSTALLING, types.HostStatus.REBOOT} <= seen
    assert backend.upgrades == [("he2", True)]
    assert host_service.get().update_available is False
    assert backend.hosts["he2"]["local_maintenance"] is False
    codes = event_codes(conn, from_=last)
    assert codes.index(888) < codes.index(840)  # newest first
    assert 15 in codes and 841 not in codes


def test_it_marks_a_failed_upgrade_install_failed(engine, backend, conn):
    async def broken(name, reboot):
        raise LabError("yum: Cannot retrieve repository metadata")

    backend.upgrade_host = broken
    backend.hosts["he3"]["packages_outdated"] = True
    host_service = conn.system_service().hosts_service().host_service(engine.ids["he3"])
    host_service.upgrade_check()
    wait_for(lambda: host_service.get().update_available, what="update_available")
    host_service.upgrade(reboot=False)
    wait_for(lambda: host_status(conn, engine.ids["he3"]) == types.HostStatus.INSTALL_FAILED)
    assert 841 in event_codes(conn, search="type=841")


# ---- faults and outages --------------------------------------------------

def test_it_answers_unknown_things_with_fault_documents(engine, conn):
    with pytest.raises(sdk.NotFoundError) as error:
        conn.system_service().hosts_service().host_service("no-such-id").get()
    assert "Entity not found" in error.value.fault.detail
    with pytest.raises(sdk.NotFoundError) as error:
        conn.system_service().templates_service().list()
    assert error.value.fault.reason == "Not Found"
    token = sso_token(engine.api)
    status, body, content_type = raw_request(engine.api, "DELETE", "/ovirt-engine/api/vms",
                                             token=token)
    assert status == 405 and content_type.startswith("application/xml")
    assert "<reason>Method Not Allowed</reason>" in body


def test_it_answers_503_while_the_engine_vm_is_down(engine, backend, conn):
    assert conn.test()
    backend.healthy = False
    with pytest.raises(sdk.Error, match="text/html"):
        conn.system_service().get()
    # SSO is behind the same Apache: a fresh login fails too.
    with pytest.raises(sdk.Error, match="isn't the expected JSON"):
        connect(engine.api).system_service().get()
    status, body, _ = raw_request(engine.api, "GET", "/ovirt-engine/services/health")
    assert status == 503 and "Service Unavailable" in body

    backend.healthy = True
    # The restarted engine forgot its tokens; the SDK logs in again by itself.
    assert conn.system_service().get().product_info.name == "oVirt Engine"


def test_it_keeps_engine_state_across_a_restart(backend, tmp_path):
    state = tmp_path / "state"
    first = EngineThread(backend, state)
    ids = {name: first.call(first.api.register_host, name, info["address"])
           for name, info in backend.hosts.items()}
    connection = connect(first.api)
    connection.system_service().clusters_service().add(
        types.Cluster(name="el7", data_center=types.DataCenter(name="Default")))
    connection.system_service().hosts_service().host_service(ids["he3"]).deactivate()
    wait_for(lambda: host_status(connection, ids["he3"]) == types.HostStatus.MAINTENANCE)
    last_event = int(connection.system_service().events_service().list(max=1)[0].id)
    ca_pem = open(first.api.ca_file).read()
    password = first.api.password
    first.stop()

    second = EngineThread(backend, state)
    try:
        assert second.call(second.api.register_host, "he3", "127.0.1.3") == ids["he3"]
        assert open(second.api.ca_file).read() == ca_pem and second.api.password == password
        # The old connection's token is still valid on the new port's engine.
        again = connect(second.api)
        assert host_status(again, ids["he3"]) == types.HostStatus.MAINTENANCE
        assert "el7" in [c.name for c in again.system_service().clusters_service().list()]
        new = again.system_service().events_service().list(max=1)[0]
        assert int(new.id) >= last_event
        again.close()
    finally:
        second.stop()


# ---- with the lab's own HA model -------------------------------------------

def test_it_drives_the_lab_ha_model_through_deactivate_and_activate(tmp_path):
    """Deactivating the VM's host moves the VM and the HA agent there ends in local
    maintenance; activating clears it. The backend is lab.cluster.Cluster itself."""
    from lab.cluster import Cluster

    runner = LoopThread()

    async def start():
        cluster = Cluster(str(tmp_path), hosts=3, speed=200)
        cluster.start()
        api = await start_engine_api(cluster, state_dir=tmp_path / "engine")
        for name in cluster.host_names():
            api.register_host(name, cluster.host_info(name)["address"])
        return cluster, api

    cluster, api = runner.run(start())
    try:
        connection = connect(api)
        vm_host = runner.call(cluster.engine_vm_host)
        host = connection.system_service().hosts_service().list(search=f"name={vm_host}")[0]
        host_service = connection.system_service().hosts_service().host_service(host.id)

        host_service.deactivate()
        wait_for(lambda: host_status(connection, host.id) == types.HostStatus.MAINTENANCE,
                 timeout=60, what="maintenance")
        new_host = runner.call(cluster.engine_vm_host)
        assert new_host not in (None, vm_host)
        [vm] = connection.system_service().vms_service().list(search="name=HostedEngine")
        assert vm.host.id != host.id and vm.status == types.VmStatus.UP
        wait_for(lambda: runner.call(cluster.host_info, vm_host)["local_maintenance"],
                 timeout=60, what="HA local maintenance")
        he = host_service.get(all_content=True).hosted_engine
        assert he.local_maintenance is True and he.score == 0

        host_service.activate()
        wait_for(lambda: host_status(connection, host.id) == types.HostStatus.UP, timeout=60)
        wait_for(lambda: not runner.call(cluster.host_info, vm_host)["local_maintenance"],
                 timeout=60, what="local maintenance cleared")
        connection.close()
    finally:
        runner.run(api.stop())
        runner.run(cluster.stop())
        runner.close()


def test_it_serves_the_full_lab_started_by_python_m_lab_up(fresh_lab):
    """`python -m lab up` runs the engine; its manifest entry is all the SDK needs, and
    an SDK deactivate of the VM's host ends with the HA agent there in LocalMaintenance."""
    lab = fresh_lab
    entry = lab.manifest["engine"]
    connection = sdk.Connection(url=entry["url"], username=entry["username"],
                                password=entry["password"], ca_file=entry["ca_file"], timeout=20)
    hosts = connection.system_service().hosts_service().list(all_content=True)
    assert sorted(h.name for h in hosts) == sorted(h["name"] for h in lab.manifest["hosts"])
    assert all(h.hosted_engine.configured for h in hosts)

    [vm] = connection.system_service().vms_service().list(search="name=HostedEngine")
    source = next(h for h in hosts if h.id == vm.host.id)
    connection.system_service().hosts_service().host_service(source.id).deactivate()
    wait_for(lambda: host_status(connection, source.id) == types.HostStatus.MAINTENANCE,
             timeout=600 / lab.speed + 5, what="maintenance")
    [vm] = connection.system_service().vms_service().list(search="name=HostedEngine")
    assert vm.host.id != source.id
    lab.wait_for(lambda s: s["hosts"][source.name]["agent_state"] == "LocalMaintenance",
                 sim_seconds=120)
    assert lab.state()["engine_vm"]["host"] != source.name
    connection.close()


# ---- guest VMs and host maintenance ---------------------------------------

def test_which_guest_vms_keep_a_host_out_of_maintenance(engine, backend, conn):
    """4.x: a "manual migration only" VM blocks the engine's own maintenance (a host
    upgrade); a migratable VM needs another Up host; a host running VMs is not removed."""
    lab_engine = engine.api.engine
    store = lab_engine.store
    he3 = store.host(engine.ids["he3"])
    app = engine.call(lab_engine.add_guest_vm, "app1", he3, "user_migratable")
    he3["update_available"] = True
    hosts = conn.system_service().hosts_service()
    he3_service = hosts.host_service(he3["id"])
    with pytest.raises(sdk.Error, match="The non-migratable VMs are: app1"):
        he3_service.upgrade(reboot=False)
    assert he3_service.get().status == types.HostStatus.UP

    engine.call(lab_engine.set_vm_affinity, app, "migratable")
    for name in ("he1", "he2"):  # no Up host left for the VM to go to
        backend.hosts[name]["reachable"] = False
    with pytest.raises(sdk.Error) as refused:
        he3_service.deactivate()
    assert ("The following Hosts have running VMs and cannot be switched to maintenance mode: "
            "he3.\nPlease ensure that the following Clusters have at least one Host in UP "
            "state: Default.") in str(refused.value)
    he3["status"] = "maintenance"  # as a host gone down with its VMs: not removed
    with pytest.raises(Fault, match="One or more VMs are still running on this Host"):
        engine.call(lab_engine.remove_host, he3)


def test_a_3_x_engine_refuses_maintenance_with_any_vm_that_is_not_migratable(engine, backend):
    """MaintenanceNumberOfVdssCommand of 3.x: every VM other than MIGRATABLE blocks."""
    lab_engine = engine.api.engine
    he2 = lab_engine.store.host(engine.ids["he2"])
    app = engine.call(lab_engine.add_guest_vm, "app1", he2, "user_migratable")
    backend.engine_version = "3.5"
    with pytest.raises(Fault, match="The non-migratable VMs are: app1"):
        engine.call(lab_engine.deactivate, he2)
    backend.engine_version = "4.x"
    engine.call(lab_engine.deactivate, he2)  # an admin's maintenance migrates it
    wait_for(lambda: lab_engine.store.host(he2["id"])["status"] == "maintenance")
    assert app["host"] != he2["id"]
