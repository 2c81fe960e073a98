"""The lab's own files that hold secrets (the engine password, private keys): the state
directory is 0700 and such files 0600 from the moment they exist, never chmod-ed later."""

import os


def make_state_dir(path):
    """Create the state directory 0700; an existing one is tightened before anything
    secret is written into it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o700)


def write_private(path, data):
    """Write-then-rename (a reader never sees half a file), created 0600."""
    tmp = f"{path}.tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
