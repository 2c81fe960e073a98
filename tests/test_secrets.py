"""Engine passwords are encrypted at rest (Fernet, with rotation) and never
reach a page, a log, a run's output or the audit trail."""
import asyncio
import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

import tests.runbooks  # noqa: F401  (registers the test runbooks)
from tests.factories import make_cluster
from upgrades import secrets, services
from upgrades.models import AuditEvent, Cluster, RunStatus, StepOutput

PASSWORD = "Sup3r-s3cret engine pässword"


@pytest.mark.django_db
def test_the_stored_password_is_encrypted_and_rotates(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_KEYS = [old]
    cluster = make_cluster(name="Enc")
    cluster.set_engine_password(PASSWORD)
    cluster.save()
    stored = Cluster.objects.values_list("engine_password_encrypted", flat=True).get(pk=cluster.pk)
    assert PASSWORD not in stored and Fernet(old).decrypt(stored.encode()).decode() == PASSWORD
    settings.SECRETS_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_secrets", stdout=out)
    assert out.getvalue() == "Re-encrypted 1 stored secret(s) with the newest key.\n"
    settings.SECRETS_KEYS = [new]  # the old key is gone: the secret still reads
    cluster.refresh_from_db()
    assert cluster.engine_password() == PASSWORD
    settings.SECRETS_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(secrets.SecretError):
        cluster.engine_password()


@pytest.mark.django_db
def test_the_admin_writes_the_password_and_never_shows_it(client, make_user):
    cluster = make_cluster(name="Enc", engine_url="https://engine.example.com/ovirt-engine/api")
    client.force_login(make_user("admin"))
    url = reverse("admin:upgrades_cluster_change", args=[cluster.pk])
    form = client.get(url).context["adminform"].form
    data = {name: ("" if value is None else value) for name, value in form.initial.items()
            if name in form.fields and not isinstance(value, (list, dict))}
    data.update({"engine_password": PASSWORD, "poll_interval": 10, "engine_vm_port": 22,
                 "hosts-TOTAL_FORMS": 0, "hosts-INITIAL_FORMS": 0, "role_grants-TOTAL_FORMS": 0,
                 "role_grants-INITIAL_FORMS": 0})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    cluster.refresh_from_db()
    assert cluster.engine_password() == PASSWORD and PASSWORD not in cluster.engine_password_encrypted
    page = client.get(url).content.decode()
    assert PASSWORD not in page and cluster.engine_password_encrypted not in page
    event = AuditEvent.objects.get(action="admin.cluster.change")
    assert "engine_password" in event.details["fields"] and PASSWORD not in json.dumps(event.details)


def body_of(response):
    if not response.streaming:
        return response.content
    content = response.streaming_content
    if hasattr(content, "__aiter__"):
        async def collect():
            return b"".join([chunk async for chunk in content])
        return asyncio.run(collect())
    return b"".join(content)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_full_run_leaks_the_password_nowhere(rq_worker, ha_poller, fresh_lab_cluster, make_user, caplog):
    """The engine password only in the database, encrypted; a run that logs in
    to the engine API; then every page, log line, output line and audit row is searched."""
    from tests.test_engine import wait_for_polled
    from tests.test_resilience import wait_for_status

    cluster = fresh_lab_cluster
    password = cluster.lab.manifest["engine"]["password"]
    # The import stored it encrypted and kept no path to a file (tests/test_import_secrets.py).
    assert cluster.credentials_ref == "" and cluster.engine_password() == password
    wait_for_polled(cluster)
    operator, admin = make_user("operator"), make_user("admin", "boss")
    run = services.start_run(cluster=cluster, slug="test-engine", params={"host": "he2.lab.local"}, user=operator,
                             acknowledge=True)
    wait_for_status(run, [RunStatus.SUCCEEDED, RunStatus.FAILED], 120)
    assert run.status == RunStatus.SUCCEEDED, list(run.steps.values_list("key", "status", "error"))

    client = Client()
    client.force_login(admin)
    urls = [reverse("home"), reverse("cluster-detail", args=[cluster.pk]), reverse("cluster-live", args=[cluster.pk]),
            reverse("runbook-launch", args=[cluster.pk, "test-engine"]) + "?host=he2.lab.local",
            reverse("run-detail", args=[run.pk]), reverse("run-live", args=[run.pk]), reverse("run-log", args=[run.pk]),
            reverse("run-history"), reverse("audit"), reverse("audit-export-csv"), reverse("audit-export-json"),
            reverse("approvals"), reverse("admin:upgrades_cluster_change", args=[cluster.pk]),
            reverse("admin:upgrades_auditevent_changelist"), reverse("admin:upgrades_upgraderun_change", args=[run.pk])]
    urls += [reverse("step-log", args=[run.pk, step.pk]) for step in run.steps.all()]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = body_of(response)
        assert password.encode() not in body, url
    texts = list(StepOutput.objects.filter(step__run=run).values_list("text", flat=True))
    assert texts and not [t for t in texts if password in t]
    for event in AuditEvent.objects.all():
        assert password not in json.dumps(event.details) + event.target_repr, event.action
    logs = [path.read_text(errors="replace") for procs in (rq_worker, ha_poller)
            for path in procs.log_dir.glob("*.log")]
    assert logs and not [log for log in logs if password in log]
    assert password not in caplog.text
