"""Views are glue: look up with permission, call a service, render or redirect."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import downloads, services
from .models import Cluster, Host, RunStep, UpgradeRun
from .permissions import can_admin, can_operate
from .remote import ssh
from .remote.base import RemoteError


def get_or_404(queryset, pk, what):
    """The object, or a 404 whose page says what was missing."""
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"There is no {what} #{pk}.")
    return found


@login_required
def home(request):
    clusters = Cluster.objects.prefetch_related("hosts")
    runs = UpgradeRun.objects.select_related("cluster", "runbook", "requested_by")[:20]
    return render(request, "upgrades/home.html", {
        "clusters": clusters, "runs": runs, "can_operate": can_operate(request.user)})


@login_required
def cluster_detail(request, cluster_id):
    cluster = get_or_404(Cluster.objects.all(), cluster_id, "cluster")
    hosts = cluster.hosts.order_by("he_host_id", "name")
    return render(request, "upgrades/cluster_detail.html", {
        "cluster": cluster, "hosts": hosts, "can_operate": can_operate(request.user),
        "can_admin": can_admin(request.user)})


@login_required
@require_POST
def start_diagnostic(request, host_id):
    host = get_object_or_404(Host.objects.select_related("cluster"), pk=host_id)
    try:
        run = services.start_run(cluster=host.cluster, slug="diagnostic", params={"host": host.name},
                                 user=request.user)
    except (PermissionDenied, services.RunConflict, services.Blocked) as exc:
        messages.error(request, str(exc))
        return redirect("cluster-detail", cluster_id=host.cluster_id)
    if run.queued_at is None:
        messages.warning(request, f"The job queue is unreachable right now. Run #{run.pk} is saved and "
                                  "starts as soon as the queue answers again.")
    return redirect("run-detail", run_id=run.pk)


@login_required
def run_detail(request, run_id):
    run = get_or_404(UpgradeRun.objects.select_related("cluster", "runbook", "requested_by"), run_id, "run")
    steps = run.steps.select_related("host").order_by("order")
    return render(request, "upgrades/run_detail.html", {"run": run, "steps": steps})


@require_GET
@login_required
async def step_log(request, run_id, step_id):
    """One step's full log as a file, streamed: the page itself keeps only the tail."""
    step = await RunStep.objects.filter(pk=step_id, run_id=run_id).afirst()
    if step is None:
        raise Http404(f"Run #{run_id} has no step #{step_id}.")
    return downloads.log_response(downloads.step_lines(step.pk), f"run-{run_id}-step-{step.order}.log")


@require_GET
@login_required
async def run_log(request, run_id):
    """Every step's full log in one file, each step headed with what ran where."""
    run = await (UpgradeRun.objects.select_related("cluster", "runbook", "requested_by")
                 .filter(pk=run_id).afirst())
    if run is None:
        raise Http404(f"There is no run #{run_id}.")
    steps = [step async for step in run.steps.select_related("host").order_by("order")]
    return downloads.log_response(downloads.run_lines(run, steps), f"run-{run_id}.log")


@login_required
def host_key(request, host_id):
    """Admins only: show the key the host offers now; POST pins the reviewed line."""
    if not can_admin(request.user):
        raise PermissionDenied("Only admins can review host keys.")
    host = get_or_404(Host.objects.select_related("cluster"), host_id, "host")
    if request.method == "POST":
        try:
            services.accept_host_key(host=host, known_hosts_line=request.POST.get("known_hosts_line", ""),
                                     user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("host-key", host_id=host.pk)
        messages.success(request, f"Host key of {host.name} accepted.")
        return redirect("cluster-detail", cluster_id=host.cluster_id)
    offered, error = None, ""
    try:
        offered = ssh.fetch_host_key(host.address, host.ssh_port)
    except RemoteError as exc:
        error = exc.message
    try:
        pinned = ssh.pinned_keys(host.known_hosts, host.address, host.ssh_port)
    except RemoteError as exc:
        pinned, error = [], error or exc.message
    return render(request, "upgrades/host_key.html", {
        "host": host, "offered": offered, "pinned": pinned, "error": error,
        "already_pinned": bool(offered) and offered.fingerprint in {fp for _, fp in pinned}})
