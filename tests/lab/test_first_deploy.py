"""First-host `hosted-engine --deploy` on an `--undeployed` lab, as in the howto, and
"Restarting from a partially deployed system" with `--config-append`."""

import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from conftest import SPEED, Shell, engine_request
from lab.launcher import start_lab

STORAGE = "nfs.lab.local:/exports/he-new"
ANSWERS_DIR = "/var/lib/ovirt-hosted-engine-setup/answers"
PASSWORD = "first-host-pw"


class Conversation:
    """An interactive command on a real SSH channel: wait for a prompt, then answer it."""

    def __init__(self, client, command):
        self.channel = client.get_transport().open_session()
        self.channel.settimeout(0.1)
        self.channel.exec_command(command)
        self.out = ""
        self.seen = 0

    def _read(self):
        try:
            data = self.channel.recv(65536)
        except socket.timeout:
            return True
        self.out += data.decode()
        return bool(data)

    def expect(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while (pos := self.out.find(text, self.seen)) < 0:
            if time.monotonic() > deadline or not self._read():
                raise AssertionError(f"{text!r} never came; output:\n{self.out[-3000:]}")
        self.seen = pos + len(text)

    def answer(self, prompt, line, timeout=30):
        self.expect(prompt, timeout)
        self.channel.sendall(line + "\n")

    def finish(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self._read():
            assert time.monotonic() < deadline, self.out[-3000:]
        err = b""
        while self.channel.recv_stderr_ready():
            err += self.channel.recv_stderr(65536)
        return self.channel.recv_exit_status(), self.out, err.decode()


@pytest.fixture
def undeployed(tmp_path):
    """3.6: the howto's deploy, where additional hosts still join by the CLI."""
    with start_lab(tmp_path / "lab", hosts=2, speed=SPEED, undeployed=True,
                   engine_version="3.6") as running:
        shell = Shell(running)
        yield running, shell
        shell.close()


def health(lab):
    """(status, body) of the engine's health page, over HTTPS with the manifest's CA."""
    url = lab.manifest["engine"]["url"].replace("/api", "/services/health")
    context = ssl.create_default_context(cafile=lab.manifest["engine"]["ca_file"])
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def install_setup(ssh, host):
    result = ssh(host, "yum install -y ovirt-hosted-engine-setup")
    assert result.rc == 0, result.err


def start_deploy(lab, host, extra=""):
    client = lab.connect(host)
    return client, Conversation(client, f"hosted-engine --deploy {extra}".strip())


def answer_first_host(talk):
    """Every question of a fresh first-host deployment, up to "Creating VM"."""
    talk.answer("Are you sure you want to continue? (Yes, No)[Yes]: ", "")
    talk.answer("(glusterfs, iscsi, fc, nfs3, nfs4)[nfs3]: ", "nfs3")
    talk.answer("(example: host:/path): ", STORAGE)
    talk.answer("Please indicate a nic to set ovirtmgmt bridge on: (eth0) [eth0]: ", "")
    talk.answer("Please indicate a pingable gateway IP address [192.168.122.1]: ", "")
    talk.answer("Please specify the device to boot the VM from (cdrom, disk, pxe)[cdrom]: ", "")
    talk.answer("Please specify path to installation media you would like to use [None]: ",
                "/tmp/CentOS-7-x86_64-Minimal.iso")
    talk.answer("memory size of the VM in MB [Defaults to minimum requirement: 4096]: ", "2048")
    talk.expect("[ ERROR ] Minimum requirements not met")
    talk.answer("[Defaults to minimum requirement: 4096]: ", "")
    talk.answer("number of virtual CPUs for the VM [Defaults to minimum requirement: 2]: ", "4")
    talk.answer("Administrator Portal [hosted_engine_1]: ", "")
    talk.answer("Enter 'admin@internal' user password that will be used for accessing the "
                "Administrator Portal: ", PASSWORD)
    talk.answer("Confirm 'admin@internal' user password: ", PASSWORD)
    talk.answer("Engine FQDN: ", "nowhere.example.com")
    talk.expect("Host name is not valid: nowhere.example.com did not resolve")
    talk.answer("Engine FQDN: ", "engine.lab.local")
    talk.answer("Please confirm installation settings (Yes, No)[Yes]: ", "")


def set_up_engine(lab, ssh):
    """The admin's part inside the VM: `yum install ovirt-engine` and `engine-setup`."""
    lab.wait_for(lambda s: s["engine_vm"]["status"] == "up", sim_seconds=120)
    result = ssh("engine", "yum install -y ovirt-engine")
    assert result.rc == 0, result.err
    # FQDN (default), engine admin password twice, confirm
    result = ssh("engine", "engine-setup", stdin=f"\n{PASSWORD}\n{PASSWORD}\n\n", timeout=120)
    assert result.rc == 0, result.out + result.err
    assert "https://engine.lab.local:443/ovirt-engine" in result.out


def test_it_deploys_the_first_host_then_an_additional_one(undeployed):
    lab, ssh = undeployed
    assert ssh("he1", "hosted-engine --deploy").rc == 127  # not installed yet
    assert health(lab)[0] == 503  # no engine anywhere
    install_setup(ssh, "he1")
    client, talk = start_deploy(lab, "he1")
    answer_first_host(talk)
    talk.expect("[ INFO  ] Creating VM")
    talk.expect("Please install the OS on the VM.")
    talk.expect("When the installation is completed reboot or shutdown the VM: "
                "the system will wait until then")
    assert "Is this an additional host setup" not in talk.out  # empty storage
    # the VM runs from the CD-ROM: no OS yet, so nothing answers SSH
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((lab.host("engine")["address"], lab.host("engine")["port"]), 2)
    talk.answer("Has the OS installation been completed successfully? (Yes, No)[Yes]? ", "Yes")
    talk.expect("Please install the engine in the VM, hit enter when finished.")
    set_up_engine(lab, ssh)
    talk.channel.sendall("\n")
    rc, out, err = talk.finish(timeout=60)
    client.close()
    assert rc == 0, out + err
    assert "[ INFO  ] Engine replied: DB Up!Welcome to Health Status!" in out
    assert "Hosted Engine successfully set up" in out
    conf = ssh("he1", "cat /etc/ovirt-hosted-engine/hosted-engine.conf").out
    assert f"storage={STORAGE}" in conf and "host_id=1" in conf

    lab.wait_for(lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUp"
                 and s["hosts"]["he1.lab.local"]["score"] == 3400, sim_seconds=300)
    status = ssh("he1", "hosted-engine --vm-status")
    assert "--== Host 1 status ==--" in status.out  # setup 1.3's header
    assert "Score                              : 3400" in status.out
    assert "state=EngineUp" in status.out
    # engine-setup set the admin password: the API takes it, the manifest says so
    assert lab.reload_manifest()["engine"]["password"] == PASSWORD
    # a 3.6 engine speaks API v3 only, with basic auth (what the web admin uses)
    status, text = engine_request(lab, "GET", "/hosts")
    assert status == 200 and re.findall(r"<name>([^<]+)</name>", text) == ["he1.lab.local"]

    # he2 joins as an additional host on the same storage (the howto's last section)
    install_setup(ssh, "he2")
    answers = "\n".join(["", "", STORAGE, "yes", "", "", "", "", PASSWORD, PASSWORD, "", ""])
    result = ssh("he2", "hosted-engine --deploy", stdin=answers + "\n", timeout=120)
    assert result.rc == 0, result.out + result.err
    assert "Is this an additional host setup (Yes, No)[Yes]? " in result.out
    assert "Please specify the Host ID [Must be integer, default: 2]: " in result.out
    lab.wait_for(lambda s: s["hosts"]["he2.lab.local"]["agent_state"] == "EngineDown"
                 and s["hosts"]["he2.lab.local"]["live"], sim_seconds=200)
    plain = ssh("he1", "hosted-engine --vm-status").out  # no --json before setup 2.0
    blocks = plain.split("--== Host ")
    assert "Hostname                           : he2.lab.local" in blocks[2]
    assert '"health": "good"' in blocks[1]


def newest_answers(ssh, host):
    listing = ssh(host, f"ls {ANSWERS_DIR}").out.split()
    assert listing, "no answer file written"
    return f"{ANSWERS_DIR}/{sorted(listing)[-1]}"


def test_an_interrupted_deploy_resumes_with_its_answer_file(tmp_path):
    state_dir = tmp_path / "lab"
    with start_lab(state_dir, hosts=1, speed=SPEED, undeployed=True) as lab:
        ssh = Shell(lab)
        install_setup(ssh, "he1")
        client, talk = start_deploy(lab, "he1")
        answer_first_host(talk)
        talk.expect("Has the OS installation been completed successfully? (Yes, No)[Yes]? ")
        client.close()  # the admin's SSH session drops mid-deploy
        deadline = time.monotonic() + 10
        while not ssh("he1", f"ls {ANSWERS_DIR}").out and time.monotonic() < deadline:
            time.sleep(0.1)
        first = newest_answers(ssh, "he1")
        ssh.close()
    # the partial state (VM on the storage) survives a lab restart from its state dir
    with start_lab(state_dir, speed=SPEED) as lab:
        ssh = Shell(lab)
        assert lab.state()["deploying"] == "he1.lab.local"
        saved = ssh("he1", f"cat {first}").out
        assert f"OVEHOSTED_STORAGE/storageDomainConnection=str:{STORAGE}" in saved
        assert "OVEHOSTED_VM/vmMemSizeMB=str:4096" in saved

        # resume, continue, but hit enter before installing the engine: polling fails
        client, talk = start_deploy(lab, "he1", f"--config-append={first}")
        talk.expect("(1) Continue setup - VM installation is complete", timeout=60)
        talk.expect("(4) Destroy VM and abort setup")
        talk.answer("(1, 2, 3, 4)[1]: ", "1")
        talk.answer("Please install the engine in the VM, hit enter when finished.", "")
        talk.expect("Engine health status page is not yet reachable.")
        talk.answer("Do you want to check again or to abort? (Check, Abort)[Check]: ", "Abort")
        rc, out, err = talk.finish()
        client.close()
        assert rc == 1
        assert "Engine polling aborted by user" in err
        assert "Please specify" not in out  # every answer came from the file
        second = newest_answers(ssh, "he1")
        assert second != first

        # resume again from the newer file: this time the engine gets installed
        client, talk = start_deploy(lab, "he1", f"--config-append={second}")
        talk.answer("(1, 2, 3, 4)[1]: ", "", timeout=60)
        talk.expect("Please install the engine in the VM, hit enter when finished.")
        set_up_engine(lab, ssh)
        talk.channel.sendall("\n")
        rc, out, err = talk.finish()
        client.close()
        assert rc == 0, out + err
        assert "Hosted Engine successfully set up" in out
        state = lab.wait_for(lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineUp"
                             and s, sim_seconds=300)
        assert state["deploying"] is None and state["engine_vm"]["healthy"]
        ssh.close()


def test_it_reports_a_missing_answer_file_and_writes_one_on_end_of_input(undeployed):
    lab, ssh = undeployed
    assert ssh("he1", "hosted-engine --vm-status").err == "bash: hosted-engine: command not found\n"
    install_setup(ssh, "he1")
    result = ssh("he1", "hosted-engine --deploy --config-append=/root/missing.conf")
    assert result.rc == 1
    assert ("[ ERROR ] Failed to execute stage 'Initializing': [Errno 2] No such file or "
            "directory: '/root/missing.conf'") in result.err
    assert ssh("he1", "hosted-engine --vm-status").out == "You must run deploy first\n"
    result = ssh("he1", "hosted-engine --deploy", stdin="yes\nnfs3\n")
    assert result.rc == 1
    assert "End of file" in result.err
    assert "OVEHOSTED_STORAGE/domainType=str:nfs3" in ssh("he1", f"cat {newest_answers(ssh, 'he1')}").out
    assert lab.state()["he_storage"] is None  # nothing was created
