"""Register a cluster and its hosts from an inventory file.

The inventory is JSON: ``engine`` {url, username, password_file or password,
ca_file} and ``hosts`` [{name, address, port, host_id, os, ssh_user,
known_hosts}] — the shape the lab writes as its manifest. Host keys come
from the file (pinned as given); re-importing updates the same rows.
"""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from upgrades import services


class Command(BaseCommand):
    help = "Create or update a cluster and its hosts from an inventory (JSON) file."

    def add_arguments(self, parser):
        parser.add_argument("inventory")
        parser.add_argument("--name", default="Default", help="cluster name in the portal")
        parser.add_argument("--poll-interval", type=float, default=None,
                            help="seconds between HA polls (default 10, the HA agents' cycle; "
                                 "for a lab, 10 divided by its speed)")

    def handle(self, *args, inventory, name, poll_interval, **options):
        if poll_interval is not None and poll_interval <= 0:
            raise CommandError("--poll-interval must be positive")
        path = Path(inventory)
        try:
            data = json.loads(path.read_text())
            engine = data.get("engine", {})
            hosts = data["hosts"]
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise CommandError(f"{path}: not a readable inventory ({exc})") from None
        password_file = engine.get("password_file")
        if not password_file and engine.get("password"):
            # Keep the secret out of the database: a 0600 file beside the inventory.
            secret = path.with_name(path.stem + ".engine-password")
            secret.touch(mode=0o600)
            secret.write_text(engine["password"])
            password_file = str(secret.resolve())
        cluster = services.import_cluster(
            name=name, engine=engine, password_file=password_file, hosts=hosts,
            poll_interval=poll_interval)
        self.stdout.write(f"cluster {cluster.name}: {cluster.hosts.count()} hosts")
