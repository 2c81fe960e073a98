"""Real SSH servers (asyncssh), one per machine, on its own loopback address.

A killed or booting host closes its port; a disconnected host accepts TCP but never
answers (like a lost network: clients time out); the engine VM listens only while it runs.
"""

import asyncio
import logging
import os
import socket

import asyncssh

from .private import write_private
from .session import run_session
from .sftp import RootSftp

log = logging.getLogger(__name__)


def load_or_create_key(path):
    """Keys live in the state dir so they stay the same across restarts."""
    if os.path.exists(path):
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    write_private(path, key.export_private_key("openssh"))
    key.write_public_key(path + ".pub", "openssh")
    return key


def public_line(key):
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def bind(address, wanted=0):
    """A socket bound to a free port on `address`, preferring `wanted` (last run's port).

    The machine keeps a bound socket even while "closed" (bound, not listening: clients
    get connection refused), so that a parallel lab can never take its port.
    """
    for port in ([wanted] if wanted else []) + [0]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        return sock
    raise OSError(f"no free port on {address}")


async def rebind(address, port, attempts=100):
    """The machine's own port again: the manifest names it, so another port would
    look like a dead host. The old socket may take a moment to let go."""
    for _ in range(attempts):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            return sock
        except OSError:
            sock.close()
            await asyncio.sleep(0.02)
    raise OSError(f"{address}:{port} stays busy")


class _Server(asyncssh.SSHServer):
    def __init__(self, front, machine):
        self.front = front
        self.machine = machine
        self.conn = None

    def connection_made(self, conn):
        self.conn = conn
        self.front.conns.setdefault(self.machine.name, set()).add(conn)

    def connection_lost(self, exc):
        self.front.conns.get(self.machine.name, set()).discard(self.conn)

    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return False

    def public_key_auth_supported(self):
        return True

    def validate_public_key(self, username, key):
        """root with the lab's own client key, or with a key in the machine's
        /root/.ssh/authorized_keys, as sshd reads it (a key added there on a lab host
        works as on a real one: docs/onboarding.md)."""
        if username != "root":
            return False
        line = public_line(key)
        return line == self.front.client_public or line in authorized_keys(self.machine)


def authorized_keys(machine):
    """The "TYPE BASE64" of each key in the machine's /root/.ssh/authorized_keys (options and
    comments dropped; a line sshd could not read is skipped, as sshd does)."""
    text = machine.fs.read("/root/.ssh/authorized_keys") if machine.fs is not None else None
    keys = set()
    for raw in (text or "").splitlines():
        words = raw.split()
        for i, word in enumerate(words[:-1]):
            if word.startswith(("ssh-", "ecdsa-", "sk-")):
                keys.add(f"{word} {words[i + 1]}")
                break
    return keys


class SshFront:
    """Keeps every machine's listener in the mode the cluster state asks for."""

    def __init__(self, cluster, state_dir, sandboxes):
        self.cluster = cluster
        self.sandboxes = sandboxes
        self.keys_dir = os.path.join(state_dir, "keys")
        os.makedirs(self.keys_dir, mode=0o700, exist_ok=True)
        self.client_key_path = os.path.join(self.keys_dir, "client_ed25519")
        self.client_public = public_line(load_or_create_key(self.client_key_path))
        self.host_keys = {}
        self.servers = {}   # name -> (mode, server)
        self.conns = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # the loop and the control endpoint both reconcile
        self._task = None

    def machines(self):
        return list(self.cluster.hosts.values()) + [self.cluster.engine_vm]

    def host_key(self, machine):
        if machine.name not in self.host_keys:
            path = os.path.join(self.keys_dir, f"{machine.short_name}_host_ed25519")
            self.host_keys[machine.name] = load_or_create_key(path)
        return self.host_keys[machine.name]

    def known_hosts_line(self, machine):
        return f"[{machine.address}]:{machine.port} {public_line(self.host_key(machine))}"

    def wanted_mode(self, machine):
        if machine.kind == "host":
            if machine.power != "on":
                return "closed"
            return "blackhole" if machine.disconnected else "ssh"
        return "ssh" if self.cluster.ssh_reachable(machine) else "closed"

    async def start(self, ports=None):
        for machine in self.machines():
            wanted = (ports or {}).get(machine.name) or machine.port
            sock = bind(machine.address, wanted)
            machine.port = sock.getsockname()[1]
            self.servers[machine.name] = ("closed", sock)
        await self.reconcile()
        self.cluster.on_change = self._wake.set
        self.cluster.settle = self.reconcile
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self):
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("could not update SSH listeners")

    async def reconcile(self):
        async with self._lock:
            await self._reconcile()

    async def _reconcile(self):
        for machine in self.machines():
            mode = self.wanted_mode(machine)
            current, server = self.servers[machine.name]
            if mode == current:
                continue
            server.close()
            for conn in list(self.conns.get(machine.name, ())):
                conn.abort()
            sock = await rebind(machine.address, machine.port)
            self.servers[machine.name] = (mode, await self._listen(machine, mode, sock))

    async def _listen(self, machine, mode, sock):
        if mode == "closed":
            return sock
        if mode == "blackhole":
            held = []
            server = await asyncio.get_running_loop().create_server(
                lambda: _Blackhole(held), sock=sock)
            return _BlackholeServer(server, held)
        return await asyncssh.create_server(
            lambda: _Server(self, machine), sock=sock,
            server_host_keys=[self.host_key(machine)], process_factory=self._handler(machine),
            sftp_factory=lambda chan: RootSftp(chan, machine), allow_scp=False,
            encoding=None, line_editor=False)

    def _handler(self, machine):
        async def handle(process):
            try:
                process.exit(await run_session(self.sandboxes[machine.name], process) & 0xFF)
            except (BrokenPipeError, ConnectionError, asyncssh.Error):
                pass
            except Exception:
                log.exception("command failed on %s: %r", machine.name, process.command)
                process.stderr.write(b"bash: internal error in the lab\n")
                process.exit(1)
        return handle

    async def stop(self):
        if self._task:
            self._task.cancel()
        for name, (mode, server) in self.servers.items():
            server.close()
            for conn in list(self.conns.get(name, ())):
                conn.abort()


class _Blackhole(asyncio.Protocol):
    def __init__(self, held):
        self.held = held

    def connection_made(self, transport):
        self.held.append(transport)


class _BlackholeServer:
    def __init__(self, server, held):
        self.server = server
        self.held = held

    def close(self):
        self.server.close()
        for transport in self.held:
            transport.abort()
