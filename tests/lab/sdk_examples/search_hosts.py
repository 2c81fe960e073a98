"""Hosts by a search pattern, with the hosted-engine details (all_content)."""
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

hosts_service = connection.system_service().hosts_service()
for host in hosts_service.list(search=sys.argv[1], all_content=True):
    print("%s %s %s" % (host.name, host.status, host.hosted_engine.score))

connection.close()
