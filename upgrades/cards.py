"""The home page's cluster cards: every cluster at a glance, in a fixed number
of queries however many clusters there are. The page lists problems first,
filtered by level or name and paged (``home_grid``): an estate of 1,000
clusters is read in the same queries as one of ten, and only a page is rendered.

A card holds nothing that depends on who looks at it, so a changed card is
rendered once and sent to every open home page (``consumers.HomeConsumer``).
"""
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode

from django.core.paginator import Paginator
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


def engine_vm_summary(cluster, hosts, vm_host):
    """Where the engine VM runs, as far as the HA data can tell, and otherwise why it
    cannot and what the engine's own health page said (asked by the poller then).

    Every agent publishing and none running the VM: it is down. Some agents not
    publishing (a dead host, a corrupted lockspace): the VM's state is unknown, as
    it may run where nobody reports; the engine answering says it is up after all.
    """
    if vm_host is not None:
        health, level = ENGINE_HEALTH.get(vm_host.ha_state, (vm_host.ha_state, "warn"))
        return {"host": vm_host, "health": health, "level": level, "state": "running"}
    stale = [h.name for h in hosts if not h.ha_live]
    if cluster.polled_at is None:
        state, why = "unknown", "the HA poller has not read this cluster yet"
    elif not hosts:
        state, why = "unknown", "the cluster has no hosts"
    elif len(stale) == len(hosts):
        state, why = "unknown", f"no HA agent publishes (all {len(hosts)} hosts stale)"
    elif stale:
        state, why = "unknown", f"not on a live host; not publishing: {', '.join(stale)}"
    else:
        state, why = "down", "every HA agent publishes and none runs it"
    engine = None
    if cluster.engine_health_at is not None:
        engine = {"ok": cluster.engine_health_ok, "text": cluster.engine_health, "at": cluster.engine_health_at}
    level = "warn" if state == "unknown" and engine and engine["ok"] else "bad"
    return {"host": None, "health": "", "level": level, "state": state, "why": why, "engine": engine}


def cluster_summary(cluster, hosts):
    """What the home card and the cluster page say about the cluster at a glance."""
    vm_host = next((h for h in hosts if h.engine_vm_here and h.ha_live), None)
    engine_vm = engine_vm_summary(cluster, hosts, vm_host)
    counts = {"total": len(hosts), "local": sum(h.local_maintenance for h in hosts),
              "stale": sum(not h.ha_live for h in hosts),
              "up": sum(h.ha_live and not h.local_maintenance and (h.ha_score or 0) > 0 for h in hosts)}
    old_after = max(cluster_state.POLL_GRACE.total_seconds(), cluster.poll_interval * cluster_state.STALE_POLLS)
    return {"engine_vm": engine_vm, "counts": counts,
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

    @cached_property
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


# The home page's filters, in the order the page lists them: problems first.
LEVELS = {"bad": "needs a look", "warn": "going on", "ok": "fine"}
PAGE_SIZE = 50
QUERY_MAX = 100


@dataclass
class HomeGrid:
    """One page of the home page's cards, and what the filter links need."""

    page: object  # a django Page of cards
    show: str  # "", or one of LEVELS
    q: str  # the name filter
    counts: dict  # level -> clusters at that level (name filter applied)
    error: str  # what was wrong with the request's filter, or ""

    @property
    def cards(self):
        return self.page.object_list

    @property
    def total(self):
        return sum(self.counts.values())

    @property
    def levels(self):
        """(level, label, clusters, query string) of each filter link, the name filter kept."""
        return [(level, label, self.counts[level], self.query(show=level)) for level, label in LEVELS.items()]

    @property
    def query_all(self):
        return self.query(show="")

    def query(self, **changed):
        """The query string of this view with ``changed`` (page 1 unless given), for links."""
        params = {"show": self.show, "q": self.q, **changed}
        return urlencode({k: v for k, v in params.items() if v and not (k == "page" and v == 1)})

    @property
    def here(self):
        """This very page's query string (home.js re-fetches the grid with it)."""
        return self.query(page=self.page.number)


def home_grid(clusters, params):
    """The cards of ``clusters`` (a queryset), problems first, then by name; filtered by
    ``params``' ``show`` (a level) and ``q`` (part of the name), ``page`` of PAGE_SIZE.

    Every card's level is needed to order them, so all cards are built (a fixed number
    of queries); only the page's are rendered, which is the costly part."""
    show, q, error = params.get("show", ""), params.get("q", "").strip(), ""
    if show and show not in LEVELS:
        error, show = f"There is no filter “{show[:20]}”: every cluster is shown.", ""
    if len(q) > QUERY_MAX:
        error, q = f"A name filter is at most {QUERY_MAX} characters: every cluster is shown.", ""
    if q:
        clusters = clusters.filter(name__icontains=q)
    cards = cluster_cards(clusters)
    counts = dict.fromkeys(LEVELS, 0)
    for card in cards:
        counts[card.level] += 1
    rank = {level: n for n, level in enumerate(LEVELS)}
    cards.sort(key=lambda card: (rank[card.level], card.cluster.name, card.cluster.pk))
    if show:
        cards = [card for card in cards if card.level == show]
    page = Paginator(cards, PAGE_SIZE).get_page(params.get("page"))
    return HomeGrid(page=page, show=show, q=q, counts=counts, error=error)


def render_card(clusters):
    """(cluster id, the card as HTML) of the one cluster in ``clusters``, or None when there is none."""
    cards = cluster_cards(clusters)
    if not cards:
        return None
    return cards[0].cluster.pk, render_to_string("upgrades/partials/cluster_card.html", {"card": cards[0]})


def render_change(event):
    """(cluster id, its card as HTML, digest) for a "home.changed" event (events.home_notice);
    the HTML is None when the cluster is no longer in service, and the whole is None when
    the event names no cluster. The digest is read first: at worst older than the HTML."""
    from .models import Cluster

    if event.get("cluster"):
        cluster_id = event["cluster"]
    else:
        cluster_id = UpgradeRun.objects.filter(pk=event.get("run")).values_list("cluster_id", flat=True).first()
        if cluster_id is None:
            return None
    clusters = Cluster.objects.in_service().filter(pk=cluster_id)
    digest = card_digests(clusters).get(cluster_id)
    card = render_card(clusters) if digest is not None else None
    return cluster_id, card and card[1], digest


def card_digests(clusters):
    """{cluster id: digest of what its card shows} for ``clusters`` (a queryset), in three
    queries: the home pages' checks (upgrades/homefeed.py) name the cards whose digest moved."""
    from .ha import HOST_FIELDS

    parts = {pk: [list(row)] for pk, *row in clusters.values_list(
        "pk", "maintenance_mode", "poll_error", "detected_release", "engine_health", "engine_health_ok")}
    ids = clusters.values("pk")
    for cluster_id, *row in Host.objects.filter(cluster__in=ids).order_by("pk").values_list(
            "cluster_id", "pk", *HOST_FIELDS):
        parts[cluster_id].append(row)
    for cluster_id, *row in RunStep.objects.filter(run__cluster__in=ids, run__status__in=RUN_ACTIVE).order_by(
            "run_id", "order").values_list("run__cluster_id", "run_id", "run__status", "status"):
        parts[cluster_id].append(row)
    return {pk: _digest(rows) for pk, rows in parts.items()}


def runs_digest(clusters):
    """Digest of the home page's recent runs (``views.recent_runs``) of ``clusters`` (a queryset), in one query."""
    return _digest(list(UpgradeRun.objects.filter(cluster__in=clusters.values("pk"))
                        .values_list("cluster_id", "pk", "status")[:20]))


def _digest(value):
    return hashlib.sha1(json.dumps(value, default=str).encode()).hexdigest()[:16]
