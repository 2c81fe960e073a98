"""Every URL and websocket route × every persona: exactly the allowed set passes.

The routes come from the URL configuration and the websocket routing: a
route added without an entry in EXPECTED fails ``test_every_route_has_a_rule``,
and each (route, persona) pair is a request that must be let through or
refused as the table says. Roles are held on cluster "Alpha" by grants
(``RoleGrant``), "global_admin" by the admin group, "other" is an admin of
another cluster only, "no_role" has none.
"""
import asyncio
import hashlib

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from heportal.asgi import application
from tests.conftest import free_port
from tests.factories import grant, make_cluster, make_host, make_run
from upgrades import backups
from upgrades.models import EngineBackup, Rehearsal, RoleGrant, Webhook, WebhookDelivery
from upgrades.routing import websocket_urlpatterns

PERSONAS = ("viewer", "operator", "approver", "auditor", "admin", "global_admin", "other", "no_role", "anonymous")
ON_ALPHA = {"viewer", "operator", "approver", "auditor", "admin", "global_admin"}
ANY_ROLE = ON_ALPHA | {"other"}
OPERATORS = {"operator", "admin", "global_admin"}
APPROVERS = {"approver", "admin", "global_admin"}
AUDITORS = {"auditor", "admin", "global_admin", "other"}  # other: an admin, of its own cluster's records

EXPECTED = {
    "login": set(PERSONAS),
    "logout": set(PERSONAS),  # ends a session, or none: to the login page either way
    "admin:index": {"global_admin"},
    "admin/r/<path:content_type_id>/<path:object_id>/": {"global_admin"},  # the admin's "view on site"
    "home": ANY_ROLE,
    "cluster-detail": ON_ALPHA,
    "cluster-live": ON_ALPHA,
    "runbook-launch": ON_ALPHA,  # GET: the plan; starting it is for operators (tests/test_pages.py)
    "start-diagnostic": OPERATORS,
    "host-key": {"admin", "global_admin"},
    "run-detail": ON_ALPHA,
    "run-live": ON_ALPHA,
    "run-log": ON_ALPHA,
    "step-log": ON_ALPHA,
    "run-pause": OPERATORS,
    "run-cancel": OPERATORS,
    "run-resume": OPERATORS,
    "run-abandon": OPERATORS,
    "run-approve-run": APPROVERS,
    "run-reject-run": APPROVERS,
    "step-retry": OPERATORS,
    "step-skip": OPERATORS,
    "step-mark-done": OPERATORS,
    "step-confirm": OPERATORS,
    "step-approve": APPROVERS,
    "step-reject": APPROVERS,
    "run-history": ANY_ROLE,
    "approvals": APPROVERS | {"other"},
    "approvals-count": ANY_ROLE,
    "audit": AUDITORS,
    "audit-export-csv": AUDITORS,
    "audit-export-json": AUDITORS,
    "cluster-scores": ON_ALPHA,
    "cluster-card": ON_ALPHA,
    "home-cards": ANY_ROLE,  # the cards of the clusters each may see
    "home-runs": ANY_ROLE,  # the recent runs of the clusters each may see
    "engine-backup": {"admin", "global_admin"},  # an engine backup's file: admins only
    # Adding and removing a cluster: global admins; setting one up and changing it: its admins
    # (tests/test_onboarding.py).
    "cluster-add": {"global_admin"},
    "webhooks": {"global_admin"},
    "webhook-detail": {"global_admin"},
    "webhook-delete": {"global_admin"},
    "webhook-delivery-resend": {"global_admin"},
    "cluster-remove": {"global_admin"},
    "cluster-hosts-add": {"admin", "global_admin"},
    "cluster-setup": {"admin", "global_admin"},
    "cluster-doctor": {"admin", "global_admin"},
    "cluster-edit": {"admin", "global_admin"},
    "runbook-rehearse": OPERATORS,  # POST: a rehearsal on a twin (tests/test_rehearsal.py)
    "rehearsal-detail": ON_ALPHA,
    "metrics": set(),  # not a role's page: see NOT_ROLE_BASED
}
# Routes no session opens, whatever its roles: /metrics is for a scraper with its own token
# or address (tests/test_metrics.py); with neither configured it refuses everyone (403).
NOT_ROLE_BASED = {"metrics"}
WS_EXPECTED = {
    "ws/runs/<id:run_id>/": ON_ALPHA,
    "ws/clusters/<id:cluster_id>/": ON_ALPHA,
    "ws/home/": ANY_ROLE,  # changes of the clusters each may see (tests/test_dashboard.py)
    "ws/approvals/": APPROVERS | {"other"},  # the header's count: whoever may approve somewhere
    "": set(),  # any other path: not found, for everyone
}


def named_routes(patterns, prefix="", namespace=""):
    """(name, route text, pattern) of every route; the admin site counts as one route, its index."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                yield "admin:index", "admin/", None
                continue
            yield from named_routes(entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield name or prefix + str(entry.pattern), prefix + str(entry.pattern), entry


# The API's routes (named api-…) have their own matrix, with tokens: tests/test_api_roles.py.
ROUTES = sorted({(name, route) for name, route, _ in named_routes(get_resolver().url_patterns)
                 if not name.startswith("api-")})


def test_every_route_has_a_rule():
    names = {name for name, _ in ROUTES}
    assert names - set(EXPECTED) == set(), "routes without an entry in EXPECTED (add the rule)"
    assert set(EXPECTED) - names == set(), "rules for routes that do not exist"
    ws = {str(route.pattern) for route in websocket_urlpatterns}
    assert ws == set(WS_EXPECTED)


@pytest.fixture
def world(django_user_model):
    alpha, beta = make_cluster(name="Alpha"), make_cluster(name="Beta")
    host = make_host(alpha, name="a1.example.com", address="127.0.0.1", ssh_port=free_port())
    make_host(beta, name="b1.example.com")
    requester = django_user_model.objects.create_user("requester", password="x")
    grant(requester, alpha, "operator")
    run = make_run(requester, host, ["echo one", "echo two"])
    users = {}
    for role in ("viewer", "operator", "approver", "auditor", "admin"):
        users[role] = grant(django_user_model.objects.create_user(role, password="x"), alpha, role)
    users["global_admin"] = django_user_model.objects.create_user("global_admin", password="x")
    users["global_admin"].groups.add(Group.objects.get_or_create(name="admin")[0])
    users["other"] = grant(django_user_model.objects.create_user("other", password="x"), beta, "admin")
    users["no_role"] = django_user_model.objects.create_user("no_role", password="x")
    users["anonymous"] = None
    backup = EngineBackup.objects.create(cluster=alpha, run=run, file_name=f"cluster-{alpha.pk}/run-matrix.backup",
                                         source_path="/var/lib/ovirt-engine-backup/matrix.backup", size=6,
                                         sha256=hashlib.sha256(b"backup").hexdigest())
    path = backups.path_of(backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"backup")
    rehearsal = Rehearsal.objects.create(cluster=alpha, runbook="diagnostic", plan_text="1. x\n", plan_sha256="0" * 64,
                                         requested_by=requester, status="succeeded")
    webhook = Webhook.objects.create(url="http://127.0.0.1:9/hook", events=["run.ended"], secret="")
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="run.ended", status="failed",
                                              payload={"run": {"id": run.pk}})
    return {"webhook": webhook, "delivery": delivery, "cluster": alpha, "host": host, "run": run, "step": run.steps.order_by("order").first(), "users": users,
            "backup": backup, "rehearsal": rehearsal}


def path_of(route, world):
    values = {"cluster_id": world["cluster"].pk, "host_id": world["host"].pk, "run_id": world["run"].pk,
              "step_id": world["step"].pk, "backup_id": world["backup"].pk, "rehearsal_id": world["rehearsal"].pk,
              "webhook_id": world["webhook"].pk, "delivery_id": world["delivery"].pk, "slug": "diagnostic", "content_type_id": 1, "object_id": 1}
    for key, value in values.items():
        for kind in ("id", "slug", "path"):
            route = route.replace(f"<{kind}:{key}>", str(value))
    assert "<" not in route, route
    return "/" + route


def verdict(response, name):
    """"allowed", or how it was refused."""
    if name == "logout":
        return "allowed" if response.status_code == 302 else "refused"
    if response.status_code == 302 and response["Location"].startswith("/login/"):
        return "login"
    if response.status_code == 302 and "/admin/login/" in response["Location"]:
        return "login"
    if response.status_code == 403:
        return "no role" if b'class="no-role"' in response.content else "refused"
    # The admin's "view on site" answers 404 for models without a page, once it let you in.
    assert response.status_code != 404 or name.startswith("admin"), "the world lacks the object"
    assert response.status_code < 500
    return "allowed"


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name,route", ROUTES)
def test_route_allows_exactly_its_roles(world, name, route, persona):
    client = Client()
    user = world["users"][persona]
    if user is not None:
        client.force_login(user)
    path = path_of(route, world)
    response = client.get(path)
    if response.status_code == 405:
        response = client.post(path, {"reason": "matrix", "comment": "matrix"})
    got = verdict(response, name)
    if persona in EXPECTED[name]:
        assert got == "allowed", f"{persona} {path}: {got} ({response.status_code})"
    else:
        wanted = {"anonymous": "login", "no_role": "no role"}.get(persona, "refused")
        if name in NOT_ROLE_BASED:
            wanted = "refused"
        if name.startswith("admin"):
            wanted = "login"  # the admin site sends everyone else to its login
        assert got == wanted, f"{persona} {path}: {got} ({response.status_code})"


def test_a_role_on_one_cluster_shows_nothing_of_another(client, world):
    client.force_login(world["users"]["other"])
    assert b"Alpha" not in client.get("/").content
    assert b"Alpha" not in client.get("/history/").content
    page = client.get("/history/").content.decode()
    assert f'href="/runs/{world["run"].pk}/"' not in page


def test_a_user_without_a_role_sees_only_the_page_saying_so(client, world):
    client.force_login(world["users"]["no_role"])
    page = client.get("/").content.decode()
    assert "You have no role yet" in page and "Alpha" not in page and "History" not in page


# Websockets ----------------------------------------------------------------

def ws_path(route, world):
    return path_of(route, world) if route else "/ws/nowhere/"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("route", sorted(WS_EXPECTED))
def test_websocket_route_allows_exactly_its_roles(django_user_model, persona, route):
    from tests.test_live_output import open_or_closed, session_headers

    world = globals()["world"].__wrapped__(django_user_model)
    user = world["users"][persona]
    headers = session_headers(user) if user else [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    path = ws_path(route, world)

    async def handshake():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        result = await open_or_closed(communicator)
        # Refused or not, the consumer ends (a closed one would wait for the disconnect).
        await communicator.disconnect()
        return result

    is_open, first = asyncio.run(handshake())
    if persona in WS_EXPECTED[route]:
        assert is_open, f"{persona} {path}: closed with {first}"
    else:
        wanted = 4404 if not route else 4401 if persona == "anonymous" else 4403
        assert (is_open, first) == (False, wanted), persona


def test_role_and_policy_changes_in_the_admin_are_audited(client, world):
    from upgrades.models import ApprovalPolicy, AuditEvent

    client.force_login(world["users"]["global_admin"])
    newcomer = world["users"]["no_role"]
    response = client.post("/admin/upgrades/rolegrant/add/",
                           {"user": newcomer.pk, "cluster": world["cluster"].pk, "role": "operator"})
    assert response.status_code == 302
    assert RoleGrant.objects.filter(user=newcomer, cluster=world["cluster"], role="operator").exists()
    event = AuditEvent.objects.get(action="admin.rolegrant.add")
    assert (event.actor_name, event.cluster_ref) == ("global_admin", world["cluster"].pk)
    response = client.post("/admin/upgrades/approvalpolicy/add/", {
        "cluster": world["cluster"].pk, "runbook": "", "before_start": "always", "step_markers": "--force",
        "approvers": 2, "expiry_hours": 8})
    assert response.status_code == 302 and ApprovalPolicy.objects.get().approvers == 2
    assert AuditEvent.objects.filter(action="admin.approvalpolicy.add", cluster_ref=world["cluster"].pk).exists()
    response = client.post(f"/admin/auth/user/{newcomer.pk}/change/", {
        "username": "no_role", "is_active": "on", "groups": [Group.objects.get(name="viewer").pk],
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = AuditEvent.objects.get(action="admin.user.groups")
    assert event.details["groups"] == ["viewer"]
    # The admin of another cluster cannot use the admin site at all.
    client.force_login(world["users"]["other"])
    assert client.get("/admin/upgrades/rolegrant/add/").status_code == 302


@pytest.mark.django_db
def test_a_role_given_or_taken_counts_at_once_for_the_same_user_object(django_user_model):
    """Roles are read once per user object (a page asks a dozen times); a change made
    through that object is not hidden by what was read before."""
    from upgrades.permissions import OPERATE, VIEW, can, can_anywhere

    cluster, other = make_cluster(name="A"), make_cluster(name="B")
    user = django_user_model.objects.create_user("changing")
    assert not can(user, VIEW, cluster) and not can_anywhere(user, VIEW)
    given = RoleGrant.objects.create(user=user, cluster=cluster, role="operator")
    assert can(user, OPERATE, cluster) and not can(user, VIEW, other)
    given.delete()
    assert not can(user, OPERATE, cluster)
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    assert can(user, VIEW, other) and not can(user, OPERATE, other)
    user.groups.clear()
    assert not can_anywhere(user, VIEW)
