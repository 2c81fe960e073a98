"""Every API route × every persona × every kind of authentication.

The routes come from the URL configuration (``upgrades/api/urls.py`` and the tokens
page): a route without a rule fails ``test_every_api_route_has_a_rule``. Where a page
does the same, the API's rule IS the page's (tests/test_roles.py's EXPECTED): one
table, so the API can never allow what the page refuses. Each persona calls with a
token of its own; then no token, a wrong one, a revoked one, and a browser session
without the CSRF token must all be refused.
"""
import json

import pytest
from django.test import Client

from tests.test_roles import ANY_ROLE, EXPECTED, ON_ALPHA, PERSONAS, named_routes, path_of, world  # noqa: F401
from upgrades.api import auth
from upgrades.api.tokens import create_token, revoke_token
from upgrades.models import ConnectionCheck
from django.urls import get_resolver

# API route -> the page whose rule it shares, or its own set of personas.
SAME_AS_PAGE = {
    "api-clusters": "home", "api-cluster": "cluster-detail", "api-cluster-ha": "cluster-live",
    "api-cluster-scores": "cluster-scores", "api-plan": "runbook-launch", "api-runbooks": "home",
    "api-runbook": "home", "api-runs": "run-history", "api-run": "run-detail", "api-run-output": "run-live",
    "api-run-log": "run-log", "api-step-output": "step-log", "api-approvals": "approvals", "api-audit": "audit",
    "api-cluster-ca": "cluster-add", "api-cluster-remove": "cluster-remove", "api-cluster-hosts": "cluster-hosts-add",
    "api-host-key": "host-key", "api-cluster-backups": "cluster-detail", "api-cluster-backup": "engine-backup",
    "api-webhooks": "webhooks", "api-webhook": "webhook-detail", "api-webhook-deliveries": "webhook-detail",
    "api-webhook-delivery-resend": "webhook-delivery-resend", "api-cluster-check": "cluster-doctor",
    "api-cluster-setup": "cluster-setup",
}
SIGNED_IN = set(PERSONAS) - {"anonymous"}
OWN = {
    "api-schema": SIGNED_IN,  # the description, for any client that signed in
    "api-me": SIGNED_IN,
    "api-tokens": SIGNED_IN,  # one's own tokens, even without a role yet
    "api-token-revoke": {"global_admin"},  # someone else's token: its owner or a global admin
    "api-host": ON_ALPHA,
    "api-tokens-page": SIGNED_IN,
    "api-token-revoke-page": {"global_admin"},
}

# A route's other methods (the first, GET where it has one, follows the tables above): the page
# that does the same, or a set of personas.
OTHER_METHODS = {
    ("api-clusters", "post"): "cluster-add",
    ("api-cluster", "patch"): "cluster-edit",
    ("api-host", "delete"): "cluster-edit",  # the edit page removes hosts
    ("api-host-key", "post"): "host-key",
    ("api-cluster-check", "post"): "cluster-doctor",
    ("api-webhooks", "post"): "webhooks",
    ("api-webhook", "patch"): "webhook-detail",
    ("api-webhook", "delete"): "webhook-delete",
    ("api-tokens", "post"): SIGNED_IN,
    # The matrix's body names no cluster: a 400 for anyone signed in, before a cluster's roles
    # can be looked at (tests/test_api.py checks who may start a run).
    ("api-runs", "post"): SIGNED_IN,
}

ROUTES = sorted({(name, route, pattern) for name, route, pattern in named_routes(get_resolver().url_patterns)
                 if name.startswith("api-")}, key=lambda r: r[0])
API_ROUTES = [(name, route) for name, route, _ in ROUTES if route.startswith("api/")]


def expected(name, method=None):
    rule = OTHER_METHODS.get((name, method))
    if rule is not None:
        return EXPECTED[rule] if isinstance(rule, str) else rule
    if name in OWN:
        return OWN[name]
    if name in SAME_AS_PAGE:
        return EXPECTED[SAME_AS_PAGE[name]]
    return EXPECTED[name.removeprefix("api-")]  # api-run-pause -> run-pause: each action's page rule


def methods_of(pattern):
    """Every method the route answers, GET first (the tokens page's views: one each)."""
    view = pattern.callback
    cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if cls is None:  # the tokens page's views
        return ["post"] if str(pattern.pattern).endswith("revoke/") else ["get"]
    return [m for m in ("get", "post", "patch", "delete") if hasattr(cls, m)]


def method_of(pattern):
    return methods_of(pattern)[0]


def test_every_api_route_has_a_rule():
    missing = []
    for name, _, _ in ROUTES:
        try:
            expected(name)
        except KeyError:
            missing.append(name)
    assert missing == []
    assert len(API_ROUTES) >= 30
    methods = {(name, m) for name, _, pattern in ROUTES for m in methods_of(pattern)[1:]}
    assert methods == set(OTHER_METHODS), "a route's other method without a rule in OTHER_METHODS"


@pytest.fixture
def api_world(world):
    auth.clear_failures()
    users = world["users"]
    world["tokens"] = {persona: create_token(user=user, name=persona)[1]
                       for persona, user in users.items() if user is not None}
    # A token of someone else's to revoke: the requester's.
    requester = world["run"].requested_by
    world["victim"] = create_token(user=requester, name="victim")[0]
    revoked, world["revoked"] = create_token(user=users["global_admin"], name="old")
    revoke_token(token=revoked, user=users["global_admin"])
    ConnectionCheck.objects.create(cluster=world["cluster"], status="passed")  # for api-cluster-check's GET
    yield world
    auth.clear_failures()


def call(client, method, path, headers):
    if method == "get":
        return client.get(path, **headers)
    body = {"reason": "matrix", "comment": "matrix", "params": {"host": "a1.example.com"}}
    if path.startswith("/tokens/"):  # the page: a form
        return client.post(path, {"name": "matrix"}, **headers)
    return getattr(client, method)(path, json.dumps(body), content_type="application/json", **headers)


def api_path(route, world):
    return path_of(route.replace("<id:token_id>", str(world["victim"].pk)), world)


def verdict(response):
    if response.status_code == 401:
        return "unauthenticated"
    if response.status_code == 302 and response["Location"].startswith("/login/"):
        return "unauthenticated"
    if response.status_code in (403, 404):  # 404: someone else's token, not shown
        return "refused"
    assert response.status_code < 500, response.content[:300]
    assert response.status_code != 429
    return "allowed"


@pytest.mark.django_db
@pytest.mark.parametrize("name,route,pattern", ROUTES, ids=[r[0] for r in ROUTES])
def test_api_route_allows_exactly_its_roles(api_world, name, route, pattern):
    """Each persona in turn on one world (one world per route keeps the matrix fast): a
    refusal comes before any change, and an allowed action on a run another persona
    changed answers 409 or 400, still allowed past the permission check. Each method of
    the route, the reading one first (a DELETE last: it may remove what the others use)."""
    path = api_path(route, api_world)
    wrong = []
    for method in methods_of(pattern):
        wrong += [(method, *w) for w in persona_verdicts(api_world, name, route, path, method)]
    assert wrong == [], path


def persona_verdicts(api_world, name, route, path, method):
    wrong = []
    for persona in PERSONAS:
        if route.startswith("api/"):
            token = api_world["tokens"].get(persona)
            client, headers = Client(), ({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {})
        else:  # the tokens page: a browser's session
            client, headers = Client(), {}
            if persona != "anonymous":
                client.force_login(api_world["users"][persona])
        got = verdict(call(client, method, path, headers))
        want = "allowed" if persona in expected(name, method) else \
            "unauthenticated" if persona == "anonymous" else "refused"
        if got != want:
            wrong.append((persona, got, want))
    return wrong


KINDS = ("none", "bad token", "revoked token", "session without CSRF")


@pytest.mark.django_db
@pytest.mark.parametrize("name,route", API_ROUTES, ids=[r[0] for r in API_ROUTES])
def test_api_route_refuses_each_kind_of_bad_authentication(api_world, name, route):
    pattern = next(p for n, r, p in ROUTES if n == name)
    path = api_path(route, api_world)
    for method in methods_of(pattern):
        refuses_bad_authentication(api_world, method, path)


def refuses_bad_authentication(api_world, method, path):
    for kind in KINDS:
        client = Client(enforce_csrf_checks=True)
        headers = {"none": {}, "bad token": {"HTTP_AUTHORIZATION": "Bearer hep_not-a-token"},
                   "revoked token": {"HTTP_AUTHORIZATION": f"Bearer {api_world['revoked']}"},
                   "session without CSRF": {}}[kind]
        if kind == "session without CSRF":
            client.force_login(api_world["users"]["global_admin"])  # allowed everything, but for CSRF
        response = call(client, method, path, headers)
        if kind == "session without CSRF":
            if method == "get":  # reading needs no CSRF token: the session works
                assert verdict(response) == "allowed", path
            else:
                assert response.status_code == 403 and "CSRF" in response.json()["detail"], path
        else:
            assert response.status_code == 401, (kind, path, response.status_code)
            assert response["WWW-Authenticate"] == 'Bearer realm="api"'
