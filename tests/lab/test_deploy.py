"""`hosted-engine --deploy` of an additional host, as in the howto's el7 reinstall steps:
setup 1.3 (oVirt 3.6), the last to deploy additional hosts from the command line."""

import re

import pytest

from conftest import SPEED, engine_host_id, engine_request, reinstall
from lab.launcher import start_lab

STORAGE = "nfs.lab.local:/exports/hosted-engine"


@pytest.fixture
def fresh_lab(tmp_path):
    with start_lab(tmp_path / "lab", hosts=3, speed=SPEED, engine_version="3.6") as running:
        yield running


@pytest.fixture
def reinstalled(fresh_lab, fresh_ssh):
    """he3 reinstalled as a bare el7 host with the oVirt repo and setup package added, and
    removed from the engine (the web admin's Remove)."""
    reinstall(fresh_lab, fresh_ssh, "he3")
    status, text = engine_request(fresh_lab, "DELETE", f"/hosts/{engine_host_id(fresh_lab, 'he3.lab.local')}")
    assert status == 200, text
    release = "http://resources.ovirt.org/pub/yum-repo/ovirt-release36.rpm"
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
        "2",                # he2's: known, so a re-deployment?
        "No",               # no: the deploy stops
    ]) + "\n"
    result = fresh_ssh("he3", "hosted-engine --deploy", stdin=answers, timeout=120)
    assert result.rc == 1
    assert "[ ERROR ] Cannot use the same ID used by first host" in result.out
    assert "Is this a re-deployment on an additional host that was previously set up" in result.out
    assert "Invalid value for Host ID: already used" in result.err
    answers = "\n".join([
        "", "", STORAGE, "yes",
        "4",                # a new id
        "",                 # nic
        "",                 # gateway
        "",                 # app host name
        "secret", "secret",  # admin password + confirm
        "el7",              # not one of the engine's clusters
        "",                 # Default
        "",                 # confirm settings
    ]) + "\n"
    result = fresh_ssh("he3", "hosted-engine --deploy", stdin=answers, timeout=120)
    assert result.rc == 0, result.out + result.err
    out = result.out
    assert "Is this an additional host setup (Yes, No)[Yes]? " in out
    assert "[ INFO  ] Installing on additional host" in out
    assert "Please specify the Host ID [Must be integer, default: 2]: " in out
    assert "add the host (Default) [Default]: " in out
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
    status = fresh_ssh("he1", "hosted-engine --vm-status").out  # 1.3: plain only
    block = status.split("--== Host 4 status ==--")[1]
    assert "Hostname                           : he3.lab.local" in block


def test_it_takes_answers_from_a_config_append_file(reinstalled, fresh_ssh):
    answers = ("[environment:default]\n"
               "OVEHOSTED_CORE/deployProceed=bool:True\n"
               "OVEHOSTED_STORAGE/domainType=str:nfs3\n"
               f"OVEHOSTED_STORAGE/storageDomainConnection=str:{STORAGE}\n"
               "OVEHOSTED_CORE/isAdditionalHost=bool:True\n"
               "OVEHOSTED_STORAGE/hostID=int:3\n"
               "OVEHOSTED_CORE/additionalHostReDeployment=bool:True\n"
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
    # re-using its own old id 3 is a re-deployment (answered in the file)
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
    assert (result.rc, result.out) == (1, "You must run deploy first\n")
