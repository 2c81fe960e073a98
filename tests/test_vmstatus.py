"""vm-status parser: the facts-file samples, real-world variants, and arbitrary input.

Fixtures under tests/data/vm_status/ are full outputs in the shapes of
docs ovirt-facts §9; the renderer below writes the same shapes from random
data so the round-trip property covers values the fixtures do not.
"""
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upgrades.remote.vmstatus import HostStatus, VmStatus, VmStatusParseError, parse_vm_status

BASE_DIR = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "vm_status"
BANNER = "!! Cluster is in GLOBAL MAINTENANCE mode !!"
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sample(name):
    return (DATA / name).read_text()


def parse_or_reject(text):
    """Parse, allowing only VmStatusParseError; check what comes back is well formed."""
    try:
        status = parse_vm_status(text)
    except VmStatusParseError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        return None
    assert isinstance(status, VmStatus)
    assert isinstance(status.global_maintenance, bool)
    ids = [h.host_id for h in status.hosts]
    assert ids == sorted(set(ids))
    for host in status.hosts:
        assert isinstance(host, HostStatus)
        assert isinstance(host.host_id, int) and isinstance(host.hostname, str) and host.hostname
        assert host.score is None or isinstance(host.score, int)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in host.extra.items())
    json.dumps(status.to_dict())  # the command prints this; it must always serialise
    return status


# --- the facts-file samples ---------------------------------------------------


def test_it_reads_the_three_host_plain_example():
    status = parse_vm_status(sample("plain_three_hosts.txt"))
    assert status.global_maintenance is False
    he1, he2, he3 = status.hosts
    assert he1 == HostStatus(
        host_id=1,
        hostname="he1.example.com",
        score=3400,
        state="EngineUp",
        up_to_date=True,
        local_maintenance=False,
        stopped=False,
        engine_vm="up",
        health="good",
        engine_detail="Up",
        engine_reason=None,
        host_timestamp=3871245,
        local_conf_timestamp=3871245,
        crc32="5c1f0e9a",
        conf_on_shared_storage=True,
        extra={
            "metadata_parse_version": "1",
            "metadata_feature_version": "1",
            "timestamp": "3871245 (Tue Mar  5 10:15:42 2024)",
            "host-id": "1",
            "score": "3400",
            "vm_conf_refresh_time": "3871245 (Tue Mar  5 10:15:42 2024)",
            "conf_on_shared_storage": "True",
            "maintenance": "False",
            "state": "EngineUp",
            "stopped": "False",
        },
    )
    # he2: healthy, VM elsewhere
    assert (he2.hostname, he2.score, he2.state) == ("he2.example.com", 3400, "EngineDown")
    assert (he2.engine_vm, he2.health, he2.engine_detail) == ("down", "bad", "unknown")
    assert he2.engine_reason == "vm not running on this host"
    # he3: local maintenance scores 0
    assert (he3.score, he3.local_maintenance, he3.state) == (0, True, "LocalMaintenance")
    assert he3.extra["maintenance"] == "True"
    assert status.engine_host() is he1
    assert status.host(3) is he3 and status.host(4) is None


def test_it_reads_the_json_example_in_global_maintenance():
    status = parse_vm_status(sample("json_global_maintenance.json"))
    assert status.global_maintenance is True
    assert [h.host_id for h in status.hosts] == [1, 2, 3]
    assert {h.state for h in status.hosts} == {"GlobalMaintenance"}
    assert [h.score for h in status.hosts] == [3400, 3400, 3400]
    he1 = status.hosts[0]
    assert (he1.engine_vm, he1.health, he1.engine_detail, he1.up_to_date) == ("up", "good", "Up", True)
    # extra stays one string in JSON; it is split like the plain lines
    assert he1.extra["timestamp"] == "3871245 (Tue Mar  5 10:15:42 2024)"
    assert status.engine_host().hostname == "he1.example.com"


@pytest.mark.parametrize(
    "plain, as_json",
    [
        ("plain_three_hosts.txt", "json_three_hosts.json"),
        ("plain_global_maintenance.txt", "json_global_maintenance.json"),
    ],
)
def test_plain_and_json_of_the_same_cluster_read_the_same(plain, as_json):
    assert parse_vm_status(sample(plain)).to_dict() == parse_vm_status(sample(as_json)).to_dict()


def test_the_banner_sets_global_maintenance():
    status = parse_vm_status(sample("plain_global_maintenance.txt"))
    assert status.global_maintenance is True
    assert len(status.hosts) == 3
    # printed only once (older builds) is enough
    text = sample("plain_global_maintenance.txt")
    once = text[: text.rindex(BANNER)]
    assert parse_vm_status(once).global_maintenance is True
    assert parse_vm_status(once.replace(BANNER, "")).global_maintenance is False


def test_it_reads_a_stale_host_as_unknown():
    status = parse_vm_status(sample("plain_stale_host.txt"))
    he2 = status.host(2)
    assert he2.up_to_date is False
    engine = (he2.engine_vm, he2.health, he2.engine_detail, he2.engine_reason)
    assert engine == ("unknown", "unknown", None, "stale-data")
    # the frozen values are still reported
    assert (he2.score, he2.state, he2.host_timestamp) == (3400, "EngineDown", 1804233)
    assert status.host(1).up_to_date is True
    assert status.engine_host().host_id == 1


def test_json_stale_host_frozen_engine_status_is_not_trusted():
    # JSON keeps a dead host's last engine status ("up" here); only live-data says it is stale.
    status = parse_vm_status(sample("json_stale_host.json"))
    assert [h.host_id for h in status.hosts] == [1, 2]  # sorted, whatever the key order
    he2 = status.host(2)
    assert he2.up_to_date is False
    # reported as printed; up_to_date says not to trust it
    assert (he2.engine_vm, he2.health) == ("up", "good")
    assert he2.engine_up is False
    assert status.engine_host().host_id == 1


def test_it_reads_the_old_header_and_field_order():
    # oVirt 3.5/3.6: "--== Host 1 status ==--", fields and engine keys in dict order,
    # lower-case detail, no conf_on_shared_storage/local_conf_timestamp.
    status = parse_vm_status(sample("plain_old_header.txt"))
    he1, he2 = status.hosts
    assert (he1.host_id, he1.hostname, he1.score, he1.host_timestamp) == (1, "he1.example.com", 3400, 68734)
    assert (he1.engine_vm, he1.health, he1.engine_reason) == ("down", "bad", "vm not running on this host")
    assert (he2.engine_vm, he2.health, he2.engine_detail, he2.score) == ("up", "good", "up", 2400)
    assert he1.conf_on_shared_storage is None and he1.local_conf_timestamp is None
    assert status.engine_host() is he2


# --- tolerated variants -------------------------------------------------------


def test_crlf_and_trailing_whitespace_read_the_same():
    text = sample("plain_three_hosts.txt")
    messy = "\r\n".join(line + " \t " for line in text.splitlines()) + "\r\n"
    assert parse_vm_status(messy).to_dict() == parse_vm_status(text).to_dict()
    assert parse_vm_status("\ufeff" + messy).to_dict() == parse_vm_status(text).to_dict()
    assert parse_vm_status(text.replace("\n", "\r")).to_dict() == parse_vm_status(text).to_dict()


def test_extra_metadata_that_lost_its_tabs_still_reads():
    text = sample("plain_three_hosts.txt")
    assert parse_vm_status(text.replace("\t", "")).to_dict() == parse_vm_status(text).to_dict()
    assert parse_vm_status(text.replace("\t", "    ")).to_dict() == parse_vm_status(text).to_dict()


def test_unknown_fields_are_ignored_and_unknown_extra_keys_kept():
    text = sample("plain_three_hosts.txt").replace(
        "Score                              : 3400\n",
        "Score                              : 3400\nFirst update                       : True\nSome new field : a: b\n",
    ).replace("\tstopped=False", "\tstopped=False\n\ttimeout=Tue Mar  5 10:20:42 2024")
    status = parse_vm_status(text)
    assert status.host(1).score == 3400
    assert status.host(1).extra["timeout"] == "Tue Mar  5 10:20:42 2024"
    data = json.loads(sample("json_three_hosts.json"))
    data["1"]["new-key"] = [1, 2]
    data["cluster-extra"] = {"x": 1}
    assert parse_vm_status(json.dumps(data)).to_dict() == parse_vm_status(sample("json_three_hosts.json")).to_dict()


def drop_lines(text, *labels):
    return "\n".join(line for line in text.splitlines() if not line.startswith(labels))


def test_missing_optional_fields_fall_back_or_stay_empty():
    text = drop_lines(
        sample("plain_three_hosts.txt"),
        "crc32",
        "conf_on_shared_storage",
        "local_conf_timestamp",
        "Status up-to-date",
        "Host timestamp",
        "Score",
        "Local maintenance",
        "stopped",
        "Host ID",
    )
    he3 = parse_vm_status(text).host(3)
    assert he3.crc32 is None and he3.conf_on_shared_storage is None and he3.local_conf_timestamp is None
    assert he3.up_to_date is True  # not stale-data, nothing says otherwise
    # these come from the extra metadata and the header instead
    assert (he3.host_id, he3.score, he3.host_timestamp) == (3, 0, 2210967)
    assert (he3.local_maintenance, he3.stopped) == (True, False)


def test_header_gives_the_hostname_when_the_field_is_missing():
    status = parse_vm_status(drop_lines(sample("plain_three_hosts.txt"), "Hostname"))
    assert [h.hostname for h in status.hosts] == ["he1.example.com", "he2.example.com", "he3.example.com"]


def test_host_is_alive_from_the_oldest_builds_marks_stale():
    text = sample("plain_old_header.txt")
    text = text.replace("Status up-to-date                  : True", "Host is alive : False", 1)
    status = parse_vm_status(text)
    he1 = status.host(1)
    assert (he1.up_to_date, he1.engine_vm) == (False, "down")  # as printed, not trusted
    assert he1.engine_up is False


def test_engine_status_as_a_python_dict_repr_is_read():
    text = sample("plain_old_header.txt").replace(
        '{"health": "good", "vm": "up", "detail": "up"}', "{'health': u'good', 'vm': u'up', 'detail': u'Up'}"
    )
    he2 = parse_vm_status(text).host(2)
    assert (he2.engine_vm, he2.health, he2.engine_detail, he2.engine_reason) == ("up", "good", "Up", None)


def test_lines_before_the_first_host_are_ignored():
    text = "Warning: Permanently added 'he1' to the list of known hosts.\n" + sample("plain_three_hosts.txt")
    assert len(parse_vm_status(text).hosts) == 3


def test_banner_with_no_hosts_is_an_empty_cluster_in_global_maintenance():
    status = parse_vm_status(f"\n\n{BANNER}\n\n\n\n{BANNER}\n")
    assert status.global_maintenance is True and status.hosts == ()
    assert status.engine_host() is None


def test_engine_host_prefers_good_health():
    status = VmStatus(
        False,
        (
            HostStatus(1, "a", engine_vm="up", health="bad"),
            HostStatus(2, "b", engine_vm="up", health="good"),
            HostStatus(3, "c", engine_vm="up", health="good", up_to_date=False),
        ),
    )
    assert status.engine_host().host_id == 2


# --- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty input"),
        (" \r\n\n\t\n", "empty input"),
        (sample("broker_down.txt"), "An error occured while retrieving vm status, please make sure the HA daemon"),
        (
            "An error occured while retrieving vm status, please make sure your storage is reachable.\n",
            "please make sure your storage is reachable",
        ),
        (sample("not_deployed.txt"), "You must run deploy first"),
        (sample("json_broker_down.txt"), "vm-status failed: Cannot connect to the HA daemon, please check the logs."),
        ('{"exception": "Unable to connect"}', "vm-status failed: Unable to connect"),
        ("hello world\n", "no host status found"),
        ("{", "invalid JSON"),
        ('{"1": {"host-id": 1}} trailing', "invalid JSON"),
        ("[]", "expected a JSON object"),
        ('{"1": 3}', "host 1: expected an object"),
        ('{"1": {"hostname": "a", "score": "lots"}}', "host 1 Score is not an integer"),
        ('{"1": {"hostname": "a", "score": true}}', "host 1 Score is not an integer"),
        ('{"1": {"hostname": "a", "maintenance": "maybe"}}', "Local maintenance is not a boolean"),
        ('{"1": {"hostname": "a"}, "global_maintenance": "sometimes"}', "global_maintenance is not a boolean"),
        ('{"1": {"hostname": "a", "engine-status": "on fire"}}', "unreadable Engine status"),
        ('{"1": {"hostname": "a", "extra": 5}}', "extra is not a string"),
        ('{"1": {"score": 1}}', "host 1: no hostname"),
        ('{"1": {"host-id": 2, "hostname": "a"}}', "header says id 1 but Host ID is 2"),
        ("--== Host he1 status ==--\nScore : 1\n", "no host id"),
        ("--== Host 1 status ==--\nHostname : a\n--== Host 1 status ==--\nHostname : b\n", "host id 1 appears twice"),
        ("--== Host a (id: x) status ==--\n", "header is not an integer"),
        ("--== Host 1 status ==--\nHostname : a\nEngine status : " + "{'vm': '" * 1000 + "\n", "too long"),
        ("x" * 8_000_001, "input too large"),
        (12, "expected text"),
    ],
)
def test_it_rejects_unreadable_input_with_a_one_line_reason(text, reason):
    with pytest.raises(VmStatusParseError) as caught:
        parse_vm_status(text)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_bytes_are_decoded_leniently():
    assert len(parse_vm_status(sample("plain_three_hosts.txt").encode() + b"\xff\n").hosts) == 3


def test_pathological_input_fails_fast():
    started = time.monotonic()
    for text in ("[" * 1_000_000, '{"1": ' * 200_000, "--== Host 1 status ==--\n" + "a:" * 2_000_000, "=" * 5_000_000):
        parse_or_reject(text)
    assert time.monotonic() - started < 10


def test_a_large_cluster_parses_quickly():
    cluster = {"global_maintenance": False, "hosts": [make_host(i) for i in range(1, 2001)]}
    text = render_plain(cluster)
    started = time.monotonic()
    status = parse_vm_status(text)
    assert time.monotonic() - started < 5
    assert len(status.hosts) == 2000 and status.host(2000).hostname == "he2000.example.com"
    assert len(parse_vm_status(render_json(cluster)).hosts) == 2000


# --- the management command ------------------------------------------------------


def test_command_prints_the_parsed_json():
    out = io.StringIO()
    call_command("parse_vm_status", str(DATA / "plain_three_hosts.txt"), stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["global_maintenance"] is False
    assert [h["hostname"] for h in printed["hosts"]] == ["he1.example.com", "he2.example.com", "he3.example.com"]
    he1 = printed["hosts"][0]
    for key in ("host_id", "hostname", "score", "state", "up_to_date", "local_maintenance", "engine_vm", "health"):
        assert key in he1
    assert (he1["engine_vm"], he1["health"], he1["state"], he1["score"]) == ("up", "good", "EngineUp", 3400)


def test_command_reads_stdin(monkeypatch):
    raw = sample("json_global_maintenance.json").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    call_command("parse_vm_status", "-", stdout=out)
    assert json.loads(out.getvalue()) == parse_vm_status(raw.decode()).to_dict()


@pytest.mark.parametrize(
    "name, reason",
    [
        ("broker_down.txt", "An error occured while retrieving vm status"),
        ("no-such-file.txt", "cannot read"),
    ],
)
def test_command_fails_with_a_one_line_reason(name, reason):
    with pytest.raises(CommandError) as caught:
        call_command("parse_vm_status", str(DATA / name), stdout=io.StringIO())
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def run_manage(*args, stdin=b""):
    return subprocess.run(
        [sys.executable, "manage.py", "parse_vm_status", *args],
        cwd=BASE_DIR,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_command_in_a_real_process():
    done = run_manage("-", stdin=sample("plain_stale_host.txt").encode())
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == parse_vm_status(sample("plain_stale_host.txt")).to_dict()
    assert printed["hosts"][1]["up_to_date"] is False

    for stdin, args, reason in [
        (sample("broker_down.txt").encode(), ("-",), b"HA daemon is ready and reachable"),
        (b"\xff\xfe garbage \x00\n", ("-",), b"no host status found"),
        (b"", (str(DATA / "missing.txt"),), b"cannot read"),
    ]:
        done = run_manage(*args, stdin=stdin)
        assert done.returncode == 1
        assert done.stdout == b""
        assert reason in done.stderr
        assert done.stderr.strip().count(b"\n") == 0, done.stderr  # one line, no traceback


# --- the formats, rendered from data (facts §9) ----------------------------------

ENGINE_STATUSES = [
    {"vm": "up", "health": "good", "detail": "Up"},
    {"vm": "down", "health": "bad", "detail": "unknown", "reason": "vm not running on this host"},
    {"vm": "up", "health": "bad", "detail": "Powering up", "reason": "bad vm status"},
    {"vm": "up", "health": "bad", "detail": "Up", "reason": "failed liveliness check"},
    {"vm": "up", "health": "good", "detail": "Migration Source"},
    {"vm": "down", "health": "bad", "detail": "Migration Destination", "reason": "bad vm status"},
    {"vm": "down", "health": "bad", "detail": "Down", "reason": "VM migrated away successfully"},
    {
        "vm": "down",
        "health": "bad",
        "detail": "Down",
        "reason": "Storage of VM is locked. Is another host already starting the VM?",
    },
    {"vm": "down_unexpected", "health": "bad", "detail": "Down", "reason": "bad vm status"},
    {"vm": "unknown", "health": "unknown", "detail": "unknown", "reason": "failed to getVmStats"},
    {"vm": "down_missing", "health": "bad", "detail": "unknown"},
]
STATES = [
    "ReinitializeFSM", "EngineDown", "EngineStart", "EngineStarting", "EngineUp", "EngineUpBadHealth",
    "EngineStop", "EngineForceStop", "EngineMaybeAway", "EngineUnexpectedlyDown", "LocalMaintenance",
    "GlobalMaintenance", "UnknownLocalVmState", "AgentStopped",
]  # fmt: skip
CTIMES = ["Tue Mar  5 10:15:42 2024", "Wed Jun 15 09:02:11 2016", "Thu Jan  1 00:00:00 1970"]


def make_host(host_id, **overrides):
    host = {
        "host_id": host_id,
        "hostname": f"he{host_id}.example.com",
        "score": 3400,
        "state": "EngineDown",
        "live": True,
        "local_maintenance": False,
        "stopped": False,
        "engine": ENGINE_STATUSES[1],
        "host_ts": 3871245,
        "local_conf_ts": 3871245,
        "crc32": "5c1f0e9a",
        "conf_on_shared": True,
        "ctime": CTIMES[0],
    }
    return host | overrides


def extra_lines(h):
    stamp = f"{h['host_ts']} ({h['ctime']})"
    return [
        "metadata_parse_version=1",
        "metadata_feature_version=1",
        f"timestamp={stamp}",
        f"host-id={h['host_id']}",
        f"score={h['score']}",
        f"vm_conf_refresh_time={stamp}",
        f"conf_on_shared_storage={h['conf_on_shared']}",
        f"maintenance={h['local_maintenance']}",
        f"state={h['state']}",
        f"stopped={h['stopped']}",
    ]


def render_plain(cluster, *, old_header=False, field_order=None, engine_keys=("vm", "health", "detail", "reason")):
    """hosted-engine --vm-status as vm_status.py prints it: print() of each piece."""
    out = []
    if cluster["global_maintenance"]:
        out += ["", "", BANNER, ""]
    for h in cluster["hosts"]:
        engine = {key: h["engine"][key] for key in engine_keys if key in h["engine"]}
        rows = [
            ("Host ID", h["host_id"]),
            ("Host timestamp", h["host_ts"]),
            ("Score", h["score"]),
            ("Engine status", json.dumps(engine) if h["live"] else "unknown stale-data"),
            ("Hostname", h["hostname"]),
            ("Local maintenance", h["local_maintenance"]),
            ("stopped", h["stopped"]),
            ("crc32", h["crc32"]),
            ("conf_on_shared_storage", h["conf_on_shared"]),
            ("local_conf_timestamp", h["local_conf_ts"]),
            ("Status up-to-date", h["live"]),
        ]
        if field_order:
            rows = [rows[i] for i in field_order]
        name = h["host_id"] if old_header else f"{h['hostname']} (id: {h['host_id']})"
        out += ["", "", f"--== Host {name} status ==--", ""]
        out += [f"{label:35}: {value}" for label, value in rows]
        out.append(f"{'Extra metadata (valid at timestamp)':35}:")
        out += ["\t" + line for line in extra_lines(h)]
    if cluster["global_maintenance"]:
        out += ["", "", BANNER, ""]
    return "\n".join(out) + "\n"


def render_json(cluster):
    """hosted-engine --vm-status --json: one line; stale hosts keep their engine status."""
    data = {}
    for h in cluster["hosts"]:
        data[str(h["host_id"])] = {
            "host-id": h["host_id"],
            "host-ts": h["host_ts"],
            "score": h["score"],
            "engine-status": h["engine"],
            "hostname": h["hostname"],
            "maintenance": h["local_maintenance"],
            "stopped": h["stopped"],
            "crc32": h["crc32"],
            "conf_on_shared_storage": h["conf_on_shared"],
            "local_conf_timestamp": h["local_conf_ts"],
            "extra": "\n".join(extra_lines(h)) + "\n",
            "live-data": h["live"],
        }
    data["global_maintenance"] = cluster["global_maintenance"]
    return json.dumps(data) + "\n"


def expected_dict(cluster, plain=True):
    """What the parser reports: the engine status as printed, which plain output replaces
    with "unknown stale-data" for a stale host and --json does not."""
    hosts = []
    for h in sorted(cluster["hosts"], key=lambda h: h["host_id"]):
        engine = h["engine"]
        live = h["live"] or not plain
        hosts.append(
            {
                "host_id": h["host_id"],
                "hostname": h["hostname"],
                "score": h["score"],
                "state": h["state"],
                "up_to_date": h["live"],
                "local_maintenance": h["local_maintenance"],
                "stopped": h["stopped"],
                "engine_vm": engine["vm"] if live else "unknown",
                "health": engine["health"] if live else "unknown",
                "engine_detail": engine["detail"] if live else None,
                "engine_reason": engine.get("reason") if live else "stale-data",
                "host_timestamp": h["host_ts"],
                "local_conf_timestamp": h["local_conf_ts"],
                "crc32": h["crc32"],
                "conf_on_shared_storage": h["conf_on_shared"],
                "extra": dict(line.split("=", 1) for line in extra_lines(h)),
            }
        )
    return {"global_maintenance": cluster["global_maintenance"], "hosts": hosts}


hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True)


@st.composite
def clusters(draw):
    ids = draw(st.lists(st.integers(1, 2000), min_size=1, max_size=5, unique=True))
    hosts = [
        make_host(
            host_id,
            hostname=draw(hostnames),
            score=draw(st.integers(0, 3400)),
            state=draw(st.sampled_from(STATES)),
            live=draw(st.booleans()),
            local_maintenance=draw(st.booleans()),
            stopped=draw(st.booleans()),
            engine=draw(st.sampled_from(ENGINE_STATUSES)),
            host_ts=draw(st.integers(0, 2**40)),
            local_conf_ts=draw(st.integers(0, 2**40)),
            crc32=draw(st.from_regex(r"[0-9a-f]{8}", fullmatch=True)),
            conf_on_shared=draw(st.booleans()),
            ctime=draw(st.sampled_from(CTIMES)),
        )
        for host_id in ids
    ]
    return {"global_maintenance": draw(st.booleans()), "hosts": hosts}


@PROPERTY
@given(
    cluster=clusters(),
    old_header=st.booleans(),
    field_order=st.none() | st.permutations(range(11)),
    engine_keys=st.permutations(["vm", "health", "detail", "reason"]),
)
def test_round_trip_plain_and_json(cluster, old_header, field_order, engine_keys):
    expected = expected_dict(cluster)
    plain = render_plain(cluster, old_header=old_header, field_order=field_order, engine_keys=engine_keys)
    assert parse_vm_status(plain).to_dict() == expected
    assert parse_vm_status(render_json(cluster)).to_dict() == expected_dict(cluster, plain=False)
    assert parse_vm_status(plain.replace("\n", "\r\n")).to_dict() == expected


# --- arbitrary and mutated input -----------------------------------------------------

TOKENS = [
    "--== Host ", "(id: 1)", " (id: ", " status ==--", "Host ID", "Score", "Engine status", "Hostname",
    "Status up-to-date", "Local maintenance", "stopped", "Host is alive", "Extra metadata (valid at timestamp)",
    " : ", ":", "=", "\n", "\r\n", "\t", " ", "{", "}", "[", '"vm"', '"up"', "'vm'", "u'up'", "1", "-2", "3400",
    "True", "False", "unknown stale-data", BANNER, "state=EngineUp", "host-id=", '{"1": ', '"extra": ',
    '"live-data": ', "null", "An error occured", "exception",
]  # fmt: skip
FIELD_VALUES = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.sampled_from(
        ["", "True", "False", "0", "-1", "9" * 30, "unknown stale-data", '{"vm": "up"}', '{"vm": ', "{'vm': 'up'}",
         "null", "[]", "{}", '{"vm": null}', '{"vm": {"x": 1}}', "1.5", "NaN"]
    ),
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
PLAIN_SAMPLES = [
    "plain_three_hosts.txt", "plain_global_maintenance.txt", "plain_stale_host.txt", "plain_old_header.txt",
]  # fmt: skip
JSON_SAMPLES = ["json_three_hosts.json", "json_global_maintenance.json", "json_stale_host.json"]


@PROPERTY
@given(st.text())
def test_arbitrary_text_only_raises_the_parse_error(text):
    parse_or_reject(text)


@PROPERTY
@given(st.binary(), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_arbitrary_bytes_only_raise_the_parse_error(raw, encoding):
    parse_or_reject(raw)
    parse_or_reject(raw.decode(encoding, errors="replace"))


@PROPERTY
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=80).map("".join))
def test_text_made_of_format_pieces_only_raises_the_parse_error(text):
    parse_or_reject(text)


@st.composite
def mutated_plain(draw):
    lines = sample(draw(st.sampled_from(PLAIN_SAMPLES))).splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "cut_line", "replace_value", "insert", "swap"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "cut_line":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "replace_value":
            head, sep, _ = lines[i].partition(":" if ":" in lines[i] else "=")
            lines[i] = f"{head}{sep} {draw(FIELD_VALUES)}"
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=40) | st.sampled_from(TOKENS)))
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    text = "\n".join(lines)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


@PROPERTY
@given(mutated_plain())
def test_mutated_plain_samples_only_raise_the_parse_error(text):
    parse_or_reject(text)


@st.composite
def mutated_json(draw):
    data = json.loads(sample(draw(st.sampled_from(JSON_SAMPLES))))
    for _ in range(draw(st.integers(1, 5))):
        # walk down a few levels: top level, a host, its engine-status
        target = data
        for _ in range(draw(st.integers(0, 2))):
            children = [k for k, v in target.items() if isinstance(v, dict)]
            if not children:
                break
            target = target[draw(st.sampled_from(children))]
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=6)) if target else draw(st.text(max_size=6))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(JSON_VALUES | FIELD_VALUES)
    text = json.dumps(data)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


@PROPERTY
@given(mutated_json())
def test_mutated_json_samples_only_raise_the_parse_error(text):
    parse_or_reject(text)


@PROPERTY
@given(cluster=clusters(), data=st.data())
def test_a_dropped_optional_line_never_changes_the_other_values(cluster, data):
    # Losing one optional field (not the id, name or engine status) must not
    # shift any other value: fields are read by label, not by position.
    labels = ["Host timestamp", "Score", "Local maintenance", "stopped", "crc32", "conf_on_shared_storage",
              "local_conf_timestamp"]  # fmt: skip
    label = data.draw(st.sampled_from(labels))
    text = drop_lines(render_plain(cluster), label)
    expected = expected_dict(cluster)
    for host in expected["hosts"]:
        # these three have no copy in the extra metadata; the rest fall back to it
        if label in ("crc32", "conf_on_shared_storage", "local_conf_timestamp"):
            host[label] = None
    assert parse_vm_status(text).to_dict() == expected
