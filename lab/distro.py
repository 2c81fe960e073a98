"""What an EL install and the oVirt packages put on a machine's disk.

A machine's root (lab/rootfs.py) starts as a small EL image: /etc with the release, hosts,
passwd and repo files, root's dotfiles, and a /usr whose bin and sbin hold a link to each of
the lab machine's own programs (bash, coreutils, grep, sed, awk, ... from /.lab/usr, the
machine's read-only /usr) next to the lab's simulated tools. Installing a package writes
the files it owns; removing it deletes them, as rpm does, so `yum remove` or `rm` on a host
has the effect it has on a real one.
"""

import functools
import os
import re

from . import catalog

LAB = "/.lab"            # the sandbox's view of the simulator: see lab/sandbox.py
INSIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inside")
SHIMS = {"date": "/usr/bin", "sleep": "/usr/bin"}  # scaled clock, in bash (lab/inside/)

HE_CONF = "/etc/ovirt-hosted-engine/hosted-engine.conf"
HE_ANSWERS = "/etc/ovirt-hosted-engine/answers.conf"
VM_CONF = "/run/ovirt-hosted-engine-ha/vm.conf"  # /var/run/...: a tmpfs, empty after a boot
CONF_VOLUME = "conf_volume_UUID=a2b4c6d8-0000-4000-8000-000000000001\n"
CONF_IMAGE = "conf_image_UUID=b3c5d7e9-0000-4000-8000-000000000002\n"
# The HE storage domain's volumes, as setup writes them (templates/hosted-engine.conf.in
# at 1.2.6.1 and 2.3.13): the whiteboard and the sanlock lockspace of the HA agents.
VOLUMES = ("metadata_volume_UUID=c4d6e8fa-0000-4000-8000-000000000003\n"
           "metadata_image_UUID=d5e7f90b-0000-4000-8000-000000000004\n"
           "lockspace_volume_UUID=e6f80a1c-0000-4000-8000-000000000005\n"
           "lockspace_image_UUID=f7091b2d-0000-4000-8000-000000000006\n")
VM_DISK_VOLUME = "7e3b6f2d-2c2d-4a1f-8c64-3b5d3c9e2e22"  # vm_disk_vol_id: setup 1.3 on
BLANK_POOL = "spUUID=00000000-0000-0000-0000-000000000000\n"
OLD_POOL = "spUUID=5849b030-626e-47cb-ad90-3ce782d831b3\n"
ANSWERS_DIR = "/var/lib/ovirt-hosted-engine-setup/answers"
SETUP_LOG_DIR = "/var/log/ovirt-hosted-engine-setup"

DIRS = ("etc", "var/log", "var/lib", "var/cache", "var/spool", "var/tmp", "run", "export",
        "home", "opt", "srv", "mnt", "media", "boot", "proc", "dev", ".lab", "usr/local/bin",
        "usr/local/sbin", "usr/local/etc", "usr/local/lib", "usr/local/share")
MERGED_USR = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}

PASSWD = ("root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n"
          "daemon:x:2:2:daemon:/sbin:/sbin/nologin\nsshd:x:74:74:Privilege-separated SSH:"
          "/var/empty/sshd:/sbin/nologin\nnobody:x:99:99:Nobody:/:/sbin/nologin\n")
GROUP = "root:x:0:\nbin:x:1:\ndaemon:x:2:\nkvm:x:36:\nsshd:x:74:\nnobody:x:99:\n"
PROFILE = ("# /etc/profile (lab image)\n"
           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\nexport PATH\n"
           "for i in /etc/profile.d/*.sh; do [ -r \"$i\" ] && . \"$i\"; done\nunset i\n")
BASHRC = "# /etc/bashrc (lab image)\nif [ -n \"$PS1\" ]; then PS1='[\\u@\\h \\W]\\$ '; fi\n"
ROOT_BASH_PROFILE = ("# .bash_profile\nif [ -f ~/.bashrc ]; then . ~/.bashrc; fi\n"
                     "PATH=$PATH:$HOME/bin\nexport PATH\n")
ROOT_BASHRC = ("# .bashrc\nalias rm='rm -i'\nalias cp='cp -i'\nalias mv='mv -i'\n"
               "if [ -f /etc/bashrc ]; then . /etc/bashrc; fi\n")
HOSTS = ("127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n"
         "::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n")
BASE_REPO = ("[base]\nname=CentOS-$releasever - Base\n"
             "mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os\n"
             "gpgcheck=1\n")

# What a minimal EL install plus the oVirt host packages put on PATH, by package (CentOS
# 6/7 @core and Stream 8/9 @minimal): the machine's own build of each is linked in. Not
# there, as on a real host: jq (EPEL, or an AppStream package no oVirt host pulls in),
# perl, rsync, wget, nc, lsof, strace, bc, sqlite3, pip... Coreutils' newer programs
# (base32, basenc, b2sum) are left out too: EL7's coreutils 8.22 has none of them.
EL_PROGRAMS = frozenset("""
    [ arch base64 basename cat chcon chgrp chmod chown chroot cksum comm cp csplit cut dd df
    dir dircolors dirname du echo env expand expr factor false fmt fold groups head hostid id
    install join link ln logname ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc
    numfmt od paste pathchk pinky pr printenv printf ptx pwd readlink realpath rm rmdir runcon
    seq sha1sum sha224sum sha256sum sha384sum sha512sum shred shuf sort split stat stdbuf stty
    sum sync tac tail tee test timeout touch tr true truncate tsort tty unexpand uniq unlink
    users vdir wc who whoami yes
    bash sh grep egrep fgrep sed awk gawk find xargs which diff diff3 cmp sdiff
    tar gzip gunzip zcat zgrep zless zmore zdiff bzip2 bunzip2 bzcat xz unxz xzcat cpio
    less more file vi
    ps pgrep pkill pidof top free vmstat w watch sysctl pmap pwdx kill killall pstree fuser
    flock getopt logger lsblk findmnt mount umount mountpoint setsid script column rev
    whereis su runuser ionice taskset renice nsenter unshare lscpu dmesg namei look col colrm wall
    mesg last lastb blkid losetup wipefs fallocate chrt prlimit lslocks partx hwclock
    hostname domainname dnsdomainname ip ss bridge tc
    ssh scp sftp ssh-keygen ssh-keyscan ssh-add ssh-agent curl openssl
    clear tput reset infocmp tset getent locale iconv ldd ldconfig
    useradd userdel usermod groupadd groupdel passwd chage nologin
""".split())
SYSTEMD_PROGRAMS = frozenset("journalctl hostnamectl localectl loginctl timedatectl busctl".split())
EL6_PROGRAMS = frozenset("ifconfig netstat route arp".split())  # net-tools: in EL6's base only
# Not in EL6's coreutils 8.4: realpath came in 8.15, numfmt in 8.21 (coreutils NEWS, tags v8.15
# and v8.21 of coreutils/coreutils); EL7 has 8.22, EL8 8.30, EL9 8.32.
EL6_MISSING = frozenset("realpath numfmt".split())

# Each release's Python, as the real host has it (ovirt-releases.md, "Hosts and storage
# leases"): EL6/EL7 Python 2 as `python` and no python3; EL8 Python 3.6 as platform-python
# and python3; EL9 Python 3.9 as python3 (RHEL 9 has no platform-python). The interpreter
# is pyenv's build of that series when this machine has one (PYENV_ROOT, ~/.pyenv): 2.7 for
# EL7's 2.7.5 and for EL6's 2.6.6 too (no 2.6 here: 2.7's syntax passes where 2.6 fails),
# 3.6 and 3.9. Without it the machine's own python3 stands in, which runs what Python 2
# refuses (see docs/lab.md, "The hosts' userland").
PYTHONS = {
    "el6": ("2.7", ("/usr/bin/python", "/usr/bin/python2", "/usr/bin/python2.6")),
    "el7": ("2.7", ("/usr/bin/python", "/usr/bin/python2", "/usr/bin/python2.7")),
    "el8": ("3.6", ("/usr/libexec/platform-python", "/usr/libexec/platform-python3.6",
                    "/usr/bin/python3", "/usr/bin/python3.6")),
    "el9": ("3.9", ("/usr/bin/python3", "/usr/bin/python3.9")),
}


@functools.lru_cache(maxsize=None)
def python_home(series):
    """The prefix of this machine's newest pyenv build of `series` (e.g. 2.7), or None."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    versions = os.path.join(root, "versions")
    try:
        names = [n for n in os.listdir(versions) if re.fullmatch(re.escape(series) + r"\.\d+", n)]
    except OSError:
        return None
    for name in sorted(names, key=lambda n: int(n.rsplit(".", 1)[1]), reverse=True):
        home = os.path.join(versions, name)
        if os.access(os.path.join(home, "bin", "python" + series), os.X_OK):
            return home
    return None


def python_binary(series):
    """Where a host's python links to: the release's interpreter under /.lab/python (see
    lab/sandbox.py), or the machine's python3 when there is none."""
    if python_home(series) is None:
        return LAB + "/usr/bin/python3"
    return f"{LAB}/python/{series}/bin/python{series}"


def relocated_python(series):
    """The interpreter's binary, its library path ($ORIGIN/../lib instead of pyenv's
    absolute RUNPATH) rewritten so that it runs from /.lab/python/SERIES/bin with pyenv's
    lib bound at /.lab/python/SERIES/lib. Bytes, or None without an interpreter."""
    home = python_home(series)
    if home is None:
        return None
    with open(os.path.join(home, "bin", "python" + series), "rb") as f:
        data = f.read()
    old = os.fsencode(os.path.join(home, "lib")) + b"\0"
    new = b"$ORIGIN/../lib"
    if old in data and len(new) < len(old):
        data = data.replace(old, new.ljust(len(old), b"\0"))
    return data


CERT = "-----BEGIN CERTIFICATE-----\nMIIDlab{tag}Q2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIElab{tag}UHJpdmF0ZSBrZXk=\n-----END PRIVATE KEY-----\n"

# What each package owns, as its spec file's %files says (ovirt-hosted-engine-ha.spec.in:
# the agent/broker configuration, its state dir, and agent.log/broker.log as %ghost,
# which rpm removes on erase too). Text for files, None for directories.
PACKAGE_FILES = {
    "vdsm": {
        "/etc/vdsm": None, "/var/log/vdsm": None, "/var/lib/vdsm": None, "/etc/pki/vdsm": None,
        "/etc/vdsm/vdsm.conf": "[vars]\nssl = true\n\n[addresses]\nmanagement_port = 54321\n",
        "/etc/vdsm/logger.conf": "[loggers]\nkeys=root,vds,storage,virt\n",
        "/var/log/vdsm/vdsm.log": "",
    },
    "ovirt-hosted-engine-ha": {
        "/etc/ovirt-hosted-engine-ha": None, "/var/log/ovirt-hosted-engine-ha": None,
        "/var/lib/ovirt-hosted-engine-ha": None,
        "/etc/ovirt-hosted-engine-ha/agent.conf": (
            "[score]\nbase-score=3400\nnetwork-score-penalty=1600\n"
            "mgmt-bridge-score-penalty=600\nfree-memory-score-penalty=400\n"
            "cpu-load-score-penalty=1000\nengine-retry-score-penalty=50\n"),
        "/etc/ovirt-hosted-engine-ha/agent-log.conf": "[loggers]\nkeys=root\n",
        "/etc/ovirt-hosted-engine-ha/broker-log.conf": "[loggers]\nkeys=root\n",
        "/var/lib/ovirt-hosted-engine-ha/ha.conf": "local_maintenance=False\n",
        "/var/lib/ovirt-hosted-engine-ha/broker.conf": "[email]\nsmtp-server = localhost\n",
        "/var/log/ovirt-hosted-engine-ha/agent.log": "",
        "/var/log/ovirt-hosted-engine-ha/broker.log": "",
    },
    "ovirt-hosted-engine-setup": {
        "/etc/ovirt-hosted-engine": None, "/etc/ovirt-hosted-engine-setup.env.d": None,
        "/var/lib/ovirt-hosted-engine-setup": None, ANSWERS_DIR: None, SETUP_LOG_DIR: None,
    },
    "libvirt": {
        "/etc/libvirt": None, "/etc/libvirt/nwfilter": None, "/etc/libvirt/qemu": None,
        "/var/lib/libvirt": None, "/var/cache/libvirt": None, "/var/log/libvirt": None,
        "/etc/libvirt/libvirtd.conf": "# libvirtd.conf\n",
        "/etc/libvirt/qemu.conf": "# qemu.conf\n",
        "/etc/sysconfig/libvirtd": "# libvirtd options\n",
    },
    "ovirt-engine": {
        "/etc/ovirt-engine": None, "/var/log/ovirt-engine": None, "/var/lib/ovirt-engine": None,
        "/var/lib/ovirt-engine-backup": None,  # engine-backup's directory (ovirt-engine-tools-backup)
    },
    "ovirt-engine-setup": {
        "/etc/ovirt-engine-setup.conf.d": None,
        "/etc/ovirt-engine-setup.conf.d/10-packaging.conf": "[environment:default]\n",
    },
}


def package_files(name):
    """Files and directories a package owns; a release rpm owns its repo file."""
    for release, package in catalog.RELEASE_PACKAGE.items():
        if package == name:
            return {"/etc/yum.repos.d/" + catalog.RELEASE_FILE[release]:
                    catalog.repo_file_text(release)}
    return PACKAGE_FILES.get(name, {})


def install_os(machine):
    """A freshly installed EL machine: the disk is formatted, then the base image."""
    fs = machine.fs
    fs.wipe()
    for path in DIRS:
        fs.makedirs(path)
    fs.makedirs("tmp", mode=0o1777)
    fs.makedirs("root", mode=0o550)
    for name, target in MERGED_USR.items():
        fs.symlink(target, name)
    link_machine_usr(fs, machine.os)
    files = {
        "/etc/redhat-release": catalog.OS_RELEASE[machine.os] + "\n",
        "/etc/hostname": machine.name + "\n",
        "/etc/hosts": HOSTS,
        "/etc/passwd": PASSWD,
        "/etc/group": GROUP,
        "/etc/profile": PROFILE,
        "/etc/bashrc": BASHRC,
        "/root/.bash_profile": ROOT_BASH_PROFILE,
        "/root/.bashrc": ROOT_BASHRC,
        "/etc/yum.repos.d/CentOS-Base.repo": BASE_REPO,
    }
    for path, text in files.items():
        fs.write(path, text)
    fs.makedirs("/etc/profile.d")
    fs.makedirs("/etc/init" if machine.os == "el6" else "/etc/systemd/system")
    fs.symlink("../usr/share/zoneinfo/UTC", "/etc/localtime")
    for package in machine.packages:
        write_package_files(machine, package)
    sync_tools(machine)


def link_machine_usr(fs, os_name):
    """/usr: bin and sbin are the machine's own directories of links to the programs an EL
    host of that release has (EL_PROGRAMS, its Python: PYTHONS), taken from the lab
    machine's read-only /usr; the lab's tools go next to them. Anything else is "command
    not found", as on the real host. The rest of /usr links to the machine's /usr."""
    tools = set(tool_paths())
    wanted = ((EL_PROGRAMS - EL6_MISSING) | EL6_PROGRAMS if os_name == "el6"
              else EL_PROGRAMS | SYSTEMD_PROGRAMS)
    for entry in sorted(os.listdir("/usr")):
        if entry in ("bin", "sbin", "libexec"):
            fs.makedirs("/usr/" + entry)
            links = {}
            for name in os.listdir("/usr/" + entry):
                if entry != "libexec" and (name not in wanted or name in tools):
                    continue
                # Links through /etc/alternatives (awk, which, ...) resolved: the
                # machine's /etc is not there in the sandbox.
                real = os.path.realpath(f"/usr/{entry}/{name}")
                if real.startswith("/usr/") and os.path.exists(real):
                    links[name] = LAB + real
            if entry == "bin":  # EL's sh is bash (POSIX mode), not dash
                links.update(sh=f"{LAB}/usr/bin/bash")
            fs.symlinks("/usr/" + entry, links)
        elif entry != "local":
            fs.symlink(f"{LAB}/usr/{entry}", "/usr/" + entry)
    series, paths = PYTHONS[os_name]
    for path in paths:
        fs.symlink(python_binary(series), path)


def write_package_files(machine, name):
    fs = machine.fs
    for path, text in package_files(name).items():
        if text is None:
            fs.makedirs(path)
        elif not fs.exists(path):  # %config(noreplace): an admin's edits survive
            fs.write(path, text)


def remove_package_files(machine, name):
    """rpm -e: the files go, the directories only when empty."""
    owned = package_files(name)
    for path in sorted(owned, reverse=True):  # files before their directories
        if owned[path] is None:
            machine.fs.rmdir(path)
        else:
            machine.fs.remove(path)


def tool_paths():
    """name -> directory of every executable the lab provides (simulated tools, shims)."""
    from .commands import command_paths
    return {**command_paths(), **SHIMS}


def sync_tools(machine):
    """Put the executables of what is installed on the machine, and only those, in its
    /usr/bin and /usr/sbin: `hosted-engine` exists once ovirt-hosted-engine-setup does."""
    from .commands import commands_for
    client = read_inside("tool.py")
    for name, fn in commands_for(machine).items():
        path = f"{fn.path}/{name}"
        if fn.available(machine):
            if machine.fs.read(path) != client:
                machine.fs.write(path, client, mode=0o755)
        else:
            machine.fs.remove(path)
    for name, directory in SHIMS.items():
        text = read_inside(name)
        if machine.fs.read(f"{directory}/{name}") != text:
            machine.fs.write(f"{directory}/{name}", text, mode=0o755)


@functools.lru_cache(maxsize=None)
def read_inside(name):
    """A file of lab/inside/, the part of the lab that runs in the sandboxes."""
    with open(os.path.join(INSIDE, name)) as f:
        return f.read()


def conf_tail(machine):
    """setup 1.2 (3.5) keeps the configuration on the host with a storage pool; from 1.3
    it lives on the shared storage (its volume) and the pool is blank."""
    if catalog.setup_key(machine) < catalog.version_key("1.3"):
        return OLD_POOL
    return f"vm_disk_vol_id={VM_DISK_VOLUME}\n" + CONF_VOLUME + CONF_IMAGE + BLANK_POOL


def conf_uptodate(machine):
    """is_conf_file_uptodate (lib/upgrade.py, HA 1.3): the conf volume is known and the
    storage pool is blank."""
    text = machine.fs.read(HE_CONF) or ""
    return "conf_volume_UUID=" in text and "conf_image_UUID=" in text and BLANK_POOL in text


def convert_conf(machine):
    """upgrade_35_36: the configuration moves to the shared storage."""
    text = (machine.fs.read(HE_CONF) or "").replace(OLD_POOL, "")
    machine.fs.write(HE_CONF, text + CONF_VOLUME + CONF_IMAGE + BLANK_POOL)


def deploy_files(machine, host_id, storage, stamp):
    """What `hosted-engine --deploy` leaves on a host besides the answer files: its
    configuration, vdsm's and libvirt's certificates and state, vdsm's network filter."""
    fs = machine.fs
    fs.write(HE_CONF, (
        f"fqdn=engine.lab.local\nvm_disk_id=6d2a5e1c-1b1c-4f0e-9b53-5a7c2b8f1d11\n"
        "vmid=3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70\n"
        f"storage={storage}\nconnectionUUID=e29cf818-5ee5-46e1-85c1-8aeefa33e95d\n"
        "domainType=nfs3\nsdUUID=8a3bcd42-1b2c-4d3e-9f4a-5b6c7d8e9f01\n"
        f"host_id={host_id}\ngateway=192.168.122.1\nbridge=ovirtmgmt\n"
        "network_test=ping\n" + VOLUMES + conf_tail(machine)))
    for path, tag in (("/etc/pki/vdsm/certs/cacert.pem", "ca"),
                      ("/etc/pki/vdsm/certs/vdsmcert.pem", "vdsm"),
                      ("/etc/pki/vdsm/libvirt-spice/ca-cert.pem", "ca"),
                      ("/etc/pki/vdsm/libvirt-spice/server-cert.pem", "spice"),
                      ("/etc/pki/libvirt/clientcert.pem", "libvirt"),
                      ("/etc/pki/CA/cacert.pem", "ca")):
        fs.write(path, CERT.format(tag=tag + stamp))
    for path, tag in (("/etc/pki/vdsm/keys/vdsmkey.pem", "vdsm"),
                      ("/etc/pki/vdsm/libvirt-spice/server-key.pem", "spice"),
                      ("/etc/pki/libvirt/private/clientkey.pem", "libvirt")):
        fs.write(path, KEY.format(tag=tag + stamp), mode=0o600)
    # vdsm's persisted management network, what libvirtd keeps once it has run
    fs.write("/var/lib/vdsm/persistence/netconf/nets/ovirtmgmt",
             '{"nic": "eth0", "bootproto": "dhcp", "defaultRoute": true}\n')
    fs.makedirs("/var/lib/libvirt/qemu/channel/target")
    fs.write("/var/cache/libvirt/qemu/capabilities/3d4b5c6e.xml", "<qemuCaps/>\n")
    fs.write("/etc/libvirt/nwfilter/vdsm-no-mac-spoofing.xml",
             "<filter name='vdsm-no-mac-spoofing' chain='root'>\n"
             "  <filterref filter='no-mac-spoofing'/>\n"
             "  <filterref filter='no-arp-mac-spoofing'/>\n"
             "</filter>\n")
    if machine.os == "el6":  # vdsm runs libvirtd as an upstart job there
        fs.write("/etc/init/libvirtd.conf", "# libvirtd upstart job (configured by vdsm)\n"
                 "start on runlevel [2345]\nstop on runlevel [!2345]\nrespawn\n"
                 "exec /usr/sbin/libvirtd --listen\n")
