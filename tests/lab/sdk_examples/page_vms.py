"""List the VMs page by page, one a page (examples/page_vms.py)."""
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
size = 1
index = 1
while True:
    page = vms_service.list(search="page %d" % index, max=size)
    if len(page) == 0:
        break
    for vm in page:
        print(vm.name)
    index += 1

connection.close()
