"""oVirt releases, their packages and what each one means for the HA model."""

import re

BASE_PACKAGES = {
    "bash": "4.2.46-19", "kernel": "3.10.0-327", "openssh-server": "6.6.1p1-22",
    "yum": "3.4.3-132", "libvirt": "1.2.17-13", "qemu-kvm-ev": "2.3.0-31",
}
EL6_BASE_PACKAGES = {
    "bash": "4.1.2-33", "kernel": "2.6.32-573", "openssh-server": "5.3p1-111",
    "yum": "3.2.29-69", "libvirt": "0.10.2-54", "qemu-kvm-rhev": "0.12.1.2-2.479",
}

# Per release: the HE packages a host gets from that release's repo, per OS.
# oVirt 3.6 does not ship el6 hosts (the howto's whole reason to move to el7) and
# 4.x hosts are el7 only here.
RELEASES = {
    "3.5": {"el6": True, "el7": True, "packages": {
        "vdsm": "4.16.30-0", "ovirt-hosted-engine-ha": "1.2.10-1",
        "ovirt-hosted-engine-setup": "1.2.6.1-1", "ovirt-engine-sdk-python": "3.5.6.0-1"}},
    "3.6": {"el6": False, "el7": True, "packages": {
        "vdsm": "4.17.32-0", "ovirt-hosted-engine-ha": "1.3.5.8-1",
        "ovirt-hosted-engine-setup": "1.3.7.4-1", "ovirt-engine-sdk-python": "3.6.9.1-1"}},
    "4.x": {"el6": False, "el7": True, "packages": {
        "vdsm": "4.30.46-1", "ovirt-hosted-engine-ha": "2.5.1-1",
        "ovirt-hosted-engine-setup": "2.7.1-1", "ovirt-engine-sdk-python": "3.6.9.1-1"}},
}
ENGINE_PACKAGES = {
    "3.5": {"ovirt-engine": "3.5.6.2-1", "ovirt-engine-setup": "3.5.6.2-1"},
    "3.6": {"ovirt-engine": "3.6.7.5-1", "ovirt-engine-setup": "3.6.7.5-1"},
    "4.x": {"ovirt-engine": "4.5.7-1", "ovirt-engine-setup": "4.5.7-1"},
}
# The package whose unit files a service comes with.
SERVICE_PACKAGE = {"vdsmd": "vdsm", "ovirt-ha-agent": "ovirt-hosted-engine-ha",
                   "ovirt-ha-broker": "ovirt-hosted-engine-ha", "ovirt-engine": "ovirt-engine"}
RELEASE_PACKAGE = {"3.5": "ovirt-release35", "3.6": "ovirt-release36", "4.x": "ovirt-release45"}
RELEASE_FILE = {"3.5": "ovirt-3.5.repo", "3.6": "ovirt-3.6.repo", "4.x": "ovirt-4.5.repo"}
URL_PATH = {"3.5": "ovirt-3.5", "3.6": "ovirt-3.6", "4.x": "ovirt-4.5"}

OS_RELEASE = {
    "el6": "CentOS release 6.7 (Final)",
    "el7": "CentOS Linux release 7.2.1511 (Core)",
}
KERNEL = {
    "el6": "2.6.32-573.el6.x86_64",
    "el7": "3.10.0-327.el7.x86_64",
}


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
    return "4.x" if m.group(1) == "4" else None


def repo_file_text(release):
    path = URL_PATH[release]
    return (f"[{path}]\nname=Latest oVirt {release} Release\n"
            f"baseurl=http://resources.ovirt.org/pub/{path}/rpm/el$releasever/\n"
            "enabled=1\nskip_if_unavailable=1\ngpgcheck=1\n")


def base_score(ha_version):
    """3.5-era agents (ovirt-hosted-engine-ha 1.2) top out at 2400; 3.6+ at 3400."""
    return 2400 if version_key(ha_version) < version_key("1.3") else 3400


def is_legacy_agent(ha_version):
    """3.5-era agents treat a lost lock race as EngineUnexpectedlyDown."""
    return version_key(ha_version) < version_key("1.3")


def uses_old_header(setup_version):
    """hosted-engine-setup 1.2 (3.5) prints `--== Host N status ==--`."""
    return version_key(setup_version) < version_key("1.3")
