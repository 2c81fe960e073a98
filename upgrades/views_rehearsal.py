"""Rehearsal pages: the launch page's "Rehearse" button and a rehearsal's result beside
its plan. Thin: ``upgrades.rehearsal`` decides and records."""
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import rehearsal as rehearsals
from .models import Cluster, Rehearsal
from .permissions import VIEW, needs
from .runbooks import get_runbook
from .views import cluster_of_cluster, get_or_404, get_runbook_or_404, given_params, launch_page


def cluster_of_rehearsal(rehearsal_id, **kwargs):
    return get_or_404(Rehearsal.objects.select_related("cluster"), rehearsal_id, "rehearsal").cluster


@require_POST
@needs(VIEW, cluster_of_cluster)
def rehearse(request, cluster_id, slug):
    """The plan as the launch page shows it, rehearsed on a twin (operators only: the service says so)."""
    cluster = get_or_404(Cluster.objects.all(), cluster_id, "cluster")
    runbook = get_runbook_or_404(slug)
    data = given_params(runbook, request.POST) or {}
    try:
        found = rehearsals.request(cluster=cluster, slug=runbook.slug, params=data, user=request.user)
    except PermissionDenied as exc:
        return launch_page(request, cluster, runbook, data, error=str(exc), status=403)
    except ValidationError as exc:
        return launch_page(request, cluster, runbook, data, error=" ".join(exc.messages), status=400)
    except rehearsals.RehearsalRefused as exc:
        return launch_page(request, cluster, runbook, data, error=str(exc), status=409)
    return redirect("rehearsal-detail", rehearsal_id=found.pk)


@needs(VIEW, cluster_of_rehearsal)
def rehearsal_detail(request, rehearsal_id):
    found = get_or_404(Rehearsal.objects.select_related("cluster", "requested_by", "run", "twin"),
                       rehearsal_id, "rehearsal")
    return render(request, "upgrades/rehearsal.html", {
        "rehearsal": found, "result": rehearsals.result(found), "runbook": get_runbook(found.runbook),
        "snapshot": json.dumps(found.snapshot, indent=2, sort_keys=True) if found.snapshot else ""})
