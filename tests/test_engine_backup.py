"""The engine backup survives the engine VM: he-upgrade copies the file engine-backup wrote
in the lab's engine VM into the portal's ENGINE_BACKUP_DIR over SFTP (the pinned host
key), with the sha256 the VM's own sha256sum gives; the cluster page lists it and only
admins download it."""
import hashlib
from pathlib import Path

import pytest
from django.conf import settings

from tests.test_engine import lab_exec, start, steps_of, texts
from tests.test_resilience import wait_for_status
from tests.test_runbook_he_upgrade import drive, polled_release
from upgrades import services
from upgrades.models import AuditEvent, EngineBackup, RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.lab(engine_version="4.5", os="el9", outdated=True)
def test_the_engine_backup_is_copied_off_the_vm_checked_listed_and_only_admins_download_it(
        rq_worker, ha_poller, fresh_lab_cluster, make_user, client):
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    polled_release(fresh_lab_cluster)
    run = start(fresh_lab_cluster, "he-upgrade", operator)
    drive(run, lab, operator, timeout=600, stop_at="engine-packages")
    services.cancel_run(run=run, user=operator, reason="only the backup was wanted here")
    wait_for_status(run, [RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED], 300)
    steps = steps_of(run)
    assert (steps["backup-space"].status, steps["backup-copy"].status) == ("succeeded", "succeeded"), [
        (s.key, s.status, s.error) for s in steps.values()][:8]
    space = "\n".join(texts(steps["backup-space"]))
    assert "engine VM: " in space and " bytes free in /var/lib/ovirt-engine-backup; portal: " in space, space
    assert "Available" in space  # df's own header, from the VM

    in_vm = steps["engine-backup"].spec["command"].split("--file=")[1].split()[0]
    vm_sum = lab_exec(lab, "engine", f"sha256sum {in_vm}").split()[0]
    backup = EngineBackup.objects.get(run=run)
    copy = Path(settings.ENGINE_BACKUP_DIR) / backup.file_name
    assert copy.parent.parent == Path(settings.ENGINE_BACKUP_DIR)
    data = copy.read_bytes()
    assert data.startswith(b"ovirt-engine-backup ")
    assert hashlib.sha256(data).hexdigest() == vm_sum == backup.sha256
    assert (backup.size, backup.source_path, backup.cluster_id) == (len(data), in_vm, fresh_lab_cluster.pk)
    assert AuditEvent.objects.filter(action="engine_backup.copy", run_ref=run.pk).count() == 1
    assert f"the same sha256 in the engine VM: kept as {backup.file_name}" in texts(steps["backup-copy"])

    url = f"/clusters/{fresh_lab_cluster.pk}/backups/{backup.pk}/"
    viewer = make_user("viewer")
    client.force_login(viewer)
    page = client.get(f"/clusters/{fresh_lab_cluster.pk}/").content.decode()
    assert backup.file_name in page and backup.sha256 in page
    assert url not in page  # no download link for a viewer
    for user in (viewer, operator):
        client.force_login(user)
        assert client.get(url).status_code == 403
    admin = make_user("admin")
    client.force_login(admin)
    assert f'href="{url}"' in client.get(f"/clusters/{fresh_lab_cluster.pk}/").content.decode()
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response) == data
    assert AuditEvent.objects.filter(action="engine_backup.download", actor=admin).count() == 1


@pytest.mark.lab(engine_version="4.5", os="el9", outdated=True)
def test_without_room_for_the_backup_the_run_stops_before_engine_backup_runs(
        rq_worker, ha_poller, fresh_lab_cluster, make_user):
    """The space needed is twice the cluster's last backup (or ENGINE_BACKUP_MIN_FREE_MB):
    with a last backup of a petabyte on record neither side has room, and the run fails
    at the check, before engine-backup writes anything in the VM."""
    lab = fresh_lab_cluster.lab
    operator = make_user("operator")
    EngineBackup.objects.create(cluster=fresh_lab_cluster, file_name="cluster-x/huge.backup",
                                source_path="/var/lib/ovirt-engine-backup/huge.backup", size=10**15, sha256="0" * 64)
    polled_release(fresh_lab_cluster)
    before = lab_exec(lab, "engine", "ls -1 /var/lib/ovirt-engine-backup | wc -l")
    run = start(fresh_lab_cluster, "he-upgrade", operator)
    wait_for_status(run, [RunStatus.FAILED, RunStatus.SUCCEEDED], 300)
    steps = steps_of(run)
    assert (run.status, steps["backup-space"].status) == (RunStatus.FAILED, "failed")
    assert "not enough free space for the engine backup" in steps["backup-space"].error
    assert f"{2 * 10**15} needed (ENGINE_BACKUP_MIN_FREE_MB)" in steps["backup-space"].error
    assert steps["engine-backup"].status == "pending" and steps["backup-copy"].status == "pending"
    assert lab_exec(lab, "engine", "ls -1 /var/lib/ovirt-engine-backup | wc -l") == before
    assert not EngineBackup.objects.filter(run=run).exists()
