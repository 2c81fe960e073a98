"""A host's version, SPM role, statistics and NICs (examples/list_host_statistics.py)."""
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
host = hosts_service.list(search="name=%s" % sys.argv[1])[0]

print("version: %s" % host.version.full_version)
print("spm: %s" % host.spm.status)
stats = connection.follow_link(host.statistics)
for stat in stats:
    print("stat: %s: %s" % (stat.name, stat.values[0].datum))
for nic in connection.follow_link(host.nics):
    print("nic: %s %s" % (nic.name, nic.ip.address if nic.ip else None))
for tag in connection.follow_link(host.tags):
    print("tag: %s" % tag.name)

connection.close()
