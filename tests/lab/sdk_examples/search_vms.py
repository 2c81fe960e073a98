"""Find VMs by a search pattern, case-insensitive, at most 100 (examples/search_vms.py)."""
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
vms = vms_service.list(search=sys.argv[1], case_sensitive=False, max=100)
for vm in vms:
    print("%s: %s" % (vm.name, vm.status))

connection.close()
