"""The howto's "Recovering from failed install" clean-up script, run on a lab host as an
admin would: saved to a file and run with `bash cleanup.sh </dev/null`.

Verbatim, real bash runs its mistakes as on a real host: `yum remove` without -y and without
a terminal answers No, so every package stays; the five `etc/...` paths are relative to the
working directory (/root) and match nothing; the directory loop tests `$f`, the last file,
instead of `$d`, so it removes nothing. Only the `rm -fR /etc/*ovirt* ...` line acts. The
corrected script leaves the host clean.
"""

import re

import pytest

from conftest import SPEED, Shell
from lab.launcher import start_lab
from upgrades.runbooks.install_cleanup import CLEANUP_SCRIPT

# /work/shared/reference/hosted-engine-howto.md, "Recoving from failed install", verbatim.
HOWTO_SCRIPT = r'''#!/bin/bash

echo "stopping services"
service vdsmd stop 2>/dev/null
service supervdsmd stop 2>/dev/null
initctl stop libvirtd 2>/dev/null

echo "removing packages"
yum remove \*ovirt\* \*vdsm\* \*libvirt\*

rm -fR /etc/*ovirt* /etc/*vdsm* /etc/*libvirt* /etc/pki/vdsm

FILES=" /etc/init/libvirtd.conf"
FILES+=" /etc/libvirt/nwfilter/vdsm-no-mac-spoofing.xml"
FILES+=" /etc/ovirt-hosted-engine/answers.conf"
FILES+=" etc/vdsm/vdsm.conf"
FILES+=" etc/pki/vdsm/*/*.pem"
FILES+=" etc/pki/CA/cacert.pem"
FILES+=" etc/pki/libvirt/*.pem"
FILES+=" etc/pki/libvirt/private/*.pem"
for f in $FILES
do
   [ ! -e $f ] && echo "? $f already missing" && continue
   echo "- removing $f"
   rm -f $f && continue
   echo "! error removing $f"
   exit 1
done

DIRS="/etc/ovirt-hosted-engine /var/lib/libvirt/ /var/lib/vdsm/ /var/lib/ovirt-hosted-engine-* /var/log/ovirt-hosted-engine-setup/ /var/cache/libvirt/"
for d in $DIRS
do
   [ ! -d $f ] && echo "? $d already missing" && continue
   echo "- removing $d"
   rm -fR $d && continue
   echo "! error removing $d"
   exit 1
done
'''

# The corrected script is the one the failed-install-cleanup runbook runs (one text).
CORRECTED_SCRIPT = CLEANUP_SCRIPT

NAMED = ["/etc/init/libvirtd.conf", "/etc/libvirt/nwfilter/vdsm-no-mac-spoofing.xml",
         "/etc/ovirt-hosted-engine/answers.conf", "/etc/vdsm/vdsm.conf", "/etc/pki/vdsm/*/*.pem",
         "/etc/pki/CA/cacert.pem", "/etc/pki/libvirt/*.pem", "/etc/pki/libvirt/private/*.pem",
         "/etc/ovirt-hosted-engine", "/var/lib/libvirt/", "/var/lib/vdsm/",
         "/var/lib/ovirt-hosted-engine-*", "/var/log/ovirt-hosted-engine-setup/",
         "/var/cache/libvirt/", "/etc/*ovirt*", "/etc/*vdsm*", "/etc/*libvirt*", "/etc/pki/vdsm"]
HE_PACKAGES = re.compile(r"ovirt|vdsm|libvirt")


def test_the_corrected_script_is_the_howtos_with_exactly_its_three_defects_fixed():
    fixed = (HOWTO_SCRIPT
             .replace(r"yum remove \*ovirt\*", r"yum remove -y \*ovirt\*")
             .replace("[ ! -d $f ]", "[ ! -d $d ]")
             .replace('FILES+=" etc/', 'FILES+=" /etc/'))
    assert CORRECTED_SCRIPT == fixed
    assert CORRECTED_SCRIPT.count('FILES+=" /etc/') == 7


def listing(ssh):
    """Every path on the host's own disk (-xdev: not /proc, /dev or the lab's /.lab)."""
    result = ssh("he1", "find / -xdev | sort")
    assert result.rc == 0, result.err
    return set(result.out.split("\n")) - {""}


def packages(ssh):
    return set(ssh("he1", "rpm -qa").out.split())


@pytest.fixture(params=[("el7", "4.3"), ("el6", "3.5")], ids=["el7", "el6"])
def host(request, tmp_path):
    os_name, version = request.param
    with start_lab(tmp_path / "lab", hosts=2, speed=SPEED, os=os_name,
                   engine_version=version) as lab:
        ssh = Shell(lab)
        assert ssh("he1", "cat > cleanup.sh", stdin=HOWTO_SCRIPT).rc == 0
        yield lab, ssh, os_name
        ssh.close()


def test_the_howto_script_verbatim_removes_only_what_its_rm_line_reaches(host):
    lab, ssh, os_name = host
    before, installed = listing(ssh), packages(ssh)
    result = ssh("he1", "bash cleanup.sh </dev/null")
    assert result.rc == 0, result.err
    out = result.out
    assert out.startswith("stopping services\n") and "\nremoving packages\n" in out
    assert "Is this ok [y/N]: Exiting on user command\n" in out  # end of input is No
    assert packages(ssh) == installed
    for relative in ("etc/vdsm/vdsm.conf", "etc/pki/vdsm/*/*.pem", "etc/pki/CA/cacert.pem",
                     "etc/pki/libvirt/*.pem", "etc/pki/libvirt/private/*.pem"):
        assert f"? {relative} already missing\n" in out  # relative to /root: nothing there
    for directory in ("/etc/ovirt-hosted-engine", "/var/lib/libvirt/", "/var/lib/vdsm/",
                      "/var/lib/ovirt-hosted-engine-ha", "/var/lib/ovirt-hosted-engine-setup",
                      "/var/log/ovirt-hosted-engine-setup/", "/var/cache/libvirt/"):
        assert f"? {directory} already missing\n" in out  # `[ ! -d $f ]`: never removed
    assert "- removing /var" not in out and "!" not in out
    # On el6 vdsm made libvirtd an upstart job: the first file exists and goes.
    if os_name == "el6":
        assert "- removing /etc/init/libvirtd.conf\n" in out
    else:
        assert "? /etc/init/libvirtd.conf already missing\n" in out

    lost = before - listing(ssh)
    etc_rm = re.compile(r"^/etc/([^/]*(ovirt|vdsm|libvirt)[^/]*|pki/vdsm)(/|$)")
    expected = {path for path in before if etc_rm.match(path)}
    if os_name == "el6":
        expected.add("/etc/init/libvirtd.conf")
    assert lost == expected
    assert "/etc/ovirt-hosted-engine/hosted-engine.conf" in lost
    assert "/etc/pki/libvirt/clientcert.pem" not in lost
    # `service vdsmd stop` did stop vdsm; the HA daemons were not asked to
    state = lab.state()["hosts"]["he1.lab.local"]["services"]
    assert state == {"vdsmd": False, "ovirt-ha-broker": True, "ovirt-ha-agent": True}
    # without its configuration, hosted-engine still exists but knows no deployment
    assert ssh("he1", "hosted-engine --vm-status").out == "You must run deploy first\n"


def test_the_corrected_script_leaves_the_host_clean(host):
    lab, ssh, _ = host
    assert ssh("he1", "cat > cleanup.sh", stdin=CORRECTED_SCRIPT).rc == 0
    result = ssh("he1", "bash cleanup.sh </dev/null")
    assert result.rc == 0, result.out + result.err
    assert "Complete!" in result.out
    assert "- removing /etc/pki/libvirt/clientcert.pem\n" in result.out
    for directory in ("/var/lib/libvirt/", "/var/lib/vdsm/", "/var/cache/libvirt/"):
        assert f"- removing {directory}\n" in result.out  # rpm -e left them: not empty
    assert not {p for p in packages(ssh) if HE_PACKAGES.search(p)}
    services = lab.state()["hosts"]["he1.lab.local"]["services"]
    assert not any(services.values())
    assert ssh("he1", "systemctl is-active ovirt-ha-agent ovirt-ha-broker vdsmd 2>&1; "
                      "service ovirt-ha-agent status").rc != 0
    result = ssh("he1", "hosted-engine --vm-status")
    assert (result.rc, result.err) == (127, "bash: hosted-engine: command not found\n")
    left = ssh("he1", "shopt -s nullglob; for p in " + " ".join(NAMED) +
                      "; do [ -e \"$p\" ] && echo \"$p\"; done; true")
    assert left.out == ""
