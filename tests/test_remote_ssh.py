"""SSH runner against the lab's real SSH servers: streaming, host keys, quoting, timeouts, drops.

`lab` is shared by the module for commands that change nothing; tests that
inject faults get their own (`fresh_lab`). At speed 60 a simulated minute
is one real second, so `sleep 600` on a lab host keeps a command busy long
enough for the timeouts and faults below.
"""
import base64
import hashlib
import threading
import time

import pytest
from django.urls import reverse

from tests.factories import make_host
from upgrades.models import AuditEvent, Host
from upgrades.remote.base import HostKeyError, LineSplitter, RemoteError
from upgrades.remote.ssh import SshPool, SshSession, SshTarget, build_command, fetch_host_key







def target(lab, index=0, known_hosts=None):
    host = lab.manifest["hosts"][index]
    return SshTarget(address=host["address"], port=host["port"], username=host["ssh_user"],
                     known_hosts=host["known_hosts"] if known_hosts is None else known_hosts,
                     key_file=lab.manifest["ssh_key"], name=host["name"])


def openssh_fingerprint(known_hosts_line):
    """SHA256 fingerprint computed the way ssh-keygen -l does, without paramiko."""
    blob = base64.b64decode(known_hosts_line.split()[2])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class Lines:
    """A callback that records (stream, text, arrival time)."""

    def __init__(self):
        self.items = []

    def __call__(self, stream, text):
        self.items.append((stream, text, time.monotonic()))

    def of(self, stream):
        return [text for s, text, _ in self.items if s == stream]


# ---- streaming and exit status ----------------------------------------------

def test_it_streams_lines_in_order_as_they_come_with_streams_apart(lab):
    lines = Lines()
    with SshSession(target(lab)) as session:
        result = session.run("echo one; echo two; cat /no/such/file; sleep 60; echo three", lines)
    # `cat` failed, but the last command decides the exit status.
    assert result.exit_status == 0
    assert lines.of("stdout") == ["one", "two", "three"]
    assert lines.of("stderr") == ["cat: /no/such/file: No such file or directory"]
    # "two" was delivered while the command still slept (60 s simulated = 1 s).
    arrived = {text: at for _, text, at in lines.items}
    assert arrived["three"] - arrived["two"] > 0.5
    # With a callback the result does not keep a second copy of the output.
    assert result.stdout == "" and result.stderr == ""


def test_it_returns_a_non_zero_exit_status_and_stderr(lab):
    with SshSession(target(lab)) as session:
        result = session.run("cat /etc/nonexistent")
    assert result.exit_status == 1
    assert result.stdout == ""
    assert result.stderr == "cat: /etc/nonexistent: No such file or directory"


def test_it_returns_127_for_an_unknown_command(lab):
    with SshSession(target(lab)) as session:
        result = session.run("no-such-command --now")
    assert result.exit_status == 127
    assert result.stderr == "bash: no-such-command: command not found"


def test_it_delivers_200k_lines_with_multibyte_text_and_carriage_returns_intact(lab):
    # Uploaded once, then read back through run(): chunk boundaries fall
    # inside multi-byte characters and lines, and the last line has no newline.
    expected = [f"{n:06d} Größe ✓ 𝄞 progress 10%\r20%\rdone" for n in range(200_000)]
    body = "\n".join(expected).encode()
    session = SshSession(target(lab, index=1))
    with session:
        upload = session.transport.open_session()
        upload.exec_command("cat > /root/big.txt")
        upload.sendall(body)
        upload.shutdown_write()
        assert upload.recv_exit_status() == 0
        got = []
        started = time.monotonic()
        result = session.run("cat /root/big.txt", lambda stream, text: got.append(text))
        elapsed = time.monotonic() - started
        session.run("rm /root/big.txt")
    assert result.exit_status == 0
    assert len(got) == len(expected)
    assert got == expected
    # The reader's share of the 50,000 lines/s end-to-end target, with a wide margin.
    assert len(got) / elapsed > 50_000


def test_line_splitter_joins_characters_and_lines_cut_between_reads():
    got = []
    splitter = LineSplitter("stdout", lambda stream, text: got.append((stream, text)))
    data = "héllo\r\nwörld\nlast".encode()
    for n in range(len(data)):  # one byte at a time: the worst cut everywhere
        splitter.feed(data[n:n + 1])
    assert got == [("stdout", "héllo\r"), ("stdout", "wörld")]
    splitter.flush()
    assert got[-1] == ("stdout", "last")
    splitter.feed(b"\xff\xfebad\n")
    assert got[-1] == ("stdout", "\ufffd\ufffdbad")


# ---- host keys -----------------------------------------------------------------

def test_it_refuses_an_unknown_host_key_and_names_its_fingerprint(lab):
    pinned = lab.manifest["hosts"][0]["known_hosts"]
    with pytest.raises(HostKeyError) as caught:
        SshSession(target(lab, known_hosts="")).connect()
    error = caught.value
    assert error.retryable is False
    assert "not known" in error.message
    assert f"ssh-ed25519 key {openssh_fingerprint(pinned)}" in error.message
    assert error.fingerprint == openssh_fingerprint(pinned)


def test_it_refuses_a_changed_host_key(lab):
    # he1's address pinned with he2's key: what a reinstalled or spoofed host looks like.
    he1, he2 = lab.manifest["hosts"][:2]
    wrong = f"[{he1['address']}]:{he1['port']} " + " ".join(he2["known_hosts"].split()[1:])
    with pytest.raises(HostKeyError) as caught:
        SshSession(target(lab, known_hosts=wrong)).connect()
    message = caught.value.message
    assert "HAS CHANGED" in message
    assert openssh_fingerprint(he1["known_hosts"]) in message  # offered
    assert openssh_fingerprint(he2["known_hosts"]) in message  # pinned


def test_fetch_host_key_returns_the_line_an_admin_can_pin(lab):
    entry = lab.manifest["hosts"][2]
    offered = fetch_host_key(entry["address"], entry["port"])
    assert offered.known_hosts_line == entry["known_hosts"]
    assert offered.fingerprint == openssh_fingerprint(entry["known_hosts"])


@pytest.mark.django_db
def test_an_admin_reviews_and_accepts_a_host_key_then_the_host_connects(lab, client, make_user):
    entry = lab.manifest["hosts"][0]
    host = make_host(name=entry["name"], address=entry["address"], ssh_port=entry["port"], known_hosts="")
    with pytest.raises(HostKeyError):
        SshSession(SshTarget.for_host(host, key_file=lab.manifest["ssh_key"])).connect()

    admin = make_user("admin")
    client.force_login(admin)
    page = client.get(reverse("host-key", args=[host.pk]))
    assert page.status_code == 200
    fingerprint = openssh_fingerprint(entry["known_hosts"])
    assert fingerprint in page.content.decode()
    assert page.context["offered"].known_hosts_line == entry["known_hosts"]

    response = client.post(reverse("host-key", args=[host.pk]),
                           {"known_hosts_line": page.context["offered"].known_hosts_line})
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.known_hosts == entry["known_hosts"]
    event = AuditEvent.objects.get(action="host.key_accept")
    assert event.actor == admin
    assert event.target_id == str(host.pk)
    assert event.details["fingerprint"] == fingerprint

    with SshSession(SshTarget.for_host(host, key_file=lab.manifest["ssh_key"])) as session:
        assert session.run("hostname").stdout == entry["name"]


@pytest.mark.django_db
def test_the_review_page_explains_a_host_it_cannot_reach(client, make_user):
    from tests.conftest import free_port

    host = make_host(address="127.0.0.1", ssh_port=free_port(), known_hosts="")
    client.force_login(make_user("admin"))
    page = client.get(reverse("host-key", args=[host.pk]))
    assert page.status_code == 200
    assert "cannot connect to" in page.context["error"]
    assert b"Accept this key" not in page.content


@pytest.mark.django_db
def test_accepting_a_new_key_replaces_the_old_one_and_records_it(lab, make_user):
    from upgrades import services

    he1, he2 = lab.manifest["hosts"][:2]
    old = f"[{he1['address']}]:{he1['port']} " + " ".join(he2["known_hosts"].split()[1:])
    other = "[192.0.2.9]:22 " + " ".join(he2["known_hosts"].split()[1:])
    host = make_host(address=he1["address"], ssh_port=he1["port"], known_hosts=f"{old}\n{other}")
    services.accept_host_key(host=host, known_hosts_line=he1["known_hosts"], user=make_user("admin"))
    host.refresh_from_db()
    # The stale key for this address is gone; a line for another address stays.
    assert host.known_hosts.splitlines() == [other, he1["known_hosts"]]
    event = AuditEvent.objects.get(action="host.key_accept")
    assert event.details["replaced"] == [openssh_fingerprint(he2["known_hosts"])]


@pytest.mark.django_db
def test_accepting_a_line_for_another_address_is_refused(lab, make_user):
    from django.core.exceptions import ValidationError

    from upgrades import services

    he1, he2 = lab.manifest["hosts"][:2]
    host = make_host(address=he1["address"], ssh_port=he1["port"], known_hosts="")
    with pytest.raises(ValidationError):
        services.accept_host_key(host=host, known_hosts_line=he2["known_hosts"], user=make_user("admin"))
    assert Host.objects.get(pk=host.pk).known_hosts == ""
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["operator", "viewer", "approver"])
def test_only_admins_may_see_or_accept_host_keys(lab, client, make_user, role):
    entry = lab.manifest["hosts"][0]
    host = make_host(address=entry["address"], ssh_port=entry["port"], known_hosts="")
    client.force_login(make_user(role))
    assert client.get(reverse("host-key", args=[host.pk])).status_code == 403
    response = client.post(reverse("host-key", args=[host.pk]), {"known_hosts_line": entry["known_hosts"]})
    assert response.status_code == 403
    assert Host.objects.get(pk=host.pk).known_hosts == ""
    assert not AuditEvent.objects.exclude(action="auth.login").exists()


# ---- quoting --------------------------------------------------------------------

def test_quoted_hostile_values_stay_one_harmless_argument(lab):
    hostile = "x;  rm  -rf /root && echo pwned > /root/pwned | cat $HOME 'q"
    command = build_command("echo {value}", value=hostile)
    with SshSession(target(lab)) as session:
        result = session.run(command)
        # Doubled spaces survive only if echo got one argument; no second command ran.
        assert result.stdout == hostile
        assert session.run("cat /root/pwned").exit_status == 1
        assert session.run("ls /root").exit_status == 0


def test_build_command_quotes_every_value_and_checks_the_fields():
    assert build_command("hosted-engine --set-maintenance --mode={mode}", mode="local") == \
        "hosted-engine --set-maintenance --mode=local"
    assert build_command("sleep {n}", n=5) == "sleep 5"
    assert build_command("yum -y update {packages}", packages=["a b", "c"]) == "yum -y update 'a b' c"
    assert build_command("echo {v}", v="$(id)") == "echo '$(id)'"
    with pytest.raises(TypeError):
        build_command("sleep {n}", n=True)
    with pytest.raises(TypeError):
        build_command("echo {v}", v=1.5)
    with pytest.raises(ValueError):
        build_command("echo {v} {w}", v="a")
    with pytest.raises(ValueError):
        build_command("echo {v}", v="a", typo="b")
    with pytest.raises(ValueError):
        build_command("echo {v!r}", v="a")


# ---- timeouts, drops and reuse ------------------------------------------------------

def test_it_gives_up_when_the_command_is_silent_too_long(lab):
    lines = Lines()
    started = time.monotonic()
    with SshSession(target(lab, index=2)) as session:
        with pytest.raises(RemoteError) as caught:
            session.run("echo started; sleep 600", lines, idle_timeout=0.5)
        assert session.run("echo still usable").stdout == "still usable"
    assert time.monotonic() - started < 5
    assert "no output" in caught.value.message and "0.5 s" in caught.value.message
    assert caught.value.retryable is False
    assert lines.of("stdout") == ["started"]


def test_it_gives_up_after_the_overall_timeout(lab):
    with SshSession(target(lab, index=2)) as session:
        with pytest.raises(RemoteError) as caught:
            session.run("sleep 600", idle_timeout=30, timeout=0.5)
    assert "did not finish within 0.5 s" in caught.value.message
    assert caught.value.retryable is False


@pytest.mark.parametrize("fault", ["disconnect-host", "kill-host"])
def test_a_dropped_connection_is_retryable_and_keeps_the_output_so_far(fresh_lab, fault):
    entry = fresh_lab.manifest["hosts"][1]
    lines = Lines()

    def on_line(stream, text):
        lines(stream, text)
        if text == "written":  # callbacks must be quick: inject from another thread
            threading.Thread(target=inject).start()

    def inject():
        # "partial" was written before "written" (stderr); give the host's SSH server a
        # moment to send it: the client must keep a line that has no newline yet.
        time.sleep(0.5)
        fresh_lab.fault(fault, host=entry["name"])

    session = SshSession(target(fresh_lab, index=1))
    with session:
        with pytest.raises(RemoteError) as caught:
            session.run("echo before; echo -n partial; echo written >&2; sleep 600; echo after", on_line,
                        idle_timeout=30)
        assert session.transport is None  # dropped; the next run reconnects
    assert caught.value.retryable is True
    assert "lost" in caught.value.message
    assert lines.of("stdout") == ["before", "partial"]


def test_a_session_reconnects_after_a_drop(fresh_lab):
    entry = fresh_lab.manifest["hosts"][1]
    # A disconnected host accepts TCP and then says nothing: keep the handshake wait short.
    with SshSession(target(fresh_lab, index=1), connect_timeout=1) as session:
        first = session.transport
        fresh_lab.fault("disconnect-host", host=entry["name"])
        with pytest.raises(RemoteError) as caught:
            session.run("echo hello", idle_timeout=30)
        assert caught.value.retryable is True
        fresh_lab.fault("reconnect-host", host=entry["name"])
        # The lab reopens its listener in the background; retry as a job would.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert session.run("echo again").stdout == "again"
                break
            except RemoteError as exc:
                assert exc.retryable and time.monotonic() < deadline, exc.message
                time.sleep(0.1)
        assert session.transport is not first


def test_a_session_reuses_one_connection_for_several_commands(lab):
    with SshSession(target(lab)) as session:
        transport = session.transport
        local_port = transport.sock.getsockname()[1]
        outputs = [session.run(f"echo {n}").stdout for n in range(5)]
        assert session.transport is transport
        assert transport.sock.getsockname()[1] == local_port
    assert outputs == ["0", "1", "2", "3", "4"]
    assert not transport.is_active()  # closed on leaving the block


def test_a_kept_session_does_not_remember_every_command_it_ran(lab):
    """The poller keeps one session per cluster for months, a command every 10 s:
    paramiko's transport records every channel id it opened (``channels_seen``)
    and never forgets one, so the poller grew by an entry per poll (bench/memory.py
    found it). The session forgets the channels the server has closed."""
    with SshSession(target(lab)) as session:
        for n in range(30):
            assert session.run(f"echo {n}").stdout == str(n)
        seen = len(session.transport.channels_seen)
    assert seen <= 2  # the channel last closed, whose close the server may not have answered yet


def test_a_pool_hands_out_one_session_per_host(lab):
    with SshPool() as pool:
        first, again, other = pool.session(target(lab)), pool.session(target(lab)), pool.session(target(lab, 1))
        assert first is again and first is not other
        assert first.run("hostname").stdout == lab.manifest["hosts"][0]["name"]
        assert other.run("hostname").stdout == lab.manifest["hosts"][1]["name"]
        transports = [first.transport, other.transport]
    assert not any(t.is_active() for t in transports)


def test_connecting_to_a_closed_port_is_a_retryable_error(fresh_lab):
    entry = fresh_lab.manifest["hosts"][2]
    fresh_lab.fault("kill-host", host=entry["name"])
    # While the lab closes the port a connection may still get in and be reset.
    deadline = time.monotonic() + 10
    while True:
        with pytest.raises(RemoteError) as caught:
            SshSession(target(fresh_lab, index=2), connect_timeout=2).connect()
        assert caught.value.retryable is True
        if "cannot connect" in caught.value.message or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "Connection refused" in caught.value.message


def test_a_missing_key_file_fails_before_touching_the_host(lab, tmp_path):
    bad = SshTarget(address="192.0.2.1", port=22, known_hosts="", key_file=str(tmp_path / "nope"))
    with pytest.raises(RemoteError) as caught:
        SshSession(bad).connect()
    assert "cannot use SSH private key" in caught.value.message
    assert caught.value.retryable is False


def test_a_host_that_stops_answering_before_the_command_starts_does_not_hang_the_worker(lab):
    """paramiko's exec_command waits for the answer without end; ours gives up after the
    connect timeout, and a stop request (a cancel, a lost run) ends the wait at once."""
    from tests.netproxy import CuttableProxy
    from upgrades.remote.base import CommandStopped
    from upgrades.remote.ssh import known_hosts_name

    host = lab.manifest["hosts"][0]
    proxy = CuttableProxy(host["address"], host["port"])
    name, key_type, key = host["known_hosts"].split()[:3]
    via_proxy = SshTarget(address="127.0.0.1", port=proxy.port, username=host["ssh_user"],
                          known_hosts=f"{known_hosts_name('127.0.0.1', proxy.port)} {key_type} {key}",
                          key_file=lab.manifest["ssh_key"], name=host["name"])
    try:
        with SshSession(via_proxy, connect_timeout=3) as session:
            assert session.run("echo up").stdout == "up"
            channel = session.transport.open_session()
            proxy.freeze()  # the channel is open; the answer to "exec" never comes
            started = time.monotonic()
            with pytest.raises(RemoteError, match="did not answer the request to run the command within 3 s"):
                session._exec(channel, "echo never", None)
            assert time.monotonic() - started < 10
            # and the whole run() is bounded too (here the channel's opening times out)
            with pytest.raises(RemoteError) as raised:
                session.run("echo never")
            assert raised.value.retryable and time.monotonic() - started < 20
        proxy.restore()
        with SshSession(via_proxy, connect_timeout=30) as session:
            channel = session.transport.open_session()
            proxy.freeze()
            stop = threading.Event()
            threading.Timer(1.0, stop.set).start()
            started = time.monotonic()
            with pytest.raises(CommandStopped):
                session._exec(channel, "echo never", stop)
            assert time.monotonic() - started < 5  # not the 30 s connect timeout
    finally:
        proxy.restore()
        proxy.close()
