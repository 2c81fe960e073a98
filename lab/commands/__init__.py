"""Command tables: argv[0] -> async fn(ctx, args) -> exit status.

A command exists on a machine only when `fn.available(machine)` says so, so that e.g.
`hosted-engine` is "command not found" until ovirt-hosted-engine-setup is installed.
"""

COMMANDS = {}


def command(*names, machines=("host", "engine-vm"), package=None, os=None):
    """Register a command; `package`/`os` limit where it exists."""
    def wrap(fn):
        def available(machine):
            return (machine.kind in machines
                    and (package is None or package in machine.packages)
                    and (os is None or machine.os == os))
        fn.available = available
        for name in names:
            COMMANDS.setdefault(name, []).append(fn)
        return fn
    return wrap


class Dispatch:
    """Several registrations for one name (e.g. systemctl on hosts and on the engine VM)."""

    def __init__(self, fns, machine):
        self.fns = fns
        self.machine = machine

    def available(self, machine):
        return any(fn.available(machine) for fn in self.fns)

    async def __call__(self, ctx, args):
        for fn in self.fns:
            if fn.available(self.machine):
                return await fn(ctx, args)
        raise LookupError(self.fns)


def commands_for(machine):
    from . import basic, coreutils, engine_vm, hosted_engine, services, yum  # noqa: F401 (registers)
    return {name: Dispatch(fns, machine) for name, fns in COMMANDS.items()}
