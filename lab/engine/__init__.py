"""The lab's fake oVirt engine REST API, spoken to by the unmodified ovirtsdk4.

    api = await start_engine_api(backend, state_dir=DIR)
    api.register_host("he1", "127.0.1.1")
    ovirtsdk4.Connection(url=api.url, username=api.username,
                         password=api.password, ca_file=api.ca_file)

`backend` is the lab's HA model (see lab/INTERFACE.md). Everything the engine
itself owns (clusters, host admin status, events, tokens) is kept in
DIR/engine.json, the TLS files next to it.
"""
import socket
import ssl
from pathlib import Path

from aiohttp import web

from ..private import make_state_dir
from .engine import Engine
from .server import USERNAME, build_app
from .store import EngineStore
from .tls import ensure_certificates

__all__ = ["EngineApi", "start_engine_api"]


class EngineApi:
    """A running fake engine, as returned by start_engine_api."""

    def __init__(self, engine: Engine, runner: web.AppRunner, url: str, ca_file: Path):
        self._engine = engine
        self._runner = runner
        self.url = url
        self.ca_file = str(ca_file)
        self.username = USERNAME

    @property
    def engine(self) -> Engine:
        """The engine's operations, for the lab's admin actions (lab/admin.py)."""
        return self._engine

    @property
    def password(self) -> str:
        return self._engine.store.data["password"]

    def __iter__(self):
        # INTERFACE.md's first draft returned a tuple; keep that unpacking working.
        return iter((self.url, self.ca_file, self.username, self.password, self.stop))

    def set_password(self, password: str) -> None:
        """engine-setup of a fresh engine sets the admin@internal password."""
        self._engine.store.data["password"] = password
        self._engine.store.drop_all_tokens()
        self._engine.store.save()

    def host_status(self, name: str) -> str | None:
        """The engine's status of a host (None: it does not know it)."""
        host = self._engine.store.host_by_name(name)
        return self._engine.host_status(host) if host else None

    def host_in_maintenance(self, name: str) -> bool:
        """Has the engine moved this host to maintenance? That disconnected the host from
        the storage pool, which is what HA 1.3's upgrade asks vdsm (lib/upgrade.py,
        `_isStoragePoolConnected`); a vdsm restart meanwhile does not reconnect it."""
        host = self._engine.store.host_by_name(name)
        return bool(host) and host["status"] == "maintenance"

    def cluster_names(self) -> list[str]:
        return sorted(c["name"] for c in self._engine.store.data["clusters"].values())

    def register_host(self, name: str, address: str, cluster_name: str = "Default") -> str:
        """Add a host to the engine (as hosted-engine --deploy does); return its id.

        A host the engine already knows keeps its id, cluster and status, so
        re-registering after a lab restart changes nothing but the address.
        """
        store = self._engine.store
        if name in store.data["removed_hosts"]:
            store.data["removed_hosts"].remove(name)
            store.save()
        host = store.host_by_name(name)
        if host is not None:
            if host["address"] != address:
                host["address"] = address
                store.save()
            return host["id"]
        cluster = store.cluster_by_name(cluster_name)
        if cluster is None:
            dc = next(iter(store.data["data_centers"].values()))
            cluster = store.add_cluster(cluster_name, dict(dc["version"]), dc["id"])
        host = store.add_host(name, address, cluster["id"])
        store.add_event(42, f"Host {name} was added by admin@internal-authz.", host=host)
        return host["id"]

    async def stop(self) -> None:
        await self._engine.stop()
        await self._runner.cleanup()


async def start_engine_api(backend, *, state_dir, host: str = "127.0.0.1",
                           port: int = 0) -> EngineApi:
    """Serve the engine API over HTTPS on host:port (0 picks a free port).

    Calls `backend.attach_engine(api)` so `hosted-engine --deploy` on the lab
    can register new hosts.
    """
    state_dir = Path(state_dir)
    make_state_dir(state_dir)
    engine = Engine(backend, EngineStore(state_dir))
    engine.store.ensure_default(engine.version())
    engine.resume()
    engine.start_monitoring()

    extra_names = [getattr(backend, "engine_fqdn", None)]
    ca_file, cert_file, key_file = ensure_certificates(state_dir, host, extra_names)
    ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_context.load_cert_chain(cert_file, key_file)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(build_app(engine), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    url = f"https://{host}:{sock.getsockname()[1]}/ovirt-engine/api"
    api = EngineApi(engine, runner, url, ca_file)
    backend.attach_engine(api)
    _register_deployed_hosts(api, backend, engine.store)
    return api


def _register_deployed_hosts(api: EngineApi, backend, store: EngineStore) -> None:
    """Deployed HE hosts are in the engine already (deploy added them); a
    host an admin removed through the API stays out until deployed again."""
    for name in backend.host_names():
        info = backend.host_info(name)
        if info["configured"] and name not in store.data["removed_hosts"]:
            api.register_host(name, info["address"])
