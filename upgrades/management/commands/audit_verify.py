"""Walk the audit chain; exit 1 naming the first broken or missing link."""
from django.core.management.base import BaseCommand, CommandError

from upgrades import audit


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; names the first event changed, deleted or added outside the app."

    def handle(self, *args, **options):
        count, problem = audit.verify()
        if problem:
            raise CommandError(f"Audit chain broken after {count} good event(s): {problem}")
        self.stdout.write(f"Audit chain intact: {count} event(s).")
