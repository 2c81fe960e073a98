"""Plain factories with overridable defaults."""
from upgrades.models import Cluster, Host, RoleGrant, RunStep, Runbook, UpgradeRun


def make_cluster(**kw):
    kw.setdefault("name", "Default")
    return Cluster.objects.create(**kw)


def make_host(cluster=None, **kw):
    kw.setdefault("name", "he1.example.com")
    kw.setdefault("address", "127.0.0.1")
    return Host.objects.create(cluster=cluster or make_cluster(), **kw)


def make_run(user, host, commands, slug="diagnostic"):
    """A pending run with one step per command, not yet queued."""
    runbook, _ = Runbook.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    run = UpgradeRun.objects.create(cluster=host.cluster, runbook=runbook, requested_by=user)
    for n, command in enumerate(commands, start=1):
        RunStep.objects.create(run=run, order=n, key=f"step{n}", host=host, title=f"Step {n}", command=command)
    return run


def grant(user, cluster, role):
    """Give ``user`` ``role`` on ``cluster`` only; returns the user."""
    RoleGrant.objects.get_or_create(user=user, cluster=cluster, role=role)
    return user


def make_polled_cluster(names=("he1.lab.local", "he2.lab.local", "he3.lab.local"), name="Lab"):
    """Hosts as the HA poller leaves them: the first runs the engine VM, all score 3400."""
    from django.utils import timezone

    cluster = make_cluster(name=name, polled_at=timezone.now(), maintenance_mode="none")
    for n, host in enumerate(names, start=1):
        make_host(cluster, name=host, he_host_id=n, ha_live=True, ha_score=3400, ha_seen_at=timezone.now(),
                  ha_state="EngineUp" if n == 1 else "EngineDown", engine_vm_here=n == 1)
    return cluster
