"""`hosted-engine --deploy` of an additional host, as in the howto's el7 reinstall steps."""

import re

import pytest

STORAGE = "nfs.lab.local:/exports/hosted-engine"


@pytest.fixture
def reinstalled(fresh_lab, fresh_ssh):
    """he3 reinstalled as a bare el7 host with the oVirt repo and setup package added."""
    fresh_lab.fault("reinstall-host", host="he3", os="el7")
    fresh_lab.wait_for(lambda s: s["hosts"]["he3.lab.local"]["power"] == "on", sim_seconds=90)
    fresh_ssh.clients.pop("he3", None)
    for _ in range(50):
        try:
            fresh_ssh("he3", "true")
            break
        except Exception:
            fresh_ssh.clients.pop("he3", None)
    release = "http://resources.ovirt.org/pub/yum-repo/ovirt-release45.rpm"
    assert fresh_ssh("he3", f"yum install -y {release}").rc == 0
    install = fresh_ssh("he3", "yum install -y ovirt-hosted-engine-setup")
    assert install.rc == 0, install.err
    assert "vdsm" in install.out  # dependencies come along
    return fresh_lab


def test_it_deploys_an_additional_host_interactively(reinstalled, fresh_ssh):
    answers = "\n".join([
        "",                 # continue? [Yes]
        "",                 # storage type [nfs3]
        STORAGE,            # storage path -> additional host detected
        "yes",              # additional host setup
        "1",                # host id 1: refused
        "2",                # taken by he2: refused
        "",                 # default free id
        "",                 # nic
        "",                 # gateway
        "",                 # app host name
        "secret", "secret",  # admin password + confirm
        "el7",              # cluster
        "",                 # confirm settings
    ]) + "\n"
    result = fresh_ssh("he3", "hosted-engine --deploy", stdin=answers, timeout=120)
    assert result.rc == 0, result.out + result.err
    out = result.out
    assert "Is this an additional host setup (Yes, No)[Yes]? " in out
    assert "[ INFO  ] Installing on additional host" in out
    assert "[ ERROR ] Cannot use the same ID used by first host" in out
    assert "[ ERROR ] Invalid value for Host ID: 2 is already in use" in out
    assert "Please specify the Host ID [Must be integer, default: 4]: " in out
    assert "Hosted Engine successfully set up" in out
    path = re.search(r"Generating answer file '(/var/lib/ovirt-hosted-engine-setup/answers/"
                     r"answers-\d{14}\.conf)'", out).group(1)
    saved = fresh_ssh("he3", f"cat {path}").out
    assert saved.startswith("[environment:default]\n")
    assert "OVEHOSTED_STORAGE/hostID=int:4" in saved
    assert f"OVEHOSTED_STORAGE/storageDomainConnection=str:{STORAGE}" in saved
    assert "host_id=4" in fresh_ssh("he3", "cat /etc/ovirt-hosted-engine/hosted-engine.conf").out
    # the new agent publishes as host 4
    reinstalled.wait_for(lambda s: s["hosts"]["he3.lab.local"]["agent_state"] == "EngineDown"
                         and s["hosts"]["he3.lab.local"]["live"], sim_seconds=120)
    status = fresh_ssh("he1", "hosted-engine --vm-status --json").json
    assert status["4"]["hostname"] == "he3.lab.local"


def test_it_takes_answers_from_a_config_append_file(reinstalled, fresh_ssh):
    answers = ("[environment:default]\n"
               "OVEHOSTED_CORE/deployProceed=bool:True\n"
               "OVEHOSTED_STORAGE/domainType=str:nfs3\n"
               f"OVEHOSTED_STORAGE/storageDomainConnection=str:{STORAGE}\n"
               "OVEHOSTED_CORE/isAdditionalHost=bool:True\n"
               "OVEHOSTED_STORAGE/hostID=int:3\n"
               "OVEHOSTED_NETWORK/bridgeIf=str:eth0\n"
               "OVEHOSTED_NETWORK/gateway=str:192.168.122.1\n"
               "OVEHOSTED_ENGINE/appHostName=str:hosted_engine_3\n"
               "OVEHOSTED_ENGINE/adminPassword=str:secret\n"
               "OVEHOSTED_ENGINE/clusterName=str:Default\n"
               "OVEHOSTED_CORE/confirmSettings=bool:True\n")
    fresh_ssh("he3", "cat > /root/answers.conf <<EOF\n" + answers + "EOF")
    result = fresh_ssh("he3", "hosted-engine --deploy --config-append=/root/answers.conf")
    assert result.rc == 0, result.out + result.err
    assert "Please specify" not in result.out  # nothing was asked
    # re-using its own old id 3 is fine (only id 1 is refused)
    assert "host_id=3" in fresh_ssh("he3", "cat /etc/ovirt-hosted-engine/hosted-engine.conf").out


def test_it_refuses_host_id_1_from_an_answer_file_and_fails_without_input(reinstalled, fresh_ssh):
    fresh_ssh("he3", "cat > /root/a.conf <<EOF\n[environment:default]\n"
                     "OVEHOSTED_CORE/deployProceed=bool:True\n"
                     f"OVEHOSTED_STORAGE/storageDomainConnection=str:{STORAGE}\n"
                     "OVEHOSTED_STORAGE/domainType=str:nfs3\n"
                     "OVEHOSTED_CORE/isAdditionalHost=bool:True\n"
                     "OVEHOSTED_STORAGE/hostID=int:1\nEOF")
    result = fresh_ssh("he3", "hosted-engine --deploy --config-append=/root/a.conf")
    assert result.rc == 1
    assert "[ ERROR ] Cannot use the same ID used by first host" in result.out
    assert "End of file" in result.err


def test_it_needs_the_existing_storage(reinstalled, fresh_ssh):
    result = fresh_ssh("he3", "hosted-engine --deploy", stdin="yes\nnfs3\nother:/path\n")
    assert result.rc == 1
    assert "Hosted Engine deployment failed" in result.err


def test_commands_other_than_deploy_need_a_deployed_host(reinstalled, fresh_ssh):
    result = fresh_ssh("he3", "hosted-engine --vm-status")
    assert (result.rc, result.err) == (1, "You must run deploy first\n")
