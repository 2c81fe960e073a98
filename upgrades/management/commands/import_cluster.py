"""Register a cluster and its hosts from an inventory file.

The inventory is JSON: ``engine`` {url, username, password_file or password,
ca_file} and ``hosts`` [{name, address, port, host_id, os, ssh_user,
known_hosts}] — the shape the lab writes as its manifest. Host keys come
from the file (pinned as given); re-importing updates the same rows, and
only the fields the file mentions. A file with problems is refused whole,
each problem listed with its path in the file, and nothing is written.
"""
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from upgrades import services
from upgrades.inventory import validate as validate_inventory


class Command(BaseCommand):
    help = "Create or update a cluster and its hosts from an inventory (JSON) file."

    def add_arguments(self, parser):
        parser.add_argument("inventory")
        parser.add_argument("--name", default="Default", help="cluster name in the portal")
        parser.add_argument("--poll-interval", type=float, default=None,
                            help="seconds between HA polls (default 10, the HA agents' cycle; "
                                 "for a lab, 10 divided by its speed)")

    def handle(self, *args, inventory, name, poll_interval, **options):
        path = Path(inventory)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
            raise CommandError(f"{path}: not a readable inventory ({exc})") from None
        if not isinstance(data, dict):
            raise CommandError(f"{path}: not an inventory: the file must hold a JSON object with \"hosts\"")
        given = {"name": name, "engine": data.get("engine"), "hosts": data.get("hosts"),
                 "engine_vm": data.get("engine_vm"), "poll_interval": poll_interval}
        try:
            # Checked before the password file below is written, too.
            found = validate_inventory(**given)
        except ValidationError as exc:
            problems = "\n".join(f"  {problem}" for problem in exc.messages)
            raise CommandError(f"{path}: {len(exc.messages)} problem(s), nothing was changed:\n{problems}") from None
        password_file = found.password_file
        if not password_file and found.password:
            # Keep the secret out of the database: a 0600 file beside the inventory.
            secret = path.with_name(path.stem + ".engine-password")
            secret.touch(mode=0o600)
            secret.write_text(found.password)
            password_file = str(secret.resolve())
        cluster = services.import_cluster(password_file=password_file, **given)
        self.stdout.write(f"cluster {cluster.name}: {cluster.hosts.count()} hosts")

