"""The portal's own SSH key pair: the one identity it logs in to every host with.

Its path is settings.SSH_KEY_FILE (the one place); ``ensure_key`` makes an
ed25519 pair there the first time a process needs it (the data folder's
``ssh/id_ed25519``, mode 0600 in a 0700 folder, the public half beside it as
``.pub``). An existing key is never replaced: the hosts trust it.
"""
import logging
import os
import shlex
import socket
import tempfile
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings

log = logging.getLogger(__name__)


def key_path():
    return Path(settings.SSH_KEY_FILE)


def ensure_key(path=None):
    """The private key's path, creating the pair when there is none (never overwriting)."""
    path = Path(path or key_path())
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    # Written aside, then linked into place: another process never reads half a key, and
    # two processes starting at once never replace each other's (link fails if it exists).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".id-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path
        Path(f"{path}.pub").write_text(f"{public.decode()} {comment()}\n")
    finally:
        os.unlink(tmp)
    log.info("made the portal's SSH key pair %s", path)
    return path


def comment():
    return f"heportal@{socket.gethostname()}"


def public_line(path=None):
    """The public key as authorized_keys takes it ("ssh-ed25519 AAAA... heportal@host")."""
    key = paramiko.PKey.from_path(str(ensure_key(path)))
    return f"{key.get_name()} {key.get_base64()} {comment()}"


def fingerprint(path=None):
    return paramiko.PKey.from_path(str(ensure_key(path))).fingerprint


def authorize_command(user, public=None):
    """What an admin runs on a host, as root, so the portal may log in as ``user``."""
    public = public or public_line()
    home = "/root" if user == "root" else f"~{user}"
    folder = f"{home}/.ssh"
    steps = [f"install -d -m 700 {folder}"]
    if user != "root":
        steps[0] = f"install -d -m 700 -o {shlex.quote(user)} -g {shlex.quote(user)} {folder}"
    steps.append(f"echo {shlex.quote(public)} >> {folder}/authorized_keys")
    steps.append(f"chmod 600 {folder}/authorized_keys")
    if user != "root":
        steps.append(f"chown {shlex.quote(user)}: {folder}/authorized_keys")
    return " && ".join(steps)
