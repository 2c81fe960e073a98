"""Put a new audit key first in the audit keys file; the rotation is itself an audit event.

Events name the key that signed them, so the old keys stay in the file, after the
new one, to verify older events (and those processes not yet restarted keep
signing). Restart the portal's processes so that they all sign with the new key.
"""
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from upgrades import audit


class Command(BaseCommand):
    help = "Generate a new audit key, put it first in the audit keys file (old keys kept) and record the rotation."

    def handle(self, *args, **options):
        path = settings.AUDIT_KEYS_FILE
        old = list(settings.AUDIT_KEYS)
        new = secrets.token_hex(32)
        temp = path.with_name(path.name + ".new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{key}\n" for key in [new, *old]))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
        settings.AUDIT_KEYS = [new, *old]
        audit.record(None, "audit.key_rotate", None, key=audit.key_id(new),
                     previous=audit.key_id(old[0]) if old else "")
        self.stdout.write(f"New audit key {audit.key_id(new)} first in {path}; {len(old)} older key(s) kept to verify"
                          " older events. Restart the portal's processes so that they sign with it.")
