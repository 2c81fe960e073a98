"""Register a cluster and its hosts from an inventory file.

The inventory is JSON: ``engine`` {url, username, password_file or password,
ca_file} and ``hosts`` [{name, address, port, host_id, os, ssh_user,
known_hosts}] — the shape the lab writes as its manifest. Host keys come
from the file (pinned as given); re-importing updates the same rows, and
only the fields the file mentions. A file with problems is refused whole,
each problem listed with its path in the file, and nothing is written.
The engine password is stored encrypted (like the admin form's); a
``password_file`` is read once and its path not kept, and nothing is ever
written beside the inventory.
"""
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from upgrades import services
from upgrades.secrets import SecretError


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
            # Checked whole (the password file read once) before anything is written.
            cluster = services.import_cluster(**given)
        except ValidationError as exc:
            problems = "\n".join(f"  {problem}" for problem in exc.messages)
            raise CommandError(f"{path}: {len(exc.messages)} problem(s), nothing was changed:\n{problems}") from None
        except SecretError as exc:
            raise CommandError(f"{path}: the engine password cannot be stored: {exc}; nothing was changed") from None
        self.stdout.write(f"cluster {cluster.name}: {cluster.hosts.count()} hosts")
