"""``deploy-host`` and ``host-os-upgrade``: their plans per release, and end to end
through the portal's services with a real worker, the real HA poller and a lab of the
release (the person's steps done the way the runbook says, with the lab's `admin`
web-admin actions and its `reinstall-host` control)."""
import contextlib
import shutil
import time

import paramiko
import pytest
from django.core.exceptions import ValidationError

from tests.conftest import LAB_SPEED
from tests.factories import make_cluster, make_host
from tests.test_resilience import wait_for_status
from upgrades import services
from upgrades.models import RunStatus
from upgrades.plan import make_plan
from upgrades.remote import ssh
from upgrades.runbooks import get_runbook
from upgrades.state import ClusterState, HostState

STORAGE = "nfs.lab.local:/exports/hosted-engine"
RELEASE = {"3.5": "oVirt 3.5 (ovirt-hosted-engine-setup 1.2.6.1)",
           "3.6": "oVirt 3.6 (ovirt-hosted-engine-setup 1.3.7.4)",
           "4.5": "oVirt 4.5 (ovirt-hosted-engine-setup 2.7.1)"}


# Plans, without a lab ----------------------------------------------------------------

def key_line(address, port=22):
    return ssh.known_hosts_line(address, port, paramiko.RSAKey.generate(1024))


def cluster_of(release, names, *, pinned=True, **host_fields):
    cluster = make_cluster(name=f"c{release}", detected_release=RELEASE[release],
                           engine_url="https://engine.lab.local/ovirt-engine/api")
    for n, name in enumerate(names, start=1):
        address = f"127.0.1.{n}"
        make_host(cluster, name=name, address=address, he_host_id=host_fields.get(name, n),
                  known_hosts=key_line(address) if pinned else "", os_release=host_fields.get("os", ""))
    return cluster


def live(*names, vm_on=None, extra=()):
    """HA state: ``names`` live with id 1.., the engine VM on ``vm_on``; ``extra`` not in vm-status."""
    hosts = [HostState(name=name, he_host_id=n, live=True, score=2400, state="EngineDown",
                       local_maintenance=False, engine_vm_here=name == vm_on)
             for n, name in enumerate(names, start=1)]
    hosts += [HostState(name=name, he_host_id=None, live=False, score=None, state="", local_maintenance=False,
                        engine_vm_here=False, known=False) for name in extra]
    return ClusterState(hosts=hosts, global_maintenance=False, source="poll")


def plan(slug, cluster, state, **params):
    return make_plan(get_runbook(slug), cluster, params, state)


def steps(made):
    return {step.key: step for step in made.steps}


def levels(made):
    return {c.check: c.level for c in made.checks}


@pytest.mark.django_db
def test_the_3_5_os_upgrade_plan_evacuates_reinstalls_and_deploys_each_host_engine_vm_host_last():
    cluster = cluster_of("3.5", ["he1.lab.local", "he2.lab.local"])
    made = plan("host-os-upgrade", cluster, live("he1.lab.local", "he2.lab.local", vm_on="he1.lab.local"),
                storage=STORAGE, gateway="192.168.122.1")
    assert not made.inhibitors, made.checks
    keys = [step.key for step in made.steps]
    per_host = ["other-host", "ha-local", "vm-elsewhere", "maintenance", "local-maintenance", "remove",
                "reinstall", "check-os", "repo", "install-setup", "same-storage", "answers", "password",
                "deploy", "joined"]
    he2 = [f"hosts.he2.lab.local.{k}" for k in per_host]
    he1 = [f"hosts.he1.lab.local.{k}" for k in per_host]
    assert keys == he2[:7] + ["create-cluster"] + he2[7:] + he1
    by_key = steps(made)
    kinds = {k.rsplit(".", 1)[1]: by_key[k].kind for k in he2}
    assert [k for k, kind in kinds.items() if kind == "manual"] == ["maintenance", "remove", "reinstall", "password"]
    assert by_key["create-cluster"].kind == "manual" and "name el7" in by_key["create-cluster"].command
    # he2 keeps its id 2 (a re-deployment); he1 cannot have 1 again, so it gets the next free one
    answers2 = by_key["hosts.he2.lab.local.answers"].command
    assert "'OVEHOSTED_STORAGE/hostID=int:2'" in answers2
    assert "'OVEHOSTED_CORE/additionalHostReDeployment=bool:True'" in answers2
    assert "'OVEHOSTED_STORAGE/storageDomainConnection=str:'nfs.lab.local:/exports/hosted-engine" in answers2
    assert "'OVEHOSTED_ENGINE/clusterName=str:'el7" in answers2
    answers1 = by_key["hosts.he1.lab.local.answers"].command
    assert "hostID=int:3" in answers1 and "ReDeployment" not in answers1
    assert not any("adminPassword" in step.command for step in made.steps if step.kind != "manual")
    assert by_key["hosts.he1.lab.local.repo"].command == (
        "rpm -q ovirt-release35 >/dev/null || yum install -y "
        "http://resources.ovirt.org/pub/yum-repo/ovirt-release35.rpm")
    assert by_key["hosts.he1.lab.local.check-os"].spec["output_check"] == r"release (7)(\.|\s|$)"
    assert by_key["hosts.he1.lab.local.deploy"].rerun_safe is False
    assert by_key["hosts.he1.lab.local.deploy"].spec["guards"] == [{"name": "engine-vm-running", "args": {}}]
    assert by_key["hosts.he1.lab.local.ha-local"].spec["guards"] == [
        {"name": "not-last-engine-host", "args": {"host": "he1.lab.local"}}]
    assert by_key["hosts.he1.lab.local.same-storage"].spec["on"] == "any"
    assert any("he1.lab.local gets host id 3" in note for note in made.notes)
    assert any("el6 -> el7" in note and "he2.lab.local, he1.lab.local" in note for note in made.notes)
    assert levels(made)["engine-hosts-at-least"] == "ok"
    # The engine VM on he2: he1 still goes last, since it cannot keep its id
    made = plan("host-os-upgrade", cluster, live("he1.lab.local", "he2.lab.local", vm_on="he2.lab.local"),
                storage=STORAGE, gateway="192.168.122.1")
    assert [s.key for s in made.steps if s.key.endswith(".reinstall")] == [
        "hosts.he2.lab.local.reinstall", "hosts.he1.lab.local.reinstall"]
    assert any(note.startswith("he1.lab.local last instead") for note in made.notes)


@pytest.mark.django_db
def test_the_4_5_os_upgrade_plan_uses_the_engine_and_no_answer_file():
    cluster = cluster_of("4.5", ["he1.lab.local", "he2.lab.local", "he3.lab.local"])
    made = plan("host-os-upgrade", cluster, live("he1.lab.local", "he2.lab.local", "he3.lab.local",
                                                 vm_on="he2.lab.local"))
    by_key = steps(made)
    assert [k.split(".")[1] for k in by_key if k.endswith(".reinstall")] == ["he1", "he3", "he2"]
    assert [k.removeprefix("hosts.he1.lab.local.") for k in by_key if k.startswith("hosts.he1.")] == [
        "other-host", "maintenance", "local-maintenance", "clean-metadata", "remove", "reinstall", "check-os",
        "repo", "add-host", "joined"]
    assert [by_key[f"hosts.he1.lab.local.{k}"].kind for k in ("maintenance", "remove", "add-host")] == \
        ["engine", "engine", "engine"]
    assert by_key["hosts.he1.lab.local.clean-metadata"].command == \
        "service ovirt-ha-agent stop && hosted-engine --clean-metadata"
    assert by_key["hosts.he1.lab.local.add-host"].spec["args"] == {
        "host": "he1.lab.local", "address": "he1.lab.local", "cluster": "Default", "deploy_hosted_engine": True}
    assert by_key["hosts.he1.lab.local.check-os"].spec["output_check"] == r"release (9)(\.|\s|$)"
    assert "create-cluster" not in by_key and not any(k.endswith(".answers") for k in by_key)
    assert any("el8 -> el9" in note for note in made.notes)


@pytest.mark.django_db
def test_the_os_upgrade_is_refused_where_it_does_not_apply_and_inhibited_with_one_engine_host():
    cluster = cluster_of("3.6", ["he1.lab.local", "he2.lab.local"])
    with pytest.raises(Exception, match="oVirt 3.6. The OS upgrade is done on oVirt 3.5"):
        plan("host-os-upgrade", cluster, live("he1.lab.local", "he2.lab.local", vm_on="he1.lab.local"),
             storage=STORAGE, gateway="192.168.122.1")
    cluster = cluster_of("3.5", ["he1.lab.local", "he2.lab.local"], os="el7")
    state = live("he1.lab.local", "he2.lab.local", vm_on="he1.lab.local")
    state.hosts[1].local_maintenance = True
    made = plan("host-os-upgrade", cluster, state, storage=STORAGE, gateway="192.168.122.1")
    assert [c.message for c in made.inhibitors] == [
        "Only 1 host(s) can run the engine VM (he1.lab.local): one host at a time is taken out, so at least 2 "
        "live hosts out of local maintenance with a positive score are needed."]
    assert levels(made)["hosts-on-os"] == "warning"
    with pytest.raises(Exception, match="needs storage and gateway"):
        plan("host-os-upgrade", cluster, state)


@pytest.mark.django_db
def test_the_3_6_deploy_plan_writes_an_answer_file_with_the_next_free_id():
    cluster = cluster_of("3.6", ["he1.lab.local", "he2.lab.local", "he4.lab.local"], **{"he4.lab.local": None})
    made = plan("deploy-host", cluster, live("he1.lab.local", "he2.lab.local", vm_on="he1.lab.local",
                                             extra=["he4.lab.local"]),
                host="he4.lab.local", storage=STORAGE, gateway="192.168.122.1")
    assert not made.inhibitors and not made.warnings, made.checks
    assert [s.key for s in made.steps] == ["check-os", "repo", "install-setup", "same-storage", "answers",
                                           "password", "deploy", "joined"]
    by_key = steps(made)
    assert "hostID=int:3" in by_key["answers"].command and "clusterName=str:'Default" in by_key["answers"].command
    assert by_key["install-setup"].spec["output_check"] == r"^ovirt-hosted-engine-setup-1[.]3[.]"
    assert by_key["deploy"].command.startswith("test -s /root/he-deploy-password.conf || { echo")
    assert "hosted-engine --deploy --config-append=/root/he-deploy-answers.conf " \
           "--config-append=/root/he-deploy-password.conf && rm -f /root/he-deploy-password.conf" \
           in by_key["deploy"].command
    assert levels(made) == {"ha-fresh": "ok", "no-other-active-run": "ok", "host-key-pinned": "ok",
                            "not-deployed": "ok", "engine-vm-running": "ok"}
    with pytest.raises(Exception, match="Host id 1 cannot be used"):
        plan("deploy-host", cluster, live("he1.lab.local"), host="he4.lab.local", storage=STORAGE,
             gateway="192.168.122.1", host_id=1)
    with pytest.raises(Exception, match="Host id 0 cannot be used"):
        plan("deploy-host", cluster, live("he1.lab.local"), host="he4.lab.local", storage=STORAGE,
             gateway="192.168.122.1", host_id=0)
    cluster.hosts.filter(name="he4.lab.local").update(he_host_id=7)  # the inventory's id for it
    made = plan("deploy-host", cluster, live("he1.lab.local"), host="he4.lab.local", storage=STORAGE,
                gateway="192.168.122.1")
    assert "hostID=int:7" in steps(made)["answers"].command
    with pytest.raises(Exception, match="Host id 2 is used by another host"):
        plan("deploy-host", cluster, live("he1.lab.local"), host="he4.lab.local", storage=STORAGE,
             gateway="192.168.122.1", host_id=2)


@pytest.mark.django_db
def test_deploy_is_inhibited_for_an_unpinned_key_and_for_a_host_already_deployed():
    cluster = cluster_of("4.5", ["he1.lab.local", "he2.lab.local"], pinned=False)
    made = plan("deploy-host", cluster, live("he1.lab.local", "he2.lab.local", vm_on="he1.lab.local"),
                host="he2.lab.local")
    messages = [c.message for c in made.inhibitors]
    host = cluster.hosts.get(name="he2.lab.local")
    assert messages == [
        "he2.lab.local has no pinned SSH host key for 127.0.1.2, so the portal does not trust it. An admin "
        "compares the key it offers with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its "
        f"console) and accepts it at /hosts/{host.pk}/host-key/, or imports it with the inventory.",
        "he2.lab.local is a hosted-engine host already: vm-status shows it live (state EngineDown, score 2400)."]
    assert [s.key for s in made.steps] == ["check-os", "repo", "add-host", "joined"]
    assert any("the engine adds the host with hosted-engine deploy" in note for note in made.notes)


@pytest.mark.django_db
def test_a_host_never_in_vm_status_without_an_id_is_not_stale_but_one_with_an_id_is():
    cluster = cluster_of("4.5", ["he1.lab.local", "he2.lab.local"], **{"he2.lab.local": None})
    made = plan("deploy-host", cluster, live("he1.lab.local", vm_on="he1.lab.local", extra=["he2.lab.local"]),
                host="he2.lab.local")
    assert levels(made)["ha-fresh"] == "ok"
    state = live("he1.lab.local", vm_on="he1.lab.local", extra=["he2.lab.local"])
    state.hosts[1].he_host_id = 2
    made = plan("deploy-host", cluster, state, host="he2.lab.local")
    assert levels(made)["ha-fresh"] == "inhibitor"


def test_the_plans_parameters_are_validated_by_the_form(db):
    cluster = cluster_of("3.6", ["he1.lab.local"])
    with pytest.raises(ValidationError) as error:
        services.plan_run(cluster=cluster, slug="deploy-host",
                          params={"host": "he1.lab.local", "storage": "x; rm -rf /", "gateway": "1.2.3"})
    assert set(error.value.message_dict) == {"storage", "gateway"}


# End to end, on labs -----------------------------------------------------------------

def released_cluster(cluster, release, timeout=60):
    """The poller has read every host of ``cluster`` and detected its release."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.refresh_from_db()
        if cluster.detected_release.startswith(f"oVirt {release} ") and \
                all(cluster.hosts.filter(he_host_id__isnull=False).values_list("ha_live", flat=True)):
            return cluster
        assert time.monotonic() < deadline, f"the HA poller did not read {cluster.name}: {cluster.poll_error}"
        time.sleep(0.2)


def import_lab(lab, tmp_path, name, hosts=None):
    """The lab registered in the portal (its hosts' keys pinned from its manifest)."""
    manifest = lab.manifest
    password_file = tmp_path / f"{name}-engine-password"
    password_file.write_text(manifest["engine"]["password"])
    cluster = services.import_cluster(
        name=name, engine=manifest["engine"], engine_vm=manifest.get("engine_vm"), password_file=str(password_file),
        hosts=[h for h in manifest["hosts"] if hosts is None or h["name"] in hosts], poll_interval=10 / lab.speed)
    return cluster


@contextlib.contextmanager
def release_lab(lab, tmp_path, **options):
    """A lab of one release that accepts the portal's key (as ``fresh_lab``, any number of hosts)."""
    from lab.launcher import start_lab

    keys = tmp_path / "lab" / "keys"
    keys.mkdir(parents=True)
    shutil.copy(lab.manifest["ssh_key"], keys / "client_ed25519")
    with start_lab(tmp_path / "lab", speed=LAB_SPEED, timeout=120, **options) as running:
        yield running


def lab_shell(lab, host, command):
    """(exit status, output) of a command on a lab host over SSH."""
    client = lab.connect(host.split(".")[0])
    try:
        _, out, err = client.exec_command(command)
        status = out.channel.recv_exit_status()
        return status, out.read().decode() + err.read().decode()
    finally:
        client.close()


def until(what, probe, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except Exception as exc:  # e.g. the engine still busy, SSH not up yet
            result, last = None, exc
        else:
            last = result
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: still {last!r}"
        time.sleep(0.3)


def reinstall(lab, host, os_name):
    """The lab's reinstall-host control, then wait until the host answers SSH again."""
    lab.fault("reinstall-host", host=host, os=os_name)
    until(f"{host} answers SSH", lambda: lab_shell(lab, host, "true")[0] == 0)


def write_password(lab, host):
    """What the password step asks a person to do on the host."""
    status, out = lab_shell(lab, host, "umask 077; printf '[environment:default]\\nOVEHOSTED_ENGINE/adminPassword="
                                       "str:%s\\n' secret > /root/he-deploy-password.conf")
    assert status == 0, out


def drive(run, on_waiting, timeout=600):
    """Follow the run to its end, doing each person's step with ``on_waiting(step)`` and confirming it."""
    deadline = time.monotonic() + timeout
    done = []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"run #{run.pk} still {run.status}"
        wait_for_status(run, [RunStatus.WAITING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED,
                              RunStatus.INTERRUPTED], remaining)
        if run.status != RunStatus.WAITING:
            return done
        step = run.steps.get(status="waiting")
        on_waiting(step)
        done.append(step.key)
        services.confirm_step(step=step, user=run.requested_by, comment="done in the lab")


def failure(run):
    return [run.status, run.error] + [
        (s.key, s.status, s.error, list(s.output.order_by("seq").values_list("text", flat=True))[-8:])
        for s in run.steps.exclude(status="succeeded")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_host_os_upgrade_el6_to_el7_on_a_2_host_3_5_lab(lab, rq_worker, ha_poller, tmp_path, make_user):
    with release_lab(lab, tmp_path, hosts=2, engine_version="3.5", os="el6") as lab35:
        cluster = released_cluster(import_lab(lab35, tmp_path, "Lab35"), "3.5")
        operator = make_user("operator")
        run = services.start_run(cluster=cluster, slug="host-os-upgrade", user=operator, acknowledge=True,
                                 params={"storage": STORAGE, "gateway": "192.168.122.1"})
        assert [s.key.split(".")[1] for s in run.steps.filter(key__endswith=".reinstall").order_by("order")] == \
            ["he2", "he1"]  # the engine VM's host last

        def person(step):
            host, _, what = step.key.removeprefix("hosts.").rpartition(".")
            if what == "maintenance":
                lab35.admin("host-maintenance", host=host)
            elif what == "remove":  # once the engine shows the host in maintenance
                until(f"{host} removed", lambda: lab35.admin("remove-host", host=host))
            elif what == "reinstall":
                reinstall(lab35, host, "el7")
            elif what == "create-cluster":
                lab35.admin("create-cluster", cluster="el7")
            elif what == "password":
                write_password(lab35, host)

        people = drive(run, person, timeout=900)
        assert run.status == RunStatus.SUCCEEDED, failure(run)
        assert [k.split(".")[-1] for k in people] == [
            "maintenance", "remove", "reinstall", "create-cluster", "password",
            "maintenance", "remove", "reinstall", "password"]
        for host in ("he1", "he2"):
            assert "release 7." in lab_shell(lab35, host, "cat /etc/redhat-release")[1]
            assert lab_shell(lab35, host, "test -e /root/he-deploy-password.conf")[0] == 1  # removed
        # he2 kept its id 2; he1 could not have 1 again and got 3 (its old block stays, stale)
        assert "host_id=2" in lab_shell(lab35, "he2", "cat /etc/ovirt-hosted-engine/hosted-engine.conf")[1]
        assert "host_id=3" in lab_shell(lab35, "he1", "cat /etc/ovirt-hosted-engine/hosted-engine.conf")[1]
        state = lab35.state()
        assert {n: (h["live"], h["score"] > 0) for n, h in state["hosts"].items()} == {
            "he1.lab.local": (True, True), "he2.lab.local": (True, True)}
        joined = run.steps.get(key="hosts.he1.lab.local.joined")
        assert list(joined.output.values_list("text", flat=True))[-1] == \
            "vm-status for he1.lab.local (up-to-date, score): False 0 True 2400 "  # its old block: stale
        deploy = run.steps.get(key="hosts.he2.lab.local.deploy")
        assert "[ INFO  ] Installing on additional host" in deploy.output.values_list("text", flat=True)
        assert not deploy.output.filter(text__contains="secret").exists()


def blank_host(lab, host):
    """``host`` as a machine new to hosted engine: out of the engine (maintenance, Remove),
    reinstalled, and its old block cleaned off the whiteboard from another host."""
    old_id = next(h["host_id"] for h in lab.manifest["hosts"] if h["name"] == host)
    lab.admin("host-maintenance", host=host)
    until(f"{host} removed from the engine", lambda: lab.admin("remove-host", host=host))
    reinstall(lab, host, lab.manifest["hosts"][0]["os"])
    status, out = lab_shell(lab, "he1", f"hosted-engine --clean-metadata --host-id={old_id} --force-cleanup")
    assert status == 0 and "Cleaning the metadata block!" in out, out


def new_host_entry(lab, host):
    """The host as an admin adds a new one: its address and its reviewed key, no HE id yet."""
    entry = dict(next(h for h in lab.manifest["hosts"] if h["name"] == host))
    del entry["host_id"]
    return entry


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.lab(engine_version="3.6")
def test_deploy_host_on_3_6_runs_hosted_engine_deploy_with_its_answer_file(
        rq_worker, ha_poller, fresh_lab, tmp_path, make_user):
    blank_host(fresh_lab, "he3.lab.local")
    cluster = import_lab(fresh_lab, tmp_path, "Lab36", hosts=["he1.lab.local", "he2.lab.local"])
    services.import_cluster(name="Lab36", engine=None, password_file=None,
                            hosts=[new_host_entry(fresh_lab, "he3.lab.local")])
    released_cluster(cluster, "3.6")
    operator = make_user("operator")
    run = services.start_run(cluster=cluster, slug="deploy-host", user=operator, acknowledge=False,
                             params={"host": "he3.lab.local", "storage": STORAGE, "gateway": "192.168.122.1"})
    assert {c["check"]: c["level"] for c in run.preflight["plan"]} == {
        "ha-fresh": "ok", "no-other-active-run": "ok", "host-key-pinned": "ok", "not-deployed": "ok",
        "engine-vm-running": "ok"}
    # The deploy fails once: the run stops there, the password file stays, a retry completes it.
    fresh_lab.fault("fail-next-command", host="he3.lab.local", pattern="hosted-engine --deploy")
    people = drive(run, lambda step: write_password(fresh_lab, "he3.lab.local"), timeout=600)
    assert people == ["password"]
    deploy = run.steps.get(key="deploy")
    assert (run.status, deploy.status, deploy.rerun_safe) == (RunStatus.FAILED, "failed", False), failure(run)
    assert lab_shell(fresh_lab, "he3", "test -s /root/he-deploy-password.conf")[0] == 0
    services.retry_step(step=deploy, user=operator)
    drive(run, lambda step: pytest.fail(f"asked again: {step.key}"), timeout=600)
    assert run.status == RunStatus.SUCCEEDED, failure(run)
    assert lab_shell(fresh_lab, "he3", "test -e /root/he-deploy-password.conf")[0] == 1
    answers = run.steps.get(key="answers")
    assert "OVEHOSTED_STORAGE/hostID=int:3" in answers.output.values_list("text", flat=True)
    assert "host_id=3" in lab_shell(fresh_lab, "he3", "cat /etc/ovirt-hosted-engine/hosted-engine.conf")[1]
    status = lab_shell(fresh_lab, "he1", "hosted-engine --vm-status")[1]
    assert "Hostname                           : he3.lab.local" in status.split("--== Host 3 status ==--")[1]
    # the poller now sees the new host live, matched by its name
    until("the portal sees he3 live", lambda: cluster.hosts.get(name="he3.lab.local").ha_live, timeout=60)


@pytest.mark.slow
@pytest.mark.lab(engine_version="4.5")
def test_the_engine_api_removes_a_host_and_adds_it_back_with_hosted_engine_deploy(fresh_lab):
    """What deploy-host and host-os-upgrade ask the engine for on 4.x (real ovirtsdk4)."""
    from tests.test_engine_api import client_for

    with client_for(fresh_lab) as client:
        client.deactivate_host("he3.lab.local")
        client.wait_for_host_status("he3.lab.local", "maintenance", 60)
        client.remove_host("he3.lab.local")
        assert "he3.lab.local" not in [h.name for h in client.list_hosts()]
        reinstall(fresh_lab, "he3.lab.local", "el9")
        assert lab_shell(fresh_lab, "he1", "hosted-engine --clean-metadata --host-id=3 --force-cleanup")[0] == 0
        assert lab_shell(fresh_lab, "he3", "yum install -y "
                                           "http://resources.ovirt.org/pub/yum-repo/ovirt-release45.rpm")[0] == 0
        added = client.add_host("he3.lab.local", "he3.lab.local", "Default", deploy_hosted_engine=True)
        assert (added.name, added.status) == ("he3.lab.local", "installing")
        client.wait_for_host_status("he3.lab.local", "up", 120)
    until("he3's agent live", lambda: fresh_lab.state()["hosts"]["he3.lab.local"]["live"], timeout=60)
    assert "host_id=3" in lab_shell(fresh_lab, "he3", "cat /etc/ovirt-hosted-engine/hosted-engine.conf")[1]


@pytest.mark.django_db
def test_the_launch_pages_show_the_answer_file_the_password_step_and_the_notes(client, make_user):
    from django.utils import timezone

    cluster = cluster_of("3.5", ["he1.lab.local", "he2.lab.local", "he3.lab.local"], **{"he3.lab.local": None})
    now = timezone.now()
    cluster.hosts.exclude(name="he3.lab.local").update(ha_live=True, ha_score=2400, ha_state="EngineDown",
                                                        ha_seen_at=now)
    cluster.hosts.filter(name="he1.lab.local").update(engine_vm_here=True, ha_state="EngineUp")
    type(cluster).objects.filter(pk=cluster.pk).update(polled_at=now, maintenance_mode="none")
    client.force_login(make_user("operator"))
    page = client.get(f"/clusters/{cluster.pk}/runbooks/deploy-host/",
                      {"host": "he3.lab.local", "storage": STORAGE, "gateway": "192.168.122.1"}).content.decode()
    assert "&#x27;OVEHOSTED_STORAGE/hostID=int:3&#x27;" in page
    assert "read -rsp &#x27;admin@internal password: &#x27; p" in page
    assert "hosted-engine --deploy on he3.lab.local as an additional host with host id 3" in page
    page = client.get(f"/clusters/{cluster.pk}/runbooks/host-os-upgrade/",
                      {"storage": STORAGE, "gateway": "192.168.122.1"}).content.decode()
    assert "oVirt 3.5: el6 -&gt; el7, one host at a time" in page
    assert "Create the cluster el7 in the web admin" in page
    assert "Not a hosted-engine host, left alone: he3.lab.local." in page
    assert "Reinstall he3.lab.local" not in page
