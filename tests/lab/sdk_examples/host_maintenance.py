"""Put a host to maintenance, wait for it, activate it, wait for up; print the events
between (examples/set_host_to_maintenance / activate)."""
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
hosts_service = system_service.hosts_service()
events_service = system_service.events_service()
host = hosts_service.list(search="name=%s" % sys.argv[1])[0]
host_service = hosts_service.host_service(host.id)
last_event = events_service.list(max=1)[0]


def wait_for(status):
    for _ in range(600):
        time.sleep(0.2)
        host = host_service.get()
        if host.status == status:
            return
    raise SystemExit("host %s is still not %s" % (host.name, status))


host_service.deactivate()
wait_for(types.HostStatus.MAINTENANCE)
print("host: %s" % host_service.get().status)
host_service.activate()
wait_for(types.HostStatus.UP)
print("host: %s" % host_service.get().status)
for event in reversed(events_service.list(from_=int(last_event.id),
                                          search="host.name=%s" % host.name)):
    print("event: %s %s" % (event.code, event.description))

connection.close()
