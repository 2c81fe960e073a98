"""``/metrics``: who may scrape, values that match the database, queries that do not
grow with the estate, and a scrape through a real daphne while a real run moves
(real RQ workers, the lab over SSH). The text is read with prometheus_client's own parser."""
import sys
import time
from datetime import timedelta

import django_rq
import pytest
import requests
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.conftest import Processes, child_env, free_port
from tests.factories import make_cluster, make_host, make_polled_cluster, make_run
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.api import auth
from upgrades.models import RunStatus, StepOutput, UpgradeRun

TOKEN = "scrape-token-4f9c1e"


def samples(text):
    """{(sample name, sorted label items): value} of one scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))))


def scrape(client=None, **extra):
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.content.decode())


@pytest.fixture
def scraping(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_ADDRESSES = ["10.9.0.0/24", "2001:db8::1"]
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    auth.clear_failures()
    yield settings
    auth.clear_failures()


@pytest.mark.django_db
def test_nothing_is_exposed_until_a_token_or_an_address_is_set(settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES = "", []
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 403
    assert b"Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_ADDRESSES" in response.content
    assert b"heportal_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("remote,forwarded,authorization,status", [
    ("192.0.2.7", None, None, 401),                       # no token, not an allowed address
    ("192.0.2.7", None, "Bearer wrong-token", 401),       # a wrong token
    ("192.0.2.7", None, "Bearer", 401),                   # no token after the keyword
    ("192.0.2.7", None, f"Basic {TOKEN}", 401),           # the token, but not as a bearer
    ("192.0.2.7", None, f"Bearer {TOKEN}", 200),          # the token
    ("10.9.0.5", None, None, 200),                        # an allowed network
    ("2001:db8::1", None, None, 200),                     # an allowed address
    ("10.9.0.5", None, "Bearer wrong-token", 401),        # allowed address, wrong token: refused
    ("192.0.2.7", "10.9.0.5", None, 401),                 # X-Forwarded-For from an untrusted client: ignored
    ("127.0.0.1", "10.9.0.5", None, 200),                 # ... from the trusted proxy: believed
    ("127.0.0.1", "10.9.0.5, 192.0.2.7", None, 401),      # the proxy saw 192.0.2.7, whatever it claimed
])
def test_who_may_scrape(scraping, remote, forwarded, authorization, status):
    extra = {"REMOTE_ADDR": remote}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    if authorization:
        extra["HTTP_AUTHORIZATION"] = authorization
    response = Client().get("/metrics", **extra)
    assert response.status_code == status, response.content
    assert (b"heportal_rq_up" in response.content) == (status == 200)
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.django_db
def test_an_allowed_address_alone_and_wrong_tokens_are_limited(scraping):
    scraping.METRICS_TOKEN = ""
    assert Client().get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="10.9.0.7").status_code == 200
    scraping.METRICS_TOKEN = TOKEN
    scraping.API_AUTH_FAILURE_LIMIT = 2
    for _ in range(2):
        assert Client().get("/metrics", REMOTE_ADDR="192.0.2.8", HTTP_AUTHORIZATION="Bearer guess").status_code == 401
    response = Client().get("/metrics", REMOTE_ADDR="192.0.2.8", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 429
    assert Client().get("/metrics", REMOTE_ADDR="192.0.2.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_values_are_the_databases(scraping, django_user_model):
    cluster = make_polled_cluster(names=("he1.lab.local", "he2.lab.local"))
    cluster.set_engine_password("engine-pass-do-not-show")
    cluster.polled_at = timezone.now() - timedelta(seconds=90)
    cluster.maintenance_mode = "global"
    cluster.save()
    he2 = cluster.hosts.get(name="he2.lab.local")
    he2.ha_score, he2.ha_state, he2.local_maintenance, he2.ha_live = 1800, "LocalMaintenance", True, False
    he2.save()
    broken = make_cluster(name="Broken", poll_error="ssh: permission denied for secret-user@10.1.1.1")
    make_host(broken, name="b1.example.com")
    user = django_user_model.objects.create_user("operator")
    run = make_run(user, cluster.hosts.get(name="he1.lab.local"), ["true", "false"], slug="he-upgrade")
    run.status = RunStatus.SUCCEEDED
    run.save()
    UpgradeRun.objects.filter(pk=make_run(user, he2, ["true"], slug="he-upgrade").pk).update(status="failed")
    make_run(user, he2, ["true"], slug="diagnostic")  # pending (one active run per cluster)
    base = timezone.now() - timedelta(hours=1)
    for step, seconds in zip(run.steps.order_by("order"), (3, 40)):
        step.started_at, step.finished_at, step.status = base, base + timedelta(seconds=seconds), "succeeded"
        step.save()
    removed = make_cluster(name="Removed", removed_at=timezone.now())
    make_host(removed, name="r1.example.com", ha_score=3400)

    found = scrape()
    assert value(found, "heportal_host_ha_score", cluster="Lab", host="he1.lab.local") == 3400
    assert value(found, "heportal_host_ha_score", cluster="Lab", host="he2.lab.local") == 1800
    assert value(found, "heportal_host_ha_score", cluster="Broken", host="b1.example.com") is None  # never read
    assert value(found, "heportal_host_ha_agent_state", cluster="Lab", host="he2.lab.local",
                 state="LocalMaintenance") == 1
    assert value(found, "heportal_host_ha_agent_state", cluster="Broken", host="b1.example.com", state="unknown") == 1
    assert value(found, "heportal_host_ha_live", cluster="Lab", host="he1.lab.local") == 1
    assert value(found, "heportal_host_ha_live", cluster="Lab", host="he2.lab.local") == 0
    assert value(found, "heportal_host_local_maintenance", cluster="Lab", host="he2.lab.local") == 1
    assert value(found, "heportal_host_engine_vm_here", cluster="Lab", host="he1.lab.local") == 1
    assert value(found, "heportal_cluster_hosts", cluster="Lab") == 2
    assert value(found, "heportal_cluster_global_maintenance", cluster="Lab") == 1
    assert value(found, "heportal_cluster_global_maintenance", cluster="Broken") is None  # unknown
    assert value(found, "heportal_cluster_engine_vm_host", cluster="Lab", host="he1.lab.local") == 1
    assert value(found, "heportal_cluster_engine_vm_state", cluster="Lab", state="running") == 1
    assert value(found, "heportal_cluster_engine_vm_state", cluster="Broken", state="unknown") == 1
    assert value(found, "heportal_cluster_engine_vm_health", cluster="Lab", level="ok") == 1  # EngineUp
    assert 90 <= value(found, "heportal_cluster_poll_age_seconds", cluster="Lab") < 90 + 60
    assert value(found, "heportal_cluster_last_poll_timestamp_seconds", cluster="Lab") == cluster.polled_at.timestamp()
    assert value(found, "heportal_cluster_poll_age_seconds", cluster="Broken") is None
    assert value(found, "heportal_cluster_poll_error", cluster="Broken") == 1
    assert value(found, "heportal_cluster_poll_error", cluster="Lab") == 0
    assert value(found, "heportal_runs", cluster="Lab", runbook="he-upgrade", status="succeeded") == 1
    assert value(found, "heportal_runs", cluster="Lab", runbook="he-upgrade", status="failed") == 1
    assert value(found, "heportal_runs", cluster="Lab", runbook="he-upgrade", status="pending") == 0
    assert value(found, "heportal_runs", cluster="Lab", runbook="diagnostic", status="pending") == 1
    steps = dict(runbook="he-upgrade", kind="ssh", status="succeeded")
    assert value(found, "heportal_step_duration_seconds_count", **steps) == 2
    assert value(found, "heportal_step_duration_seconds_sum", **steps) == pytest.approx(43, abs=0.01)
    assert value(found, "heportal_step_duration_seconds_bucket", le="1.0", **steps) == 0
    assert value(found, "heportal_step_duration_seconds_bucket", le="5.0", **steps) == 1
    assert value(found, "heportal_step_duration_seconds_bucket", le="30.0", **steps) == 1
    assert value(found, "heportal_step_duration_seconds_bucket", le="60.0", **steps) == 2
    assert value(found, "heportal_step_duration_seconds_bucket", le="+Inf", **steps) == 2
    assert not [key for key in found if ("cluster", "Removed") in key[1]], "a removed cluster is not in service"

    StepOutput.objects.create(step=run.steps.first(), seq=1, text="line")
    assert value(scrape(), "heportal_output_lines") == 1
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    for secret in ("engine-pass-do-not-show", "secret-user", "10.1.1.1", "127.0.0.1", TOKEN):
        assert secret not in text


@pytest.mark.django_db
def test_queue_depth_and_workers_are_redis(scraping):
    # rq's own Queue: django_rq's would enqueue only when the test's transaction commits.
    queue = Queue("poll", connection=django_rq.get_connection("poll"))  # no worker listens on it in the tests
    queue.empty()
    try:
        queue.enqueue("upgrades.jobs.no_such_job")
        queue.enqueue("upgrades.jobs.no_such_job")
        found = scrape()
        assert value(found, "heportal_rq_up") == 1
        assert value(found, "heportal_rq_queue_jobs", queue="poll") == 2 == queue.count
        assert value(found, "heportal_rq_workers", queue="poll") == 0
        for name in ("default", "emergency"):
            queued = django_rq.get_queue(name)
            assert value(found, "heportal_rq_queue_jobs", queue=name) == queued.count
            assert value(found, "heportal_rq_workers", queue=name) == Worker.count(queued.connection, queue=queued)
    finally:
        queue.empty()
    assert value(scrape(), "heportal_rq_queue_jobs", queue="poll") == 0


def _estate(hosts, django_user_model):
    cluster = make_polled_cluster(names=tuple(f"he{n}.lab.local" for n in range(1, hosts + 1)),
                                  name=f"Estate{hosts}")
    user = django_user_model.objects.get_or_create(username="requester")[0]
    for host in cluster.hosts.all():
        run = make_run(user, host, ["true"], slug=f"runbook-{host.pk % 3}")
        UpgradeRun.objects.filter(pk=run.pk).update(status="succeeded")
        step = run.steps.get()
        step.started_at = step.finished_at = timezone.now()
        step.save()
        StepOutput.objects.create(step=step, seq=1, text="out")


@pytest.mark.django_db
def test_queries_do_not_grow_with_the_estate(scraping, django_user_model):
    _estate(2, django_user_model)
    with CaptureQueriesContext(connection) as small:
        found = scrape()
    assert value(found, "heportal_cluster_hosts", cluster="Estate2") == 2
    _estate(6, django_user_model)
    with CaptureQueriesContext(connection) as large:
        found = scrape()
    assert value(found, "heportal_cluster_hosts", cluster="Estate6") == 6
    assert value(found, "heportal_output_lines") == 8
    assert len(small.captured_queries) == len(large.captured_queries) <= 6, large.captured_queries


@pytest.fixture
def metrics_daphne(rq_worker, tmp_path):
    """daphne serving the ASGI app with the metrics token in a file (METRICS_TOKEN_FILE)."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    procs = Processes(tmp_path)
    port = free_port()
    procs.start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                           "heportal.asgi:application"], env={**child_env(), "METRICS_TOKEN_FILE": str(token_file)})
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        procs.check_alive()
        try:
            requests.get(url, timeout=2)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "daphne did not answer in 30 s"
            time.sleep(0.2)
    yield url
    procs.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_scrape_through_daphne_follows_a_real_run(metrics_daphne, lab_cluster, make_user, scraping):
    def daphne_scrape():
        response = requests.get(metrics_daphne, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code == 200, response.text
        return samples(response.text)

    assert requests.get(metrics_daphne, timeout=30).status_code == 401
    assert requests.get(metrics_daphne, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
    runs = dict(cluster="Lab", runbook="test-approval")
    assert value(daphne_scrape(), "heportal_runs", status="pending", **runs) is None  # no run yet

    requester, approver = make_user("operator"), make_user("approver")
    run = services.start_run(cluster=lab_cluster, slug="test-approval", params={"host": "he1.lab.local"},
                             user=requester, acknowledge=True)
    wait_for_status(run, [RunStatus.AWAITING_APPROVAL, RunStatus.FAILED], 60)
    assert run.status == RunStatus.AWAITING_APPROVAL
    for found in (daphne_scrape(), scrape()):  # every process reads the same database
        assert value(found, "heportal_runs", status="awaiting_approval", **runs) == 1
        assert value(found, "heportal_runs", status="succeeded", **runs) == 0
        assert value(found, "heportal_rq_workers", queue="default") >= 1
        assert value(found, "heportal_rq_workers", queue="emergency") >= 1
        assert value(found, "heportal_cluster_hosts", cluster="Lab") == 3

    services.approve_step(step=run.steps.get(key="sign-off"), user=approver, comment="go")
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 60)
    assert run.status == RunStatus.SUCCEEDED
    found = daphne_scrape()
    assert value(found, "heportal_runs", status="awaiting_approval", **runs) == 0
    assert value(found, "heportal_runs", status="succeeded", **runs) == \
        UpgradeRun.objects.filter(runbook__slug="test-approval", status="succeeded").count() == 1
    assert value(found, "heportal_step_duration_seconds_count",
                 runbook="test-approval", kind="ssh", status="succeeded") == 1
    assert value(found, "heportal_output_lines") == StepOutput.objects.count() >= 1
    assert value(found, "heportal_rq_queue_jobs", queue="default") == django_rq.get_queue("default").count


@pytest.mark.django_db
def test_the_docs_and_the_dashboard_name_exactly_the_metrics_served(scraping, django_user_model):
    import json
    import re
    from pathlib import Path

    _estate(2, django_user_model)
    families = {family.name: family.type for family in text_string_to_metric_families(
        Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())}
    docs = Path(__file__).resolve().parent.parent / "docs"
    table = dict(re.findall(r"^\| `(heportal_\w+)` \| (\w+) \|", (docs / "metrics.md").read_text(), re.M))
    assert table == families, "docs/metrics.md lists each metric served, with its type"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    used = set(re.findall(r"heportal_\w+", json.dumps(dashboard)))
    served = {name + suffix for name, kind in families.items()
              for suffix in (("_bucket", "_count", "_sum") if kind == "histogram" else ("",))}
    assert used and used <= served, used - served


@pytest.mark.django_db
def test_a_scraper_asking_for_openmetrics_gets_it(scraping):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    make_polled_cluster()
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                            HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    scores = {sample.labels["host"]: sample.value for family in openmetrics_families(response.content.decode())
              for sample in family.samples if sample.name == "heportal_host_ha_score"}
    assert scores == {"he1.lab.local": 3400, "he2.lab.local": 3400, "he3.lab.local": 3400}
