"""Bad input gets a clear 4xx page or message, in the portal's layout, and changes nothing."""
import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from heportal.asgi import application
from tests.conftest import free_port
from tests.factories import make_host, make_run
from upgrades.consumers import parse_cursors
from upgrades.converters import MAX_ID, parse_id
from upgrades.models import AuditEvent, UpgradeRun

HUGE = "9" * 30
PINNED = "[127.0.0.1]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMAhUha8bWX/1ZimRB1LkmQSu80hv70DQypsZIDlTmZm"


def assert_portal_page(response, status, reason):
    """The portal's layout (header, home link) with the reason, never bare text."""
    assert response.status_code == status
    page = response.content.decode()
    assert '<header class="top">' in page and 'class="brand"' in page
    assert reason in page
    assert f'<a class="back" href="{reverse("home")}"' in page


def test_ids_are_ascii_digits_within_the_database_range():
    assert parse_id("42") == 42
    assert parse_id(str(MAX_ID)) == MAX_ID
    for text in (str(MAX_ID + 1), HUGE, "²", "٣", "4²", "-1", "", " 1", "1 ", "0x10", "9" * 5000):
        assert parse_id(text) is None, text


def test_cursors_keep_only_ascii_numbers_within_range():
    assert parse_cursors("after=7:12,8:0") == {7: 12, 8: 0}
    assert parse_cursors("after=7:²,8:3") == {8: 3}
    assert parse_cursors("after=7:" + "9" * 5000 + ",9:1") == {9: 1}
    assert parse_cursors(f"after={HUGE}:1,7:{MAX_ID + 1},1:{MAX_ID}") == {1: MAX_ID}
    assert parse_cursors("after=%C2%B2:1&after=5:5") == {}  # only the first after= counts


@pytest.mark.django_db
def test_an_unknown_page_is_a_404_in_the_portal_layout(client, make_user, settings):
    assert settings.DEBUG is False  # the pages people get, not Django's debug pages
    assert_portal_page(client.get("/no/such/page/"), 404, "There is no page at this address.")
    client.force_login(make_user("viewer"))
    assert_portal_page(client.get(reverse("run-detail", args=[4242])), 404, "There is no run #4242.")
    assert_portal_page(client.get(reverse("cluster-detail", args=[77])), 404, "There is no cluster #77.")


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    f"/runs/4/steps/{HUGE}/log.txt", f"/runs/{HUGE}/", f"/runs/{MAX_ID + 1}/log.txt",
    f"/clusters/{HUGE}/", f"/hosts/{HUGE}/host-key/", "/runs/%C2%B2/", "/runs/-1/",
])
def test_ids_beyond_the_database_range_are_404s(client, make_user, path):
    client.force_login(make_user("admin"))
    assert_portal_page(client.get(path), 404, "There is no page at this address.")


@pytest.mark.django_db
def test_a_step_of_another_run_is_a_404(client, make_user):
    user = make_user("viewer")
    host = make_host()
    first = make_run(user, host, ["true"])
    UpgradeRun.objects.filter(pk=first.pk).update(status="succeeded")  # one active run per cluster
    second = make_run(user, host, ["true"])
    client.force_login(user)
    step = second.steps.get()
    assert_portal_page(client.get(reverse("step-log", args=[first.pk, step.pk])), 404,
                       f"Run #{first.pk} has no step #{step.pk}.")


@pytest.mark.django_db
def test_a_403_names_the_reason_in_the_portal_layout(client, make_user):
    host = make_host()
    client.force_login(make_user("operator"))
    assert_portal_page(client.get(reverse("host-key", args=[host.pk])), 403, "Only admins can review host keys.")


@pytest.mark.django_db
def test_a_405_is_a_page_that_says_what_the_address_takes(client, make_user):
    host = make_host()
    client.force_login(make_user("operator"))
    response = client.get(reverse("start-diagnostic", args=[host.pk]))
    assert_portal_page(response, 405, "This address does not take GET requests; it takes POST.")
    assert response["Allow"] == "POST"
    assert not UpgradeRun.objects.exists()
    # Django's own views too: logout is POST only.
    response = client.get(reverse("logout"))
    assert_portal_page(response, 405, "does not take GET requests")
    assert "POST" in response["Allow"]


@pytest.mark.django_db
def test_a_405_from_an_async_view_is_a_page_too(make_user):
    from django.test import AsyncClient

    run = make_run(make_user("operator"), make_host(), ["true"])
    client = Client()
    client.force_login(run.requested_by)

    async def post():
        async_client = AsyncClient()
        async_client.cookies = client.cookies
        return await async_client.post(reverse("run-log", args=[run.pk]))

    response = asyncio.run(post())
    assert response.status_code == 405
    assert b"This address does not take POST requests; it takes GET." in response.content


@pytest.mark.django_db
def test_a_form_without_its_csrf_token_is_a_403_page():
    response = Client(enforce_csrf_checks=True).post(reverse("login"), {"username": "x", "password": "y"})
    assert_portal_page(response, 403, "nothing was changed")


def test_the_500_page_uses_the_layout_without_touching_the_database(rf):
    from django.views.defaults import server_error

    # No django_db mark: a query (the database may be what failed) would raise here.
    response = server_error(rf.get("/"))
    assert_portal_page(response, 500, "Something went wrong on the portal's side")


@pytest.mark.django_db
@pytest.mark.parametrize("line", [
    "ssh-ed25519 AAAA!!notbase64",
    "[127.0.0.1]:22 ssh-ed25519 AAAA!!notbase64",
    "[127.0.0.1]:22 ssh-rsa AAAAB3NzaC1yc2E8pLV72A==",  # base64, but no RSA key inside
    "|1|AAAA|bm90 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMAhUha8bWX/1ZimRB1LkmQSu80hv70DQypsZIDlTmZm",
])
def test_an_unreadable_host_key_is_refused_with_a_message(client, make_user, line):
    host = make_host(address="127.0.0.1", ssh_port=free_port(), known_hosts=PINNED)
    client.force_login(make_user("admin"))
    response = client.post(reverse("host-key", args=[host.pk]), {"known_hosts_line": line}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain == [(reverse("host-key", args=[host.pk]), 302)]
    messages = [str(message) for message in response.context["messages"]]
    assert len(messages) == 1 and ("not a host key line" in messages[0] or "not one known_hosts line" in messages[0])
    host.refresh_from_db()
    assert host.known_hosts == PINNED
    assert not AuditEvent.objects.filter(action="host.key_accept").exists()


@pytest.mark.django_db
def test_the_admin_host_form_refuses_a_port_or_address_ssh_cannot_use(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    host = make_host(ssh_port=22)
    url = reverse("admin:upgrades_host_change", args=[host.pk])
    form = {"cluster": host.cluster_id, "name": host.name, "address": "127.0.0.1", "ssh_port": 99999999,
            "ssh_user": "root", "he_host_id": "", "os_release": ""}
    page = client.post(url, form)
    assert page.status_code == 200 and "An SSH port is 1-65535." in page.content.decode()
    page = client.post(url, {**form, "ssh_port": 22, "address": "not an address"})
    assert page.status_code == 200 and "Not a host name or IP address." in page.content.decode()
    host.refresh_from_db()
    assert (host.address, host.ssh_port) == ("127.0.0.1", 22)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", [
    "/ws/runs/{run}/?after=7:²", "/ws/runs/{run}/?after=7:" + "9" * 5000, f"/ws/runs/{HUGE}/",
    "/ws/runs/{run}/?after=%FF%FE:1", f"/ws/clusters/{HUGE}/", "/ws/runs/²/", "/ws/nowhere/",
])
def test_a_bad_websocket_path_or_cursor_gets_an_answer_at_once(make_user, path):
    from tests.test_live_output import open_or_closed, session_headers

    user = make_user("viewer")
    run = make_run(user, make_host(), ["true"])
    path = path.replace("{run}", str(run.pk))
    headers = session_headers(user)

    async def handshake():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, first = await open_or_closed(communicator, timeout=5)
        code, events = (None, [json.loads(first["text"])]) if connected else (first, [])
        while events and events[-1]["type"] != "run.status":
            events.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return connected, code, events

    connected, code, events = asyncio.run(handshake())
    if path.startswith(f"/ws/runs/{run.pk}/"):
        # The bad cursor is ignored: the whole backlog, then the run's status.
        assert connected and [event["type"] for event in events] == ["step.status", "run.status"]
    else:
        assert (connected, code) == (False, 4404)
