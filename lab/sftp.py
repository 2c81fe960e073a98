"""The `sftp` subsystem of a lab machine's sshd: read-only, confined to the machine's root.

EL's sshd_config ships `Subsystem sftp /usr/libexec/openssh/sftp-server`, so the portal
copies files off a host or the engine VM (the engine backup) over SFTP. Here asyncssh's
SFTP server answers, with every path resolved inside the machine's root by lab/rootfs.py
(openat2 RESOLVE_IN_ROOT: a symlink made on the machine never leads out of it). Reading
files and their attributes is modelled; anything that would change the machine is refused
with SFTP's "permission denied" (not modelled: writing, renaming, removing, listing).
"""

import os

import asyncssh

READ_ONLY = "the lab's sftp subsystem is read-only"


class RootSftp(asyncssh.SFTPServer):
    def __init__(self, chan, machine):
        super().__init__(chan)
        self.fs = machine.fs

    def _path(self, path):
        return "/" + os.fsdecode(path).lstrip("/")

    def _fd(self, path, flags):
        try:
            return self.fs._open(self._path(path), flags)
        except FileNotFoundError:
            raise asyncssh.SFTPNoSuchFile("No such file") from None
        except OSError as exc:
            raise asyncssh.SFTPFailure(exc.strerror or str(exc)) from None

    def realpath(self, path):
        return os.fsencode(os.path.normpath(self._path(path)))

    def open(self, path, pflags, attrs):
        if pflags & ~asyncssh.FXF_READ:
            raise asyncssh.SFTPPermissionDenied(READ_ONLY)
        return os.fdopen(self._fd(path, os.O_RDONLY), "rb")

    def stat(self, path):
        fd = self._fd(path, os.O_PATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def lstat(self, path):
        fd = self._fd(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def _refuse(self, *args, **kwargs):
        raise asyncssh.SFTPPermissionDenied(READ_ONLY)

    setstat = fsetstat = remove = rename = posix_rename = mkdir = rmdir = symlink = link = _refuse
    readlink = statvfs = fstatvfs = _refuse

    async def scandir(self, path):
        raise asyncssh.SFTPPermissionDenied(READ_ONLY)
        yield  # an async generator, as asyncssh expects
