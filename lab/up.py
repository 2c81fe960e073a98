"""`python -m lab up`: build or reload the cluster, open every endpoint, write the manifest."""

import asyncio
import json
import logging
import os
import signal

from . import snapshot as lab_snapshot
from .cluster import Cluster
from .control import start_control
from .private import make_state_dir, write_private
from .sandbox import Sandbox, find_bwrap
from .sshd import SshFront
from .tools import ToolServer

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


async def start_engine(cluster, state_dir):
    """Start the engine REST API from lab/engine if it is there; returns it or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.exists(os.path.join(here, "engine", "__init__.py")):
        log.warning("lab/engine is missing: running without the engine REST API")
        return None
    from .engine import start_engine_api
    return await start_engine_api(cluster, host="127.0.0.1", port=0, state_dir=state_dir)


def engine_entry(api):
    """Read each time: a first-host engine-setup changes the admin password."""
    if api is None:
        return None
    return {"url": api.url, "username": api.username, "password": api.password,
            "ca_file": api.ca_file}


def write_manifest(state_dir, data):
    """Atomic, so a reader polling for the file never sees half of it."""
    write_private(os.path.join(state_dir, MANIFEST), json.dumps(data, indent=2))


def build_manifest(cluster, front, engine, control_url):
    def entry(machine):
        return {"name": machine.name, "address": machine.address, "port": machine.port,
                "ssh_user": "root", "known_hosts": front.known_hosts_line(machine)}
    hosts = []
    for host in cluster.hosts.values():
        item = entry(host)
        item.update(host_id=host.host_id or host.index, os=host.os)
        hosts.append(item)
    return {"engine": engine, "engine_vm": entry(cluster.engine_vm), "hosts": hosts,
            "ssh_key": front.client_key_path, "control": {"url": control_url},
            "speed": cluster.clock.speed, "engine_version": cluster.engine_version,
            "pid": os.getpid()}


async def start_sandboxes(cluster, state_dir, bwrap):
    """Every machine's sandbox and tool socket, checked end to end before anything
    listens: a lab whose sandboxes do not work refuses to start."""
    sandboxes, servers = {}, []
    for machine in list(cluster.hosts.values()) + [cluster.engine_vm]:
        sandbox = Sandbox(machine, cluster.clock, state_dir, bwrap)
        sandbox.prepare()
        server = ToolServer(cluster, machine, sandbox.socket_path)
        await server.start()
        sandboxes[machine.name], servers = sandbox, servers + [server]
    await asyncio.gather(*(sandbox.check() for sandbox in sandboxes.values()))
    return sandboxes, servers


async def watch_parent(stop, parent):
    """A test run killed hard must not leave labs behind: stop once reparented. ``parent`` is
    the starter's pid, given on the command line: read here with getppid(), after the lab's
    start-up, it was already the new parent when the starter died during that start-up, and
    the lab ran on."""
    while os.getppid() == parent:
        await asyncio.sleep(1)
    log.warning("parent process %d is gone", parent)
    stop.set()


def twin_cluster(state_dir, args):
    """A lab shaped like the snapshot in args.from_snapshot (lab/snapshot.py); a state
    dir that already holds a lab is reloaded as it is. Returns (cluster, manifest part)."""
    data = lab_snapshot.load(args.from_snapshot)
    fresh = not os.path.exists(os.path.join(state_dir, "state.json"))
    cluster = Cluster(state_dir, hosts=len(data["hosts"]), speed=args.speed,
                      os_name=lab_snapshot.host_os(data), engine_version=data["release"])
    if fresh:
        lab_snapshot.shape(cluster, data)
    else:
        data = {}
    return cluster, {"snapshot": os.path.abspath(args.from_snapshot),
                     "from_the_lab_model": list(lab_snapshot.MODEL_NOTES), "data": data}


async def run(args):
    state_dir = os.path.abspath(args.state_dir)
    make_state_dir(state_dir)
    manifest_path = os.path.join(state_dir, MANIFEST)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # a stale manifest must not look like a started lab
    bwrap = find_bwrap()
    twin = None
    if getattr(args, "from_snapshot", None):
        cluster, twin = twin_cluster(state_dir, args)
    else:
        cluster = Cluster(state_dir, hosts=args.hosts, speed=args.speed, os_name=args.os,
                          engine_version=args.engine_version, undeployed=args.undeployed,
                          outdated=args.outdated)
    sandboxes, tool_servers = await start_sandboxes(cluster, state_dir, bwrap)
    front = SshFront(cluster, state_dir, sandboxes)
    ports = {}
    if args.ssh_port_base:
        for i, machine in enumerate(front.machines()):
            ports[machine.name] = args.ssh_port_base + i
    cluster.start()
    await front.start(ports)
    control_url, control_runner = await start_control(cluster)
    api = await start_engine(cluster, state_dir)
    if twin is not None and api is not None:
        twin["problems"] = lab_snapshot.apply_engine(cluster, twin.pop("data"))
    elif twin is not None:
        twin.pop("data")
    cluster.save()

    def refresh_manifest():
        manifest = build_manifest(cluster, front, engine_entry(api), control_url)
        if twin is not None:
            manifest["twin"] = twin
        write_manifest(state_dir, manifest)

    refresh_manifest()
    cluster.on_manifest_change = refresh_manifest
    log.info("lab up: %d hosts, speed %s, state in %s", len(cluster.hosts), args.speed, state_dir)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.parent is not None:
        loop.create_task(watch_parent(stop, args.parent))
    await stop.wait()

    log.info("lab stopping")
    if api is not None:
        await api.stop()
    await control_runner.cleanup()
    await front.stop()
    for server in tool_servers:
        await server.stop()
    await cluster.stop()
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
