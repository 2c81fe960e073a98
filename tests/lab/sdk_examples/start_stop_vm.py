"""Stop a VM, start it, shut it down, start it again (examples/start_vm / stop_vm)."""
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


def wait_for(status):
    for _ in range(600):
        vm = vm_service.get()
        if vm.status == status:
            print("vm: %s" % vm.status)
            return
        time.sleep(0.2)
    raise SystemExit("vm is still not %s" % status)


vm_service.stop()
wait_for(types.VmStatus.DOWN)
vm_service.start()
wait_for(types.VmStatus.UP)
vm_service.shutdown()
wait_for(types.VmStatus.DOWN)
vm_service.start()
wait_for(types.VmStatus.UP)

connection.close()
