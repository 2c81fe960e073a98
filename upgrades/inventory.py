"""Inventory data for ``import_cluster``, checked whole before anything is written.

An inventory is JSON: ``engine`` {url, username, ca_file, password or
password_file}, ``hosts`` [{name, address, port, host_id, os, ssh_user,
known_hosts}] and optionally ``engine_vm`` {name, address, port, ssh_user,
known_hosts} (SSH into the engine VM), the shape the lab writes as its manifest (other keys are
ignored, so a manifest imports as it is). ``validate`` lists every problem
with its path in the file ("hosts[1].address: missing"), so one run of the
command shows all there is to fix, and returns only the fields the file
mentions: a re-import never blanks what the file leaves out.

The engine password, given inline or as ``password_file``, is read here once
and only kept as a value (the service stores it encrypted): the file's path is
not kept, and a path that is not a small one-line regular file is a problem
like any other, so ``/etc/shadow``, a directory or ``/dev/zero`` change nothing.
"""
import ipaddress
import math
import os
import re
import stat
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from .remote import ssh
from .remote.base import RemoteError

MAX_HE_HOST_ID = 2**31 - 1  # a PositiveIntegerField on PostgreSQL
MAX_PASSWORD_FILE_BYTES = 4096  # one line holding a password; anything bigger is not one
# An engine_vm block is checked as a host; its fields land on the cluster.
ENGINE_VM_FIELDS = {"name": "engine_vm_name", "address": "engine_vm_address", "ssh_port": "engine_vm_port",
                    "ssh_user": "engine_vm_user", "known_hosts": "engine_vm_known_hosts"}
_HOST_NAME = re.compile(r"(?=.{1,253}\.?$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?", re.ASCII)
_URL = URLValidator(schemes=["https", "http"])


@dataclass
class Inventory:
    """What to write: model field values, only for what the file mentions."""

    cluster: dict = field(default_factory=dict)
    hosts: list = field(default_factory=list)  # [{Host field: value}], each with name and address
    password: str | None = None  # the engine password itself, inline or read from its file


def validate(*, name, engine, hosts, poll_interval=None, engine_vm=None, password_file=None):
    """The inventory to write, or ValidationError listing every "path: problem".

    ``engine`` None means the file has no engine block; ``hosts`` None means
    it has no hosts list (a problem: an inventory is its hosts). ``password_file``
    (a caller's, outside the inventory) wins over the engine block's password.
    """
    problems = []
    found = Inventory()
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems.append("name: must be 1-100 characters")
    if poll_interval is not None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) \
                or not math.isfinite(poll_interval) or poll_interval <= 0:
            problems.append("poll_interval: must be a positive number of seconds")
        else:
            found.cluster["poll_interval"] = float(poll_interval)
    if engine is not None:
        _engine(engine, found, problems)
    if password_file is not None:
        _password_file("password_file", password_file, found, problems)
    if engine_vm is not None:
        vm = _host("engine_vm", engine_vm, problems)
        for key, value in (vm or {}).items():
            found.cluster[ENGINE_VM_FIELDS[key]] = value
    if hosts is None:
        problems.append("hosts: missing")
    elif not isinstance(hosts, list):
        problems.append("hosts: must be a list of hosts")
    else:
        names, ids = {}, {}
        for index, item in enumerate(hosts):
            host = _host(f"hosts[{index}]", item, problems)
            if host is None:
                continue
            for key, seen, label in (("name", names, "name"), ("he_host_id", ids, "host_id")):
                value = host.get(key)
                if value is not None and value in seen:
                    problems.append(f"hosts[{index}].{label}: same as hosts[{seen[value]}]")
                elif value is not None:
                    seen[value] = index
            found.hosts.append(host)
    if problems:
        raise ValidationError(problems)
    return found


def _text(path, value, problems, *, max_length, required=True, spaces=True):
    """A string field's value, or None with a problem added."""
    if not isinstance(value, str):
        problems.append(f"{path}: must be a string")
    elif required and not value.strip():
        problems.append(f"{path}: must not be empty")
    elif len(value) > max_length:
        problems.append(f"{path}: longer than {max_length} characters")
    elif not spaces and any(char.isspace() for char in value):
        problems.append(f"{path}: must not contain spaces")
    else:
        return value
    return None


def _integer(value, low, high):
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _engine(engine, found, problems):
    if not isinstance(engine, dict):
        problems.append("engine: must be an object (url, username, ca_file, password or password_file)")
        return
    if "url" in engine:
        url = engine["url"]
        try:
            if not isinstance(url, str) or len(url) > 300:
                raise ValidationError("not a URL")
            _URL(url)
        except ValidationError:
            problems.append("engine.url: not an https/http URL, e.g. https://engine.example.com/ovirt-engine/api")
        else:
            found.cluster["engine_url"] = url
    for key, column, max_length, required in (("username", "engine_username", 100, True),
                                              ("ca_file", "engine_ca_file", 300, False)):
        if key in engine:
            value = _text(f"engine.{key}", engine[key], problems, max_length=max_length, required=required)
            if value is not None:
                found.cluster[column] = value
    if "password" in engine:
        # The secret itself is never part of a message.
        if not isinstance(engine["password"], str) or not engine["password"]:
            problems.append("engine.password: must be a non-empty string")
        else:
            found.password = engine["password"]
    if "password_file" in engine:
        _password_file("engine.password_file", engine["password_file"], found, problems)


def _password_file(path, value, found, problems):
    """Read the password now; only its value is kept, never where it came from."""
    where = _text(path, value, problems, max_length=4096)
    if where is None:
        return
    try:
        found.password = read_password_file(where)
    except ValueError as exc:
        problems.append(f"{path}: {exc}")


def read_password_file(path):
    """The password in ``path``: a regular file of one line, at most
    MAX_PASSWORD_FILE_BYTES; white space around it is ignored (as for a
    ``credentials_ref`` file). Anything else raises ValueError naming the path and
    why, never quoting what the file holds. Opened without blocking and checked
    on the open descriptor, so a FIFO, a device or a file swapped in meanwhile is
    never read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except PermissionError:
        raise ValueError(f"{path}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be opened ({exc.strerror})") from None
    too_big = (f"{path}: {{size}} bytes is too big for a password file "
               f"(one line, at most {MAX_PASSWORD_FILE_BYTES} bytes)")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: is {_file_kind(info.st_mode)}, not a regular file holding the password")
        if info.st_size > MAX_PASSWORD_FILE_BYTES:
            raise ValueError(too_big.format(size=info.st_size))
        data = b""
        while len(data) <= MAX_PASSWORD_FILE_BYTES:  # a file that grows, or lies about its size
            chunk = os.read(fd, MAX_PASSWORD_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_PASSWORD_FILE_BYTES:
            raise ValueError(too_big.format(size=f"more than {MAX_PASSWORD_FILE_BYTES}"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: is not text (not UTF-8)") from None
    password = text.strip()
    if not password:
        raise ValueError(f"{path}: is empty")
    lines = len(password.splitlines())
    if lines > 1:
        raise ValueError(f"{path}: holds {lines} lines; a password file holds the password alone on one line")
    if "\0" in password:
        raise ValueError(f"{path}: is not text (holds NUL bytes)")
    return password


def _file_kind(mode):
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "an unknown kind of file"


def _host(path, item, problems):
    if not isinstance(item, dict):
        problems.append(f"{path}: must be an object with at least name and address")
        return None
    host = {}
    for key, column, max_length, spaces in (("name", "name", 255, True), ("address", "address", 255, False)):
        if key not in item:
            problems.append(f"{path}.{key}: missing")
            continue
        value = _text(f"{path}.{key}", item[key], problems, max_length=max_length, spaces=spaces)
        if value is not None:
            host[column] = value
    address = host.get("address")
    if address is not None and not is_address(address):
        problems.append(f"{path}.address: not a host name or IP address")
        del host["address"]
    if "port" in item:
        if _integer(item["port"], 1, 65535):
            host["ssh_port"] = item["port"]
        else:
            problems.append(f"{path}.port: must be an integer 1-65535")
    if "ssh_user" in item:
        value = _text(f"{path}.ssh_user", item["ssh_user"], problems, max_length=64, spaces=False)
        if value is not None:
            host["ssh_user"] = value
    if "host_id" in item:
        if item["host_id"] is None or _integer(item["host_id"], 1, MAX_HE_HOST_ID):
            host["he_host_id"] = item["host_id"]
        else:
            problems.append(f"{path}.host_id: must be a positive integer (the hosted-engine host id) or null")
    if "os" in item:
        value = _text(f"{path}.os", item["os"], problems, max_length=100, required=False)
        if value is not None:
            host["os_release"] = value
    if "known_hosts" in item:
        # Which address and port its key must be for, unless those have problems of their own.
        checkable = "address" in host and ("port" not in item or "ssh_port" in host)
        _known_hosts(path, item["known_hosts"], host if checkable else None, problems)
    return host


def is_address(text):
    """A host name or an IP address (what ssh can connect to)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return _HOST_NAME.fullmatch(text) is not None
    return True


def _known_hosts(path, text, host, problems):
    """Pinned as given, so it must be readable and hold a key for this host
    (checked when ``host`` is given)."""
    if not isinstance(text, str):
        problems.append(f"{path}.known_hosts: must be a string of known_hosts lines")
        return
    try:
        ssh.parse_known_hosts(text)
    except RemoteError as exc:
        problems.append(f"{path}.known_hosts: {exc.message}")
        return
    if host is None:
        return
    port = host.get("ssh_port", 22)
    if text.strip() and not ssh.pinned_keys(text, host["address"], port):
        problems.append(f"{path}.known_hosts: has no key for {ssh.known_hosts_name(host['address'], port)}")
        return
    host["known_hosts"] = text
