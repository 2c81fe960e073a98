"""Everyday shell commands over the simulated filesystem."""

import re
import time

from .. import catalog
from . import command


def resolve(path):
    return path if path.startswith("/") else "/root/" + path


@command("echo")
async def echo(ctx, args):
    newline = True
    if args and args[0] == "-n":
        newline, args = False, args[1:]
    ctx.out.write(" ".join(args) + ("\n" if newline else ""))
    return 0


@command("true", ":")
async def true(ctx, args):
    return 0


@command("false")
async def false(ctx, args):
    return 1


@command("sleep")
async def sleep(ctx, args):
    try:
        seconds = float(args[0].rstrip("s"))
    except (IndexError, ValueError):
        ctx.error("sleep: missing operand" if not args else f"sleep: invalid time interval '{args[0]}'")
        return 1
    await ctx.sleep(seconds)
    return 0


@command("cat")
async def cat(ctx, args):
    if not args:
        ctx.out.write(await ctx.stdin.read())
        return 0
    rc = 0
    for path in args:
        text = ctx.machine.files.get(resolve(path))
        if text is None:
            is_dir = any(p.startswith(resolve(path).rstrip("/") + "/") for p in ctx.machine.files)
            ctx.error(f"cat: {path}: " + ("Is a directory" if is_dir else "No such file or directory"))
            rc = 1
        else:
            ctx.out.write(text)
    return rc


@command("tee")
async def tee(ctx, args):
    append = "-a" in args
    paths = [resolve(a) for a in args if not a.startswith("-")]
    text = await ctx.stdin.read()
    for path in paths:
        ctx.machine.files[path] = (ctx.machine.files.get(path, "") if append else "") + text
    ctx.out.write(text)
    return 0


@command("ls")
async def ls(ctx, args):
    paths = [a for a in args if not a.startswith("-")] or ["/root"]
    long = any(a.startswith("-") and "l" in a for a in args)
    rc = 0
    for path in paths:
        path = resolve(path).rstrip("/") or "/"
        files = ctx.machine.files
        if path in files:
            entries = [path]
        else:
            prefix = path + "/" if path != "/" else "/"
            entries = sorted({p[len(prefix):].split("/")[0] for p in files if p.startswith(prefix)})
            if not entries and path not in ("/root", "/tmp"):
                ctx.error(f"ls: cannot access {path}: No such file or directory")
                rc = 2
                continue
        for entry in entries:
            if long:
                size = len(files.get(entry if entry.startswith("/") else f"{path}/{entry}", ""))
                ctx.print(f"-rw-r--r--. 1 root root {size:6d} Nov 25 10:00 {entry}")
            else:
                ctx.print(entry)
    return rc


@command("rm")
async def rm(ctx, args):
    force = any(a.startswith("-") and "f" in a for a in args)
    rc = 0
    for path in (resolve(a) for a in args if not a.startswith("-")):
        doomed = [p for p in ctx.machine.files if p == path or p.startswith(path.rstrip("/") + "/")]
        if not doomed and not force:
            ctx.error(f"rm: cannot remove '{path}': No such file or directory")
            rc = 1
        for p in doomed:
            del ctx.machine.files[p]
    return rc


@command("mkdir", "touch", "chmod", "chown")
async def noop_fs(ctx, args):
    return 0


@command("grep")
async def grep(ctx, args):
    flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
    rest = [a for a in args if not a.startswith("-") or len(a) == 1]
    if not rest:
        ctx.error("Usage: grep [OPTION]... PATTERN [FILE]...")
        return 2
    pattern, paths = rest[0], rest[1:]
    text = ""
    if paths:
        for path in paths:
            content = ctx.machine.files.get(resolve(path))
            if content is None:
                ctx.error(f"grep: {path}: No such file or directory")
                return 2
            text += content
    else:
        text = await ctx.stdin.read()
    regex = re.compile(pattern if "F" not in flags else re.escape(pattern),
                       re.I if "i" in flags else 0)
    lines = [line for line in text.splitlines() if bool(regex.search(line)) != ("v" in flags)]
    if "c" in flags:
        ctx.print(str(len(lines)))
    elif "q" not in flags:
        for line in lines:
            ctx.print(line)
    return 0 if lines else 1


async def _lines(ctx, args):
    count, paths = 10, []
    it = iter(args)
    for a in it:
        if a == "-n":
            count = int(next(it, "10"))
        elif a.startswith("-") and a[1:].isdigit():
            count = int(a[1:])
        elif a.startswith("-n"):
            count = int(a[2:])
        else:
            paths.append(a)
    text = ctx.machine.files.get(resolve(paths[0]), "") if paths else await ctx.stdin.read()
    return text.splitlines(), count


@command("head")
async def head(ctx, args):
    lines, count = await _lines(ctx, args)
    for line in lines[:count]:
        ctx.print(line)
    return 0


@command("tail")
async def tail(ctx, args):
    lines, count = await _lines(ctx, args)
    for line in lines[-count:] if count else []:
        ctx.print(line)
    return 0


@command("wc")
async def wc(ctx, args):
    text = await ctx.stdin.read()
    ctx.print(str(text.count("\n")) if "-l" in args else f"{text.count(chr(10))} {len(text.split())} {len(text)}")
    return 0


@command("hostname")
async def hostname(ctx, args):
    name = ctx.machine.name
    ctx.print(name.split(".")[0] if "-s" in args else name)
    return 0


@command("whoami")
async def whoami(ctx, args):
    ctx.print("root")
    return 0


@command("date")
async def date(ctx, args):
    wall = ctx.cluster.clock.wall()
    fmt = "%a %b %d %H:%M:%S UTC %Y"
    if args and args[0].startswith("+"):
        # GNU date's %s (epoch) and %N (nanoseconds) are not in strftime.
        fmt = args[0][1:].replace("%s", str(int(wall))).replace("%N", f"{int(wall % 1 * 1e9):09d}")
    ctx.print(time.strftime(fmt, time.gmtime(wall)))
    return 0


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


@command("uname")
async def uname(ctx, args):
    kernel = catalog.KERNEL[ctx.machine.os]
    if "-a" in args:
        ctx.print(f"Linux {ctx.machine.name} {kernel} #1 SMP Thu Nov 19 22:10:57 UTC 2015 "
                  "x86_64 x86_64 x86_64 GNU/Linux")
    elif "-r" in args:
        ctx.print(kernel)
    elif "-n" in args:
        ctx.print(ctx.machine.name)
    else:
        ctx.print("Linux")
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
