"""Create a tag, assign it to a VM and to a host, list both's tags
(examples/assign_tag_to_vm.py, list_tags_of_vm.py)."""
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

system_service = connection.system_service()
tags_service = system_service.tags_service()
tag = tags_service.add(types.Tag(name=sys.argv[1], description="tooling"))
print("tag: %s" % tag.name)

vms_service = system_service.vms_service()
vm = vms_service.list(search="name=%s" % sys.argv[2])[0]
vms_service.vm_service(vm.id).tags_service().add(types.Tag(name=tag.name))
hosts_service = system_service.hosts_service()
host = hosts_service.list(search="name=%s" % sys.argv[3])[0]
hosts_service.host_service(host.id).tags_service().add(types.Tag(id=tag.id))

for t in vms_service.vm_service(vm.id).tags_service().list():
    print("vm tag: %s" % t.name)
for t in connection.follow_link(hosts_service.host_service(host.id).get().tags):
    print("host tag: %s" % t.name)
print("all: %s" % ", ".join(t.name for t in tags_service.list()))

connection.close()
