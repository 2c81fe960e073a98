"""Simulated machines: HE hosts and the engine VM, with their disks and packages.

A machine's files live on its own root directory (lab/rootfs.py, lab/distro.py): the
simulator reads them back when it needs them (hosted-engine.conf, repo files), so what an
admin changes or removes on the host takes effect. The installed packages are the
simulator's (the rpm database), and their files follow them on disk.
"""

import os
import re

from . import catalog, distro
from .rootfs import RootFs

HE_CONF = distro.HE_CONF
HA_SERVICES = ("vdsmd", "ovirt-ha-broker", "ovirt-ha-agent")
STORAGE = "nfs.lab.local:/exports/hosted-engine"
DOMAIN = "lab.local"
ROOTS = "roots"  # DIR/roots/<machine name>: each machine's `/`


class Machine:
    """Something reachable over SSH: a root directory and installed rpms."""

    kind = "machine"
    persisted = ("name", "address", "port", "os", "packages", "slow_factor", "fail_patterns")

    def __init__(self, name, address, port=0, os="el7"):
        self.name = name
        self.address = address
        self.port = port
        self.os = os
        self.packages = {}
        self.slow_factor = 1.0
        self.fail_patterns = []
        self.fs = None

    @property
    def short_name(self):
        return self.name.split(".")[0]

    def attach_disk(self, state_dir):
        """The machine's root under the state dir; True if it was just created."""
        path = os.path.join(state_dir, ROOTS, self.name)
        fresh = not os.path.isdir(path)
        self.fs = RootFs(path)
        return fresh

    def install_os(self, os):
        """A fresh OS install: base packages and files only."""
        self.os = os
        self.packages = dict(catalog.BASE_PACKAGES[os])
        distro.install_os(self)

    def install_packages(self, versions):
        """rpm -i/-U of {name: version}: new packages put their files on disk."""
        for name, version in versions.items():
            fresh = name not in self.packages
            self.packages[name] = version
            if fresh:
                distro.write_package_files(self, name)
        distro.sync_tools(self)

    def remove_packages(self, names):
        for name in names:
            if self.packages.pop(name, None) is not None:
                distro.remove_package_files(self, name)
        distro.sync_tools(self)

    def add_release_repo(self, release):
        self.install_packages({catalog.RELEASE_PACKAGE[release]: "1-1"})

    def repo_releases(self):
        """oVirt releases whose repos are configured (enabled) on this machine."""
        found = set()
        for path in self.fs.glob("/etc/yum.repos.d", "*.repo"):
            for section in re.split(r"^\[", self.fs.read(path) or "", flags=re.M):
                if re.search(r"^enabled\s*=\s*0", section, flags=re.M):
                    continue
                for line in section.splitlines():
                    if line.startswith(("baseurl", "mirrorlist", "metalink")):
                        release = catalog.release_of_url(line)
                        if release:
                            found.add(release)
        return found

    def available_packages(self):
        """name -> newest version the configured repos offer to this machine."""
        best = {}
        for release in sorted(self.repo_releases(), key=catalog.version_key):
            for name, version in self.release_packages(release).items():
                if name not in best or catalog.version_key(version) > catalog.version_key(best[name]):
                    best[name] = version
        return best

    def release_packages(self, release):
        info = catalog.RELEASES[release]
        return dict(info["packages"]) if self.os in info["os"] else {}

    def outdated_packages(self):
        available = self.available_packages()
        return {name: available[name] for name, version in self.packages.items()
                if name in available
                and catalog.version_key(available[name]) > catalog.version_key(version)}

    def to_dict(self):
        return {key: getattr(self, key) for key in self.persisted}

    def load(self, data):
        for key in self.persisted:
            if key in data:
                setattr(self, key, data[key])


class Host(Machine):
    """A hypervisor: power, services, HA local flags and vdsm's view of the engine VM."""

    kind = "host"
    persisted = Machine.persisted + (
        "index", "power", "booted_at", "died_at", "disconnected", "services", "enabled",
        "vdsm_down_until", "local_maintenance", "local_maintenance_manual", "vm", "died_here",
        "running_ha_version", "agent_stays_down")

    def __init__(self, index, os="el7", port=0):
        super().__init__(f"he{index}.{DOMAIN}", f"127.0.1.{index}", port, os)
        self.index = index
        self.power = "on"  # on | off | booting
        self.booted_at = 0.0
        self.died_at = None
        self.disconnected = False
        self.services = {name: False for name in HA_SERVICES}
        self.enabled = {name: False for name in HA_SERVICES}
        self.vdsm_down_until = 0.0
        self.local_maintenance = False
        self.local_maintenance_manual = False
        self.vm = None  # vdsm's record of HostedEngine on this host
        self.died_here = False  # makes down_unexpected stick, see facts §4
        self.running_ha_version = None
        self.agent_stays_down = False  # fault agent-stays-down: agents started here hang at start
        self.broker_since = float("-inf")  # when its broker last started (not persisted)

    @property
    def host_id(self):
        """From hosted-engine.conf on the host's disk: no file, no HE host."""
        match = re.search(r"^host_id=(\d+)", self.fs.read(HE_CONF) or "", flags=re.M)
        return int(match.group(1)) if match else None

    @property
    def configured(self):
        return self.host_id is not None

    def installed(self, package):
        return package in self.packages

    def deploy_files(self, host_id, storage, stamp):
        distro.deploy_files(self, host_id, storage, stamp)
        for name in HA_SERVICES:
            self.enabled[name] = True

    def reinstall(self, os):
        """A human reinstalls the OS: every package and HE file is gone."""
        self.install_os(os)
        self.services = {name: False for name in HA_SERVICES}
        self.enabled = {name: False for name in HA_SERVICES}
        self.local_maintenance = self.local_maintenance_manual = False
        self.vm = None
        self.died_here = False
        self.running_ha_version = None
        self.fail_patterns = []


class EngineVm(Machine):
    """The guest OS of HostedEngine: reachable only while the VM runs and has an OS.

    `engine_configured` is set by engine-setup; `admin_password` and `engine_fqdn` are
    what it was given, so a first-host deploy can check them (the howto's notes).
    """

    kind = "engine-vm"
    persisted = Machine.persisted + ("engine_running", "setup_running", "engine_version",
                                     "os_installed", "engine_configured", "engine_fqdn",
                                     "admin_password")

    def __init__(self, engine_version, port=0):
        super().__init__(f"engine.{DOMAIN}", "127.0.1.200", port,
                         catalog.ENGINE_OS[catalog.canonical(engine_version)])
        self.engine_running = True
        self.setup_running = False
        self.engine_version = catalog.canonical(engine_version)
        self.os_installed = True
        self.engine_configured = True
        self.engine_fqdn = self.name
        self.admin_password = None  # unknown for the pre-deployed lab: not checked

    def install_guest(self):
        """The admin installed the guest OS (and added the oVirt repo while at it)."""
        self.install_os(catalog.ENGINE_OS[self.engine_version])
        self.add_release_repo(self.engine_version)
        self.os_installed = True

    def wipe(self):
        """A blank VM disk, as first-host deployment creates it."""
        self.fs.wipe()
        self.packages = {}
        self.os_installed = self.engine_configured = self.engine_running = False
        self.admin_password = None

    def release_packages(self, release):
        return dict(catalog.ENGINE_PACKAGES[release])
