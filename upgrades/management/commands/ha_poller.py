"""Run the HA poller in the foreground (one process per shard)."""
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from upgrades.poller import DEFAULT_THREADS, run_poller


def parse_shard(text):
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CommandError(f"--shard {text!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= index < count:
        raise CommandError(f"--shard {text!r}: I must be between 0 and N-1")
    return index, count


class Command(BaseCommand):
    help = "Poll hosted-engine --vm-status on every cluster of this shard."

    def add_arguments(self, parser):
        parser.add_argument("--shard", default="0/1", help="I/N: poll clusters whose id modulo N is I")
        parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                            help="most polls in flight at once (threads start as polls need them)")

    def handle(self, *args, shard, threads, **options):
        index, count = parse_shard(shard)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"ha_poller: shard {index}/{count}, {threads} threads")
        run_poller(shard=index, shards=count, threads=threads, stop=stop)
