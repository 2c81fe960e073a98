"""Check a host for updates and wait for the check's end event
(examples/upgrade_host.py, without the upgrade)."""
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
events_service = connection.system_service().events_service()
host = hosts_service.list(search="name=%s" % sys.argv[1])[0]
host_service = hosts_service.host_service(host.id)

last_event = events_service.list(max=1)[0]
host_service.upgrade_check()
timeout = 180
while timeout > 0:
    events = [
        event.code for event in events_service.list(
            from_=int(last_event.id),
            search="host.name=%s" % host.name,
        )
    ]
    if 839 in events or 887 in events:
        print("Check for upgrade failed.")
        break
    if 885 in events:
        print("Check for upgrade done.")
        break
    time.sleep(0.5)
    timeout = timeout - 0.5
print("update_available: %s" % host_service.get().update_available)

connection.close()
