"""Re-encrypt every stored secret with the first configured key (key rotation).

Rotation: put a new key first in HEPORTAL_SECRETS_KEYS (or the keys file),
keep the old ones after it, run this, then remove the old keys.
"""
from django.core.management.base import BaseCommand
from django.db import transaction

from upgrades import audit, secrets
from upgrades.models import Cluster


class Command(BaseCommand):
    help = "Re-encrypt stored engine passwords with the newest secrets key; --new-key prints a fresh key."

    def add_arguments(self, parser):
        parser.add_argument("--new-key", action="store_true", help="print a new key to put first, and stop")

    def handle(self, *args, new_key=False, **options):
        if new_key:
            self.stdout.write(secrets.new_key())
            return
        count = 0
        with transaction.atomic():
            for cluster in Cluster.objects.select_for_update().exclude(engine_password_encrypted=""):
                cluster.engine_password_encrypted = secrets.rotate(cluster.engine_password_encrypted)
                cluster.save(update_fields=["engine_password_encrypted"])
                count += 1
            audit.record(None, "secrets.rotate", None, clusters=count)
        self.stdout.write(f"Re-encrypted {count} stored secret(s) with the newest key.")
