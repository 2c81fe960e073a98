"""Each lab machine's sandbox: every command it receives runs in real /bin/bash there.

bubblewrap (`bwrap`) gives each command its own namespaces: the machine's root directory
(lab/rootfs.py) as `/`, the machine's hostname, a private pid space, no network, no
capability that could change a mount, and death with the lab. `/.lab`, read-only, is the
simulator's side: the socket the simulated tools talk to (lab/tools.py), the scaled clock
that `date` and `sleep` follow (lab/inside/bashenv.sh), and the lab machine's own /usr that
the root's /usr/bin and /usr/sbin link into (lab/distro.py).

Nothing runs outside a sandbox: if bwrap is missing or fails, the lab does not start.
"""

import asyncio
import logging
import os
import shutil
import time

from .distro import LAB, PYTHONS, python_home, read_inside, relocated_python
from .errors import LabError

log = logging.getLogger(__name__)
_MISSING_PYTHONS = set()

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/root/bin"  # EL7 root's PATH
# Root in the sandbox keeps what file administration needs; without CAP_SYS_ADMIN it
# cannot remount /.lab/usr writable, and --disable-userns stops it from gaining it back.
CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT")


def find_bwrap():
    path = shutil.which("bwrap")
    if path is None:
        raise LabError("bubblewrap (bwrap) is not installed: the lab runs every host command "
                       "in a bwrap sandbox and never on this machine itself; run "
                       "scripts/bootstrap.sh (Debian package bubblewrap)")
    return path


class Sandbox:
    """How to run a command on one machine."""

    def __init__(self, machine, clock, state_dir, bwrap):
        self.machine = machine
        self.clock = clock
        self.bwrap = bwrap
        self.dir = os.path.join(state_dir, "sim", machine.short_name)
        self.socket_path = os.path.join(self.dir, "sock")
        self._clock_line = None
        # Each release's Python (lab/distro.py PYTHONS): its binary here, its lib bound in.
        self.pythons = {series: python_home(series) for series, _ in PYTHONS.values()
                        if python_home(series)}

    def prepare(self):
        """The /.lab directory: clock, bashenv.sh, a FIFO to wait on, the /usr mount point."""
        os.makedirs(os.path.join(self.dir, "usr"), mode=0o755, exist_ok=True)
        with open(os.path.join(self.dir, "bashenv.sh"), "w") as f:
            f.write(read_inside("bashenv.sh"))
        tick = os.path.join(self.dir, "tick")
        if not os.path.exists(tick):
            os.mkfifo(tick)
        for series in self.pythons:
            bin_dir = os.path.join(self.dir, "python", series, "bin")
            os.makedirs(bin_dir, exist_ok=True)
            os.makedirs(os.path.join(self.dir, "python", series, "lib"), exist_ok=True)
            tmp = os.path.join(bin_dir, ".python.tmp")
            with open(tmp, "wb") as f:
                f.write(relocated_python(series))
            os.chmod(tmp, 0o755)
            os.replace(tmp, os.path.join(bin_dir, "python" + series))
        for series in sorted({series for series, _ in PYTHONS.values()} - set(self.pythons)):
            if series not in _MISSING_PYTHONS:  # said once per lab, not per machine
                _MISSING_PYTHONS.add(series)
                log.warning("no Python %s here (pyenv): hosts whose release has it run this "
                            "machine's python3 instead", series)
        self.write_clock()

    def write_clock(self):
        """SPEED_PPM WALL0_US REAL0_US PACE_PPM, see lab/inside/bashenv.sh. Rewritten when a
        slow-host fault changes the pace."""
        speed = self.clock.speed
        pace = round(1e6 * self.machine.slow_factor / speed)
        if self._clock_line and self._clock_line.endswith(f" {pace}\n"):
            return
        real, wall = time.time(), self.clock.wall()
        self._clock_line = f"{round(speed * 1e6)} {round(wall * 1e6)} {round(real * 1e6)} {pace}\n"
        tmp = os.path.join(self.dir, "clock.tmp")
        with open(tmp, "w") as f:
            f.write(self._clock_line)
        os.replace(tmp, os.path.join(self.dir, "clock"))

    def argv(self, command, cwd):
        """bwrap's command line; `command` None is a login shell."""
        # "bash" found on PATH, so that its messages say `bash:` as sshd's login shell does.
        bash = ["bash", "-l"] if command is None else ["bash", "-c", command]
        return [self.bwrap, "--bind", self.machine.fs.path, "/", *self._isolation(),
                "--chdir", cwd, "--", *bash]

    def _isolation(self):
        """/.lab, /proc, /dev, the namespaces and the capabilities of every sandbox."""
        caps = [arg for cap in CAPS for arg in ("--cap-add", cap)]
        pythons = [arg for series, home in self.pythons.items()
                   for arg in ("--ro-bind", os.path.join(home, "lib"), f"{LAB}/python/{series}/lib")]
        return ["--ro-bind", self.dir, LAB, "--ro-bind", "/usr", LAB + "/usr", *pythons,
                "--proc", "/proc", "--dev", "/dev",
                "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
                "--unshare-uts", "--unshare-cgroup-try", "--disable-userns",
                "--cap-drop", "ALL", *caps, "--hostname", self.machine.name,
                "--die-with-parent"]

    async def spawn(self, command, stdin, stdout, stderr, term=None):
        """Start `command` (None: a login shell); on a terminal when `term` is given."""
        self.write_clock()
        env = {"PATH": PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
               "SHELL": "/bin/bash", "LANG": "C.UTF-8", "BASH_ENV": LAB + "/bashenv.sh"}
        cwd = "/root" if self.machine.fs.isdir("/root") else "/"
        argv = self.argv(command, cwd)
        if term is not None:
            env["TERM"] = term
            argv = ["setsid", "--ctty"] + argv  # the terminal becomes bash's, for job control
        # Its own session either way, so that killing its process group kills it whole,
        # even in the instant before bwrap has made its children die with it.
        return await asyncio.create_subprocess_exec(*argv, stdin=stdin, stdout=stdout,
                                                    stderr=stderr, env=env,
                                                    start_new_session=term is None)

    async def check(self):
        """Set up this machine's sandbox once, around a root of this machine's own /usr
        rather than the host's (whose programs an admin may have broken, as on a real
        host): its root bound, its hostname, and the tools' socket reached from inside.
        Raise LabError if anything fails."""
        merged = [arg for name in ("bin", "sbin", "lib", "lib64") if os.path.islink("/" + name)
                  for arg in ("--symlink", os.readlink("/" + name), "/" + name)]
        probe = ("hostname; exec python3 -IS -c \"import _socket; "
                 "_socket.socket(_socket.AF_UNIX).connect('/.lab/sock'); print('socket')\"")
        argv = [self.bwrap, "--tmpfs", "/", "--ro-bind", "/usr", "/usr", *merged,
                "--bind", self.machine.fs.path, "/mnt", *self._isolation(),
                "--", "/usr/bin/bash", "-c", probe]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin"})
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except (OSError, asyncio.TimeoutError) as exc:
            raise LabError(f"cannot run commands on {self.machine.name} in its sandbox: {exc}")
        if proc.returncode != 0 or out.decode() != f"{self.machine.name}\nsocket\n":
            raise LabError(f"cannot run commands on {self.machine.name} in its sandbox "
                           f"(bwrap status {proc.returncode}): {err.decode().strip()}")
