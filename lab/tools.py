"""The simulator's end of the lab's tools (hosted-engine, yum, systemctl, ...).

Each machine has a unix socket, bound into its sandbox as /.lab/sock. A tool on the
machine's PATH (lab/inside/tool.py) connects, sends its working directory and argv, and
the command from lab/commands runs here with a `Ctx` whose output streams back as it is
written and whose stdin is read from the tool's stdin only when the command asks for it.
When the tool goes away (the SSH client left, the host lost power) the command is
cancelled, as a killed process would be.

Frames, both ways: one letter, a 4-byte big-endian length, the data.
  tool -> lab: C cwd\\0argv0\\0args...   D stdin data (empty: end of input)
  lab -> tool: O stdout   E stderr   L send a line of stdin (data: the size of each read,
               as the real tool reads; empty: byte by byte)   A send all stdin   X status
"""

import asyncio
import logging
import os
import re
import socket

from .commands import commands_for

log = logging.getLogger(__name__)
INJECTED = "error: injected failure (lab fault fail-next-command)"
# How much a prompting tool reads from a pipe for one answer: EL6/EL7's tools are Python 2
# (raw_input on a C stdio stream: a 4096-byte read, the pipe's st_blksize), EL8/EL9's are
# Python 3 (input() through TextIOWrapper: one 8192-byte read). Measured with CPython 2.7.18,
# 3.6.15 and 3.9.18 reading `y\n` and 20 kB more from a pipe (PYTHONUNBUFFERED unset).
STDIN_READ = {"el6": 4096, "el7": 4096, "el8": 8192, "el9": 8192}


def take_injected_failure(machine, text):
    """True (once) if a fail-next-command pattern matches `text`."""
    for pattern in list(machine.fail_patterns):
        try:
            hit = re.search(pattern, text)
        except re.error:
            hit = False
        if hit or pattern in text:
            machine.fail_patterns.remove(pattern)
            return True
    return False


class Ctx:
    """What a command function gets: the machine, the cluster, its streams, a scaled sleep."""

    def __init__(self, cluster, machine, stdin, out, err, cwd="/root"):
        self.cluster = cluster
        self.machine = machine
        self.host = machine if machine.kind == "host" else None
        self.stdin = stdin
        self.out = out
        self.err = err
        self.cwd = cwd

    def now(self):
        return self.cluster.clock.now()

    async def sleep(self, seconds):
        """Simulated seconds, stretched on a slow host."""
        await self.cluster.clock.sleep(seconds * self.machine.slow_factor)

    def path(self, name):
        """An argument's path as the command sees it, relative to its working directory."""
        return os.path.normpath(os.path.join(self.cwd, name))

    def print(self, text=""):
        self.out.write(text + "\n")

    def error(self, text):
        self.err.write(text + "\n")


async def read_frame(reader):
    header = await reader.readexactly(5)
    return header[:1], await reader.readexactly(int.from_bytes(header[1:], "big"))


def frame(kind, data):
    return kind + len(data).to_bytes(4, "big") + data


class _Output:
    def __init__(self, writer, kind):
        self.writer = writer
        self.kind = kind

    def write(self, text):
        if not self.writer.is_closing():
            self.writer.write(frame(self.kind, text.encode()))

    async def drain(self):
        await self.writer.drain()


class _Input:
    """The tool's stdin, read on demand as the real tool reads it: a prompt reads a buffer
    (STDIN_READ), so on a pipe what follows the answer is gone with the tool, as with yum
    on a script piped to `bash -s`; what a command never asks for stays for the next
    reader."""

    def __init__(self, writer, answers, size=0):
        self.writer = writer
        self.answers = answers
        self.size = size

    async def _ask(self, kind):
        self.writer.write(frame(kind, str(self.size).encode() if kind == b"L" else b""))
        data = await self.answers.get()
        if data is None:
            raise ConnectionResetError("the tool went away")
        return data.decode(errors="replace")

    async def readline(self):
        return await self._ask(b"L")

    async def read(self):
        return await self._ask(b"A")


class ToolServer:
    """One machine's socket; the lab saves its state after every command."""

    def __init__(self, cluster, machine, path):
        self.cluster = cluster
        self.machine = machine
        self.path = path
        self.server = None

    async def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The state dir's path may be longer than a socket address allows.
        directory = os.open(os.path.dirname(self.path), os.O_PATH)
        try:
            sock.bind(f"/proc/self/fd/{directory}/{os.path.basename(self.path)}")
        finally:
            os.close(directory)
        self.server = await asyncio.start_unix_server(self._serve, sock=sock)

    async def stop(self):
        if self.server:
            self.server.close()

    async def _serve(self, reader, writer):
        try:
            kind, data = await read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        cwd, *argv = [os.fsdecode(part) for part in data.split(b"\0")]
        answers = asyncio.Queue()
        stdin = _Input(writer, answers, STDIN_READ.get(self.machine.os, 0))
        ctx = Ctx(self.cluster, self.machine, stdin, _Output(writer, b"O"),
                  _Output(writer, b"E"), cwd)
        command = asyncio.ensure_future(self.run(ctx, argv))
        listening = asyncio.ensure_future(self._listen(reader, answers, command))
        try:
            status = await command
            writer.write(frame(b"X", str(status & 0xFF).encode()))
            await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            listening.cancel()
            writer.close()

    async def _listen(self, reader, answers, command):
        """Stdin answers from the tool; its end means the process is gone."""
        try:
            while True:
                kind, data = await read_frame(reader)
                if kind == b"D":
                    answers.put_nowait(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            answers.put_nowait(None)
            command.cancel()

    async def run(self, ctx, argv):
        name, machine = argv[0], self.machine
        if take_injected_failure(machine, " ".join(argv)):
            ctx.error(f"{name}: {INJECTED}")
            return 1
        fn = commands_for(machine).get(name)
        if fn is None or not fn.available(machine):  # its package went while it ran
            ctx.error(f"bash: {name}: command not found")
            return 127
        try:
            return await fn(ctx, argv[1:])
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.exception("%s failed on %s", argv, machine.name)
            ctx.error(f"{name}: internal error in the lab")
            return 1
        finally:
            self.cluster.save()
