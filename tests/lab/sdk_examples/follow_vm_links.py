"""Get a VM and follow its links: cluster, host, disks, NICs, statistics, tags
(examples/follow_vm_links.py, list_tags_of_vm.py)."""
import os
import sys
import time

import ovirtsdk4 as sdk
import ovirtsdk4.types as types

# Create the connection to the server:
connection = sdk.Connection(
    url=os.environ["OVIRT_URL"],
    username=os.environ["OVIRT_USERNAME"],
    password=os.environ["OVIRT_PASSWORD"],
    ca_file=os.environ["OVIRT_CA_FILE"],
)

vms_service = connection.system_service().vms_service()
vm = vms_service.list(search="name=%s" % sys.argv[1])[0]

cluster = connection.follow_link(vm.cluster)
print("cluster: %s" % cluster.name)
host = connection.follow_link(vm.host)
print("host: %s" % host.name)
for attachment in connection.follow_link(vm.disk_attachments):
    disk = connection.follow_link(attachment.disk)
    print("disk: %s %s %s bootable=%s" % (disk.name, disk.provisioned_size, disk.status,
                                           attachment.bootable))
    for sd in disk.storage_domains:
        print("disk storage domain: %s" % connection.follow_link(sd).name)
for nic in connection.follow_link(vm.nics):
    print("nic: %s %s" % (nic.name, nic.mac.address))
for stat in connection.follow_link(vm.statistics):
    print("stat: %s %s %s" % (stat.name, stat.values[0].datum, stat.unit))
for tag in connection.follow_link(vm.tags):
    print("tag: %s" % tag.name)

connection.close()
