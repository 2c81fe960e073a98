"""The lab's control endpoint: faults in, state out (HTTP JSON on 127.0.0.1)."""

from aiohttp import web

from . import admin as lab_admin
from .errors import LabError

FAULT_KINDS = ("kill-host", "boot-host", "kill-engine-vm", "power-outage", "corrupt-lockspace",
               "disconnect-host", "reconnect-host", "fail-next-command", "slow-host",
               "reinstall-host", "agent-stays-down", "agent-comes-up")


def make_app(cluster):
    async def settle():
        """Answer only once SSH listens (or not) as the state says, so a client that
        saw a host come back can connect at once."""
        if cluster.settle:
            await cluster.settle()

    async def state(request):
        snapshot = cluster.snapshot()
        await settle()
        return web.json_response(snapshot)

    async def fault(request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "body must be JSON"}, status=400)
        kind = body.pop("kind", None)
        host = body.pop("host", None)
        try:
            message = cluster.fault(kind, host, **body)
        except LabError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        await settle()
        return web.json_response({"ok": True, "message": message})

    async def admin(request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "body must be an object"}, status=400)
        args = {key: body.get(key) for key in ("host", "version", "cpu", "policy", "vm",
                                                "affinity")}
        try:
            message = lab_admin.run(cluster, body.get("action"),
                                    cluster_name=body.get("cluster"), **args)
        except LabError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        cluster.changed()
        await settle()
        return web.json_response({"ok": True, "message": message})

    app = web.Application()
    app.router.add_get("/state", state)
    app.router.add_post("/fault", fault)
    app.router.add_post("/admin", admin)
    return app


async def start_control(cluster):
    """Returns (url, runner); the port is a free one."""
    runner = web.AppRunner(make_app(cluster), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", runner
