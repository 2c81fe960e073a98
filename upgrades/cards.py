"""The home page's cluster cards: every cluster at a glance, in a fixed number
of queries however many clusters there are (the home page shows them all).

A card holds nothing that depends on who looks at it, so a changed card is
rendered once and sent to every open home page (``consumers.HomeConsumer``).
"""
from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils import timezone

from . import plan as planning, state as cluster_state
from .models import RUN_ACTIVE, STEP_DONE, Host, RunStep, UpgradeRun


def full_score(cluster):
    """A healthy host's score: 2400 with HA 1.2 (oVirt 3.5), else 3400."""
    return 2400 if planning.release_of(cluster) == (3, 5) else 3400


# An engine VM host's agent state -> the VM's health as the agent judged it.
ENGINE_HEALTH = {"EngineUp": ("good health", "ok"), "EngineUpBadHealth": ("bad health", "bad"),
                 "EngineStarting": ("starting", "warn"), "EngineMigratingAway": ("migrating away", "warn"),
                 "GlobalMaintenance": ("up, global maintenance", "warn"),
                 "LocalMaintenanceMigrateVm": ("migrating away", "warn")}


def cluster_summary(cluster, hosts):
    """What the home card and the cluster page say about the cluster at a glance."""
    vm_host = next((h for h in hosts if h.engine_vm_here and h.ha_live), None)
    health, level = ENGINE_HEALTH.get(vm_host.ha_state, (vm_host.ha_state, "warn")) if vm_host else ("", "bad")
    counts = {"total": len(hosts), "local": sum(h.local_maintenance for h in hosts),
              "stale": sum(not h.ha_live for h in hosts),
              "up": sum(h.ha_live and not h.local_maintenance and (h.ha_score or 0) > 0 for h in hosts)}
    old_after = max(cluster_state.POLL_GRACE.total_seconds(), cluster.poll_interval * cluster_state.STALE_POLLS)
    return {"engine_vm": {"host": vm_host, "health": health, "level": level}, "counts": counts,
            "old_after": int(old_after)}


@dataclass
class Card:
    """One cluster on the home page."""

    cluster: object
    engine_vm: dict
    counts: dict
    old_after: int  # seconds after which the last poll is too old to trust
    run: object  # the active run, or None
    step: object  # its current step, or None
    steps: int  # how many steps it has

    @property
    def level(self):
        """The card's colour: bad when something needs a look, warn when something is going on."""
        c = self.cluster
        if c.poll_error or c.polled_at is None or not self.engine_vm["host"] or self.counts["stale"] \
                or (timezone.now() - c.polled_at).total_seconds() > self.old_after:
            return "bad"
        if c.maintenance_mode != "none" or self.counts["local"] or self.run or self.engine_vm["level"] != "ok":
            return "warn"
        return "ok"


HOST_SUMMARY = ("cluster_id", "name", "ha_state", "ha_score", "ha_live", "local_maintenance", "engine_vm_here")


def cluster_cards(clusters):
    """Cards for ``clusters`` in a fixed number of queries, however many clusters there are.
    Hosts and steps are read as tuples, not models: 1,000 hosts cost a query, not 1,000 objects."""
    clusters = list(clusters)
    hosts = {}
    for host in (Host.objects.filter(cluster__in=clusters).order_by("he_host_id", "name")
                 .values_list(*HOST_SUMMARY, named=True)):
        hosts.setdefault(host.cluster_id, []).append(host)
    runs = {run.cluster_id: run for run in UpgradeRun.objects.filter(
        cluster__in=clusters, status__in=RUN_ACTIVE).select_related("runbook").order_by("-emergency")}  # a procedure wins
    current, totals = {}, {}
    for step in (RunStep.objects.filter(run__in=runs.values()).order_by("run_id", "order")
                 .values_list("run_id", "order", "title", "status", named=True)):
        totals[step.run_id] = totals.get(step.run_id, 0) + 1
        if step.run_id not in current and step.status not in STEP_DONE:
            current[step.run_id] = step
    cards = []
    for cluster in clusters:
        run = runs.get(cluster.pk)
        cards.append(Card(cluster, run=run, step=current.get(run.pk) if run else None,
                          steps=totals.get(run.pk, 0) if run else 0,
                          **cluster_summary(cluster, hosts.get(cluster.pk, []))))
    return cards


def render_card(clusters):
    """(cluster id, the card as HTML) of the one cluster in ``clusters``, or None when there is none."""
    cards = cluster_cards(clusters)
    if not cards:
        return None
    return cards[0].cluster.pk, render_to_string("upgrades/partials/cluster_card.html", {"card": cards[0]})
