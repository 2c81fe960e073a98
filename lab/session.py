"""One SSH session on one machine: its command, or its login shell, in the machine's
sandbox (lab/sandbox.py), wired to the channel.

Without a terminal the channel's stdin, stdout and stderr are pipes to bash; with one
(`ssh -t`, paramiko's invoke_shell) bash gets a pseudo-terminal, as sshd gives it. Output
is passed on as it comes. When the channel closes first (client gone, host killed or
disconnected), everything the command started is killed.
"""

import asyncio
import fcntl
import os
import signal
import struct
import termios

import asyncssh

from .tools import INJECTED, take_injected_failure

CHUNK = 65536


async def run_session(sandbox, process):
    """Run what the client asked for; returns the exit status."""
    command = process.command
    if command is not None and take_injected_failure(sandbox.machine, command):
        name = (command.split() or ["bash"])[0]
        process.stderr.write(f"{name}: {INJECTED}\n".encode())
        return 1
    term = process.get_terminal_type()
    if term is not None:
        return await _on_terminal(sandbox, process, term)
    pipe = asyncio.subprocess.PIPE
    proc = await sandbox.spawn(command, pipe, pipe, pipe)

    async def feed():
        try:
            while data := await _read_channel(process, None):
                proc.stdin.write(data)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionError):
            pass
        finally:
            proc.stdin.close()

    return await _supervise(proc, process, feed(),
                            [_copy(proc.stdout.read, process.stdout),
                             _copy(proc.stderr.read, process.stderr)])


async def _on_terminal(sandbox, process, term):
    master, slave = os.openpty()
    _resize(master, process.get_terminal_size())
    try:
        proc = await sandbox.spawn(process.command, slave, slave, slave, term=term)
    finally:
        os.close(slave)
    terminal = _Terminal(master)

    async def feed():
        while data := await _read_channel(process, master):
            await terminal.write(data)

    try:
        return await _supervise(proc, process, feed(), [_copy(terminal.read, process.stdout)])
    finally:
        terminal.close()


async def _read_channel(process, master):
    """The client's next bytes; window size changes go to the terminal."""
    while True:
        try:
            return await process.stdin.read(CHUNK)
        except asyncssh.TerminalSizeChanged as change:
            if master is not None:
                _resize(master, (change.width, change.height, change.pixwidth,
                                 change.pixheight))
        except (asyncssh.BreakReceived, asyncssh.SignalReceived):
            pass


def _resize(fd, size):
    width, height, pixwidth, pixheight = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


async def _copy(read, channel):
    while data := await read(CHUNK):
        channel.write(data)
        await channel.drain()


async def _supervise(proc, process, feeder, copies):
    """Until the output ends (then the status) or the channel closes (then a kill)."""
    feeding = asyncio.ensure_future(feeder)
    output = asyncio.ensure_future(asyncio.gather(*copies))
    closed = asyncio.ensure_future(process.wait_closed())
    try:
        await asyncio.wait({output, closed}, return_when=asyncio.FIRST_COMPLETED)
        if not output.done():
            raise ConnectionResetError("the SSH channel closed")
        output.result()
        status = await proc.wait()
        return status if status >= 0 else 128 - status
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the sandbox's own session (lab/sandbox.py)
            await proc.wait()
        for task in (feeding, output, closed):
            task.cancel()
        # a write to the closed channel may have failed meanwhile: nothing to report
        await asyncio.gather(feeding, output, closed, return_exceptions=True)


class _Terminal:
    """The master side of a pseudo-terminal, read and written without blocking the lab."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self.loop = asyncio.get_running_loop()

    async def _ready(self, add, remove):
        ready = self.loop.create_future()
        add(self.fd, ready.set_result, None)
        try:
            await ready
        finally:
            remove(self.fd)

    async def read(self, size):
        while True:
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                await self._ready(self.loop.add_reader, self.loop.remove_reader)
            except OSError:  # EIO: the last process on the terminal has exited
                return b""

    async def write(self, data):
        while data:
            try:
                data = data[os.write(self.fd, data):]
            except BlockingIOError:
                await self._ready(self.loop.add_writer, self.loop.remove_writer)

    def close(self):
        os.close(self.fd)
