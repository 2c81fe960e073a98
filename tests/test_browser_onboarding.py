"""An admin adds a lab as they would a real cluster, in Chromium: daphne, a real worker
for the connection check, labs started apart from the session's (docs/onboarding.md).

The labs accept the portal's key (settings.SSH_KEY_FILE, the session lab's), as real
hosts do once its public key is in root's authorized_keys. The refusals (wrong
password, foreign CA, changed key, key not authorised) are in tests/test_onboarding.py.
"""
import shutil
import sys

import pytest
from playwright.sync_api import expect

from tests.conftest import LAB_SPEED, Processes
from tests.test_browser import browser, log_in, page  # noqa: F401  (fixtures)
from upgrades import onboarding, sshkey

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def poll_worker(rq_worker, tmp_path_factory):
    """A worker on the queue the connection check is queued on, as `make demo` runs one."""
    from upgrades.services.clusters import CHECK_QUEUE

    procs = Processes(tmp_path_factory.mktemp("poll-worker"))
    procs.start("rqworker-poll", [sys.executable, "manage.py", "rqworker", CHECK_QUEUE])
    yield procs
    procs.stop()


def start_lab_with_portal_key(lab, folder, **options):
    from lab.launcher import start_lab

    (folder / "keys").mkdir(parents=True, mode=0o700)
    shutil.copy(lab.manifest["ssh_key"], folder / "keys" / "client_ed25519")
    return start_lab(folder, hosts=2, speed=LAB_SPEED, **options)


def add_engine(page, portal, lab, name):
    """Home → Add a cluster → the CA's fingerprint, confirmed → the login."""
    engine = lab.manifest["engine"]
    page.click("a.add-cluster")
    page.fill("input[name=engine_url]", engine["url"])
    page.click("button.fetch-ca")
    fingerprint = onboarding.parse_ca(open(engine["ca_file"]).read()).fingerprint
    expect(page.locator(".ca-fingerprint")).to_have_text(fingerprint)
    page.check("input[name=confirmed]")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", engine["password"])
    page.fill("input[name=poll_interval]", str(10 / LAB_SPEED))
    page.click("button.add-cluster")


def run_doctor(page):
    page.click("button.run-doctor")
    expect(page.locator("#check-status")).to_have_text("passed", timeout=90_000)
    for row in page.locator("tr[data-outcome]").all():
        assert row.get_attribute("data-outcome") in ("ok", "warn"), row.inner_text()
    expect(page.locator(".first-poll")).to_contain_text("HA state read")


def test_an_admin_adds_a_45_cluster_from_the_hosts_the_engine_lists(
        live_portal, poll_worker, lab, page, make_user, tmp_path):  # noqa: F811
    make_user("admin")
    with start_lab_with_portal_key(lab, tmp_path / "lab45", engine_version="4.5") as lab45:
        log_in(page, live_portal, "admin")
        add_engine(page, live_portal, lab45, "Production")
        # The engine's hosted-engine hosts, ticked; the SSH port is the lab's (22 on real hosts).
        for host in lab45.manifest["hosts"]:
            row = page.locator(f"tr[data-host='{host['name']}']")
            expect(row).to_contain_text("HA active, score 3400")
            row.locator(f"input[name='port-{host['name']}']").fill(str(host["port"]))
        page.click("button.add-hosts")
        # The key the portal logs in with, and the command that authorises it.
        expect(page.locator(".public-key")).to_contain_text(sshkey.public_line(lab.manifest["ssh_key"]).split()[1])
        expect(page.locator("code.authorize").first).to_contain_text("/root/.ssh/authorized_keys")
        # Each host's key, reviewed and accepted: nothing is pinned without the admin.
        for host in lab45.manifest["hosts"]:
            page.locator(f"tr[data-host='{host['name']}'] a.review-key").click()
            offered = host["known_hosts"]
            expect(page.locator(".offered-key")).to_be_visible()
            assert page.locator("input[name=known_hosts_line]").get_attribute("value") == offered
            page.click("button.accept-host-key")
            page.click(".admin-links a:has-text('Set-up and keys')")
        run_doctor(page)
        page.goto(live_portal + "/")
        card = page.locator(".cluster-card", has_text="Production")
        expect(card).to_be_visible()
        expect(card).not_to_contain_text("not polled")


def test_an_admin_enters_the_hosts_of_a_35_cluster_by_hand(
        live_portal, poll_worker, lab, page, make_user, tmp_path):  # noqa: F811
    make_user("admin")
    with start_lab_with_portal_key(lab, tmp_path / "lab35", engine_version="3.5") as lab35:
        log_in(page, live_portal, "admin")
        add_engine(page, live_portal, lab35, "Legacy")
        expect(page.locator(".hand-reason")).to_contain_text("API v3 only")
        lines = "\n".join(f"{h['name']} {h['address']} {h['port']}" for h in lab35.manifest["hosts"])
        page.fill("textarea[name=hand]", lines)
        page.click("button.add-hosts")
        # known_hosts lines pasted (as from a machine that has them), one host at a time.
        for host in lab35.manifest["hosts"]:
            row = page.locator(f"tr[data-host='{host['name']}']")
            row.locator("input[name=known_hosts_line]").fill(host["known_hosts"])
            row.locator(".paste-key button").click()
            page.click(".admin-links a:has-text('Set-up and keys')")
        run_doctor(page)
        expect(page.locator("section.doctor-host").first).to_contain_text("oVirt 3.5")
