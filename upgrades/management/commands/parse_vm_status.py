"""Print ``hosted-engine --vm-status [--json]`` output as the portal reads it, as JSON."""
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from upgrades.remote.vmstatus import VmStatusParseError, parse_vm_status


class Command(BaseCommand):
    help = "Parse saved hosted-engine --vm-status output (plain or --json) and print it as JSON."
    # Pure text in, text out: no reason to fail on checks of unrelated models.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="file holding the output, or - for stdin")

    def handle(self, *args, file, **options):
        try:
            if file == "-":
                data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
            else:
                with open(file, "rb") as f:
                    data = f.read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
        if isinstance(data, bytes):
            # The CLI prints UTF-8; a stray bad byte should not hide the rest.
            data = data.decode("utf-8", errors="replace")
        try:
            status = parse_vm_status(data)
        except VmStatusParseError as exc:
            raise CommandError(f"{file}: {exc}") from None
        self.stdout.write(json.dumps(status.to_dict(), indent=2))
