"""The portal on each oVirt release of the lab: the HA poller reads plain vm-status where
--json is ignored (3.5, el6 hosts) and JSON on 4.5 (el9), detects the release, and the
engine client names a v3-only engine instead of failing to log in."""
import shutil

import pytest

from lab.launcher import start_lab
from tests.conftest import LAB_SPEED
from upgrades import services
from upgrades.models import Cluster, Host
from upgrades.poller import ClusterPoller, describe_release
from upgrades.remote.base import EngineError
from upgrades.remote.engine_api import API_V3_ONLY, EngineClient

pytestmark = pytest.mark.django_db(transaction=True)


def release_lab(lab, tmp_path_factory, name, **options):
    """A lab of one release that accepts the portal's key (the session lab's)."""
    state = tmp_path_factory.mktemp(name)
    (state / "keys").mkdir()
    shutil.copy(lab.manifest["ssh_key"], state / "keys" / "client_ed25519")
    return start_lab(state, hosts=2, speed=LAB_SPEED, timeout=120, **options)


@pytest.fixture(scope="module")
def lab35(lab, tmp_path_factory):
    with release_lab(lab, tmp_path_factory, "lab35", engine_version="3.5", os="el6") as running:
        yield running


@pytest.fixture(scope="module")
def lab45(lab, tmp_path_factory):
    with release_lab(lab, tmp_path_factory, "lab45", engine_version="4.5", os="el9") as running:
        yield running


def register(running, name, tmp_path):
    password_file = tmp_path / "engine-password"
    password_file.write_text(running.manifest["engine"]["password"])
    return services.import_cluster(name=name, engine=running.manifest["engine"],
                                   password_file=str(password_file), hosts=running.manifest["hosts"],
                                   poll_interval=10 / running.speed)


def test_a_3_5_cluster_of_el6_hosts_shows_live_scores_from_plain_vm_status(lab35, tmp_path):
    cluster = register(lab35, "Old", tmp_path)
    poller = ClusterPoller(cluster.pk)
    assert poller.poll() is True
    poller.close()
    hosts = {h.name: h for h in Host.objects.filter(cluster=cluster)}
    he1, he2 = hosts["he1.lab.local"], hosts["he2.lab.local"]
    assert (he1.ha_state, he1.ha_score, he1.ha_live, he1.engine_vm_here) == ("EngineUp", 2400, True, True)
    assert (he2.ha_state, he2.ha_score, he2.engine_vm_here) == ("EngineDown", 2400, False)
    release = Cluster.objects.get(pk=cluster.pk).detected_release
    assert release == ("oVirt 3.5 (ovirt-hosted-engine-ha 1.2.10, "
                       "ovirt-hosted-engine-setup 1.2.6.1)")


def test_a_3_x_engine_is_named_v3_only_instead_of_a_login_error(lab35, tmp_path):
    cluster = register(lab35, "Old", tmp_path)
    with pytest.raises(EngineError) as error:
        with EngineClient.for_cluster(cluster, timeout=20) as client:
            client.test_connection()
    assert API_V3_ONLY in error.value.message
    assert "oVirt 3.5.6" in error.value.message


def test_a_4_5_cluster_of_el9_hosts_reads_json_and_its_engine(lab45, tmp_path):
    cluster = register(lab45, "New", tmp_path)
    poller = ClusterPoller(cluster.pk)
    assert poller.poll() is True
    poller.close()
    he1 = Host.objects.get(cluster=cluster, name="he1.lab.local")
    assert (he1.ha_state, he1.ha_score, he1.ha_live, he1.engine_vm_here) == ("EngineUp", 3400, True, True)
    assert Cluster.objects.get(pk=cluster.pk).detected_release.startswith(
        "oVirt 4.5 (ovirt-hosted-engine-ha 2.5.1, ovirt-hosted-engine-setup 2.7.1)")
    with EngineClient.for_cluster(cluster, timeout=20) as client:
        assert client.test_connection().version.startswith("4.5.7")


def test_the_release_falls_back_to_the_vm_status_layout():
    assert describe_release("package ovirt-hosted-engine-setup is not installed\n", "1.3") == \
        "oVirt 3.6 (from the vm-status layout)"
    assert describe_release("", "") == ""
    assert describe_release("ovirt-hosted-engine-setup-2.3.13-1.el7.noarch\n", "2.3+") == \
        "oVirt 4.3 (ovirt-hosted-engine-setup 2.3.13)"
