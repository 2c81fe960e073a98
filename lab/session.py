"""One command execution context on one machine: streams, faults and the command table."""

import re

from .commands import commands_for
from .shell import Shell

INJECTED = "error: injected failure (lab fault fail-next-command)"


class Ctx:
    """What a command function gets: the machine, the cluster, its streams, a scaled sleep."""

    def __init__(self, session, stdin, out, err):
        self.session = session
        self.cluster = session.cluster
        self.machine = session.machine
        self.host = session.machine if session.machine.kind == "host" else None
        self.stdin = stdin
        self.out = out
        self.err = err

    def now(self):
        return self.cluster.clock.now()

    async def sleep(self, seconds):
        """Simulated seconds, stretched on a slow host."""
        await self.cluster.clock.sleep(seconds * self.machine.slow_factor)

    def print(self, text=""):
        self.out.write(text + "\n")

    def error(self, text):
        self.err.write(text + "\n")


class Session:
    def __init__(self, cluster, machine, stdin, stdout, stderr):
        self.cluster = cluster
        self.machine = machine
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.shell = Shell(self, commands_for(machine))

    async def run(self, command_line):
        try:
            return await self.shell.run(command_line)
        finally:
            self.cluster.save()

    def take_injected_failure(self, line):
        for pattern in list(self.machine.fail_patterns):
            try:
                hit = re.search(pattern, line)
            except re.error:
                hit = pattern in line
            if hit or pattern in line:
                self.machine.fail_patterns.remove(pattern)
                return True
        return False

    async def execute(self, words, stdin, out, err):
        name = words[0]
        if self.take_injected_failure(" ".join(words)):
            err.write(f"{name}: {INJECTED}\n")
            return 1
        fn = self.shell.commands.get(name)
        if fn is None or not fn.available(self.machine):
            err.write(f"bash: {name}: command not found\n")
            return 127
        return await fn(Ctx(self, stdin, out, err), words[1:])
