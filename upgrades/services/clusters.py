"""Clusters and hosts: inventory imports, the pages' additions and changes, host keys.
Each change is audited; every input is checked by ``upgrades.inventory.validate``."""
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .. import audit, events, ha, onboarding
from ..inventory import validate
from ..models import Cluster, Host
from ..permissions import can_admin, check_global_admin
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


def review_host_key(host):
    """What an admin reviews before pinning (the host key page and the API): the key the host
    offers now (or None and the error), the keys pinned, and whether the offered one is pinned."""
    offered, error = None, ""
    try:
        offered = ssh.fetch_host_key(host.address, host.ssh_port)
    except RemoteError as exc:
        error = exc.message
    try:
        pinned = ssh.pinned_keys(host.known_hosts, host.address, host.ssh_port)
    except RemoteError as exc:
        pinned, error = [], error or exc.message
    return {"offered": offered, "pinned": pinned, "error": error,
            "already_pinned": bool(offered) and offered.fingerprint in {fp for _, fp in pinned}}


def setup_facts(cluster):
    """What setting a cluster up needs (the set-up page and the API): the portal's public key,
    and per host the command that authorises it and the keys pinned."""
    from .. import sshkey

    public = sshkey.public_line()
    hosts = []
    for host in cluster.hosts.order_by("he_host_id", "name"):
        try:
            pinned = ssh.pinned_keys(host.known_hosts, host.address, host.ssh_port)
        except RemoteError:
            pinned = []
        hosts.append({"host": host, "pinned": pinned, "command": sshkey.authorize_command(host.ssh_user, public)})
    return {"public_key": public, "key_fingerprint": sshkey.fingerprint(), "hosts": hosts}


# Adding and changing a cluster from the pages (upgrades.onboarding, docs/onboarding.md) ------------

def _check_admin(user, cluster):
    if not can_admin(user, cluster):
        raise PermissionDenied(f"Only admins of cluster {cluster.name} can change it.")


def add_cluster(*, user, name, engine_url, username, password, ca_pem, poll_interval=None):
    """A new cluster with its engine's URL, login (the password stored encrypted) and CA.

    Checked as an inventory file is (``upgrades.inventory.validate``); the caller has
    tried the login with this CA (``onboarding.examine_with_pem``). Hosts come next
    (``add_hosts``)."""
    check_global_admin(user, "add clusters")
    engine = {"url": engine_url, "username": username, "password": password}
    found = validate(name=name, engine=engine, hosts=[], poll_interval=poll_interval)
    if Cluster.objects.filter(name=name).exists():
        raise ValidationError(f"name: there is a cluster {name} already")
    values = dict(found.cluster, engine_ca_file=onboarding.save_ca(ca_pem))
    with transaction.atomic():
        cluster = Cluster.objects.create(name=name, **values)
        cluster.set_engine_password(found.password)
        cluster.save(update_fields=["engine_password_encrypted"])
        audit.record(user, "cluster.add", cluster, engine_url=cluster.engine_url, username=username,
                     ca_fingerprint=onboarding.parse_ca(ca_pem).fingerprint, poll_interval=cluster.poll_interval)
    return cluster


def add_hosts(*, user, cluster, hosts):
    """Hosts (inventory entries: name, address, port, ssh_user) added to ``cluster``, no key
    pinned yet: the admin accepts each host's key before the portal logs in."""
    _check_admin(user, cluster)
    found = validate(name=cluster.name, engine=None, hosts=hosts)
    taken = set(cluster.hosts.values_list("name", flat=True))
    clash = [host["name"] for host in found.hosts if host["name"] in taken]
    if clash:
        raise ValidationError([f"{name}: already in cluster {cluster.name}" for name in clash])
    with transaction.atomic():
        for host in found.hosts:
            fields = dict(host)
            Host.objects.create(cluster=cluster, name=fields.pop("name"), **fields)
        audit.record(user, "cluster.hosts_add", cluster, hosts=[host["name"] for host in found.hosts])
    return cluster


def remove_hosts(*, user, cluster, host_ids):
    """Remove hosts from the portal (not from oVirt). Refused while a run is active on the
    cluster; steps of past runs on a removed host keep their output and title, without the link."""
    _check_admin(user, cluster)
    from ..models import RUN_ACTIVE, RunStep

    hosts = list(cluster.hosts.filter(pk__in=host_ids))
    if not hosts:
        raise ValidationError("Tick the hosts to remove.")
    if cluster.runs.filter(status__in=RUN_ACTIVE).exists():
        raise ValidationError(f"Cluster {cluster.name} has a run in progress: remove hosts when it has ended.")
    with transaction.atomic():
        # The HA poller stores a poll under this lock (ha.apply_vm_status): taken first, the
        # delete's cascade sees the samples of a poll stored meanwhile, and a poll after it
        # no longer sees the hosts. Without it a sample inserted between the two failed the
        # commit (PostgreSQL checks the foreign key there).
        Cluster.objects.select_for_update().get(pk=cluster.pk)
        detached = RunStep.objects.filter(host__in=hosts).update(host=None)
        names = [host.name for host in hosts]
        Host.objects.filter(pk__in=[host.pk for host in hosts]).delete()
        audit.record(user, "cluster.hosts_remove", cluster, hosts=names, steps_detached=detached)
    return names


def update_cluster(*, user, cluster, password=None, poll_interval=None):
    """Rotate the engine password (the caller has tried it) and/or change the poll interval."""
    _check_admin(user, cluster)
    engine = {"password": password} if password is not None else None
    found = validate(name=cluster.name, engine=engine, hosts=[], poll_interval=poll_interval)
    changed = []
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if "poll_interval" in found.cluster and found.cluster["poll_interval"] != cluster.poll_interval:
            cluster.poll_interval = found.cluster["poll_interval"]
            changed.append("poll_interval")
        if found.password is not None:
            cluster.set_engine_password(found.password)
            changed.append("engine_password_encrypted")
        if changed:
            cluster.save(update_fields=changed)
            audit.record(user, "cluster.update", cluster,
                         fields=["engine_password" if f == "engine_password_encrypted" else f for f in changed],
                         poll_interval=cluster.poll_interval)
    return cluster, changed


def remove_cluster(*, user, cluster):
    """Stop managing ``cluster``: not polled or shown on the home page any more, its engine
    password and pinned host keys forgotten (nothing can log in with them), its name free.
    Its runs and its audit trail stay readable (a run keeps its cluster row)."""
    from django.utils import timezone

    from ..models import RUN_ACTIVE

    check_global_admin(user, "remove clusters")
    if cluster.runs.filter(status__in=RUN_ACTIVE).exists():
        raise ValidationError(f"Cluster {cluster.name} has a run in progress: cancel it or let it end first.")
    now = timezone.now()
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        old = cluster.name
        suffix = f" (removed {now:%Y-%m-%d %H:%M:%S})"
        cluster.name = old[:100 - len(suffix)] + suffix
        cluster.removed_at = now
        cluster.engine_password_encrypted = ""
        cluster.engine_vm_known_hosts = ""
        cluster.save(update_fields=["name", "removed_at", "engine_password_encrypted", "engine_vm_known_hosts"])
        cluster.hosts.update(known_hosts="")
        audit.record(user, "cluster.remove", cluster, name=old)
        events.publish(events.cluster_group(cluster.pk), ha.cluster_payload(cluster))  # its card leaves the home pages
    return cluster


def start_check(*, user, cluster):
    """Queue a connection check of every host (``upgrades.doctor``) after the commit."""
    _check_admin(user, cluster)
    from ..models import ConnectionCheck

    if not cluster.hosts.exists():
        raise ValidationError(f"Cluster {cluster.name} has no hosts to check yet.")
    with transaction.atomic():
        check = ConnectionCheck.objects.create(cluster=cluster, requested_by=user)
        audit.record(user, "cluster.check", cluster, check=check.pk)
        transaction.on_commit(lambda: enqueue_check(check))
    return check


def enqueue_check(check):
    """False (the check says why) when Redis does not answer."""
    import django_rq
    import redis

    from ..doctor import run_check
    from ..models import CheckStatus, ConnectionCheck

    try:
        django_rq.get_queue(CHECK_QUEUE).enqueue(run_check, check.pk, job_timeout=600)
    except (redis.RedisError, OSError) as exc:
        ConnectionCheck.objects.filter(pk=check.pk).update(
            status=CheckStatus.FAILED, error=f"the job queue is unreachable ({exc}); try again when Redis is back")
        return False
    return True


# Short, read-only: not behind a procedure's long steps in "default" (workers: rqworker default poll).
CHECK_QUEUE = "poll"
