"""Update a data center's description and read it back."""
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

dcs_service = connection.system_service().data_centers_service()
dc = dcs_service.list(search="name=%s" % sys.argv[1])[0]
dc_service = dcs_service.data_center_service(dc.id)
dc_service.update(types.DataCenter(description=sys.argv[2]))
print("description: %s" % dc_service.get().description)

connection.close()
