"""The simulated tools: argv[0] -> async fn(ctx, args) -> exit status.

Each one is an executable in a machine's `path` directory (lab/distro.py puts it there)
only while `fn.available(machine)` says so: `hosted-engine` is "command not found" until
ovirt-hosted-engine-setup is installed, and again once it is removed. It runs here, in the
simulator, through lab/tools.py.
"""

COMMANDS = {}


def command(*names, path="/usr/bin", machines=("host", "engine-vm"), package=None, os=None,
            when=None):
    """Register a tool; `package`, `os` and `when(machine)` limit where it exists."""
    def wrap(fn):
        def available(machine):
            return (machine.kind in machines
                    and (package is None or package in machine.packages)
                    and (os is None or machine.os == os)
                    and (when is None or when(machine)))
        fn.available = available
        fn.path = path
        for name in names:
            COMMANDS.setdefault(name, []).append(fn)
        return fn
    return wrap


class Dispatch:
    """Several registrations for one name (e.g. systemctl on hosts and on the engine VM)."""

    def __init__(self, fns, machine):
        self.fns = fns
        self.machine = machine
        self.path = fns[0].path

    def available(self, machine):
        return any(fn.available(machine) for fn in self.fns)

    async def __call__(self, ctx, args):
        for fn in self.fns:
            if fn.available(self.machine):
                return await fn(ctx, args)
        raise LookupError(self.fns)


def _load():
    from . import (basic, engine_vm, hosted_engine, hypervisor, services,  # noqa: F401
                   yum)


def commands_for(machine):
    _load()
    return {name: Dispatch(fns, machine) for name, fns in COMMANDS.items()}


def command_paths():
    """name -> the directory its executable goes to."""
    _load()
    return {name: fns[0].path for name, fns in COMMANDS.items()}
