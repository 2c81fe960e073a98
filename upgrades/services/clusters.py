"""Clusters and hosts: inventory imports and host keys. Each change is audited."""
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .. import audit
from ..inventory import validate
from ..models import Cluster, Host
from ..permissions import can_admin
from ..remote import ssh
from ..remote.base import RemoteError


def import_cluster(*, name, engine, hosts, password_file=None, poll_interval=None, user=None, engine_vm=None):
    """Create or update a cluster and its hosts from inventory data.

    The whole inventory is checked first (``upgrades.inventory``): any problem
    raises ValidationError listing them all, and nothing is written. Only what
    the data mentions is set; no ``engine`` block leaves the engine URL and
    credentials as they are, and a host keeps the fields its entry leaves out.
    An engine password (inline, the engine block's ``password_file`` or
    ``password_file`` here, each file read once) is stored encrypted like the
    admin form does; no path to it is kept, and without one the stored one stays.
    """
    found = validate(name=name, engine=engine, hosts=hosts, poll_interval=poll_interval, engine_vm=engine_vm,
                     password_file=password_file)
    values = dict(found.cluster)
    changed = sorted(values)
    with transaction.atomic():
        cluster, created = Cluster.objects.update_or_create(name=name, defaults=values)
        if found.password is not None:
            cluster.set_engine_password(found.password)
            cluster.save(update_fields=["engine_password_encrypted"])
            changed = sorted(changed + ["engine_password"])
        for host in found.hosts:
            fields = dict(host)
            Host.objects.update_or_create(cluster=cluster, name=fields.pop("name"), defaults=fields)
        audit.record(user, "cluster.import" if created else "cluster.reimport", cluster,
                     hosts=[host["name"] for host in found.hosts], fields=changed)
    return cluster


def accept_host_key(*, host, known_hosts_line, user):
    """Pin the SSH host key an admin reviewed; replaces keys pinned for the same address."""
    if not can_admin(user, host.cluster):
        raise PermissionDenied("Only admins can accept host keys.")
    line = known_hosts_line.strip()
    name = ssh.known_hosts_name(host.address, host.ssh_port)
    try:
        offered = ssh.pinned_keys(line, host.address, host.ssh_port) if "\n" not in line else []
    except RemoteError as exc:
        raise ValidationError(exc.message) from None
    if not offered:
        raise ValidationError(f"That is not one known_hosts line for {name}.")
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        kept, replaced = [], []
        for old in host.known_hosts.splitlines():
            if not old.strip():
                continue
            try:
                mine = ssh.pinned_keys(old, host.address, host.ssh_port)
            except RemoteError:
                # An unreadable line would make every connection fail: drop it too.
                mine = [("unreadable", old[:80])]
            if mine:
                replaced.extend(fingerprint for _, fingerprint in mine)
            else:
                kept.append(old)
        host.known_hosts = "\n".join(kept + [line])
        host.save(update_fields=["known_hosts"])
        key_type, fingerprint = offered[0]
        audit.record(user, "host.key_accept", host, key_type=key_type, fingerprint=fingerprint,
                     replaced=replaced)
    return host
