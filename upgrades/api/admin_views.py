"""The API's administration: clusters (added, changed, removed, their hosts and host keys),
engine backups and webhook endpoints. Glue like the pages' (upgrades/views_clusters.py,
upgrades/views.py's host key and backup views, upgrades/views_webhooks.py): the same
permission check first, then the same services, which check again, write and audit.

Adding a cluster is the onboarding page's two steps: ``clusters/ca/`` shows the engine's
CA and its fingerprint; ``clusters/`` trusts that CA only when the fingerprint sent is
its fingerprint, tries the login, then stores. A host key is pinned only as a line the
admin sends back after reviewing what ``hosts/<id>/host-key/`` showed: never on first use.
"""
import re

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import backups, downloads, onboarding, services
from ..inventory import validate
from ..models import Cluster, EngineBackup, Host, Webhook, WebhookDelivery
from ..permissions import ADMINISTER, VIEW, check_global_admin
from ..services import webhooks as webhook_service
from . import serializers as s
from . import views
from .views import ACTION_ERRORS, ERRORS, PAGE_PARAM, allow, found, page_schema, paginate

# inventory.validate's paths (upgrades/inventory.py) -> the API's field names
FIELD_OF = {"engine.url": "engine_url", "engine.username": "username", "engine.password": "password"}
PREFIXED = re.compile(r"(name|poll_interval|password_file|engine(?:_vm)?(?:\.\w+)?|hosts(?:\[\d+\](?:\.\w+)?)?)"
                      r": (.+)", re.S)


def by_field(exc, field=None):
    """A service's ValidationError as a 400 naming each field: its own field names, or
    the ``path: message`` of the inventory checks, else ``field`` (or non_field_errors)."""
    if hasattr(exc, "error_dict"):
        return ValidationError({FIELD_OF.get(k, k): v for k, v in exc.error_dict.items()})
    out = {}
    for message in exc.messages:
        match = PREFIXED.fullmatch(message)
        if match:
            name, text = FIELD_OF.get(match[1], match[1]), match[2]
        else:
            name, text = field or "__all__", message
        out.setdefault(name, []).append(text)
    return ValidationError(out)


def checked(serializer_class, request):
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def in_service(request, cluster_id, perm):
    """A cluster the portal still manages (a removed one is history only), ``perm`` on it."""
    cluster = found(Cluster.objects.in_service(), cluster_id, "cluster")
    allow(request, perm, cluster)
    return cluster


def engine_ca(engine_url, ca_pem):
    """(API URL, EngineCa): the pasted CA, or the one the engine publishes; 400 by field."""
    try:
        url = onboarding.api_url(engine_url)
    except ValidationError as exc:
        raise by_field(exc, "engine_url") from None
    if ca_pem.strip():
        try:
            return url, onboarding.parse_ca(ca_pem)
        except ValidationError as exc:
            raise by_field(exc, "ca_pem") from None
    try:
        return url, onboarding.fetch_ca(url)
    except onboarding.OnboardingError as exc:
        raise ValidationError({"engine_url": [exc.message]}) from None


def ca_body(url, ca):
    return {"fingerprint": ca.fingerprint, "subject": ca.subject, "not_after": ca.not_after, "pem": ca.pem,
            "ca_url": onboarding.ca_url(url), "compare_with": onboarding.CA_ON_ENGINE}


# Clusters -----------------------------------------------------------------------------

class ClusterCa(APIView):
    @extend_schema(request=s.EngineCaInput, responses={200: s.EngineCaSerializer, **ERRORS})
    def post(self, request):
        """Step 1 of adding a cluster: the engine's CA (read from the engine, or the one pasted) and
        its fingerprint, to compare with the engine's own. Nothing is stored."""
        allow(request, ADMINISTER)
        check_global_admin(request.user, "add clusters")
        data = checked(s.EngineCaInput, request)
        return Response(ca_body(*engine_ca(data["engine_url"], data["ca_pem"])))


def add_cluster(request):
    """The onboarding page's second step: the whole input checked (every field's problem said at
    once), the CA trusted only by its confirmed fingerprint, the login tried, then the cluster
    stored (services.add_cluster, audited)."""
    allow(request, ADMINISTER)
    check_global_admin(request.user, "add clusters")
    data = checked(s.ClusterInput, request)
    problems = {}
    try:
        url = onboarding.api_url(data["engine_url"])
    except ValidationError as exc:
        url, problems = None, by_field(exc, "engine_url").message_dict
    try:  # checked as an inventory file is, before the engine is asked (as on the page)
        validate(name=data["name"], engine={"url": url or "https://unchecked", "username": data["username"],
                                            "password": data["password"]},
                 hosts=[], poll_interval=data["poll_interval"])
    except ValidationError as exc:
        for name, messages in by_field(exc).message_dict.items():
            problems.setdefault(name, messages)  # a bad URL: said once, by api_url
    if url:
        try:
            url, ca = engine_ca(data["engine_url"], data["ca_pem"])
        except ValidationError as exc:
            problems.update(exc.message_dict)
        else:
            if data["ca_fingerprint"].strip().upper() != ca.fingerprint:
                problems["ca_fingerprint"] = [
                    f"The engine's CA ({ca.subject}) has the SHA-256 fingerprint {ca.fingerprint}: compare it with "
                    f"the engine's own ({onboarding.CA_ON_ENGINE} on the engine VM) and send it to trust this CA."]
    if problems:
        raise ValidationError(problems)
    try:
        onboarding.examine_with_pem(url, data["username"], data["password"], ca.pem)
    except onboarding.OnboardingError as exc:
        raise ValidationError({"password" if "refused the login" in exc.message else "engine_url":
                               [exc.message]}) from None
    try:
        return services.add_cluster(user=request.user, name=data["name"], engine_url=url,
                                    username=data["username"], password=data["password"], ca_pem=ca.pem,
                                    poll_interval=data["poll_interval"])
    except ValidationError as exc:
        raise by_field(exc) from None


class ClusterList(views.ClusterList):
    @extend_schema(operation_id="clusters_create", request=s.ClusterInput,
                   responses={201: s.ClusterDetailSerializer, **ERRORS})
    def post(self, request):
        """Add a cluster (global admins): the engine's CA trusted by its fingerprint, its login tried.
        Hosts come next (``clusters/{id}/hosts/``)."""
        return Response(s.ClusterDetailSerializer(add_cluster(request)).data, status=201)


def edit_cluster(request, cluster_id):
    """The edit page: a new engine password (tried on the engine first), the poll interval."""
    cluster = in_service(request, cluster_id, ADMINISTER)
    data = checked(s.ClusterEditInput, request)
    password = data.get("password") or None
    if password is not None:
        if not cluster.engine_url:
            raise ValidationError({"password": [f"Cluster {cluster.name} has no engine URL to try it with."]})
        try:
            onboarding.examine_engine(cluster.engine_url, cluster.engine_username, password,
                                      cluster.engine_ca_file or None)
        except onboarding.OnboardingError as exc:
            raise ValidationError({"password": [f"The new password was not stored: {exc.message}"]}) from None
    try:
        cluster, changed = services.update_cluster(user=request.user, cluster=cluster, password=password,
                                                   poll_interval=data.get("poll_interval"))
    except ValidationError as exc:
        raise by_field(exc) from None
    said = {"engine_password_encrypted": "engine_password"}
    cluster.changed = [said.get(f, f) for f in changed]
    return cluster


class ClusterDetail(views.ClusterDetail):
    @extend_schema(request=s.ClusterEditInput, responses={200: s.ClusterChangedSerializer, **ERRORS})
    def patch(self, request, cluster_id):
        """Change a cluster (its admins): a new engine password, stored once the engine accepts it;
        the poll interval. ``changed`` says what changed."""
        return Response(s.ClusterChangedSerializer(edit_cluster(request, cluster_id)).data)


class ClusterRemove(APIView):
    @extend_schema(request=s.ClusterRemoveInput, responses={200: s.ClusterSerializer, **ERRORS})
    def post(self, request, cluster_id):
        """Remove a cluster (global admins), typing its name as on the page: it is not polled or shown
        any more, its engine password and host keys are forgotten; its runs and audit stay."""
        allow(request, ADMINISTER)
        check_global_admin(request.user, "remove clusters")
        cluster = in_service(request, cluster_id, ADMINISTER)
        data = checked(s.ClusterRemoveInput, request)
        if data["confirm_name"] != cluster.name:
            raise ValidationError({"confirm_name": [f"Type the cluster's name, {cluster.name}, to remove it."]})
        return Response(s.ClusterSerializer(services.remove_cluster(user=request.user, cluster=cluster)).data)


class ClusterHosts(APIView):
    @extend_schema(request=s.HostsInput, responses={201: s.ClusterDetailSerializer, **ERRORS})
    def post(self, request, cluster_id):
        """Add hosted-engine hosts by hand (no key pinned yet: review and pin each host's key next)."""
        cluster = in_service(request, cluster_id, ADMINISTER)
        hosts = checked(s.HostsInput, request)["hosts"]
        problems = {}
        for index, host in enumerate(hosts):
            try:
                onboarding.check_ssh_user(host["ssh_user"])
            except ValidationError as exc:
                problems[f"hosts[{index}].ssh_user"] = exc.messages
        if problems:
            raise ValidationError(problems)
        try:
            services.add_hosts(user=request.user, cluster=cluster, hosts=[dict(h) for h in hosts])
        except ValidationError as exc:
            raise by_field(exc, "hosts") from None
        return Response(s.ClusterDetailSerializer(cluster).data, status=201)


class HostDetail(views.HostDetail):
    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request, host_id):
        """Remove a host from the portal (its admins; not from oVirt): refused while a run is active
        on its cluster; past runs keep their steps on it."""
        host = found(Host.objects.select_related("cluster").filter(cluster__removed_at__isnull=True),
                     host_id, "host")
        allow(request, ADMINISTER, host.cluster)
        try:
            services.remove_hosts(user=request.user, cluster=host.cluster, host_ids=[host.pk])
        except ValidationError as exc:
            raise by_field(exc) from None
        return Response(status=204)


class HostKey(APIView):
    def host(self, request, host_id):
        host = found(Host.objects.select_related("cluster").filter(cluster__removed_at__isnull=True),
                     host_id, "host")
        allow(request, ADMINISTER, host.cluster)
        return host

    def body(self, host):
        review = services.review_host_key(host)
        offered = review["offered"]
        return {"host": host.pk, "error": review["error"], "already_pinned": review["already_pinned"],
                "offered": offered and {"known_hosts_line": offered.known_hosts_line,
                                        "fingerprint": offered.fingerprint},
                "pinned": [{"key_type": t, "fingerprint": f} for t, f in review["pinned"]]}

    @extend_schema(responses={200: s.HostKeySerializer, **ERRORS})
    def get(self, request, host_id):
        """The key the host offers now (read without logging in) and the keys pinned, to review."""
        return Response(self.body(self.host(request, host_id)))

    @extend_schema(request=s.HostKeyInput, responses={200: s.HostKeySerializer, **ERRORS})
    def post(self, request, host_id):
        """Pin the known_hosts line you reviewed (replacing the keys pinned for that address)."""
        host = self.host(request, host_id)
        data = checked(s.HostKeyInput, request)
        try:
            host = services.accept_host_key(host=host, known_hosts_line=data["known_hosts_line"], user=request.user)
        except ValidationError as exc:
            raise by_field(exc, "known_hosts_line") from None
        return Response(self.body(host))


class ClusterSetup(APIView):
    @extend_schema(responses={200: s.SetupSerializer, **ERRORS})
    def get(self, request, cluster_id):
        """The portal's public SSH key and, per host, the command that authorises it and the keys pinned."""
        facts = services.setup_facts(in_service(request, cluster_id, ADMINISTER))
        facts["hosts"] = [{**h, "pinned": [{"key_type": t, "fingerprint": f} for t, f in h["pinned"]]}
                          for h in facts["hosts"]]
        return Response(s.SetupSerializer(facts).data)


class ClusterCheck(APIView):
    @extend_schema(responses={200: s.ConnectionCheckSerializer, **ERRORS})
    def get(self, request, cluster_id):
        """The last connection check of the cluster's hosts (the doctor page)."""
        cluster = in_service(request, cluster_id, ADMINISTER)
        check = cluster.connection_checks.select_related("requested_by").first()
        if check is None:
            raise Http404(f"Cluster {cluster.name} has had no connection check yet.")
        return Response(s.ConnectionCheckSerializer(check).data)

    @extend_schema(request=None, responses={202: s.ConnectionCheckSerializer, **ERRORS})
    def post(self, request, cluster_id):
        """Queue a connection check of every host (a worker runs it): GET this route for its results."""
        cluster = in_service(request, cluster_id, ADMINISTER)
        try:
            check = services.start_check(user=request.user, cluster=cluster)
        except ValidationError as exc:
            raise by_field(exc) from None
        check.refresh_from_db()
        return Response(s.ConnectionCheckSerializer(check).data, status=202)


# Engine backups -------------------------------------------------------------------------

class BackupList(APIView):
    @extend_schema(responses={200: s.EngineBackupSerializer(many=True), **ERRORS})
    def get(self, request, cluster_id):
        """The engine backups the portal keeps for a cluster, newest first (as the cluster page lists
        them; downloading one is for its admins)."""
        cluster = found(Cluster.objects.all(), cluster_id, "cluster")
        allow(request, VIEW, cluster)
        return Response(s.EngineBackupSerializer(cluster.engine_backups.all(), many=True).data)


class BackupDownload(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, cluster_id, backup_id):
        """An engine backup's file (admins of the cluster), streamed; audited."""
        cluster = found(Cluster.objects.all(), cluster_id, "cluster")
        allow(request, ADMINISTER, cluster)
        backup = EngineBackup.objects.filter(pk=backup_id, cluster=cluster).first()
        if backup is None:
            raise Http404(f"Cluster #{cluster.pk} has no engine backup #{backup_id}.")
        path = backups.open_download(request.user, backup)
        return downloads.file_response(path, path.name)


# Webhooks ------------------------------------------------------------------------------

def webhook_admin(request, what):
    allow(request, ADMINISTER)
    check_global_admin(request.user, what)


def webhook_for(request, webhook_id, what="manage webhooks"):
    webhook_admin(request, what)
    return found(Webhook.objects.select_related("created_by"), webhook_id, "webhook")


def with_secret(hook, secret):
    return Response({**s.WebhookSerializer(hook).data, "secret": secret}, headers={"Cache-Control": "no-store"})


class WebhookList(APIView):
    @extend_schema(responses={200: s.WebhookSerializer(many=True), **ERRORS})
    def get(self, request):
        """The endpoints (global admins), with their deliveries' counts; never a secret."""
        webhook_admin(request, "manage webhooks")
        return Response(s.WebhookSerializer(Webhook.objects.select_related("created_by"), many=True).data)

    @extend_schema(request=s.WebhookInput, responses={201: s.WebhookWithSecretSerializer, **ERRORS})
    def post(self, request):
        """Register an endpoint; the answer shows its secret, this once."""
        webhook_admin(request, "register webhooks")
        data = checked(s.WebhookInput, request)
        hook, secret = webhook_service.create_webhook(user=request.user, url=data["url"], events=data["events"],
                                                      secret=data.get("secret", ""))
        response = with_secret(hook, secret)
        response.status_code = 201
        return response


class WebhookDetail(APIView):
    @extend_schema(responses={200: s.WebhookSerializer, **ERRORS})
    def get(self, request, webhook_id):
        return Response(s.WebhookSerializer(webhook_for(request, webhook_id)).data)

    @extend_schema(request=s.WebhookEditInput, responses={200: s.WebhookEditedSerializer, **ERRORS})
    def patch(self, request, webhook_id):
        """Change an endpoint: the fields sent (the others kept); ``secret`` replaces the secret."""
        hook = webhook_for(request, webhook_id, "change webhooks")
        data = checked(s.WebhookEditInput, request)
        secret = webhook_service.update_webhook(
            user=request.user, webhook=hook, url=data.get("url", hook.url), events=data.get("events", hook.events),
            active=data.get("active", hook.active), new_secret_value=data.get("secret"))
        if secret:
            return with_secret(hook, secret)
        return Response(s.WebhookSerializer(hook).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request, webhook_id):
        """Remove an endpoint and its deliveries."""
        hook = webhook_for(request, webhook_id, "remove webhooks")
        webhook_service.delete_webhook(user=request.user, webhook=hook)
        return Response(status=204)


class DeliveryList(APIView):
    @extend_schema(parameters=[PAGE_PARAM],
                   responses={200: page_schema("DeliveryPage", s.DeliverySerializer), **ERRORS})
    def get(self, request, webhook_id):
        """An endpoint's deliveries, newest first, with their status."""
        hook = webhook_for(request, webhook_id)
        rows, next_page = paginate(request, hook.deliveries.order_by("-id"))
        return Response({"results": s.DeliverySerializer(rows, many=True).data, "next_page": next_page})


class DeliveryResend(APIView):
    @extend_schema(request=None, responses={200: s.DeliverySerializer, **ACTION_ERRORS})
    def post(self, request, webhook_id, delivery_id):
        """Send a delivered or failed delivery again, from its first attempt."""
        hook = webhook_for(request, webhook_id, "send webhook deliveries again")
        delivery = found(WebhookDelivery.objects.filter(webhook=hook).select_related("webhook"), delivery_id,
                         "delivery")
        try:
            webhook_service.redeliver(user=request.user, delivery=delivery)
        except ValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=409)
        delivery.refresh_from_db()
        return Response(s.DeliverySerializer(delivery).data)
