"""A lab host accepts a key its root adds to /root/.ssh/authorized_keys, as sshd on a real
host does, so the onboarding page's "authorise the portal's key" command works on a lab
standing in for a real cluster (docs/onboarding.md)."""
import paramiko
import pytest


def connect_with(lab, name, key):
    entry = lab.host(name)
    client = paramiko.SSHClient()
    client.load_host_keys(lab.known_hosts_file())
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(entry["address"], entry["port"], username="root", pkey=key, timeout=10,
                   banner_timeout=10, auth_timeout=10, allow_agent=False, look_for_keys=False)
    return client


def run(client, command):
    _, out, err = client.exec_command(command)
    status = out.channel.recv_exit_status()
    return status, out.read().decode(), err.read().decode()


def test_a_key_root_adds_to_authorized_keys_logs_in_and_one_removed_no_longer(lab, ssh):
    key = paramiko.ECDSAKey.generate()  # paramiko makes no ed25519 keys; any stranger's key will do
    line = f"{key.get_name()} {key.get_base64()} portal@example"
    with pytest.raises(paramiko.AuthenticationException):
        connect_with(lab, "he2", key)

    # The command the onboarding page shows, run as root on the host.
    assert ssh("he2", f"install -d -m 700 /root/.ssh && echo '{line}' >> /root/.ssh/authorized_keys "
                      "&& chmod 600 /root/.ssh/authorized_keys").rc == 0
    client = connect_with(lab, "he2", key)
    try:
        assert run(client, "id -u") == (0, "0\n", "")
    finally:
        client.close()
    # Another host's authorized_keys is its own.
    with pytest.raises(paramiko.AuthenticationException):
        connect_with(lab, "he1", key)

    assert ssh("he2", "sed -i '/portal@example/d' /root/.ssh/authorized_keys").rc == 0
    with pytest.raises(paramiko.AuthenticationException):
        connect_with(lab, "he2", key)
