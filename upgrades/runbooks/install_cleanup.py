"""The howto's FAQ "Recovering from failed install": purge the hosted-engine
storage directory, then clean the host with the howto's script.

The storage directory lives on the storage server, which the portal does not
reach: a person purges it, shown the exact path the operator typed (never a
guessed one). The script is the howto's with its three defects fixed — as
written, ``yum remove`` without ``-y`` and without a terminal answers No, the
five ``etc/...`` paths are relative to the working directory, and the
directory loop tests ``$f`` instead of ``$d`` (tests/lab/test_cleanup_script.py
runs both versions on lab hosts). Wiping a storage domain and a host cannot
be undone, so an approver signs it off first.
"""
from .base import Approval, Check, Manual, Param, Runbook, Ssh

CLEANUP_SCRIPT = r'''#!/bin/bash

echo "stopping services"
service vdsmd stop 2>/dev/null
service supervdsmd stop 2>/dev/null
initctl stop libvirtd 2>/dev/null

echo "removing packages"
yum remove -y \*ovirt\* \*vdsm\* \*libvirt\*

rm -fR /etc/*ovirt* /etc/*vdsm* /etc/*libvirt* /etc/pki/vdsm

FILES=" /etc/init/libvirtd.conf"
FILES+=" /etc/libvirt/nwfilter/vdsm-no-mac-spoofing.xml"
FILES+=" /etc/ovirt-hosted-engine/answers.conf"
FILES+=" /etc/vdsm/vdsm.conf"
FILES+=" /etc/pki/vdsm/*/*.pem"
FILES+=" /etc/pki/CA/cacert.pem"
FILES+=" /etc/pki/libvirt/*.pem"
FILES+=" /etc/pki/libvirt/private/*.pem"
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
   [ ! -d $d ] && echo "? $d already missing" && continue
   echo "- removing $d"
   rm -fR $d && continue
   echo "! error removing $d"
   exit 1
done
'''

VERIFY = """left=$(rpm -qa | grep -E 'ovirt|vdsm|libvirt')
if [ -n "$left" ]; then echo "still installed:"; echo "$left"; exit 1; fi
if [ -e /etc/ovirt-hosted-engine ]; then echo "/etc/ovirt-hosted-engine is still there"; exit 1; fi
echo "no ovirt, vdsm or libvirt package and no hosted-engine configuration left"
"""

PURGE = """The hosted-engine storage directory is on the storage server, which the portal does not reach. On the \
storage server (not on {host}):

1. Check that this is the directory the failed install used: `ls {storage_path}` shows `__DIRECT_IO_TEST__` \
and a storage domain UUID directory.
2. Purge it: `rm -fR {storage_path}/*`

The directory, exactly as the operator gave it: {storage_path}

Confirm once it is empty."""

FAILED_INSTALL_CLEANUP = Runbook(
    slug="failed-install-cleanup",
    name="Clean up a failed install",
    description="After a failed hosted-engine deployment: purge the hosted-engine storage directory (a person, "
                "on the storage server), then remove every oVirt, vdsm and libvirt package and file from the "
                "host with the howto's clean-up script (its defects fixed), so the install can start again.",
    scope="host",
    needs_fresh_ha=False,  # a failed install has no HA data at all
    params=(Param("host", "Host", kind="host", help="The host where the deployment failed."),
            Param("storage_path", "Hosted-engine storage directory", kind="path",
                  help="The directory on the storage server that the failed install used, as exported "
                       "(e.g. /export/ovirt/hosted-engine). It is purged: check it twice.")),
    preflight=(Check("not-he-host", {"host": "{host}"}),),
    steps=(
        Approval("approve", "Approve wiping {storage_path} and cleaning {host}",
                 "Purges the hosted-engine storage directory {storage_path} and removes every oVirt, vdsm and "
                 "libvirt package and file from {host}."),
        Manual("purge-storage", "Purge the hosted-engine storage directory {storage_path}", PURGE),
        Ssh("cleanup", "Clean up {host} (the howto's script, corrected)", CLEANUP_SCRIPT, on="{host}",
            changes=True, timeout=1800),
        Ssh("verify", "Check that {host} is clean", VERIFY, on="{host}"),
    ),
)
