"""Engine client: the real ovirtsdk4 against the lab's engine over HTTPS.

Each test that changes the engine gets its own lab (about 0.4 s to start),
so tests stay independent under xdist. At speed 60 the lab's maintenance
and migration take a fraction of a second; the waits below allow far more.
"""
import datetime
import socket
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.factories import make_cluster
from upgrades.remote.base import EngineError
from upgrades.remote.engine_api import EngineClient, resolve_secret

WAIT = 30  # real seconds; the lab needs well under one






def client_for(lab, **overrides):
    engine = dict(lab.manifest["engine"], **overrides)
    return EngineClient(engine["url"], engine["username"], engine["password"], engine["ca_file"], timeout=10)


def other_ca(path):
    """A valid CA certificate that did not sign the engine's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


# ---- reading ----------------------------------------------------------------------

def test_it_connects_and_reads_the_engine_version(lab):
    with client_for(lab) as client:
        info = client.test_connection()
    assert info.product == "oVirt Engine"
    assert info.version.startswith("4.")


def test_it_lists_hosts_with_their_hosted_engine_data(lab):
    with client_for(lab) as client:
        hosts = client.list_hosts()
    assert [h.name for h in hosts] == [h["name"] for h in lab.manifest["hosts"]]
    for host, entry in zip(hosts, lab.manifest["hosts"]):
        assert host.address == entry["address"]
        assert host.status == "up"
        # Present only because the client asks with all_content=true.
        assert host.hosted_engine is not None
        assert host.hosted_engine.configured is True
        assert host.hosted_engine.score == 3400
        assert host.hosted_engine.local_maintenance is False


def test_it_reads_where_the_engine_vm_runs(lab):
    with client_for(lab) as client:
        vm = client.engine_vm()
    assert vm.name == "HostedEngine"
    assert vm.status == "up"
    assert vm.host_name == lab.state()["engine_vm"]["host"]


# ---- host maintenance -----------------------------------------------------------------

def test_a_host_goes_to_maintenance_and_comes_back(fresh_lab):
    with client_for(fresh_lab) as client:
        vm_host = client.engine_vm().host_name
        name = next(h.name for h in client.list_hosts() if h.name != vm_host)
        client.deactivate_host(name, reason="OS upgrade")
        host = client.wait_for_host_status(name, "maintenance", timeout=WAIT, poll=0.05)
        assert host.status == "maintenance"
        # The HA agent publishes local maintenance a loop or two later (howto step 1 waits for it).
        host = client.wait_for_host(name, lambda h: h.hosted_engine.local_maintenance,
                                    "expected HA local maintenance", timeout=WAIT, poll=0.05)
        assert host.hosted_engine.score == 0
        assert fresh_lab.state()["hosts"][name]["agent_state"] == "LocalMaintenance"

        client.activate_host(name)
        host = client.wait_for_host_status(name, ["up"], timeout=WAIT, poll=0.05)
        assert host.status == "up"
        assert client.engine_vm().host_name == vm_host


def test_waiting_for_a_status_gives_up_with_a_clear_message(lab):
    with client_for(lab) as client:
        name = lab.manifest["hosts"][1]["name"]
        started = time.monotonic()
        with pytest.raises(EngineError) as caught:
            client.wait_for_host_status(name, ["maintenance", "non_operational"], timeout=0.3, poll=0.05)
    assert time.monotonic() - started < 5
    assert caught.value.message == (f"host {name} is still up after 0.3 s; "
                                    "expected maintenance or non_operational")
    assert caught.value.retryable is True


def test_the_engine_fault_text_reaches_the_operator(lab):
    with client_for(lab) as client:
        name = lab.manifest["hosts"][0]["name"]
        with pytest.raises(EngineError) as caught:
            client.activate_host(name)
    assert caught.value.message == (f"the engine refused to activate host {name}: "
                                    "Operation Failed: [Cannot activate Host. Host is already Up.]")
    assert caught.value.retryable is False


def test_an_unknown_host_is_named_in_the_error(lab):
    with client_for(lab) as client:
        with pytest.raises(EngineError, match="the engine has no host named he9.lab.local"):
            client.deactivate_host("he9.lab.local")


# ---- clusters -------------------------------------------------------------------------------

def test_it_creates_a_cluster_and_raises_its_compatibility_version(fresh_lab):
    with client_for(fresh_lab) as client:
        created = client.create_cluster("el7", version="4.2", description="hosts reinstalled as el7")
        assert (created.name, created.version) == ("el7", "4.2")
        assert client.get_cluster("el7").id == created.id

        updated = client.set_cluster_version("el7", "4.3")
        assert updated.version == "4.3"
        assert client.get_cluster("el7").version == "4.3"

        with pytest.raises(EngineError) as duplicate:
            client.create_cluster("el7")
        with pytest.raises(EngineError) as unsupported:
            client.set_cluster_version("el7", "4.99")
    assert "Cluster name is already in use" in duplicate.value.message
    assert "Selected Compatibility Version is not supported" in unsupported.value.message
    with client_for(fresh_lab) as again:  # a new login sees the same clusters
        assert {c.name: c.version for c in again.list_clusters()}["el7"] == "4.3"


def test_a_malformed_version_is_refused_before_asking_the_engine(lab):
    with client_for(lab) as client:
        with pytest.raises(EngineError, match="must look like 4.7"):
            client.set_cluster_version("Default", "4")


# ---- the engine VM -------------------------------------------------------------------------

def test_it_migrates_the_engine_vm_to_a_host_and_to_anywhere(fresh_lab):
    names = [h["name"] for h in fresh_lab.manifest["hosts"]]
    with client_for(fresh_lab) as client:
        source = client.engine_vm().host_name
        target = next(n for n in names if n != source)
        vm = client.migrate_engine_vm(target, timeout=WAIT, poll=0.05)
        assert vm.host_name == target and vm.status == "up"
        assert client.engine_vm().host_name == target
        assert fresh_lab.state()["engine_vm"]["host"] == target

        vm = client.migrate_engine_vm(timeout=WAIT, poll=0.05)
        assert vm.host_name not in (None, target)
        assert fresh_lab.state()["engine_vm"]["host"] == vm.host_name


def test_migrating_to_the_current_host_is_refused_with_the_engine_reason(lab):
    with client_for(lab) as client:
        here = client.engine_vm().host_name
        with pytest.raises(EngineError) as caught:
            client.migrate_engine_vm(here, timeout=WAIT, poll=0.05)
    assert "Source and destination hosts are the same" in caught.value.message


# ---- failures an operator must understand ----------------------------------------------------

def test_a_wrong_password_is_reported_as_a_login_failure(lab):
    with pytest.raises(EngineError) as caught:
        with client_for(lab, password="not-the-password") as client:
            client.list_hosts()
    message = caught.value.message
    assert "refused the login of admin@internal" in message
    assert "username or password is incorrect" in message
    assert caught.value.retryable is False


def test_a_ca_file_that_did_not_sign_the_engine_certificate_is_a_tls_error(lab, tmp_path):
    ca_file = other_ca(tmp_path / "other-ca.pem")
    with pytest.raises(EngineError) as caught:
        with client_for(lab, ca_file=ca_file) as client:
            client.test_connection()
    message = caught.value.message
    assert message.startswith("TLS check of the engine at")
    assert ca_file in message
    assert caught.value.retryable is False


def test_a_missing_ca_file_is_named(lab, tmp_path):
    with pytest.raises(EngineError, match="CA file .*missing.pem does not exist"):
        client_for(lab, ca_file=str(tmp_path / "missing.pem"))


def test_an_engine_that_is_down_is_reported_as_unavailable_and_retryable(fresh_lab):
    with client_for(fresh_lab) as logged_in, client_for(fresh_lab) as new:
        logged_in.test_connection()
        fresh_lab.fault("kill-engine-vm")
        errors = []
        for client in (logged_in, new):  # mid-session and at login
            with pytest.raises(EngineError) as caught:
                client.list_hosts()
            errors.append(caught.value)
    for error in errors:
        assert "is not available (HTTP 503)" in error.message
        assert "engine VM or the ovirt-engine service is down" in error.message
        assert error.retryable is True and error.unavailable is True


def test_an_engine_nobody_listens_for_is_unreachable(lab):
    from tests.conftest import free_port

    url = f"https://127.0.0.1:{free_port()}/ovirt-engine/api"
    with pytest.raises(EngineError) as caught:
        with client_for(lab, url=url) as client:
            client.test_connection()
    assert caught.value.message.startswith("cannot reach the engine at 127.0.0.1:")
    assert caught.value.retryable is True and caught.value.unavailable is True  # nothing was sent


def test_a_hung_engine_login_times_out(lab):
    # The kernel completes TCP handshakes on a listening socket nobody accepts
    # from: TLS then waits for ever, which is what the SDK's login would do.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"https://127.0.0.1:{hung.getsockname()[1]}/ovirt-engine/api"
        client = EngineClient(url, "admin@internal", "pw", lab.manifest["engine"]["ca_file"], timeout=1)
        started = time.monotonic()
        with pytest.raises(EngineError) as caught:
            client.list_hosts()
        elapsed = time.monotonic() - started
        client.close()
    assert 0.9 < elapsed < 5
    assert "did not answer the log in request within 1 s" in caught.value.message
    assert caught.value.retryable is True
    assert caught.value.unavailable is False  # it may have been sent: never sent again by itself


# ---- credentials -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_client_is_built_from_a_cluster_and_its_password_file(lab, tmp_path):
    engine = lab.manifest["engine"]
    secret = tmp_path / "engine-password"
    secret.write_text(engine["password"] + "\n")
    cluster = make_cluster(engine_url=engine["url"], engine_username=engine["username"],
                           credentials_ref=f"file:{secret}", engine_ca_file=engine["ca_file"])
    with EngineClient.for_cluster(cluster, timeout=10) as client:
        assert client.test_connection().product == "oVirt Engine"


def test_credentials_references_are_resolved_or_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("HEPORTAL_TEST_ENGINE_PW", "s3cret")
    assert resolve_secret("env:HEPORTAL_TEST_ENGINE_PW") == "s3cret"
    with pytest.raises(EngineError, match="HEPORTAL_TEST_UNSET_PW is not set"):
        resolve_secret("env:HEPORTAL_TEST_UNSET_PW")
    with pytest.raises(EngineError, match="cannot read the engine password file"):
        resolve_secret(f"file:{tmp_path / 'absent'}")
    with pytest.raises(EngineError, match="must be env:VARIABLE or file:/path"):
        resolve_secret("s3cret")
