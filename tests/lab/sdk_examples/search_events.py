"""Events as an admin's tooling reads them: the newest, from an index on, and by search
(examples/poll_events.py)."""
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

events_service = connection.system_service().events_service()
events = events_service.list(max=1)
print("last: %s" % events[0].id)
for event in events_service.list(search=sys.argv[1], max=int(sys.argv[2])):
    print("%s %s %s" % (event.id, event.code, event.description))

connection.close()
