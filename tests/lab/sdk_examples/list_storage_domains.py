"""List storage domains, optionally with a search pattern, as JSON
(examples/list_storage_domains.py)."""
import json
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

sds_service = connection.system_service().storage_domains_service()
storage_domains = sds_service.list(search=sys.argv[1] if len(sys.argv) > 1 else None)
results = [{"name": sd.name, "id": sd.id, "type": str(sd.type),
            "storage": str(sd.storage.type), "status": str(sd.status),
            "external_status": str(sd.external_status), "master": sd.master}
           for sd in storage_domains]
print(json.dumps(results, indent=2))

connection.close()
