"""Migrate a VM to a named host and wait until it runs there."""
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
vm_service = vms_service.vm_service(vm.id)
hosts_service = connection.system_service().hosts_service()
host = hosts_service.list(search="name=%s" % sys.argv[2])[0]
vm_service.migrate(host=types.Host(id=host.id))
for _ in range(600):
    time.sleep(0.2)
    vm = vm_service.get()
    if vm.status == types.VmStatus.UP and vm.host.id == host.id:
        break
print("vm: %s on %s" % (vm.status, connection.follow_link(vm.host).name))

connection.close()
