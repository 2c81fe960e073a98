"""Adding, setting up, checking, changing and removing a cluster: admins only.

Glue as the other views: ``needs`` checks the role, the services check again
and write (audited), ``upgrades.onboarding`` talks to the engine (bounded, the
admin waits for the answer to go on), and the connection check runs in a
worker (``upgrades.doctor``): these pages only queue it and show its results.
"""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import onboarding, services
from .inventory import validate
from .models import CheckStatus, Cluster
from .permissions import ADMINISTER, check_global_admin, needs
from .views import cluster_of_cluster, get_or_404

STEP_CA, STEP_LOGIN = "ca", "login"


def _cluster(cluster_id):
    return get_or_404(Cluster.objects.in_service(), cluster_id, "cluster")


def _problems(exc):
    return " ".join(exc.messages)


def _poll_interval(text):
    """"" → None (the default), else a number of seconds (inventory.validate checks the range)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValidationError("poll_interval: must be a positive number of seconds") from None


@require_http_methods(["GET", "POST"])
@needs(ADMINISTER)
def cluster_add(request):
    """1. The engine's URL (and a pasted CA, optionally) → its CA's fingerprint to confirm.
    2. The confirmed CA, the name and the login → the login is tried, the cluster created."""
    check_global_admin(request.user, "add clusters")
    form = {key: request.POST.get(key, "") for key in
            ("engine_url", "ca_pem", "name", "username", "poll_interval", "confirmed")}
    form["username"] = form["username"] or "admin@internal"
    context = {"form": form, "step": STEP_CA, "ca_on_engine": onboarding.CA_ON_ENGINE}
    if request.method == "GET":
        return render(request, "upgrades/cluster_add.html", context)
    try:
        url = onboarding.api_url(form["engine_url"])
        if form["ca_pem"].strip():
            ca = onboarding.parse_ca(form["ca_pem"])
        else:
            ca = onboarding.fetch_ca(url)
    except ValidationError as exc:
        context["error"] = _problems(exc)
        return render(request, "upgrades/cluster_add.html", context, status=400)
    except onboarding.OnboardingError as exc:
        context["error"] = exc.message
        return render(request, "upgrades/cluster_add.html", context, status=400)
    form["engine_url"], form["ca_pem"] = url, ca.pem
    context.update(step=STEP_LOGIN, ca=ca, ca_url=onboarding.ca_url(url))
    if request.POST.get("step") != STEP_LOGIN:
        return render(request, "upgrades/cluster_add.html", context)
    password = request.POST.get("password", "")
    try:
        if form["confirmed"] != ca.fingerprint:
            raise ValidationError("Compare the fingerprint with the engine's own and tick the box to confirm it.")
        if not password:
            raise ValidationError("Enter the engine password.")
        interval = _poll_interval(form["poll_interval"])
        # The whole input is checked before the engine is asked.
        validate(name=form["name"], engine={"url": url, "username": form["username"], "password": password},
                 hosts=[], poll_interval=interval)
        found = onboarding.examine_with_pem(url, form["username"], password, ca.pem)
        cluster = services.add_cluster(user=request.user, name=form["name"], engine_url=url,
                                       username=form["username"], password=password, ca_pem=ca.pem,
                                       poll_interval=interval)
    except ValidationError as exc:
        context["error"] = _problems(exc)
        return render(request, "upgrades/cluster_add.html", context, status=400)
    except onboarding.OnboardingError as exc:
        context["error"] = exc.message
        return render(request, "upgrades/cluster_add.html", context, status=400)
    messages.success(request, f"Cluster {cluster.name} added: the engine ({found.version}, API {found.api}) "
                              "accepted the login. Now its hosted-engine hosts.")
    return redirect("cluster-hosts-add", cluster_id=cluster.pk)


@require_http_methods(["GET", "POST"])
@needs(ADMINISTER, cluster_of_cluster)
def cluster_hosts_add(request, cluster_id):
    """On 4.x: the engine's hosted-engine hosts to tick; on 3.x (or without an engine
    answer): hosts entered by hand, with the reason shown."""
    cluster = _cluster(cluster_id)
    found, reason = None, ""
    try:
        found = onboarding.examine_cluster(cluster)
        reason = found.reason
    except onboarding.OnboardingError as exc:
        reason = f"The engine did not list its hosts: {exc.message} Enter them by hand, or fix that and reload."
    known = set(cluster.hosts.values_list("name", flat=True))
    discovered = [h for h in (found.hosts if found else ()) if h.name not in known]
    context = {"cluster": cluster, "found": found, "discovered": discovered, "reason": reason,
               "known": sorted(known), "hand": request.POST.get("hand", "")}
    if request.method == "GET":
        return render(request, "upgrades/cluster_hosts.html", context)
    try:
        if "hand" in request.POST:
            hosts = onboarding.parse_host_lines(request.POST["hand"])
        else:
            picked = request.POST.getlist("pick")
            by_name = {h.name: h for h in discovered}
            hosts = []
            for name in picked:
                if name not in by_name:
                    raise ValidationError(f"{name}: not a hosted-engine host the engine lists")
                port = request.POST.get(f"port-{name}", "22").strip()
                if not port.isdigit():
                    raise ValidationError(f"{name}: the SSH port must be a number")
                hosts.append({"name": name, "address": request.POST.get(f"address-{name}", "").strip()
                              or by_name[name].address, "port": int(port),
                              "ssh_user": request.POST.get(f"user-{name}", "root").strip() or "root"})
            if not hosts:
                raise ValidationError("Tick at least one host.")
        for host in hosts:
            onboarding.check_ssh_user(host.get("ssh_user", "root"))
        services.add_hosts(user=request.user, cluster=cluster, hosts=hosts)
    except ValidationError as exc:
        context["error"] = _problems(exc)
        return render(request, "upgrades/cluster_hosts.html", context, status=400)
    messages.success(request, f"Added {', '.join(h['name'] for h in hosts)}. Next: authorise the portal's key "
                              "and accept each host's key.")
    return redirect("cluster-setup", cluster_id=cluster.pk)


@require_http_methods(["GET"])
@needs(ADMINISTER, cluster_of_cluster)
def cluster_setup(request, cluster_id):
    """The portal's public key, the command to authorise it on each host, each host's key
    state (the key it offers is fetched on the host key page, for the admin to compare)."""
    cluster = _cluster(cluster_id)
    return render(request, "upgrades/cluster_setup.html", {
        "cluster": cluster, **services.setup_facts(cluster), "last_check": cluster.connection_checks.first()})


@require_http_methods(["GET", "POST"])
@needs(ADMINISTER, cluster_of_cluster)
def cluster_doctor(request, cluster_id):
    """GET: the last connection check (the page reloads itself while it runs); POST: a new one."""
    cluster = _cluster(cluster_id)
    if request.method == "POST":
        try:
            services.start_check(user=request.user, cluster=cluster)
        except ValidationError as exc:
            messages.error(request, _problems(exc))
            return redirect("cluster-setup", cluster_id=cluster.pk)
        return redirect("cluster-doctor", cluster_id=cluster.pk)
    check = cluster.connection_checks.first()
    return render(request, "upgrades/cluster_doctor.html", {
        "cluster": cluster, "check": check,
        "running": check is not None and check.status in (CheckStatus.QUEUED, CheckStatus.RUNNING)})


@require_http_methods(["GET", "POST"])
@needs(ADMINISTER, cluster_of_cluster)
def cluster_edit(request, cluster_id):
    """Rotate the engine password (tried first), change the poll interval, remove hosts."""
    cluster = _cluster(cluster_id)
    context = {"cluster": cluster, "hosts": cluster.hosts.order_by("he_host_id", "name")}
    if request.method == "GET":
        return render(request, "upgrades/cluster_edit.html", context)
    try:
        if request.POST.get("action") == "remove-hosts":
            names = services.remove_hosts(user=request.user, cluster=cluster,
                                          host_ids=[int(pk) for pk in request.POST.getlist("host") if pk.isdigit()])
            messages.success(request, f"Removed {', '.join(names)} from the portal.")
            return redirect("cluster-edit", cluster_id=cluster.pk)
        password = request.POST.get("password", "") or None
        interval = _poll_interval(request.POST.get("poll_interval"))
        if password is not None:
            if not cluster.engine_url:
                raise ValidationError(f"Cluster {cluster.name} has no engine URL to try the password with.")
            onboarding.examine_engine(cluster.engine_url, cluster.engine_username, password,
                                      cluster.engine_ca_file or None)
        cluster, changed = services.update_cluster(user=request.user, cluster=cluster, password=password,
                                                   poll_interval=interval)
    except ValidationError as exc:
        context["error"] = _problems(exc)
        return render(request, "upgrades/cluster_edit.html", context, status=400)
    except onboarding.OnboardingError as exc:
        context["error"] = f"The new password was not stored: {exc.message}"
        return render(request, "upgrades/cluster_edit.html", context, status=400)
    if changed:
        said = {"poll_interval": f"poll interval {cluster.poll_interval:g} s",
                "engine_password_encrypted": "engine password (the engine accepted it)"}
        messages.success(request, "Changed: " + ", ".join(said[f] for f in changed) + ".")
    else:
        messages.info(request, "Nothing changed.")
    return redirect("cluster-edit", cluster_id=cluster.pk)


@require_http_methods(["GET", "POST"])
@needs(ADMINISTER, cluster_of_cluster)
def cluster_remove(request, cluster_id):
    """Global admins: typing the cluster's name removes it (its runs and audit stay)."""
    check_global_admin(request.user, "remove clusters")
    cluster = _cluster(cluster_id)
    context = {"cluster": cluster, "runs": cluster.runs.count()}
    if request.method == "GET":
        return render(request, "upgrades/cluster_remove.html", context)
    if request.POST.get("confirm_name") != cluster.name:
        context["error"] = f"Type the cluster's name, {cluster.name}, to remove it."
        return render(request, "upgrades/cluster_remove.html", context, status=400)
    name = cluster.name
    try:
        services.remove_cluster(user=request.user, cluster=cluster)
    except ValidationError as exc:
        context["error"] = _problems(exc)
        return render(request, "upgrades/cluster_remove.html", context, status=400)
    messages.success(request, f"Cluster {name} removed; its runs stay in the history.")
    return redirect("home")

