"""A machine's own filesystem: a directory under the state dir that its sandbox sees as `/`.

The simulator reads and writes the files it owns there (repo files, hosted-engine.conf,
logs, ...), and so do the commands run on the machine: the disk is the one truth. The
simulator runs unconfined, so every path is resolved with openat2(RESOLVE_IN_ROOT): a
symlink made on a host (`ln -s / /etc/ovirt-hosted-engine`) resolves inside that host's
root, as it would on the host, and never leads the simulator to the machine's own files.
"""

import ctypes
import fnmatch
import os
import shutil

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437          # the same number on x86_64 and the generic syscall table
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


class RootFs:
    """File operations confined to one root directory."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, mode=0o755, exist_ok=True)
        self._root = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self):
        os.close(self._root)

    def _open(self, path, flags, mode=0):
        how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0,
                       _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(self._root),
                           ctypes.c_char_p(os.fsencode(path.lstrip("/") or ".")),
                           ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return fd

    def _parent(self, path, create=False):
        """(fd of the parent directory, last name); the caller closes the fd."""
        parent, name = os.path.split(os.path.normpath("/" + path))
        if create:
            self.makedirs(parent)
        return self._open(parent, os.O_PATH | os.O_DIRECTORY), name

    def makedirs(self, path, mode=0o755):
        parts = [p for p in os.path.normpath("/" + path).split("/") if p]
        for i in range(len(parts)):
            try:
                os.close(self._open("/".join(parts[:i + 1]), os.O_PATH | os.O_DIRECTORY))
            except FileNotFoundError:
                fd = self._open("/".join(parts[:i]), os.O_PATH | os.O_DIRECTORY)
                try:
                    os.mkdir(parts[i], dir_fd=fd)
                    os.chmod(parts[i], mode, dir_fd=fd)  # exactly `mode`, whatever the umask
                except FileExistsError:
                    pass
                finally:
                    os.close(fd)

    def read(self, path):
        """The text of a file, or None when it is missing or not a readable file."""
        try:
            fd = self._open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                return f.read().decode(errors="replace")
        except IsADirectoryError:
            return None

    def write(self, path, text, mode=0o644, append=False):
        """Create or replace (or append to) a file, making its parent directories."""
        self.makedirs(os.path.dirname("/" + path))
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        with os.fdopen(self._open(path, flags, mode), "wb") as f:
            f.write(text.encode())

    def append(self, path, text):
        """Append to a file whose directory exists; like a daemon's log, nothing when
        an admin removed the directory."""
        if self.isdir(os.path.dirname("/" + path)):
            self.write(path, text, append=True)

    def symlink(self, target, path):
        fd, name = self._parent(path, create=True)
        try:
            os.symlink(target, name, dir_fd=fd)
        finally:
            os.close(fd)

    def symlinks(self, directory, links):
        """Many links in one directory: {name: target}."""
        fd = self._open(directory, os.O_PATH | os.O_DIRECTORY)
        try:
            for name, target in links.items():
                os.symlink(target, name, dir_fd=fd)
        finally:
            os.close(fd)

    def exists(self, path):
        try:
            os.close(self._open(path, os.O_PATH))
        except OSError:
            return False
        return True

    def isdir(self, path):
        try:
            os.close(self._open(path, os.O_PATH | os.O_DIRECTORY))
        except OSError:
            return False
        return True

    def listdir(self, path):
        try:
            fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def glob(self, directory, pattern):
        return [os.path.join(directory, n) for n in self.listdir(directory)
                if fnmatch.fnmatch(n, pattern)]

    def remove(self, path):
        """rm -rf of one path (a symlink itself, not what it points to)."""
        def remove(fd, name):
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                pass
            except (IsADirectoryError, PermissionError):  # unlink(2) of a directory
                shutil.rmtree(name, dir_fd=fd)
        self._in_parent(path, remove)

    def rmdir(self, path):
        """Remove a directory if it is empty, as rpm does with the ones it owns."""
        def rmdir(fd, name):
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                pass
        self._in_parent(path, rmdir)

    def _in_parent(self, path, action):
        """action(parent's fd, name); nothing when the parent is missing."""
        try:
            fd, name = self._parent(path)
        except OSError:
            return
        try:
            action(fd, name)
        finally:
            os.close(fd)

    def wipe(self):
        """Empty the whole root (a disk formatted for a new OS)."""
        for name in self.listdir("/"):
            self.remove(name)
