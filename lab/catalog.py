"""oVirt releases, their packages and what each one means for the HA model."""

import re

BASE_PACKAGES = {
    "el6": {"bash": "4.1.2-33", "kernel": "2.6.32-573", "openssh-server": "5.3p1-111",
            "yum": "3.2.29-69", "libvirt": "0.10.2-54", "qemu-kvm-rhev": "0.12.1.2-2.479"},
    "el7": {"bash": "4.2.46-19", "kernel": "3.10.0-327", "openssh-server": "6.6.1p1-22",
            "yum": "3.4.3-132", "libvirt": "1.2.17-13", "qemu-kvm-ev": "2.3.0-31"},
    "el8": {"bash": "4.4.20-4", "kernel": "4.18.0-553", "openssh-server": "8.0p1-19",
            "dnf": "4.7.0-19", "yum": "4.7.0-19", "libvirt": "8.0.0-22", "qemu-kvm": "6.2.0-41"},
    "el9": {"bash": "5.1.8-9", "kernel": "5.14.0-427", "openssh-server": "8.7p1-38",
            "dnf": "4.14.0-9", "yum": "4.14.0-9", "libvirt": "10.0.0-6", "qemu-kvm": "8.2.0-11"},
}

# Per release: the host OSes it ships packages for, the HE packages a host gets from its
# repo, and the engine VM's packages (ovirt-releases.md, "Which packages go with which
# release"). oVirt 3.6 has no el6 hosts (the howto's reason to move to el7) and 4.5 none
# for el7.
RELEASES = {
    "3.5": {"os": ("el6", "el7"), "packages": {
        "vdsm": "4.16.30-0", "ovirt-hosted-engine-ha": "1.2.10-1",
        "ovirt-hosted-engine-setup": "1.2.6.1-1", "ovirt-engine-sdk-python": "3.5.6.0-1"}},
    "3.6": {"os": ("el7",), "packages": {
        "vdsm": "4.17.32-0", "ovirt-hosted-engine-ha": "1.3.5.8-1",
        "ovirt-hosted-engine-setup": "1.3.7.4-1", "ovirt-engine-sdk-python": "3.6.9.1-1"}},
    "4.3": {"os": ("el7",), "packages": {
        "vdsm": "4.30.46-1", "ovirt-hosted-engine-ha": "2.3.6-1",
        "ovirt-hosted-engine-setup": "2.3.13-1", "python2-ovirt-engine-sdk4": "4.3.4-2"}},
    "4.5": {"os": ("el8", "el9"), "packages": {
        "vdsm": "4.50.3.4-1", "ovirt-hosted-engine-ha": "2.5.1-1",
        "ovirt-hosted-engine-setup": "2.7.1-1", "python3-ovirt-engine-sdk4": "4.6.2-1"}},
}
ALIASES = {"4.x": "4.5"}  # the newest release
DEFAULT_OS = {"3.5": "el7", "3.6": "el7", "4.3": "el7", "4.5": "el9"}
ENGINE_PACKAGES = {
    "3.5": {"ovirt-engine": "3.5.6.2-1", "ovirt-engine-setup": "3.5.6.2-1"},
    "3.6": {"ovirt-engine": "3.6.7.5-1", "ovirt-engine-setup": "3.6.7.5-1"},
    "4.3": {"ovirt-engine": "4.3.10.4-1", "ovirt-engine-setup": "4.3.10.4-1"},
    "4.5": {"ovirt-engine": "4.5.7-1", "ovirt-engine-setup": "4.5.7-1"},
}
# The build before the current one of a release, for labs started with --outdated: hosts
# and engine VM run these while the release's repo offers the current ones (a minor
# update: `yum update` within the release). 4.5.6 and the 4.5.5/4.5.6 host packages.
PREVIOUS_BUILD = {
    "4.3": {"vdsm": "4.30.40-1", "ovirt-hosted-engine-ha": "2.3.5-1",
            "ovirt-hosted-engine-setup": "2.3.12-1", "python2-ovirt-engine-sdk4": "4.3.2-1",
            "ovirt-engine": "4.3.9.4-1", "ovirt-engine-setup": "4.3.9.4-1"},
    "4.5": {"vdsm": "4.50.3.3-1", "ovirt-hosted-engine-ha": "2.5.0-1",
            "ovirt-hosted-engine-setup": "2.7.0-1", "python3-ovirt-engine-sdk4": "4.6.1-1",
            "ovirt-engine": "4.5.6-1", "ovirt-engine-setup": "4.5.6-1"},
}


def previous_build(release, packages):
    """`packages` (name -> version) as the release's previous build has them."""
    older = PREVIOUS_BUILD.get(release)
    if older is None:
        raise ValueError(f"the lab has no previous build of oVirt {release} "
                         f"(only {', '.join(PREVIOUS_BUILD)})")
    return {name: older.get(name, version) for name, version in packages.items()}


ENGINE_OS = {"3.5": "el6", "3.6": "el7", "4.3": "el7", "4.5": "el8"}
# The package whose unit files a service comes with.
SERVICE_PACKAGE = {"vdsmd": "vdsm", "ovirt-ha-agent": "ovirt-hosted-engine-ha",
                   "ovirt-ha-broker": "ovirt-hosted-engine-ha", "ovirt-engine": "ovirt-engine"}
RELEASE_PACKAGE = {"3.5": "ovirt-release35", "3.6": "ovirt-release36", "4.3": "ovirt-release43",
                   "4.5": "ovirt-release45"}
RELEASE_FILE = {"3.5": "ovirt-3.5.repo", "3.6": "ovirt-3.6.repo", "4.3": "ovirt-4.3.repo",
                "4.5": "ovirt-4.5.repo"}
URL_PATH = {"3.5": "ovirt-3.5", "3.6": "ovirt-3.6", "4.3": "ovirt-4.3", "4.5": "ovirt-4.5"}

OS_RELEASE = {
    "el6": "CentOS release 6.7 (Final)",
    "el7": "CentOS Linux release 7.2.1511 (Core)",
    "el8": "CentOS Stream release 8",
    "el9": "CentOS Stream release 9",
}
KERNEL = {
    "el6": "2.6.32-573.el6.x86_64",
    "el7": "3.10.0-327.el7.x86_64",
    "el8": "4.18.0-553.el8.x86_64",
    "el9": "5.14.0-427.el9.x86_64",
}
# The highest cluster level a host's vdsm supports (the engine's "version" of a host).
VDSM_CLUSTER_LEVEL = (("4.50", (4, 7)), ("4.30", (4, 3)), ("4.17", (3, 6)), ("4.16", (3, 5)))


def canonical(release):
    """3.5, 3.6, 4.3 or 4.5 for a release name the lab accepts (4.x: the newest)."""
    release = ALIASES.get(release, release)
    if release not in RELEASES:
        raise ValueError(f"unknown oVirt release {release!r} (3.5, 3.6, 4.3, 4.5 or 4.x)")
    return release


def uses_dnf(os_name):
    return os_name in ("el8", "el9")


def version_key(version):
    """Sort key for rpm-ish versions like 1.3.5.8-1."""
    return [int(p) if p.isdigit() else 0 for p in re.split(r"[.\-]", version)]


def release_of_url(text):
    """Which oVirt release a repo URL/baseurl or release rpm name points at, or None."""
    m = re.search(r"ovirt-?(?:release)?-?(\d)\.?(\d)", text)
    if not m:
        return None
    name = f"{m.group(1)}.{m.group(2)}"
    if name in RELEASES:
        return name
    return "4.5" if m.group(1) == "4" else None


def repo_file_text(release):
    path = URL_PATH[release]
    return (f"[{path}]\nname=Latest oVirt {release} Release\n"
            f"baseurl=http://resources.ovirt.org/pub/{path}/rpm/el$releasever/\n"
            "enabled=1\nskip_if_unavailable=1\ngpgcheck=1\n")


def setup_key(machine):
    """The installed ovirt-hosted-engine-setup as a version key (empty when absent)."""
    return version_key(machine.packages.get("ovirt-hosted-engine-setup", "0"))


def at_least(version, floor):
    return version_key(version) >= version_key(floor)


def base_score(ha_version):
    """3.5-era agents (ovirt-hosted-engine-ha 1.2) top out at 2400; 3.6+ at 3400."""
    return 3400 if at_least(ha_version, "1.3") else 2400


def cluster_level(vdsm_version):
    """The highest cluster compatibility level a vdsm version supports."""
    for floor, level in VDSM_CLUSTER_LEVEL:
        if at_least(vdsm_version, floor):
            return level
    return (3, 4)


def engine_release(version):
    """The lab release an engine build (e.g. 3.6.7.5) belongs to."""
    for release, packages in ENGINE_PACKAGES.items():
        if version_key(packages["ovirt-engine"])[:2] == version_key(version)[:2]:
            return release
    return None
