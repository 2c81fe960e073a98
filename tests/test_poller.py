"""The HA poller against the lab: real SSH, real vm-status output."""
import asyncio
import os
import sys
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError

from heportal.asgi import application
from tests.conftest import Processes, leave_global_maintenance, wait_until
from tests.test_live_output import session_headers
from upgrades.management.commands.ha_poller import parse_shard
from upgrades.models import Cluster, HaSample, Host
from upgrades.poller import ClusterPoller

pytestmark = pytest.mark.django_db(transaction=True)


def hosts_by_name(cluster):
    return {h.name: h for h in Host.objects.filter(cluster=cluster)}


def test_a_poll_updates_hosts_and_stores_samples_only_on_change(lab_cluster):
    poller = ClusterPoller(lab_cluster.pk)
    assert poller.poll() is True
    hosts = hosts_by_name(lab_cluster)
    he1 = hosts["he1.lab.local"]
    assert (he1.ha_state, he1.ha_score, he1.ha_live, he1.engine_vm_here) == ("EngineUp", 3400, True, True)
    assert hosts["he2.lab.local"].ha_state == "EngineDown"
    assert hosts["he2.lab.local"].engine_vm_here is False
    assert Cluster.objects.get(pk=lab_cluster.pk).maintenance_mode == "none"
    assert HaSample.objects.count() == 3
    assert poller.poll() is True
    assert HaSample.objects.count() == 3  # nothing changed: downsampled away
    poller.close()


def test_an_unchanged_host_gets_a_sample_once_its_last_is_a_minute_old(lab_cluster):
    from datetime import timedelta

    from django.db.models import F

    poller = ClusterPoller(lab_cluster.pk)
    poller.poll()
    assert HaSample.objects.count() == 3
    HaSample.objects.update(at=F("at") - timedelta(seconds=50))
    poller.poll()
    assert HaSample.objects.count() == 3  # the last samples are 50 s old
    HaSample.objects.update(at=F("at") - timedelta(seconds=15))
    poller.poll()
    assert HaSample.objects.count() == 6  # 65 s old: one more for each host
    assert sorted(HaSample.objects.values_list("host__name", flat=True)) == sorted(
        ["he1.lab.local", "he2.lab.local", "he3.lab.local"] * 2)
    poller.close()


def test_global_maintenance_reaches_a_websocket_client_within_a_second_of_the_poll(lab, lab_cluster, make_user,
                                                                                   ha_poller):
    """The real `manage.py ha_poller` process, as deployed, pushes the change."""
    from tests.test_engine import wait_for_polled

    user = make_user("viewer")
    headers = session_headers(user)
    client = lab.connect("he2.lab.local")
    try:
        # From no global maintenance (the shared lab may come from a test that left it on):
        # else the page's snapshot already says global and no change follows.
        leave_global_maintenance(lab, client)
        wait_for_polled(lab_cluster)

        async def watch():
            communicator = WebsocketCommunicator(application, f"/ws/clusters/{lab_cluster.pk}/", headers=headers)
            connected, _ = await communicator.connect()
            assert connected
            snapshot = await communicator.receive_json_from(timeout=5)
            assert snapshot["type"] == "ha.update"
            await asyncio.to_thread(lambda: client.exec_command(
                "hosted-engine --set-maintenance --mode=global")[1].channel.recv_exit_status())
            asked = time.monotonic()
            seen = []
            try:
                while True:
                    try:
                        event = await communicator.receive_json_from(timeout=10)
                    except asyncio.TimeoutError:
                        mode = await asyncio.to_thread(
                            lambda: Cluster.objects.get(pk=lab_cluster.pk).maintenance_mode)
                        pytest.fail(f"no global maintenance pushed in 10 s; seen {seen}; database says {mode}")
                    seen.append(event["maintenance_mode"])
                    if event["maintenance_mode"] == "global":
                        return event, time.monotonic() - asked
            finally:
                await communicator.disconnect()

        event, elapsed = asyncio.run(watch())
        # The agents react within one loop, the poller within one interval, the push at once.
        assert elapsed < 2 * lab_cluster.poll_interval + 1.0
        assert Cluster.objects.get(pk=lab_cluster.pk).maintenance_mode == "global"
        assert {h["name"] for h in event["hosts"]} == {"he1.lab.local", "he2.lab.local", "he3.lab.local"}
    finally:
        leave_global_maintenance(lab, client)
        client.close()


def test_one_unreachable_host_does_not_stop_the_clusters_polling(fresh_lab_cluster):
    poller = ClusterPoller(fresh_lab_cluster.pk, timeout=3)
    assert poller.poll()
    first = poller.session_host_id
    first_name = Host.objects.get(pk=first).name
    fresh_lab_cluster.lab.fault("disconnect-host", host=first_name)
    assert poller.poll() is True
    assert poller.session_host_id != first
    cluster = Cluster.objects.get(pk=fresh_lab_cluster.pk)
    assert cluster.poll_error == ""


def test_when_no_host_answers_the_cluster_says_why_and_keeps_last_values(fresh_lab_cluster):
    poller = ClusterPoller(fresh_lab_cluster.pk, timeout=3)
    assert poller.poll()
    for host in Host.objects.filter(cluster=fresh_lab_cluster):
        fresh_lab_cluster.lab.fault("disconnect-host", host=host.name)
    assert poller.poll() is False
    cluster = Cluster.objects.get(pk=fresh_lab_cluster.pk)
    assert cluster.poll_error.startswith("no host answered: ")
    assert "he1.lab.local" in cluster.poll_error
    assert Host.objects.get(cluster=cluster, name="he1.lab.local").ha_score == 3400


def test_shard_argument_is_checked():
    assert parse_shard("1/2") == (1, 2)
    with pytest.raises(CommandError, match="expected I/N"):
        parse_shard("two")
    with pytest.raises(CommandError, match="between 0 and N-1"):
        parse_shard("2/2")


def block(host_id, name, live, score, state):
    """One host's block of ``hosted-engine --vm-status --json``, the engine VM down."""
    return {"host-id": host_id, "hostname": name, "live-data": live, "score": score,
            "engine-status": {"vm": "down", "health": "bad", "detail": "unknown", "reason": "vm not running"},
            "maintenance": False, "stopped": False, "host-ts": 100, "conf_on_shared_storage": True,
            "local_conf_timestamp": 100, "crc32": "0", "extra": f"state={state}\n"}


@pytest.mark.django_db
def test_a_host_deployed_again_under_a_new_id_is_read_from_its_live_block_not_its_old_one():
    """After a reinstall the whiteboard holds the old, stale block under the same name."""
    import json

    from tests.factories import make_cluster, make_host
    from upgrades.ha import apply_vm_status
    from upgrades.remote.vmstatus import parse_vm_status

    cluster = make_cluster()
    make_host(cluster, name="he1.lab.local", he_host_id=1)
    make_host(cluster, name="he2.lab.local", he_host_id=2)

    text = json.dumps({"1": block(1, "he1.lab.local", False, 3400, "EngineDown"),
                       "2": block(2, "he2.lab.local", True, 3400, "EngineUp"),
                       "3": block(3, "he1.lab.local", True, 2400, "EngineDown"),
                       "global_maintenance": False})
    for _ in range(2):  # the same answer on every poll: no flip-flop between the two blocks
        apply_vm_status(cluster.pk, parse_vm_status(text))
        he1 = Host.objects.get(name="he1.lab.local")
        assert (he1.ha_live, he1.ha_score) == (True, 2400)
    assert Host.objects.get(name="he2.lab.local").ha_state == "EngineUp"


def test_a_poll_is_stored_in_a_few_statements_on_its_own_tables():
    """The models' orderings join the cluster for its name: on every poll of every
    cluster that was a third of the poller's CPU (bench/poll_cost.py). The store reads
    its rows unordered, one statement each, and writes one per host."""
    import json

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import make_cluster, make_host
    from upgrades.ha import apply_vm_status
    from upgrades.remote.vmstatus import parse_vm_status

    cluster = make_cluster()
    for n in (1, 2, 3):
        make_host(cluster, name=f"he{n}.lab.local", he_host_id=n)
    text = json.dumps({str(n): block(n, f"he{n}.lab.local", True, 3400, "EngineDown") for n in (1, 2, 3)}
                      | {"global_maintenance": False})
    apply_vm_status(cluster.pk, parse_vm_status(text))  # the first poll samples every host
    with CaptureQueriesContext(connection) as queries:
        apply_vm_status(cluster.pk, parse_vm_status(text))
    statements = [q["sql"] for q in queries.captured_queries if q["sql"] not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT")]
    assert not [sql for sql in statements if " JOIN " in sql or " ORDER BY " in sql], statements
    # the cluster locked and written, its hosts and recent samples read, one update per host
    assert len(statements) == 4 + 3, statements


def test_a_host_removed_while_a_poll_of_its_cluster_is_stored_goes_with_that_polls_samples(make_user):
    """The poll's store inserts a sample of the host; the admin's removal, in between,
    collected the host's samples before that commit and deleted the host after it:
    PostgreSQL's foreign key check then failed the removal (a CI run met it)."""
    import json
    import threading

    from django.db import connection, transaction

    from tests.factories import make_cluster, make_host
    from upgrades import services
    from upgrades.ha import apply_vm_status
    from upgrades.remote.vmstatus import parse_vm_status

    cluster = make_cluster()
    hosts = [make_host(cluster, name=f"he{n}.lab.local", he_host_id=n) for n in (1, 2, 3)]
    text = json.dumps({str(n): block(n, f"he{n}.lab.local", True, 3400, "EngineDown") for n in (1, 2, 3)}
                      | {"global_maintenance": False})
    stored, release, failed = threading.Event(), threading.Event(), []

    def poll():  # the poller's store, its commit held back until the removal has begun
        try:
            with transaction.atomic():
                apply_vm_status(cluster.pk, parse_vm_status(text))  # the first poll samples every host
                stored.set()
                release.wait(10)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            failed.append(exc)
        finally:
            connection.close()

    poller = threading.Thread(target=poll)
    poller.start()
    assert stored.wait(10)
    threading.Timer(1.0, release.set).start()
    names = services.remove_hosts(user=make_user("admin"), cluster=cluster, host_ids=[hosts[2].pk])
    poller.join(10)
    assert not failed and names == ["he3.lab.local"]
    assert not Host.objects.filter(pk=hosts[2].pk).exists()
    assert not HaSample.objects.filter(host_id=hosts[2].pk).exists()
    assert HaSample.objects.filter(host__cluster=cluster).count() == 2


def test_a_newly_detected_release_reaches_the_home_pages_without_an_ha_change():
    """An upgrade's end changes the release while every score stays the same."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from tests.factories import make_polled_cluster
    from upgrades import events
    from upgrades.ha import record_release

    cluster = make_polled_cluster()
    release = "oVirt 4.5 (ovirt-hosted-engine-setup-2.7.1)"

    async def listen():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.HOME_GROUP, channel)
        for _ in range(2):  # the second time the release is the same: nothing is sent
            await sync_to_async(record_release)(cluster.pk, release)
        # A marker sent after both: whatever came before it is all there was (no receive
        # is cut by a timeout: a cancelled receive leaves channels_redis's lock held).
        await sync_to_async(events.send_now)(events.HOME_GROUP, {"type": "marker"})
        got = []
        while not got or got[-1]["type"] != "marker":
            got.append(await layer.receive(channel))
        return got[:-1]

    got = asyncio.run(asyncio.wait_for(listen(), 30))
    assert [(n["type"], n["cluster"]) for n in got] == [("home.changed", cluster.pk)]
    assert Cluster.objects.get(pk=cluster.pk).detected_release == release


def vm_status_in_flight(lab_pid):
    """How many `--vm-status` commands the lab's hosts are running now: each runs in a
    sandbox (bwrap) under the lab's process; counted once per sandbox, at its top."""
    parent, cmdline = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline[int(entry)] = f.read()
        except OSError:  # it ended meanwhile
            continue
        parent[int(entry)] = int(stat[stat.rfind(")") + 2:].split()[1])

    def under_lab(pid):
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == lab_pid:
                return True
        return False

    return sum(1 for pid, line in cmdline.items()
               if b"--vm-status" in line and b"--vm-status" not in cmdline.get(parent[pid], b"")
               and under_lab(pid))


def database_connections(pid):
    """How many connections to the test database process ``pid`` holds: its open files
    on the SQLite database, or its sockets that PostgreSQL lists as this database's clients."""
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    fds = f"/proc/{pid}/fd"
    links = []
    for fd in os.listdir(fds):
        try:
            links.append(os.readlink(f"{fds}/{fd}"))
        except OSError:
            continue
    if db["ENGINE"].endswith("sqlite3"):
        return links.count(str(db["NAME"]))
    sockets = {link[len("socket:["):-1] for link in links if link.startswith("socket:[")}
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[9] in sockets:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_port FROM pg_stat_activity WHERE datname = current_database()")
        return sum(1 for (port,) in cursor.fetchall() if port in ports)


@pytest.mark.slow
@pytest.mark.lab(speed=0.5)
@pytest.mark.django_db(transaction=True)
def test_a_shard_keeps_as_many_polls_in_flight_as_its_clusters_need(fresh_lab, tmp_path):
    """`--vm-status` takes a while on a host (2 s in this lab): a poller that ran at most
    16 polls at once polled at most 8 clusters a second here (160 every 10 s at a second
    a poll, whatever the machine). 32 clusters polled every 2 s keep about 32 in flight,
    and a poll holds no database connection while it waits: 32 would exhaust a
    PostgreSQL's max_connections (100) with four such pollers."""
    from upgrades import services

    password_file = tmp_path / "engine-password"
    password_file.write_text(fresh_lab.manifest["engine"]["password"])
    ids = [services.import_cluster(name=f"C{n:02d}", engine=fresh_lab.manifest["engine"],
                                   password_file=str(password_file), hosts=fresh_lab.manifest["hosts"],
                                   poll_interval=2).pk for n in range(32)]
    procs = Processes(tmp_path)
    procs.start("ha_poller", [sys.executable, "manage.py", "ha_poller"])
    peak, connections = 0, 0
    try:
        wait_until(lambda: Cluster.objects.filter(pk__in=ids, polled_at__isnull=False).count() == len(ids),
                   60, "every cluster's first poll")
        end = time.monotonic() + 8  # four intervals
        while time.monotonic() < end:
            peak = max(peak, vm_status_in_flight(fresh_lab.process.pid))
            connections = max(connections, database_connections(procs.procs[0][1].pid))
            time.sleep(0.02)
        procs.check_alive()
    finally:
        procs.stop()
    assert peak > 16, f"at most {peak} `--vm-status` at once for 32 clusters polled every 2 s"
    # Stores, the engine's reads and the loop's own (37-40 when each poll held one throughout).
    assert connections < 16, f"{connections} database connections held at once with {peak} polls in flight"
