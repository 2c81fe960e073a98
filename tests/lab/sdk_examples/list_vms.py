"""List the virtual machines: name and id (examples/list_vms.py)."""
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
for vm in vms_service.list():
    print("%s: %s" % (vm.name, vm.id))

connection.close()
