"""Inventory data for ``import_cluster``, checked whole before anything is written.

An inventory is JSON: ``engine`` {url, username, ca_file, password or
password_file}, ``hosts`` [{name, address, port, host_id, os, ssh_user,
known_hosts}] and optionally ``engine_vm`` {name, address, port, ssh_user,
known_hosts} (SSH into the engine VM), the shape the lab writes as its manifest (other keys are
ignored, so a manifest imports as it is). ``validate`` lists every problem
with its path in the file ("hosts[1].address: missing"), so one run of the
command shows all there is to fix, and returns only the fields the file
mentions: a re-import never blanks what the file leaves out.
"""
import ipaddress
import math
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from .remote import ssh
from .remote.base import RemoteError

MAX_HE_HOST_ID = 2**31 - 1  # a PositiveIntegerField on PostgreSQL
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
    password: str | None = None
    password_file: str | None = None


def validate(*, name, engine, hosts, poll_interval=None, engine_vm=None):
    """The inventory to write, or ValidationError listing every "path: problem".

    ``engine`` None means the file has no engine block; ``hosts`` None means
    it has no hosts list (a problem: an inventory is its hosts).
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
        found.password_file = _text("engine.password_file", engine["password_file"], problems,
                                    max_length=290)  # "file:" + path fits credentials_ref


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
