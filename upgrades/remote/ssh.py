"""Commands on hosts over SSH (paramiko).

Hosts are trusted only through keys pinned in ``Host.known_hosts``: an
unknown or changed key is refused, and an admin accepts a new one after
reading its fingerprint (``fetch_host_key``). We log in with a private key
file only. Commands are fixed templates filled by ``build_command``.
"""
import logging
import selectors
import shlex
import socket
import string
import time
from dataclasses import dataclass
from typing import NamedTuple

import paramiko

from .base import CommandResult, CommandStopped, HostKeyError, LineSplitter, RemoteError

log = logging.getLogger(__name__)

CHUNK = 65536
# A window larger than paramiko's 2 MiB default lets a fast command keep
# writing while the reader hands a burst of lines to the recorder.
WINDOW_SIZE = 16 * 2**20
CONNECT_TIMEOUT = 10
KEEPALIVE_INTERVAL = 15
IDLE_TIMEOUT = 600
COMMAND_TIMEOUT = 3600
# OpenSSH names RSA keys ssh-rsa but signs with SHA-2 algorithms.
_KEY_ALGORITHMS = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]}


def build_command(template, **values):
    """Fill ``{name}`` fields of a fixed template with shell-quoted values.

    Strings are quoted with ``shlex.quote`` so each ends up one argument,
    whatever it contains; ints go in as digits; a list or tuple becomes
    several quoted arguments. Every field must get a value and every value
    a field, so a typo fails here and not on a host.
    """
    fields = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"command template field {{{name}}} must be a plain name")
        fields.add(name)
    if fields != set(values):
        raise ValueError(f"command template fields {sorted(fields)} do not match values {sorted(values)}")
    return template.format(**{name: _quote(name, value) for name, value in values.items()})


def _quote(name, value):
    if isinstance(value, (list, tuple)):
        return " ".join(_quote(name, item) for item in value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"command value {name!r} must be str or int, not {type(value).__name__}")
    return str(value) if isinstance(value, int) else shlex.quote(value)


def known_hosts_name(address, port):
    """The host name as OpenSSH writes it in known_hosts."""
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts_line(address, port, key):
    return f"{known_hosts_name(address, port)} {key.get_name()} {key.get_base64()}"


def parse_known_hosts(text):
    """Stored known_hosts text → paramiko HostKeys; bad lines are an error, not skipped."""
    keys = paramiko.HostKeys()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = None
        if not line.startswith("@"):  # @cert-authority / @revoked are not supported
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except Exception:
                # Decoding the key is paramiko's parsers all the way down, and
                # they raise whatever the bytes trip on: InvalidHostKey (bad
                # base64), SSHException, ValueError, OverflowError... Any of
                # them means the same thing here: not a host key line.
                entry = None
        if entry is None or entry.key is None or not all(map(_readable_name, entry.hostnames)):
            raise RemoteError(f"known_hosts line {number} is not a host key line: {line[:80]!r}")
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    return keys


def _readable_name(name):
    """A hashed name (``|1|salt|hash``) whose salt paramiko can use: a bad one
    would fail in every later lookup (binascii.Error, AssertionError)."""
    if not name.startswith("|1|"):
        return True
    try:
        paramiko.HostKeys.hash_host("", name)
    except Exception:
        return False
    return True


def describe_key(key):
    """As OpenSSH shows a key to a person: type and SHA256 fingerprint."""
    return f"{key.get_name()} key {key.fingerprint}"


def pinned_keys(known_hosts, address, port):
    """[(key type, fingerprint)] pinned for this address and port."""
    found = parse_known_hosts(known_hosts).lookup(known_hosts_name(address, port)) or {}
    return [(key.get_name(), key.fingerprint) for key in found.values()]


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in; ``name`` is only for messages."""

    address: str
    port: int = 22
    username: str = "root"
    known_hosts: str = ""
    key_file: str = ""
    name: str = ""

    @classmethod
    def for_host(cls, host, *, key_file=None):
        """From a ``Host`` row; the key file comes from settings.SSH_KEY_FILE by default."""
        if key_file is None:
            from django.conf import settings

            key_file = settings.SSH_KEY_FILE
        return cls(address=host.address, port=host.ssh_port, username=host.ssh_user,
                   known_hosts=host.known_hosts, key_file=str(key_file), name=host.name)

    @classmethod
    def for_engine_vm(cls, cluster, *, key_file=None):
        """The cluster's engine VM, for steps that run inside it."""
        if not cluster.engine_vm_address:
            raise RemoteError(f"cluster {cluster.name} has no engine VM address (the inventory's engine_vm)")
        if key_file is None:
            from django.conf import settings

            key_file = settings.SSH_KEY_FILE
        return cls(address=cluster.engine_vm_address, port=cluster.engine_vm_port, username=cluster.engine_vm_user,
                   known_hosts=cluster.engine_vm_known_hosts, key_file=str(key_file),
                   name=cluster.engine_vm_name or "the engine VM")

    @property
    def label(self):
        where = f"{self.address}:{self.port}"
        return f"{self.name} ({where})" if self.name and self.name != self.address else where


class OfferedKey(NamedTuple):
    known_hosts_line: str
    fingerprint: str


def fetch_host_key(address, port=22, *, timeout=CONNECT_TIMEOUT):
    """Read the key a host offers, without logging in, for an admin to review."""
    transport = _handshake(SshTarget(address=address, port=port), timeout, key_types=None)
    try:
        key = transport.get_remote_server_key()
        return OfferedKey(known_hosts_line(address, port, key), key.fingerprint)
    finally:
        transport.close()


class _Transport(paramiko.Transport):
    """paramiko's thread per session wakes every 0.1 s, idle or not, to see whether it
    should stop; a poller keeps a session per cluster (250 a poller at 1,000 clusters),
    2,500 wake-ups a second. Once a second is enough: closing does not wait for it
    (``stop_thread`` returns once the packetizer is closed), keepalives are seconds
    apart. 200 idle sessions with both ends in one process (400 transports): 11.9 % of
    a core at 0.1 s, 2.9 % at 1 s (2026-12-07)."""

    _active_check_timeout = 1.0


def _handshake(target, timeout, key_types):
    """TCP connect and SSH key exchange; no host key check, no login yet."""
    try:
        sock = socket.create_connection((target.address, target.port), timeout=timeout)
    except socket.timeout:
        raise RemoteError(f"cannot connect to {target.label}: no answer within {timeout} s",
                          retryable=True) from None
    except OSError as exc:
        raise RemoteError(f"cannot connect to {target.label}: {exc.strerror or exc}",
                          retryable=True) from None
    transport = _Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = timeout
    if key_types:
        options = transport.get_security_options()
        preferred = [a for t in key_types for a in _KEY_ALGORITHMS.get(t, [t]) if a in options.key_types]
        options.key_types = preferred + [t for t in options.key_types if t not in preferred]
    try:
        transport.start_client(timeout=timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise RemoteError(f"SSH handshake with {target.label} failed: {_why(exc)}",
                          retryable=True) from None
    if transport.host_key is None:  # start_client returns quietly when its timeout runs out
        transport.close()
        raise RemoteError(f"SSH handshake with {target.label} failed: no answer within {timeout} s",
                          retryable=True)
    return transport


def connect(target, *, timeout=CONNECT_TIMEOUT, keepalive=KEEPALIVE_INTERVAL):
    """An authenticated transport to ``target``, or RemoteError/HostKeyError.

    1. Load the private key first: a missing key file is no reason to touch the host.
    2. Key exchange, preferring the key types pinned for this host.
    3. Compare the offered key with the pinned ones before sending anything else.
    4. Public-key login, then keepalives so idle NAT/firewall state survives long steps.
    """
    pkey = _load_key(target.key_file)
    pinned = parse_known_hosts(target.known_hosts)
    name = known_hosts_name(target.address, target.port)
    expected = pinned.lookup(name) or {}
    transport = _handshake(target, timeout, key_types=list(expected.keys()))
    try:
        offered = transport.get_remote_server_key()
        if not expected:
            raise HostKeyError(
                f"host key of {target.label} is not known: it offered {describe_key(offered)}. "
                "An admin must check and accept this key before the portal connects.",
                key_type=offered.get_name(), fingerprint=offered.fingerprint)
        if not pinned.check(name, offered):
            raise HostKeyError(
                f"HOST KEY OF {target.label} HAS CHANGED: it offered {describe_key(offered)}, "
                f"pinned is {', '.join(describe_key(k) for k in expected.values())}. Refusing to connect; "
                "if the host was reinstalled an admin must accept the new key.",
                key_type=offered.get_name(), fingerprint=offered.fingerprint)
        transport.auth_timeout = timeout
        try:
            transport.auth_publickey(target.username, pkey)
        except paramiko.AuthenticationException as exc:
            raise RemoteError(f"{target.label} refused key login as {target.username!r} "
                              f"with {target.key_file}: {exc}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(f"login to {target.label} failed: {_why(exc)}",
                              retryable=True) from None
        transport.set_keepalive(keepalive)
        return transport
    except BaseException:
        transport.close()
        raise


def _why(exc):
    """paramiko raises some errors (EOFError, socket.timeout) with no text."""
    if isinstance(exc, EOFError):
        return "the host closed the connection"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def _load_key(path):
    if not path:
        raise RemoteError("no SSH private key configured (settings.SSH_KEY_FILE)")
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise RemoteError(f"cannot use SSH private key {path}: {exc}") from None


def _forget_closed_channels(transport):
    """paramiko's transport records every channel id it ever opened (``channels_seen``,
    to ignore a late message for a dead channel) and never forgets one: a session
    kept for months (the poller's, a command every 10 s) grew by an entry per command.
    A channel no longer in the transport's map got the server's close, the last
    message the server sends on it (RFC 4254 5.3): forget those."""
    with transport.lock:
        seen = transport.channels_seen
        for chanid in [c for c in seen if transport._channels.get(c) is None]:
            del seen[chanid]


class SshSession:
    """One SSH connection to one host for a sequence of commands.

    Each ``run`` opens a new channel on the same transport. A session whose
    connection dropped reconnects on the next ``run``, so a retried step
    works. Use from one thread at a time.
    """

    def __init__(self, target, *, connect_timeout=None, keepalive=KEEPALIVE_INTERVAL):
        if connect_timeout is None:
            from django.conf import settings

            # Also usable without Django (bench scripts): then the module default.
            connect_timeout = (getattr(settings, "SSH_CONNECT_TIMEOUT", CONNECT_TIMEOUT)
                               if settings.configured else CONNECT_TIMEOUT)
        self.target = target
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.transport = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        if self.transport is None or not self.transport.is_active():
            self.close()
            self.transport = connect(self.target, timeout=self.connect_timeout, keepalive=self.keepalive)
        return self.transport

    def close(self):
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def run(self, command, on_line=None, *, idle_timeout=IDLE_TIMEOUT, timeout=COMMAND_TIMEOUT,
            capture=None, stop=None):
        """Run ``command``; ``on_line(stream, text)`` gets each stdout/stderr line as it comes.

        Returns CommandResult with the exit status; stdout/stderr text is kept
        only when there is no callback (or ``capture=True``). Raises
        RemoteError: retryable when the connection dropped (output up to then
        already delivered), not retryable on idle or overall timeout.
        ``on_line`` must be quick (the recorder only appends to a buffer): it
        runs in the reading loop, and SSH flow control stalls the remote
        command once the channel window is full. Setting the ``stop`` event
        stops the command within a second: it is sent SIGTERM and its channel
        is closed (``CommandStopped``).
        """
        if capture is None:
            capture = on_line is None
        captured = {"stdout": [], "stderr": []}

        def deliver(stream, text):
            if capture:
                captured[stream].append(text)
            if on_line is not None:
                on_line(stream, text)

        transport = self.connect()
        try:
            channel = transport.open_session(window_size=WINDOW_SIZE, timeout=self.connect_timeout)
            self._exec(channel, command, stop)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise RemoteError(f"cannot start the command on {self.target.label}: "
                              f"{_why(exc)}", retryable=True) from None
        out, err = LineSplitter("stdout", deliver), LineSplitter("stderr", deliver)
        try:
            status = self._pump(channel, out, err, idle_timeout, timeout, stop)
        finally:
            out.flush()
            err.flush()
            channel.close()
            _forget_closed_channels(transport)
        return CommandResult(exit_status=status, stdout="\n".join(captured["stdout"]),
                             stderr="\n".join(captured["stderr"]))

    def _exec(self, channel, command, stop):
        """paramiko's ``exec_command`` with a bounded wait: it waits for the
        server's answer without end, and a host that stops answering mid-connection
        never gives one (the worker would hang, deaf to a cancel). The same
        request; the answer awaited for the connect timeout, ``stop`` honoured."""
        message = paramiko.Message()
        message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("exec")
        message.add_boolean(True)
        message.add_string(command)
        channel._event_pending()
        channel.transport._send_user_message(message)
        deadline = time.monotonic() + self.connect_timeout
        while not channel.event.wait(0.2):
            if stop is not None and stop.is_set():
                channel.close()
                raise CommandStopped(f"the command on {self.target.label} was stopped before it started")
            if time.monotonic() >= deadline:
                channel.close()
                raise RemoteError(f"{self.target.label} did not answer the request to run the command "
                                  f"within {self.connect_timeout} s", retryable=True)
        if not channel.event_ready:
            raise channel.transport.get_exception() or paramiko.SSHException("Channel closed.")

    def _pump(self, channel, out, err, idle_timeout, timeout, stop=None):
        """Read both streams until the channel ends; return the exit status.

        Hot loop: one recv of up to 64 KiB per stream and turn, and a wait
        on the channel's wake-up pipe (set for either stream) when both are
        empty, so neither stream can hold up the other and nothing is read
        byte by byte. A selector, not select(): a poller holds many channels.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(channel, selectors.EVENT_READ)
            return self._pump_with(selector, channel, out, err, idle_timeout, timeout, stop)

    def _pump_with(self, selector, channel, out, err, idle_timeout, timeout, stop):
        started = last_data = time.monotonic()
        while True:
            if stop is not None and stop.is_set():
                self._stop(channel)
            got = False
            if channel.recv_ready():
                out.feed(channel.recv(CHUNK))
                got = True
            if channel.recv_stderr_ready():
                err.feed(channel.recv_stderr(CHUNK))
                got = True
            now = time.monotonic()
            if got:
                last_data = now
            elif channel.eof_received or channel.closed:
                break
            self._check_time(channel, now, started, last_data, idle_timeout, timeout)
            if not got:
                wait = min(1.0, last_data + idle_timeout - now, started + timeout - now)
                selector.select(max(wait, 0))
        # exit-status may follow EOF; it never comes if the connection died.
        while not channel.status_event.wait(0.2):
            self._check_time(channel, time.monotonic(), started, last_data, idle_timeout, timeout)
        if channel.exit_status_ready() and channel.exit_status != -1:
            return channel.exit_status
        if self._connection_lost():
            raise self._lost()
        raise RemoteError(f"the command on {self.target.label} ended without an exit status "
                          "(killed by a signal?)")

    def _stop(self, channel):
        """SIGTERM to the command (RFC 4254 "signal", OpenSSH 7.9+), then close
        its channel: an sshd that ignores the signal request hangs up the
        command's pipes instead. paramiko has no call for the request."""
        message = paramiko.Message()
        message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string("TERM")
        try:
            channel.transport._send_user_message(message)
        except (paramiko.SSHException, OSError, EOFError):
            pass  # the connection is going anyway
        channel.close()
        raise CommandStopped(f"the command on {self.target.label} was stopped (SIGTERM, channel closed)")

    def _connection_lost(self):
        # paramiko closes the channels before it clears `active`, but it has
        # saved the reason (EOFError, socket error) by then.
        transport = self.transport
        return transport.saved_exception is not None or not transport.is_active()

    def _lost(self):
        error = self.transport.get_exception()
        reason = _why(error) if error is not None else "the host closed the connection"
        self.close()
        return RemoteError(f"connection to {self.target.label} was lost during the command "
                           f"({reason}); the output up to then was kept", retryable=True)

    def _check_time(self, channel, now, started, last_data, idle_timeout, timeout):
        if self._connection_lost() and not channel.recv_ready() and not channel.recv_stderr_ready():
            raise self._lost()
        if now - started >= timeout:
            raise RemoteError(f"the command on {self.target.label} did not finish within {timeout} s; "
                              "stopped waiting for it")
        if now - last_data >= idle_timeout:
            raise RemoteError(f"no output from {self.target.label} for {idle_timeout} s; "
                              "stopped waiting for the command (it may still run there)")


class SshPool:
    """One session per host for the length of a run; closes them all at the end."""

    def __init__(self, **session_options):
        self.session_options = session_options
        self.sessions = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def session(self, target):
        key = (target.address, target.port, target.username)
        if key not in self.sessions:
            self.sessions[key] = SshSession(target, **self.session_options)
        return self.sessions[key]

    def close(self):
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()


def run_command(target, command, on_line=None, **options):
    """One command on a fresh connection; for sequences use SshSession."""
    with SshSession(target) as session:
        return session.run(command, on_line, **options)
