"""Walk the audit chain; exit 1 naming the first broken or missing link."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from upgrades import audit


class Command(BaseCommand):
    help = ("Verify the audit trail's chain with the audit keys and against the anchor file; names the first event"
            " changed, deleted or added outside the app.")

    def handle(self, *args, **options):
        count, problem = audit.verify()
        if problem:
            raise CommandError(f"Audit chain broken after {count} good event(s): {problem}")
        anchor = settings.AUDIT_ANCHOR_FILE or "none configured"
        self.stdout.write(f"Audit chain intact: {count} event(s).\n"
                          f"Signatures checked with {len(audit.keyring())} audit key(s); anchor file: {anchor}.")
