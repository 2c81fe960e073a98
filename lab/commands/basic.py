"""EL commands whose answer depends on the simulation: the kernel, the uptime, the network.

Everything else a host offers (cat, grep, ls, rm, hostname, ...) is the real program.
"""

import time

from .. import catalog
from . import command


def uptime_seconds(ctx):
    machine = ctx.machine
    if machine.kind == "host":
        return ctx.now() - machine.booted_at
    name = ctx.cluster.engine_vm_host()
    rec = ctx.cluster.hosts[name].vm if name else None
    return ctx.now() - rec["started"] if rec else 0


@command("uptime")
async def uptime(ctx, args):
    seconds = int(uptime_seconds(ctx))
    days, rem = divmod(seconds, 86400)
    hours, minutes = rem // 3600, rem % 3600 // 60
    clock = time.strftime("%H:%M:%S", time.gmtime(ctx.cluster.clock.wall()))
    up = (f"{days} days, " if days else "") + f"{hours:2d}:{minutes:02d}"
    ctx.print(f" {clock} up {up},  1 user,  load average: 0.12, 0.08, 0.05")
    return 0


UNAME_OPTIONS = {"--all": "a", "--kernel-name": "s", "--nodename": "n",
                 "--kernel-release": "r", "--kernel-version": "v", "--machine": "m",
                 "--processor": "p", "--hardware-platform": "i", "--operating-system": "o"}


@command("uname")
async def uname(ctx, args):
    """The EL kernel, not the lab machine's."""
    fields = {"s": "Linux", "n": ctx.machine.name, "r": catalog.KERNEL[ctx.machine.os],
              "v": "#1 SMP Thu Nov 19 22:10:57 UTC 2015", "m": "x86_64", "p": "x86_64",
              "i": "x86_64", "o": "GNU/Linux"}
    letters = ""
    for arg in args:
        if arg in UNAME_OPTIONS:
            letters += UNAME_OPTIONS[arg]
        elif arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) <= set("asnrvmpio"):
            letters += arg[1:]
        else:
            ctx.error(f"uname: {'unrecognized option' if arg.startswith('-') else 'extra operand'} "
                      f"'{arg}'\nTry 'uname --help' for more information.")
            return 1
    if "a" in letters:
        letters = "snrvmpio"
    ctx.print(" ".join(fields[c] for c in "snrvmpio" if c in (letters or "s")))
    return 0


@command("ping")
async def ping(ctx, args):
    target = next((a for a in reversed(args) if not a.startswith("-")), None)
    if target is None:
        ctx.error("Usage: ping [-c count] destination")
        return 2
    await ctx.sleep(1)
    ctx.print(f"PING {target} 56(84) bytes of data.")
    ctx.print(f"64 bytes from {target}: icmp_seq=1 ttl=64 time=0.321 ms")
    ctx.print(f"\n--- {target} ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss")
    return 0
