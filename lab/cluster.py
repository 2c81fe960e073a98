"""The simulated hosted-engine cluster: hosts, whiteboard, engine VM, faults.

`Cluster` is also the `backend` the engine REST API (lab/engine/) talks to; see
lab/INTERFACE.md. Everything runs on one asyncio loop, so no locking is needed.
"""

import asyncio
import json
import logging
import os
import time
import zlib

from . import admin, catalog, distro, ha, logs, vm
from .clock import ScaledClock
from .errors import LabError
from .machines import HA_SERVICES, STORAGE, EngineVm, Host
from .private import write_private

log = logging.getLogger(__name__)

BOOT_TIME = 60            # power on -> sshd and services up
AGENT_START_DELAY = 30    # broker connects the storage before the agent starts
VDSM_RESTART_SECS = 15     # vdsm recovers its VMs before answering
BROKER_WARMUP = 20         # a restarted broker sees every host stale until host-ts moves again
HOST_DEPLOY_SECS = 120     # the engine's host-deploy: packages, vdsm, HE configuration
STATE_FILE = "state.json"
HA_CONF = "/var/lib/ovirt-hosted-engine-ha/ha.conf"
CLUSTER_NAME = "Default"


class Cluster:
    def __init__(self, state_dir, hosts=3, speed=1.0, os_name=None, engine_version="4.3",
                 undeployed=False, outdated=False):
        self.state_dir = state_dir
        self.engine = None
        self.agents = {}
        self.on_change = None  # set by the runner: re-sync SSH listeners
        self.on_manifest_change = None  # set by the runner: rewrite manifest.json
        self.settle = None  # set by the runner: async, brings SSH listeners up to date
        self._tasks = set()
        path = os.path.join(state_dir, STATE_FILE)
        if os.path.exists(path):
            with open(path) as f:
                self._load(json.load(f), speed)
        else:
            self._create(hosts, speed, os_name, engine_version, undeployed, outdated)

    # -- creation and persistence --------------------------------------------------

    def _create(self, count, speed, os_name, engine_version, undeployed, outdated=False):
        """`outdated`: hosts and engine VM run the release's previous build (a minor
        update is waiting in the repo)."""
        try:
            engine_version = catalog.canonical(engine_version)
            installed = (lambda packages: catalog.previous_build(engine_version, packages)) \
                if outdated else dict
        except ValueError as exc:
            raise LabError(str(exc)) from None
        os_name = os_name or catalog.DEFAULT_OS[engine_version]
        if os_name not in catalog.RELEASES[engine_version]["os"]:
            hosts_os = "/".join(catalog.RELEASES[engine_version]["os"])
            raise LabError(f"oVirt {engine_version} has no {os_name} hosts ({hosts_os} only)")
        self.clock = ScaledClock(speed, start=0.0)
        now = self.clock.now()
        self.global_maintenance = False
        self.lockspace_corrupt = False
        self.segments = {}
        self.hosts = {}
        for index in range(1, count + 1):
            host = Host(index, os_name)
            host.attach_disk(self.state_dir)
            host.install_os(os_name)
            host.add_release_repo(engine_version)
            host.booted_at = now - 3_800_000 + index * 1000
            if not undeployed:
                host.install_packages(installed(host.release_packages(engine_version)))
                self._predeploy(host, index)
            self.hosts[host.name] = host
        self.engine_vm = EngineVm(engine_version)
        self.engine_vm.attach_disk(self.state_dir)
        # The HE storage domain (None: nothing deployed yet) and the host whose
        # first-host deployment has created the VM there but not finished.
        self.he_storage = STORAGE
        self.deploying = None
        self.lease_version = 0  # sanlock's lver of the VM's lease: +1 at each acquisition
        if undeployed:
            self.he_storage = None
            self.lease = None
            self.engine_vm.wipe()
            return
        self.engine_vm.install_guest()
        self.engine_vm.install_packages(installed(catalog.ENGINE_PACKAGES[engine_version]))
        first = self.hosts["he1.lab.local"]
        first.vm = vm.new_record("Up", now, started=now - 100_000)
        self.lease = first.name
        self.lease_version = 1
        # Agents resume as if they had been running for a long time (steady state).
        for host in self.hosts.values():
            agent_state = "EngineUp" if host is first else "EngineDown"
            self._resume_agent(host, {"state": agent_state, "history": 100_000})

    def _load(self, data, speed):
        self.clock = ScaledClock(speed, start=data["clock_now"], wall_start=data["wall_start"])
        self.global_maintenance = data["global_maintenance"]
        self.lockspace_corrupt = data["lockspace_corrupt"]
        self.segments = data["segments"]
        self.lease = data["lease"]
        self.lease_version = data.get("lease_version", 1)
        self.he_storage = data.get("he_storage", STORAGE)
        self.deploying = data.get("deploying")
        self.hosts = {}
        for item in data["hosts"]:
            host = Host(item["index"], item["os"])
            host.load(item)
            self._attach_disk(host, item)
            self.hosts[host.name] = host
        self.engine_vm = EngineVm(data["engine_vm"]["engine_version"])
        self.engine_vm.load(data["engine_vm"])
        self.engine_vm.engine_version = catalog.canonical(self.engine_vm.engine_version)
        self._attach_disk(self.engine_vm, data["engine_vm"])
        for item in data["hosts"]:
            host = self.hosts[item.get("name") or f"he{item['index']}.lab.local"]
            if host.power == "on" and host.services["ovirt-ha-agent"]:
                self._resume_agent(host, item.get("agent") or {"state": "StartState"})
            elif host.power == "booting":
                self._spawn(self._finish_boot(host))

    def _predeploy(self, host, host_id):
        """A host deployed long ago: its HE files, an answer file and a setup log."""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock.wall() - 4_000_000))
        host.deploy_files(host_id, STORAGE, stamp)
        answers = (f"[environment:default]\nOVEHOSTED_STORAGE/storageDomainConnection=str:"
                   f"{STORAGE}\nOVEHOSTED_STORAGE/hostID=int:{host_id}\n")
        host.fs.write(f"{distro.ANSWERS_DIR}/answers-{stamp}.conf", answers)
        host.fs.write(distro.HE_ANSWERS, answers)
        host.fs.write(f"{distro.SETUP_LOG_DIR}/ovirt-hosted-engine-setup-{stamp}-lab{host_id}.log",
                      f"{stamp} INFO otopi.plugins.ovirt_hosted_engine_setup.core.misc "
                      "Hosted Engine successfully set up\n")
        host.services = {name: True for name in HA_SERVICES}

    def _attach_disk(self, machine, item):
        """The machine's disk; a state dir from before machines had disks gets one built
        from its old file list."""
        if not machine.attach_disk(self.state_dir):
            distro.sync_tools(machine)  # this lab's version of the tools
            return
        if machine.kind == "host" or machine.os_installed:
            distro.install_os(machine)
        for path, text in item.get("files", {}).items():
            machine.fs.write(path, text)

    def _resume_agent(self, host, snapshot):
        agent = ha.Agent(self, host)
        now = self.clock.now()
        agent.state = snapshot["state"]
        agent.started_at = now - snapshot.get("history", 0)
        agent.entered = now - snapshot.get("in_state", 0)
        agent.retry_count = snapshot.get("retry_count", 0)
        agent.silent = snapshot.get("silent", False)
        agent.stuck = snapshot.get("stuck", False)
        self.agents[host.name] = agent

    def to_dict(self):
        now = self.clock.now()
        hosts = []
        for host in self.hosts.values():
            item = host.to_dict()
            agent = self.agents.get(host.name)
            if agent:
                item["agent"] = {"state": agent.state, "history": agent.history(now),
                                 "in_state": now - agent.entered,
                                 "retry_count": agent.retry_count, "silent": agent.silent,
                                 "stuck": agent.stuck}
            hosts.append(item)
        return {"clock_now": now, "wall_start": self.clock.wall() - now,
                "global_maintenance": self.global_maintenance,
                "lockspace_corrupt": self.lockspace_corrupt, "segments": self.segments,
                "lease": self.lease, "lease_version": self.lease_version, "he_storage": self.he_storage, "deploying": self.deploying,
                "hosts": hosts, "engine_vm": self.engine_vm.to_dict()}

    def save(self):
        """Atomic write, so a crash never leaves half a state file."""
        # It holds what engine-setup was given, the admin password too: 0600.
        write_private(os.path.join(self.state_dir, STATE_FILE),
                      json.dumps(self.to_dict(), indent=1))

    # -- running ------------------------------------------------------------------

    def start(self):
        """Start the agent tasks and the ticker; call on the running loop."""
        for agent in self.agents.values():
            agent.task = self._spawn(agent.run())
        self._spawn(self._tick())

    async def stop(self):
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.save()

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick(self):
        """Drive time-based transitions and save the state now and then."""
        last_save = 0.0
        while True:
            self.advance(self.clock.now())
            if time.monotonic() - last_save > 1.0:
                self.save()
                last_save = time.monotonic()
            await asyncio.sleep(0.05)

    def changed(self):
        if self.on_change:
            self.on_change()

    def advance(self, now):
        vm.advance(self, now)

    def vdsm_up(self, host, now):
        return host.power == "on" and host.services["vdsmd"] and now >= host.vdsm_down_until

    def reachable(self, host):
        return host.power == "on" and not host.disconnected and self.vdsm_up(host, self.clock.now())

    def ssh_reachable(self, machine):
        """Should this machine's sshd answer now? (False also for the stopped engine VM.)"""
        if machine is self.engine_vm:
            name = self.engine_vm_host()
            return (self.engine_vm.os_installed and name is not None
                    and vm.running_status(self.hosts[name]) in ("Up", "Migration Source"))
        return machine.power == "on"

    # -- whiteboard ----------------------------------------------------------------

    def host_ts(self, host, now):
        return int(now - host.booted_at) + 60

    def publish(self, host, host_id, now, *, state, score, engine_status, stopped, maintenance,
                extra, conf_on_shared_storage=True):
        ts = self.host_ts(host, now)
        wall = time.ctime(self.clock.wall())
        seg = {"host-id": host_id, "host-ts": ts, "score": score,
               "engine-status": engine_status, "hostname": host.name,
               "maintenance": maintenance, "stopped": stopped,
               "conf_on_shared_storage": conf_on_shared_storage, "local_conf_timestamp": ts,
               "state": state, "extra": extra, "wall": wall, "written_at": now}
        raw = "|".join(str(seg[k]) for k in ("host-id", "host-ts", "score", "hostname", "state"))
        seg["crc32"] = "%08x" % zlib.crc32(raw.encode())
        self.segments[str(host_id)] = seg

    def is_live(self, seg, now):
        return now - seg["written_at"] <= ha.HOST_ALIVE_TIMEOUT

    def live_segments(self, reader_id, now):
        """Segments the broker of host `reader_id` sees as live. A reader whose own agent
        stopped publishing sees every host as stale (facts §7, "Agent stopped"); a broker
        just (re)started sees every host stale until it has seen their timestamps move, and
        an agent needs 60 s of history before it sees the other hosts live
        (agent/state_machine.py)."""
        own = self.segments.get(str(reader_id))
        if own is not None and not self.is_live(own, now):
            return []
        reader = next((h for h in self.hosts.values() if h.host_id == reader_id), None)
        if reader is not None and now - reader.broker_since < BROKER_WARMUP:
            return []
        agent = self.agents.get(reader.name) if reader is not None else None
        remotes_live = agent is None or agent.history(now) >= ha.HOST_ALIVE_TIMEOUT
        return [seg for seg in self.segments.values() if self.is_live(seg, now)
                and (remotes_live or seg["host-id"] == reader_id)]

    # -- services ------------------------------------------------------------------

    def start_service(self, host, name):
        """Returns an error text, or None when the service is running."""
        now = self.clock.now()
        if name == "vdsmd" and not host.installed("vdsm"):
            return "Failed to start vdsmd.service: Unit not found."
        if name.startswith("ovirt-ha") and not host.installed("ovirt-hosted-engine-ha"):
            return f"Failed to start {name}.service: Unit not found."
        if name == "ovirt-ha-agent" and not host.configured:
            return ("Job for ovirt-ha-agent.service failed because the control process exited "
                    "with error code. See \"systemctl status ovirt-ha-agent.service\" and "
                    "\"journalctl -xe\" for details.")
        if host.services[name]:
            return None
        if name == "ovirt-ha-agent" and not host.services["ovirt-ha-broker"]:
            self.start_service(host, "ovirt-ha-broker")  # the agent unit wants the broker
        host.services[name] = True
        wall = self.clock.wall()
        if name == "vdsmd":
            host.vdsm_down_until = now + VDSM_RESTART_SECS
            logs.vdsm(host, wall, "vdsmd::133::vds::(run)",
                      f"I am the actual vdsm {host.packages['vdsm']} {host.name} "
                      f"({catalog.KERNEL[host.os]})")
        if name == "ovirt-ha-broker":
            host.broker_since = now
            logs.broker(host, wall,
                        "broker::47::ovirt_hosted_engine_ha.broker.broker.Broker::(run)",
                        f"ovirt-hosted-engine-ha broker {host.packages['ovirt-hosted-engine-ha']} "
                        "started", thread="MainThread")
        if name == "ovirt-ha-agent":
            agent = ha.Agent(self, host)
            self.agents[host.name] = agent
            agent.task = self._spawn(agent.run())
        self.changed()
        return None

    def stop_service(self, host, name, clean=True):
        if clean and host.services[name] and name == "ovirt-ha-broker":
            logs.broker(host, self.clock.wall(),
                        "broker::77::ovirt_hosted_engine_ha.broker.broker.Broker::(run)",
                        "Server shutting down", thread="MainThread")
        host.services[name] = False
        if name == "ovirt-ha-agent":
            agent = self.agents.pop(host.name, None)
            if agent:
                if agent.task:
                    agent.task.cancel()
                if clean:
                    agent.stop_cleanly()
        self.changed()

    def restart_service(self, host, name):
        if host.services.get(name):
            self.stop_service(host, name)
        return self.start_service(host, name)

    def agent_state(self, host):
        agent = self.agents.get(host.name)
        return agent.state if agent else None

    # -- power ---------------------------------------------------------------------

    def kill_host(self, host):
        """Forced power-off: no clean agent exit, the VM dies, the lease lingers."""
        if host.power == "off":
            return
        now = self.clock.now()
        for name in HA_SERVICES:
            self.stop_service(host, name, clean=False)
        if host.vm and host.vm["status"] == "Migration Source":
            self.hosts[host.vm["dest"]].vm = None
        for other in self.hosts.values():
            if other.vm and other.vm.get("status") == "Migration Destination" and other is not host:
                source = [h for h in self.hosts.values() if h.vm and h.vm.get("dest") == other.name]
                if not source:
                    other.vm = None
        host.vm = None
        host.power = "off"
        host.died_at = now
        self.changed()

    def boot_host(self, host):
        if host.power != "off":
            return
        host.power = "booting"
        host.booted_at = self.clock.now() + BOOT_TIME
        self._spawn(self._finish_boot(host))
        self.changed()

    async def _finish_boot(self, host):
        await self.clock.sleep(max(0.0, host.booted_at - self.clock.now()))
        if host.power != "booting":
            return
        host.power = "on"
        host.fs.remove("/run")  # a tmpfs on EL7: empty after every boot
        host.fs.makedirs("/run")
        if self.lease == host.name and host.vm is None:
            self.lease = None  # sanlock starts clean after a reboot
        for name in ("vdsmd", "ovirt-ha-broker"):
            if host.enabled[name]:
                self.start_service(host, name)
        self.changed()
        if host.enabled["ovirt-ha-agent"]:
            await self.clock.sleep(AGENT_START_DELAY)
            if host.power == "on" and not host.services["ovirt-ha-agent"]:
                self.start_service(host, "ovirt-ha-agent")

    def power_cycle(self, host):
        """`reboot`: services stop cleanly, a VM running here dies with the host."""
        if vm.running_status(host):
            vm.vm_poweroff(self, host, self.clock.now())
        for name in reversed(HA_SERVICES):
            if host.services[name]:
                self.stop_service(host, name)
        host.power = "off"
        host.died_at = None
        self.boot_host(host)

    async def reboot_host(self, host):
        """A clean reboot (e.g. after an upgrade); waits until the host is back."""
        if vm.running_status(host):
            raise LabError(f"Cannot reboot {host.name}: the HostedEngine VM is running on it")
        self.power_cycle(host)
        while host.power != "on":
            await self.clock.sleep(5)

    # -- faults --------------------------------------------------------------------

    def host_by_name(self, name):
        for host in self.hosts.values():
            if name in (host.name, host.short_name, host.address):
                return host
        raise LabError(f"no such host: {name}")

    def fault(self, kind, host=None, **kw):
        """Inject a fault from the control endpoint; returns a short description."""
        needs_host = {"kill-host", "boot-host", "disconnect-host", "reconnect-host",
                      "fail-next-command", "slow-host", "reinstall-host", "agent-stays-down",
                      "agent-comes-up"}
        target = None
        if kind in needs_host:
            if not host:
                raise LabError(f"{kind} needs --host")
            target = self.host_by_name(host)
        if kind == "kill-host":
            self.kill_host(target)
        elif kind == "boot-host":
            self.boot_host(target)
        elif kind == "kill-engine-vm":
            name = self.engine_vm_host()
            if name is None:
                raise LabError("the engine VM is not running")
            vm.vm_crash(self, self.hosts[name], self.clock.now())
        elif kind == "power-outage":
            for each in self.hosts.values():
                self.kill_host(each)
            for each in self.hosts.values():
                self.boot_host(each)
        elif kind == "corrupt-lockspace":
            self.lockspace_corrupt = True
        elif kind == "disconnect-host":
            target.disconnected = True
        elif kind == "reconnect-host":
            target.disconnected = False
        elif kind == "fail-next-command":
            pattern = kw.get("pattern")
            if not pattern:
                raise LabError("fail-next-command needs --pattern")
            target.fail_patterns.append(pattern)
        elif kind == "slow-host":
            target.slow_factor = float(kw.get("factor") or 5)
        elif kind in ("agent-stays-down", "agent-comes-up"):
            # The agent running now is left alone: the fault hits the next one started.
            target.agent_stays_down = kind == "agent-stays-down"
        elif kind == "reinstall-host":
            self.kill_host(target)
            target.reinstall(kw.get("os") or "el7")
            self.boot_host(target)
        else:
            raise LabError(f"unknown fault kind: {kind}")
        self.changed()
        self.save()
        return f"{kind} done" + (f" on {target.name}" if target else "")

    # -- snapshot ------------------------------------------------------------------

    def snapshot(self):
        now = self.clock.now()
        self.advance(now)
        hosts = {}
        for host in self.hosts.values():
            info = self.host_info(host.name)
            info.update(power=host.power, disconnected=host.disconnected,
                        agent_state=self.agent_state(host),
                        transitions=list(self.agents[host.name].transitions)
                        if host.name in self.agents else [],
                        services=dict(host.services),
                        vm=host.vm["status"] if host.vm else None,
                        engine_status=vm.engine_status(self, host, now),
                        packages=dict(host.packages), repos=sorted(host.repo_releases()),
                        slow_factor=host.slow_factor, fail_patterns=list(host.fail_patterns))
            hosts[host.name] = info
        return {"now": now, "speed": self.clock.speed, "engine_version": self.engine_version,
                "global_maintenance": self.global_maintenance,
                "lockspace_corrupt": self.lockspace_corrupt,
                "engine_vm": {"host": self.engine_vm_host(), "status": self.engine_vm_status(),
                              "healthy": self.engine_healthy(), "lease": self.lease},
                "he_storage": self.he_storage, "deploying": self.deploying,
                "hosts": hosts, "engine": admin.engine_view(self)}

    # -- backend API for lab/engine (see INTERFACE.md) -----------------------------

    @property
    def engine_version(self):
        return self.engine_vm.engine_version

    engine_fqdn = "engine.lab.local"

    def attach_engine(self, engine):
        self.engine = engine

    def host_names(self):
        return list(self.hosts)

    def host_info(self, name):
        host = self.host_by_name(name)
        now = self.clock.now()
        host_id = host.host_id
        seg = self.segments.get(str(host_id)) if host_id is not None else None
        live = bool(seg) and self.is_live(seg, now) and host.power == "on"
        return {"name": host.name, "address": host.address, "os": host.os,
                "host_id": host_id, "reachable": self.reachable(host),
                "score": seg["score"] if seg else 0, "live": live,
                "local_maintenance": bool(seg and seg["maintenance"]),
                "global_maintenance": self.global_maintenance,
                "configured": host_id is not None,
                "agent_version": host.running_ha_version or host.packages.get(
                    "ovirt-hosted-engine-ha", ""),
                "cluster_level": catalog.cluster_level(host.packages.get("vdsm", "0")),
                "vdsm_version": host.packages.get("vdsm", ""),
                "packages_outdated": bool(host.outdated_packages())}

    def engine_vm_host(self):
        self.advance(self.clock.now())
        for host in self.hosts.values():
            if vm.running_status(host):
                return host.name
        return None

    def engine_vm_status(self):
        name = self.engine_vm_host()
        if name is None:
            return "down"
        return {"WaitForLaunch": "wait_for_launch", "Powering up": "powering_up", "Up": "up",
                "Powering down": "powering_down", "Migration Source": "migrating", "Paused": "paused",
                }[self.hosts[name].vm["status"]]

    def engine_healthy(self):
        name = self.engine_vm_host()
        return name is not None and vm.healthy(self, self.hosts[name], self.clock.now())

    def set_local_maintenance(self, name, on):
        """vdsm's setHaMaintenanceMode: the HA client writes the flag to ha.conf, which
        the agent reads (ovirt-hosted-engine-ha client/client.py, env/config.py)."""
        host = self.host_by_name(name)
        host.local_maintenance = bool(on)
        if host.fs.exists(HA_CONF):
            host.fs.write(HA_CONF, f"local_maintenance={bool(on)}\n")
        self.changed()

    async def migrate_engine_vm(self, dest_name):
        dest = self.host_by_name(dest_name)
        source_name = self.engine_vm_host()
        if source_name is None or self.hosts[source_name].vm["status"] != "Up":
            raise LabError("Cannot migrate VM. VM HostedEngine is not running.")
        source = self.hosts[source_name]
        if dest is source:
            raise LabError("Cannot migrate VM. The VM is already running on the destination host.")
        info = self.host_info(dest.name)
        if not info["reachable"] or not info["configured"] or dest.local_maintenance \
                or dest.local_maintenance_manual or info["score"] <= 0:
            raise LabError(f"Cannot migrate VM. Host {dest.name} cannot run the hosted engine "
                           "(not up, not HA-active, in local maintenance or scoring 0).")
        vm.start_migration(self, source, dest, self.clock.now())
        while source.vm and source.vm.get("status") == "Migration Source":
            await self.clock.sleep(1)
        if self.engine_vm_host() != dest.name:
            raise LabError("Migration failed: the source or destination host went down.")

    async def upgrade_host(self, name, reboot):
        """Engine-driven upgrade: yum update of every outdated package, then restart or reboot."""
        host = self.host_by_name(name)
        if not self.reachable(host):
            raise LabError(f"Host {host.name} is not reachable")
        await self.clock.sleep(60 * host.slow_factor)
        host.install_packages(host.outdated_packages())
        if reboot:
            await self.reboot_host(host)
        else:
            for service in HA_SERVICES:
                if host.services[service]:
                    self.restart_service(host, service)
        self.save()

    def in_engine_maintenance(self, host):
        """Does the engine have this host in maintenance (what HA 1.3 asks before
        converting a 3.5 configuration)?"""
        asks = getattr(self.engine, "host_in_maintenance", None)
        return bool(asks) and asks(host.name)

    async def deploy_host(self, name, hosted_engine):
        """The engine's host-deploy (web admin "New Host", with "Hosted Engine: Deploy"):
        vdsm and, for an HE host, the HA packages and the HE configuration; then the
        daemons start and the agent joins the whiteboard. Raises LabError on failure."""
        host = self.host_by_name(name)
        if host.power != "on" or host.disconnected:
            raise LabError(f"Failed to establish session with host '{host.name}'")
        available = host.available_packages()
        wanted = ["vdsm"] + (["ovirt-hosted-engine-ha", "ovirt-hosted-engine-setup"]
                             if hosted_engine else [])
        missing = [p for p in wanted if p not in available and p not in host.packages]
        if missing:
            raise LabError(f"Failed to install Host {host.short_name}. Yum Cannot queue package "
                           f"{missing[0]}: no oVirt repository for {host.os} is enabled.")
        await self.clock.sleep(HOST_DEPLOY_SECS * host.slow_factor)
        sdk = [p for p in available if p.endswith(("sdk-python", "engine-sdk4"))]
        host.install_packages({p: available[p] for p in wanted + sdk if p not in host.packages})
        if hosted_engine and not host.configured:
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock.wall()))
            host.deploy_files(self.free_host_id(), self.he_storage, stamp)
        host.enabled["vdsmd"] = True
        self.start_service(host, "vdsmd")
        if hosted_engine:
            self.start_service(host, "ovirt-ha-agent")
        self.save()

    def free_host_id(self):
        used = {h.host_id for h in self.hosts.values() if h.configured}
        used |= {int(k) for k in self.segments}
        return min(set(range(1, len(used) + 2)) - used)

    def register_with_engine(self, host, cluster_name=CLUSTER_NAME, new=False):
        """Add the host to the engine; `new`: fail (LabError) if the engine knows it."""
        if self.engine is None:
            return
        if new and getattr(self.engine, "host_status", lambda name: None)(host.name):
            raise LabError("Cannot add Host. The Host name is already in use, please choose a "
                           "unique name and try again.")
        self.engine.register_host(host.name, host.address, cluster_name)

    def engine_cluster_names(self):
        names = getattr(self.engine, "cluster_names", None)
        return names() if names else []

    def set_admin_password(self, password):
        """engine-setup on a fresh engine sets the admin@internal password of the API."""
        if self.engine is not None and hasattr(self.engine, "set_password"):
            self.engine.set_password(password)
        if self.on_manifest_change:
            self.on_manifest_change()

    # -- first-host deployment -----------------------------------------------------

    @property
    def he_deployed(self):
        return self.he_storage is not None and self.deploying is None

    def create_he_storage(self, host, path):
        """The deploy created the storage domain and an empty engine VM disk on `path`."""
        self.he_storage = path
        self.deploying = host.name
        self.engine_vm.wipe()
        self.save()

    def boot_setup_vm(self, host):
        """vdsm (re)creates the not-yet-HA VM on the deploying host (boot device or disk)."""
        now = self.clock.now()
        vm.vm_poweroff(self, host, now)
        vm.vm_start(self, host, now)

    def destroy_setup_vm(self, host):
        """Option (4): destroy the VM and clean the storage, back to nothing deployed."""
        vm.vm_poweroff(self, host, self.clock.now())
        self.engine_vm.wipe()
        self.he_storage = None
        self.deploying = None
        self.lease = None
        self.save()

    def finish_first_deploy(self):
        self.deploying = None
        self.save()
