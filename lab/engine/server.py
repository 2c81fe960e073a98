"""aiohttp application: SSO, the /ovirt-engine/api resources, and the
Apache-style 503 while the engine VM is down.

Handlers only parse the request, call Engine/EngineStore, and render; the
rules live in engine.py.
"""
import base64
import binascii
import copy
import json
import xml.etree.ElementTree as ET

from aiohttp import web

from . import documents as doc
from . import inventory
from . import search
from .documents import API, Fault
from .engine import SCHEDULING_POLICIES, Engine
from .store import now_iso
from .tls import CA_FILE

USERNAME = "admin@internal"
# The engine release whose API v3 answers this request, None for v4 (set by api_version).
API_V3 = web.RequestKey("api_v3", object)
# 3.x's second copy of the restapi war: its context root (Makefile @ovirt-engine-3.5.6.2 and
# @ovirt-engine-3.6.9.2 copy restapi.war to legacy_restapi.war with `<context-root>/api`).
LEGACY_API = "/api"
LEGACY = web.RequestKey("legacy_api", bool)
TOKEN_LIFETIME_S = 10 * 3600

JBOSS_404 = ("<html><head><title>Error</title></head><body>404 - Not Found</body></html>")

# Apache httpd's own 404 for a path it does not proxy (4.x proxies only ^/ovirt-engine).
APACHE_404 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>404 Not Found</title>
</head><body>
<h1>Not Found</h1>
<p>The requested URL {path} was not found on this server.</p>
</body></html>
"""

# What Apache httpd in front of a stopped ovirt-engine answers (mod_proxy).
APACHE_503 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>503 Service Unavailable</title>
</head><body>
<h1>Service Unavailable</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
"""

def build_app(engine: Engine) -> web.Application:
    api = _Api(engine)
    app = web.Application(middlewares=[api.engine_down, api.api_version, api.faults, api.auth])
    r = app.router

    def add(method: str, path: str, handler) -> None:
        """Each resource at API, at API/v3 (4.0-4.3's v3 path) and at /api (3.x's legacy
        war); api_version refuses each where the release has no such path."""
        for prefix in (API, API + "/v3", LEGACY_API):
            r.add_route(method.upper(), prefix + path, handler)

    r.add_post("/ovirt-engine/sso/oauth/token", api.sso_token)
    r.add_post("/ovirt-engine/services/sso-logout", api.sso_logout)
    r.add_get("/ovirt-engine/services/health", api.health)
    r.add_get("/ovirt-engine/services/pki-resource", api.pki_resource)
    add("get", "", api.root)
    add("get", "/", api.root)
    add("get", "/hosts", api.list_hosts)
    add("post", "/hosts", api.add_host)
    add("get", "/hosts/{id}", api.get_host)
    add("put", "/hosts/{id}", api.update_host)
    add("delete", "/hosts/{id}", api.remove_host)
    add("post", "/hosts/{id}/{action:activate|deactivate|upgrade|upgradecheck}", api.host_action)
    add("get", "/clusters", api.list_clusters)
    add("post", "/clusters", api.add_cluster)
    add("get", "/clusters/{id}", api.get_cluster)
    add("put", "/clusters/{id}", api.update_cluster)
    add("delete", "/clusters/{id}", api.remove_cluster)
    add("post", "/clusters/{id}/upgrade", api.cluster_upgrade)
    add("get", "/datacenters", api.list_data_centers)
    add("get", "/datacenters/{id}", api.get_data_center)
    add("get", "/schedulingpolicies", api.list_scheduling_policies)
    add("get", "/vms", api.list_vms)
    add("get", "/vms/{id}", api.get_vm)
    add("post", "/vms/{id}/migrate", api.migrate_vm)
    add("put", "/datacenters/{id}", api.update_data_center)
    add("get", "/datacenters/{id}/storagedomains", api.list_dc_storage_domains)
    add("get", "/storagedomains", api.list_storage_domains)
    add("get", "/storagedomains/{id}", api.get_storage_domain)
    add("get", "/storagedomains/{id}/disks", api.list_domain_disks)
    add("get", "/disks", api.list_disks)
    add("get", "/disks/{id}", api.get_disk)
    add("get", "/tags", api.list_tags)
    add("post", "/tags", api.add_tag)
    for kind in ("hosts", "vms"):
        add("get", "/" + kind + "/{id}/statistics", api.statistics)
        add("get", "/" + kind + "/{id}/nics", api.nics)
        add("get", "/" + kind + "/{id}/tags", api.owner_tags)
        add("post", "/" + kind + "/{id}/tags", api.assign_tag)
    add("get", "/vms/{id}/diskattachments", api.disk_attachments)
    add("post", "/vms/{id}/{action:start|stop|shutdown}", api.vm_power)
    add("get", "/events", api.list_events)
    add("get", "/events/{id}", api.get_event)
    return app


def _base(request: web.Request) -> str:
    """The API path this request came in on (3.x's legacy war answers under /api)."""
    return LEGACY_API if request.get(LEGACY) else API


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _pki_error(message: str) -> web.Response:
    """PKIResourceServlet answers bad parameters with sendError(400, message)."""
    return web.Response(status=400, text=message, content_type="text/html")


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _respond(request: web.Request, element: ET.Element, status: int = 200) -> web.Response:
    if request.get(API_V3):
        element = doc.to_v3(element, request[API_V3])
    if request.get(LEGACY):
        element = doc.rebase(copy.deepcopy(element), LEGACY_API)
    if _wants_json(request):
        return web.json_response(doc.to_json(element), status=status)
    return web.Response(body=doc.render(element), status=status, content_type=doc.XML_TYPE)


def _element_to_dict(el: ET.Element) -> dict | str | None:
    if len(el) == 0 and not el.attrib:
        return el.text.strip() if el.text else None
    out: dict = dict(el.attrib)
    for child in el:
        out[child.tag] = _element_to_dict(child)
    return out


async def _read_body(request: web.Request) -> dict:
    """The request body as a dict, from XML (the SDK) or JSON (ansible `uri`)."""
    raw = await request.text()
    if not raw.strip():
        return {}
    try:
        if "json" in request.headers.get("Content-Type", ""):
            data = json.loads(raw)
            return data if isinstance(data, dict) else {}
        parsed = _element_to_dict(ET.fromstring(raw))
    except (ValueError, ET.ParseError) as exc:
        raise Fault(400, f"Request syntactically incorrect. {exc}", reason="Bad Request") from exc
    return parsed if isinstance(parsed, dict) else {}


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class _Api:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.backend = engine.backend
        self.down_seen = False

    # ---- middlewares ---------------------------------------------------

    @web.middleware
    async def engine_down(self, request, handler):
        if not self.backend.engine_healthy():
            self.down_seen = True
            return web.Response(status=503, text=APACHE_503, content_type="text/html",
                                charset="iso-8859-1")
        if self.down_seen:
            # The engine process restarted: its in-memory SSO sessions are gone.
            self.down_seen = False
            self.store.drop_all_tokens()
        return await handler(request)

    @web.middleware
    async def api_version(self, request, handler):
        """Which API version answers (restapi's VersionFilter.java): 3.x engines have only
        v3; 4.0-4.3 serve v3 under API/v3 or with a `Version: 3` header
        (ENGINE_API_SUPPORTED_VERSIONS="3, 4" and org/ovirt/engine/api/v3 @ovirt-engine-4.3.10.4);
        4.4+ no longer have the v3 server (none @ovirt-engine-4.5.6), so the lab answers 404
        there (what the real 4.5 answers exactly is not decided by the sources: its filter
        still lists 3 as supported and forwards to a /v3 path that has no servlet)."""
        v = self.engine.version()
        release = (v["major"], v["minor"])
        asked = (request.path == API + "/v3" or request.path.startswith(API + "/v3/")
                 or request.headers.get("Version", "").strip() == "3")
        if _under(request.path, LEGACY_API):
            # 3.x: Apache proxies ^/api($|/) too (packaging/conf/ovirt-engine-proxy.conf.v2.in
            # @ovirt-engine-3.6.9.2) to the legacy war; 4.x proxies only ^/ovirt-engine($|/)
            # (the same file @ovirt-engine-4.0.7, @4.3.10.4, @4.5.6) and has no legacy war.
            if release >= (4, 0):
                return web.Response(status=404, text=APACHE_404.format(path=request.path),
                                    content_type="text/html", charset="iso-8859-1")
            request[LEGACY] = True
        if release < (4, 0):
            if request.path.startswith(API + "/v3"):
                return _respond(request, doc.fault(
                    "Not Found", f"HTTP 404 Not Found: {request.path}"), 404)
            request[API_V3] = release
        elif asked and release >= (4, 4):
            return _respond(request, doc.fault(
                "Not Found", f"HTTP 404 Not Found: {request.path}"), 404)
        elif asked:
            request[API_V3] = release
        return await handler(request)

    @web.middleware
    async def faults(self, request, handler):
        try:
            return await handler(request)
        except Fault as fault:
            return _respond(request, doc.fault(fault.reason, fault.detail), fault.status)
        except web.HTTPNotFound:
            return _respond(request, doc.fault(
                "Not Found", f"HTTP 404 Not Found: {request.path}"), 404)
        except web.HTTPMethodNotAllowed:
            return _respond(request, doc.fault(
                "Method Not Allowed", f"HTTP 405 Method Not Allowed: {request.method}"), 405)

    @web.middleware
    async def auth(self, request, handler):
        if ((_under(request.path, API) or _under(request.path, LEGACY_API))
                and not self._authorized(request)):
            # Empty body: the SDK turns a bodiless 401 into AuthError. 3.x asks for basic auth,
            # realm "RESTAPI", the legacy war "ENGINE" (web.xml `scheme.basic_auth` and the
            # Makefile's sed @ovirt-engine-3.6.9.2).
            if self.engine.api_v3_only():
                realm = "ENGINE" if request.get(LEGACY) else "RESTAPI"
                challenge = f'Basic realm="{realm}"'
            else:
                challenge = 'Bearer realm="RESTAPI"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return await handler(request)

    def _authorized(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer":
            return self.store.token_valid(value.strip())
        if kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return user == USERNAME and password == self.store.data["password"]
        return False

    # ---- SSO -----------------------------------------------------------

    async def sso_token(self, request):
        if self.engine.api_v3_only():
            # A 3.x engine has no SSO: JBoss answers its own 404 page.
            return web.Response(status=404, text=JBOSS_404, content_type="text/html")
        form = await request.post()
        if form.get("grant_type") != "password":
            return web.json_response({
                "error": "unsupported_grant_type",
                "error_description": f"The grant type '{form.get('grant_type')}' is not supported.",
            }, status=400)
        user, password = form.get("username", ""), form.get("password", "")
        if user != USERNAME or password != self.store.data["password"]:
            return web.json_response({
                "error": "access_denied",
                "error_description": f"Cannot authenticate user '{user}': "
                                     "The username or password is incorrect..",
            }, status=400)
        token, expires_ms = self.store.add_token(TOKEN_LIFETIME_S)
        return web.json_response({
            "access_token": token, "scope": form.get("scope", "ovirt-app-api"),
            "exp": str(expires_ms), "token_type": "bearer",
        })

    async def sso_logout(self, request):
        form = await request.post()
        self.store.drop_token(form.get("token", ""))
        return web.json_response({})

    async def health(self, request):
        return web.Response(text="DB Up!Welcome to Health Status!", content_type="text/html")

    async def pki_resource(self, request):
        """The engine's CA as every release publishes it, without a login (the services
        webapp has no auth filter): PKIResourceServlet.java and PKIResources.java
        @ovirt-engine-4.5.6 (the same servlet is mapped to /pki-resource @ovirt-engine-3.5.8).
        ``resource=ca-certificate``; ``format`` X509-PEM-CA (the CA's default) or X509-PEM;
        anything else is a 400 with the servlet's message. The lab's engine certificate and
        SSH key resources are not served."""
        resource, fmt = request.query.get("resource"), request.query.get("format")
        if resource is None:
            return _pki_error("Missing resource name")
        if resource != "ca-certificate":
            return _pki_error(f"Resource '{resource}' is invalid")
        types = {"X509-PEM-CA": "application/x-x509-ca-cert", "X509-PEM": "application/x-x509-cert"}
        if fmt is not None and fmt not in types:
            return _pki_error(f"Format '{fmt}' is invalid")
        pem = (self.store.path.parent / CA_FILE).read_text()
        return web.Response(text=pem, content_type=types[fmt or "X509-PEM-CA"])

    # ---- lookups -------------------------------------------------------

    def _host(self, request) -> dict:
        host = self.store.host(request.match_info["id"])
        if host is None:
            raise Fault(404, f"Entity not found: {request.match_info['id']}")
        return host

    def _cluster(self, request) -> dict:
        cluster = self.store.cluster(request.match_info["id"])
        if cluster is None:
            raise Fault(404, f"Entity not found: {request.match_info['id']}")
        return cluster

    def _ref(self, value, by_id, by_name, what: str) -> dict | None:
        """Resolve `<x id=".."/>` or `<x><name>..</name></x>`."""
        if not isinstance(value, dict):
            return None
        found = by_id(value["id"]) if value.get("id") else by_name(value.get("name") or "")
        if found is None:
            raise Fault(404, f"Entity not found: {what}: {value.get('id') or value.get('name')}")
        return found

    @staticmethod
    def _select(request, items: list, record) -> list:
        """`items` filtered by `search=`, sorted by its `sortby`, cut to its `page` of `max`
        items (or to `max`); `record(item)` gives an item's searchable fields."""
        query = request.query.get("search") or ""
        size = _int(request.query.get("max"), 0) or None
        case_sensitive = _bool(request.query.get("case_sensitive"), default=True)
        try:
            conditions, sort, descending, page = search.split(query)
            groups = search.parse(conditions) if conditions.strip() else None
            found = [(item, record(item)) for item in items]
            if groups is not None:
                found = [(i, r) for i, r in found
                         if search.matches(groups, r, case_sensitive=case_sensitive)]
        except search.SearchError as exc:
            raise Fault(400, str(exc), reason="Invalid search query") from exc
        if sort:
            if found and sort not in found[0][1]:
                raise Fault(400, f"Invalid sortby field '{sort}'", reason="Invalid search query")
            found.sort(key=lambda pair: search.sort_key(pair[1].get(sort)), reverse=descending)
        items = [item for item, _ in found]
        if page and size:
            return items[(page - 1) * size:page * size]
        return items[:size] if size else items

    @staticmethod
    def _all_content(request) -> bool:
        """v3 gives `hosted_engine` whenever the host has HA configured
        (BackendHostsResource.addHostedEngineIfConfigured @ovirt-engine-3.5.6.2, 3.6.9.2);
        v4 only with all_content."""
        return (bool(request.get(API_V3)) or _bool(request.query.get("all_content"))
                or _bool(request.headers.get("All-Content")))

    # ---- root ----------------------------------------------------------

    async def root(self, request):
        hosts = self.store.hosts()
        v = self.engine.version()
        os_tag = ("el6" if (v["major"], v["minor"]) <= (3, 5) else
                  "el7" if (v["major"], v["minor"]) <= (4, 3) else
                  "el8" if (v["major"], v["minor"]) == (4, 4) else "el9")
        full = f"{v['major']}.{v['minor']}.{v['build']}-1.{os_tag}"
        if request.get(API_V3):
            return _respond(request, doc.api_root_v3(v, full))
        vm_up = self.backend.engine_vm_status() == "up"
        guests = self.store.guest_vms()
        counts = {
            "hosts_total": len(hosts),
            "hosts_active": sum(self.engine.host_status(h) == "up" for h in hosts),
            "vms_total": 1 + len(guests),
            "vms_active": (1 if vm_up else 0) + sum(v["status"] == "up" for v in guests),
        }
        return _respond(request, doc.api_root(v, full, now_iso(), counts))

    # ---- hosts ---------------------------------------------------------

    async def add_host(self, request):
        """New Host; `deploy_hosted_engine=true` is the web admin's "Hosted Engine: Deploy"."""
        body = await _read_body(request)
        cluster = self._ref(body.get("cluster"), self.store.cluster, self.store.cluster_by_name,
                            "cluster")
        if not body.get("name") or not body.get("address") or cluster is None:
            raise Fault(400, "Host [name, address, cluster.id|name] required for add",
                        reason="Incomplete parameters")
        host = self.engine.add_host(body["name"], body["address"], cluster,
                                    _bool(request.query.get("deploy_hosted_engine")))
        response = _respond(request, doc.host(self.engine.host_view(host, False)), 201)
        response.headers["Location"] = f"{_base(request)}/hosts/{host['id']}"
        return response

    async def list_hosts(self, request):
        all_content = self._all_content(request)
        found = self._select(request, self.store.hosts(), self.engine.host_search_record)
        items = [doc.host(self.engine.host_view(h, all_content)) for h in found]
        return _respond(request, doc.collection("hosts", items))

    async def get_host(self, request):
        host = self._host(request)
        return _respond(request, doc.host(self.engine.host_view(host, self._all_content(request))))

    async def update_host(self, request):
        host = self._host(request)
        body = await _read_body(request)
        cluster = self._ref(body.get("cluster"), self.store.cluster, self.store.cluster_by_name,
                            "cluster")
        if cluster and cluster["id"] != host["cluster"]:
            if self.engine.host_status(host) != "maintenance":
                raise Fault(409, "[Cannot edit Host. Host parameters cannot be modified while "
                                 "Host is operational.\nPlease switch Host to Maintenance mode "
                                 "first.]")
            host["cluster"] = cluster["id"]
        if body.get("address"):
            host["address"] = body["address"]
        self.store.save()
        return _respond(request, doc.host(self.engine.host_view(host, False)))

    async def remove_host(self, request):
        self.engine.remove_host(self._host(request))
        return web.Response(status=200)

    async def host_action(self, request):
        host = self._host(request)
        action = request.match_info["action"]
        body = await _read_body(request)
        if action not in doc.host_actions(request.get(API_V3)):
            raise Fault(404, f"HTTP 404 Not Found: {request.path}", reason="Not Found")
        if action == "deactivate":
            self.engine.deactivate(host, reason=body.get("reason"))
        elif action == "activate":
            self.engine.activate(host)
        elif action == "upgradecheck":
            self.engine.upgrade_check(host)
        elif action == "upgrade":
            self.engine.upgrade(host, reboot=_bool(body.get("reboot"), default=True),
                                timeout_min=_int(body.get("timeout"), 60))
        else:
            raise Fault(404, f"HTTP 404 Not Found: {request.path}", reason="Not Found")
        return _respond(request, doc.action())

    # ---- clusters and data centers -------------------------------------

    def _cluster_doc(self, cluster: dict) -> ET.Element:
        policy_id = next((pid for pid, name in SCHEDULING_POLICIES.items()
                          if name == cluster.get("scheduling_policy")), None)
        return doc.cluster({**cluster, "scheduling_policy_id": policy_id})

    async def list_clusters(self, request):
        def record(cluster):
            dc = self.store.data_center(cluster["data_center"]) or {}
            return {"name": cluster["name"], "datacenter": dc.get("name"),
                    "description": cluster.get("description", "")}

        clusters = sorted(self.store.data["clusters"].values(), key=lambda c: c["name"])
        items = [self._cluster_doc(c) for c in self._select(request, clusters, record)]
        return _respond(request, doc.collection("clusters", items))

    async def get_cluster(self, request):
        return _respond(request, self._cluster_doc(self._cluster(request)))

    def _version(self, body: dict) -> dict | None:
        v = body.get("version")
        if not isinstance(v, dict):
            return None
        if v.get("major") is None or v.get("minor") is None:
            raise Fault(400, "Version [major, minor] required", reason="Incomplete parameters")
        return {"major": int(v["major"]), "minor": int(v["minor"])}

    @staticmethod
    def _policy(body: dict) -> str | None:
        """The policy name of `<scheduling_policy id=..>` or `<name>`, None when absent."""
        policy = body.get("scheduling_policy")
        if not isinstance(policy, dict):
            return None
        return SCHEDULING_POLICIES.get(policy.get("id", "")) or policy.get("name") or ""

    async def add_cluster(self, request):
        body = await _read_body(request)
        dc = self._ref(body.get("data_center"), self.store.data_center,
                       self.store.data_center_by_name, "data center")
        if not body.get("name") or dc is None:
            raise Fault(400, "Cluster [name, dataCenter.name|id] required for add",
                        reason="Incomplete parameters")
        cluster = self.engine.create_cluster(body["name"], self._version(body), dc,
                                             body.get("description") or "", self._policy(body))
        response = _respond(request, self._cluster_doc(cluster), 201)
        response.headers["Location"] = f"{_base(request)}/clusters/{cluster['id']}"
        return response

    async def update_cluster(self, request):
        cluster = self._cluster(request)
        body = await _read_body(request)
        self.engine.edit_cluster(cluster, version=self._version(body), name=body.get("name"),
                                 description=body.get("description"), policy=self._policy(body))
        return _respond(request, self._cluster_doc(cluster))

    async def remove_cluster(self, request):
        cluster = self._cluster(request)
        if any(h["cluster"] == cluster["id"] for h in self.store.hosts()):
            raise Fault(409, "[Cannot remove Cluster. Host Cluster contains one or more Hosts.]")
        del self.store.data["clusters"][cluster["id"]]
        self.store.save()
        return web.Response(status=200)

    async def cluster_upgrade(self, request):
        cluster = self._cluster(request)
        body = await _read_body(request)
        correlation_id = (request.headers.get("Correlation-Id") or body.get("correlation_id")
                          or request.query.get("correlation_id"))
        self.engine.cluster_upgrade(cluster, body.get("upgrade_action") or "",
                                    percent=body.get("upgrade_percent_complete"),
                                    correlation_id=correlation_id)
        return _respond(request, doc.action())

    async def list_data_centers(self, request):
        dcs = list(self.store.data["data_centers"].values())
        items = [doc.data_center(d) for d in self._select(
            request, dcs, lambda d: {"name": d["name"], "description": d.get("description")})]
        return _respond(request, doc.collection("data_centers", items))

    async def get_data_center(self, request):
        dc = self.store.data_center(request.match_info["id"])
        if dc is None:
            raise Fault(404, f"Entity not found: {request.match_info['id']}")
        return _respond(request, doc.data_center(dc))

    async def list_scheduling_policies(self, request):
        root = ET.Element("scheduling_policies")
        for policy_id, name in SCHEDULING_POLICIES.items():
            el = doc.sub(root, "scheduling_policy", href=f"{API}/schedulingpolicies/{policy_id}",
                         id=policy_id)
            doc.sub(el, "name", name)
            doc.sub(el, "locked", True)
            doc.sub(el, "default_policy", name == "none")
        return _respond(request, root)

    # ---- vms -----------------------------------------------------------

    def _vm_or_404(self, request) -> dict:
        view = self.engine.vm_view_by_id(request.match_info["id"])
        if view is None:
            raise Fault(404, f"Entity not found: {request.match_info['id']}")
        return view

    async def list_vms(self, request):
        items = [doc.vm(view) for view in self._select(request, self.engine.vm_views(),
                                                        self.engine.vm_search_record)]
        return _respond(request, doc.collection("vms", items))

    async def get_vm(self, request):
        return _respond(request, doc.vm(self._vm_or_404(request)))

    async def migrate_vm(self, request):
        if self._vm_or_404(request)["id"] != self.store.data["vm_id"]:
            raise Fault(409, "[Cannot migrate VM. The lab migrates guest VMs only when their "
                             "host goes to maintenance.]")
        body = await _read_body(request)
        dest = self._ref(body.get("host"), self.store.host, self.store.host_by_name, "host")
        self.engine.migrate_vm(dest)
        return _respond(request, doc.action())

    # ---- events --------------------------------------------------------

    def _event_record(self, event: dict) -> dict:
        host = self.store.host(event["host"]) if event.get("host") else None
        cluster = self.store.cluster(event["cluster"]) if event.get("cluster") else None
        return {"type": event["code"], "severity": event["severity"],
                "message": event["description"], "time": event["time"],
                "host": host["name"] if host else None,
                "cluster": cluster["name"] if cluster else None,
                "correlation_id": event.get("correlation_id")}

    async def list_events(self, request):
        after = _int(request.query.get("from"), -1)
        found = self._select(request, [e for e in reversed(self.store.data["events"])
                                       if e["id"] > after], self._event_record)
        return _respond(request, doc.collection("events", [doc.event(e) for e in found]))

    async def get_event(self, request):
        wanted = _int(request.match_info["id"], -1)
        for event in self.store.data["events"]:
            if event["id"] == wanted:
                return _respond(request, doc.event(event))
        raise Fault(404, f"Entity not found: {request.match_info['id']}")

    # ---- storage, disks, NICs, statistics, tags (inventory.py) -----------

    def _sdk_list(self, request, tag: str, objects: list, record=None, links=()) -> web.Response:
        if record is not None:
            objects = self._select(request, objects, record)
        return _respond(request, doc.collection(tag, [doc.sdk(o, links) for o in objects]))

    def _dc_id(self) -> str | None:
        return next(iter(self.store.data["data_centers"]), None)

    def _domains(self, dc_id: str | None) -> list:
        dc = self.store.data_center(dc_id) if dc_id else None
        return inventory.storage_domains(
            dc_id, doc.storage_format(dc["version"]) if dc else "v5")

    async def list_storage_domains(self, request):
        return self._sdk_list(request, "storage_domains", self._domains(self._dc_id()),
                              lambda sd: {"name": sd.name, "type": sd.type.value,
                                          "datacenter": "Default"}, links=("disks",))

    async def list_dc_storage_domains(self, request):
        """Below a data center a domain has its status there (active)."""
        domains = self._domains(request.match_info["id"])
        for sd in domains:
            sd.status = inventory.t.StorageDomainStatus.ACTIVE
        return self._sdk_list(request, "storage_domains", domains)

    async def get_storage_domain(self, request):
        for sd in self._domains(self._dc_id()):
            if sd.id == request.match_info["id"]:
                return _respond(request, doc.sdk(sd, ("disks",)))
        raise Fault(404, f"Entity not found: {request.match_info['id']}")

    def _disks(self) -> list:
        return inventory.disks(self.store.guest_vms())

    async def list_disks(self, request):
        return self._sdk_list(request, "disks", self._disks(),
                              lambda d: {"name": d.name, "alias": d.alias, "status": d.status.value})

    async def list_domain_disks(self, request):
        wanted = request.match_info["id"]
        return self._sdk_list(request, "disks", [
            d for d in self._disks() if d.storage_domains[0].id == wanted])

    async def get_disk(self, request):
        for disk in self._disks():
            if disk.id == request.match_info["id"]:
                return _respond(request, doc.sdk(disk))
        raise Fault(404, f"Entity not found: {request.match_info['id']}")

    def _owner(self, request) -> tuple[str, dict]:
        """("hosts", host record) or ("vms", VM view) of a sub-collection's path."""
        kind = request.path[len(_base(request)) + 1:].removeprefix("v3/").split("/")[0]
        return kind, (self._host(request) if kind == "hosts" else self._vm_or_404(request))

    async def statistics(self, request):
        kind, owner = self._owner(request)
        if kind == "hosts":
            view = self.engine.host_view(owner, False)
            stats = inventory.host_statistics(owner, view["vms_active"])
        else:
            stats = inventory.vm_statistics(owner["id"], owner["memory"], owner["status"] == "up")
        return _respond(request, doc.collection("statistics", [doc.sdk(s) for s in stats]))

    async def nics(self, request):
        kind, owner = self._owner(request)
        if kind == "hosts":
            return _respond(request, doc.collection(
                "host_nics", [doc.sdk(n) for n in inventory.host_nics(owner)]))
        return _respond(request, doc.collection("nics", [
            doc.sdk(n) for n in inventory.vm_nics(owner["id"], self.store.data["vm_id"])]))

    async def disk_attachments(self, request):
        vm = self._vm_or_404(request)
        return _respond(request, doc.collection("disk_attachments", [
            doc.sdk(a) for a in inventory.disk_attachments(vm["id"], self.store.data["vm_id"])]))

    def _tags(self) -> dict:
        return self.store.data.setdefault("tags", {"names": [], "assigned": {}})

    async def list_tags(self, request):
        return self._sdk_list(request, "tags", inventory.tags(["root"] + self._tags()["names"],
                                                              "tags"),
                              lambda tag: {"name": tag.name})

    async def add_tag(self, request):
        name = (await _read_body(request)).get("name")
        if not name:
            raise Fault(400, "Tag [name] required for add", reason="Incomplete parameters")
        self.engine.add_tag(name)
        return _respond(request, doc.sdk(inventory.tags([name], "tags")[0]), 201)

    async def owner_tags(self, request):
        kind, owner = self._owner(request)
        names = self._tags()["assigned"].get(owner["id"], [])
        return _respond(request, doc.collection("tags", [
            doc.sdk(tag) for tag in inventory.tags(names, f"{kind}/{owner['id']}/tags")]))

    async def assign_tag(self, request):
        kind, owner = self._owner(request)
        body = await _read_body(request)
        name = body.get("name") or next(
            (n for n in self._tags()["names"] if inventory.lab_id("tag", n) == body.get("id")),
            None)
        if not name:
            raise Fault(404, f"Entity not found: tag: {body.get('id') or body.get('name')}")
        self.engine.assign_tag(name, kind, owner)
        return _respond(request, doc.sdk(inventory.tags([name], f"{kind}/{owner['id']}/tags")[0]),
                        201)

    async def vm_power(self, request):
        vm = self._vm_or_404(request)
        self.engine.vm_power(vm, request.match_info["action"])
        return _respond(request, doc.action())

    async def update_data_center(self, request):
        dc = self.store.data_center(request.match_info["id"])
        if dc is None:
            raise Fault(404, f"Entity not found: {request.match_info['id']}")
        body = await _read_body(request)
        self.engine.edit_data_center(dc, name=body.get("name"),
                                     description=body.get("description"))
        return _respond(request, doc.data_center(dc))
