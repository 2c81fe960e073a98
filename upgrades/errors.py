"""Error pages in the portal's layout, each with its reason and a way back.

Django renders 403, 404 and 500 from templates; a 404's reason is the
message of the ``Http404`` a view raised ("There is no run #4."), never the
resolver's internals. Django has no handler for 405: ``require_POST`` and
class-based views answer with an empty body, which the middleware here
turns into a page.

A database that is away (stopped, restarting, locked) is not a bug of the
page: it answers 503 "database unavailable" with Retry-After, and the outage
is logged once (``upgrades.outage``), not a traceback per request.
"""
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.template import loader
from django.urls import Resolver404
from django.utils.decorators import sync_and_async_middleware

from .outage import DATABASE, UNAVAILABLE, drop_connections


def page_not_found(request, exception):
    """handler404: the view's own message when it gave one."""
    reason = ""
    if not isinstance(exception, Resolver404) and exception.args and isinstance(exception.args[0], str):
        reason = exception.args[0]
    return render(request, "404.html", {"exception": reason}, status=404)


def _bare_405(response):
    return response.status_code == 405 and not response.streaming and not response.content


def _page_405(request, response):
    page = render(request, "405.html", {
        "method": request.method, "allowed": response.get("Allow", "")}, status=405)
    if response.has_header("Allow"):
        page["Allow"] = response["Allow"]
    return page


@sync_and_async_middleware
def method_not_allowed_page(get_response):
    """A 405 without a body gets the portal's page, keeping its Allow header."""
    if iscoroutinefunction(get_response):
        async def middleware(request):
            response = await get_response(request)
            if _bare_405(response):
                # Rendering reads request.user (a query): not in the event loop.
                return await sync_to_async(_page_405)(request, response)
            return response
    else:
        def middleware(request):
            response = get_response(request)
            return _page_405(request, response) if _bare_405(response) else response
    return middleware


class DatabaseUnavailable:
    """503 "database unavailable" for a view that met an outage; says when it is back.

    Sync only, so it runs in the thread of the views and sees their connection."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if DATABASE.since is not None and connection.connection is not None and response.status_code != 503:
            DATABASE.up()  # this request used a working connection
        return response

    def process_exception(self, request, exception):
        if not isinstance(exception, UNAVAILABLE):
            return None
        DATABASE.down(exception, "serving a page")
        drop_connections()
        # No request context: the page must not query the database (request.user) itself.
        return HttpResponse(loader.get_template("503.html").render(), status=503, headers={"Retry-After": "10"})
