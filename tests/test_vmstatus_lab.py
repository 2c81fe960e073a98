"""The parser against the lab's own vm-status: two independent readings of
the facts file's formats must agree, in every state the lab can show."""
import time

import pytest

from upgrades.remote.vmstatus import parse_vm_status

KEYS = ("host_id", "hostname", "score", "state", "up_to_date", "local_maintenance", "engine_vm", "health")


def vm_status(lab, host, json=False):
    client = lab.connect(host)
    try:
        out = client.exec_command("hosted-engine --vm-status" + (" --json" if json else ""))[1]
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, text
        return text
    finally:
        client.close()


def summary(status):
    """What both formats must agree on. A stale host's engine status is not among
    it: plain says "unknown stale-data", --json keeps the last one it saw."""
    def fields(h):
        return tuple(getattr(h, k) if h.up_to_date or k not in ("engine_vm", "health") else None
                     for k in KEYS)
    return (status.global_maintenance, [fields(h) for h in status.hosts])


def both(lab, host):
    """Plain and --json read at (nearly) the same moment; retried if an agent
    loop ran in between."""
    for _ in range(5):
        plain = parse_vm_status(vm_status(lab, host))
        as_json = parse_vm_status(vm_status(lab, host, json=True))
        if summary(plain) == summary(as_json):
            return plain
        time.sleep(0.05)
    assert summary(plain) == summary(as_json)


def test_plain_and_json_read_the_same_healthy_cluster(lab):
    status = both(lab, "he2")
    assert status.global_maintenance is False
    he1, he2, he3 = status.hosts
    assert (he1.hostname, he1.state, he1.score, he1.engine_vm, he1.health) == (
        "he1.lab.local", "EngineUp", 3400, "up", "good")
    assert (he2.state, he2.engine_vm) == ("EngineDown", "down")
    assert status.engine_host().hostname == "he1.lab.local"


def test_global_maintenance_and_a_dead_host_read_the_same_both_ways(fresh_lab):
    client = fresh_lab.connect("he2")
    assert client.exec_command("hosted-engine --set-maintenance --mode=global")[1].channel.recv_exit_status() == 0
    client.close()
    fresh_lab.fault("kill-host", host="he3")
    # The others see he3 stale once its timestamp is ~60 s old (facts §2).
    deadline = time.monotonic() + 200 / fresh_lab.speed + 5
    while parse_vm_status(vm_status(fresh_lab, "he2")).host(3).up_to_date:
        assert time.monotonic() < deadline, "he3 never went stale"
        time.sleep(0.1)
    status = both(fresh_lab, "he2")
    assert status.global_maintenance is True
    he3 = status.host(3)
    assert (he3.up_to_date, he3.engine_vm, he3.health) == (False, "unknown", "unknown")
    assert status.host(1).state == "GlobalMaintenance"


@pytest.mark.parametrize("version, score", [("3.5", 2400), ("3.6", 3400)])
def test_each_release_header_parses(lab, tmp_path, version, score):
    import shutil

    from lab.launcher import start_lab

    (tmp_path / "lab" / "keys").mkdir(parents=True)
    shutil.copy(lab.manifest["ssh_key"], tmp_path / "lab" / "keys" / "client_ed25519")
    with start_lab(tmp_path / "lab", hosts=2, speed=60, engine_version=version) as old:
        text = vm_status(old, "he1")
        assert "--== Host 1 status ==--" in text  # the header without names, up to setup 2.2
        status = parse_vm_status(text)
        assert [h.hostname for h in status.hosts] == ["he1.lab.local", "he2.lab.local"]
        assert status.host(1).score == score
