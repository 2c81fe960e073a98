"""Plain commands on a lab host over real SSH: real bash and coreutils on the host's own disk."""

import time

import paramiko
import pytest


def test_it_runs_simple_commands_with_real_exit_codes(ssh):
    assert ssh("he1", "hostname").out == "he1.lab.local\n"
    assert ssh("he2", "true").rc == 0
    assert ssh("he2", "false").rc == 1


def test_it_reports_unknown_commands_as_not_found(ssh):
    result = ssh("he1", "frobnicate --now")
    assert result.rc == 127
    assert result.err == "bash: frobnicate: command not found\n"


def test_it_knows_the_os_release(ssh):
    assert ssh("he1", "cat /etc/redhat-release").out == "CentOS Linux release 7.2.1511 (Core)\n"
    assert "3.10.0-327.el7.x86_64" in ssh("he1", "uname -a").out
    assert " up " in ssh("he1", "uptime").out


def test_it_chains_with_and_or_and_semicolons(ssh):
    assert ssh("he1", "false && echo no; echo yes").out == "yes\n"
    assert ssh("he1", "false || echo rescued").out == "rescued\n"
    assert ssh("he1", "true && echo a && false || echo b").out == "a\nb\n"


def test_it_keeps_quoted_arguments_together(ssh):
    assert ssh("he1", "echo 'a;b'   \"c  d\"").out == "a;b c  d\n"


def test_it_runs_for_loops_and_pipes(ssh):
    result = ssh("he1", "for i in 1 2 3; do echo $i; sleep 1; done")
    assert result.out == "1\n2\n3\n"
    assert ssh("he1", "for i in a b c; do echo $i; done | grep -v b").out == "a\nc\n"


def test_it_redirects_stderr_and_writes_files(ssh):
    assert ssh("he1", "cat /nope 2>&1").out == "cat: /nope: No such file or directory\n"
    assert ssh("he1", "cat /nope 2>/dev/null").err == ""
    ssh("he1", "echo hello > /tmp/x && echo again >> /tmp/x")
    assert ssh("he1", "cat /tmp/x").out == "hello\nagain\n"
    assert ssh("he1", "echo '$HOME' \"$HOME\" $HOME").out == "$HOME /root /root\n"
    to_err = ssh("he1", "echo oops >&2; echo fine")
    assert (to_err.out, to_err.err) == ("fine\n", "oops\n")


def test_seq_and_date_behave_as_coreutils(ssh):
    assert ssh("he1", "seq 3").out == "1\n2\n3\n"
    assert ssh("he1", "seq 2 2 7").out == "2\n4\n6\n"
    bad = ssh("he1", "seq x")
    assert bad.rc == 1 and bad.err.startswith("seq: invalid floating point argument: ")
    seconds, nanos = ssh("he1", "date +%s.%N").out.strip().split(".")
    assert seconds.isdigit() and len(nanos) == 9


def test_it_writes_files_from_a_here_document(ssh):
    ssh("he2", "cat > /etc/motd <<EOF\nline one\nline two\nEOF")
    assert ssh("he2", "cat /etc/motd").out == "line one\nline two\n"
    # he1 has its own filesystem
    assert ssh("he1", "cat /etc/motd").rc == 1


def test_it_reports_syntax_errors(ssh):
    result = ssh("he1", "echo 'unterminated")
    assert result.rc == 2
    assert "unexpected EOF while looking for matching" in result.err


def test_it_reads_stdin(ssh):
    assert ssh("he1", "cat", stdin="piped\n").out == "piped\n"
    assert ssh("he1", "grep -c x", stdin="x\ny\nxx\n").out == "2\n"


def test_it_lists_the_repo_directory(ssh):
    listing = ssh("he1", "ls /etc/yum.repos.d").out.split()
    assert "CentOS-Base.repo" in listing
    assert "ovirt-4.3.repo" in listing


def test_it_streams_output_while_the_command_runs(lab):
    client = lab.connect("he1")
    try:
        channel = client.get_transport().open_session()
        # 2 simulated minutes: long enough to see the first line well before the end
        channel.exec_command("echo first; sleep 120; echo last")
        channel.settimeout(10)
        assert channel.recv(100) == b"first\n"
        assert not channel.exit_status_ready()
        assert channel.recv_exit_status() == 0
    finally:
        client.close()


def test_it_offers_a_login_shell(lab):
    client = lab.connect("he3")
    try:
        channel = client.invoke_shell()
        channel.settimeout(10)
        channel.send(b"hostname\nexit\n")
        data = b""
        while not channel.exit_status_ready() or channel.recv_ready():
            chunk = channel.recv(1000)
            if not chunk:
                break
            data += chunk
        assert b"[root@he3 ~]# " in data
        assert b"he3.lab.local" in data
    finally:
        client.close()


def test_it_accepts_only_root_with_the_lab_key(lab, tmp_path):
    entry = lab.host("he1")
    client = paramiko.SSHClient()
    client.load_host_keys(lab.known_hosts_file())
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(entry["address"], entry["port"], username="admin",
                       key_filename=lab.manifest["ssh_key"], allow_agent=False,
                       look_for_keys=False, timeout=5)
    stranger = paramiko.RSAKey.generate(2048)
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(entry["address"], entry["port"], username="root", pkey=stranger,
                       allow_agent=False, look_for_keys=False, timeout=5)


def test_it_presents_the_host_key_from_the_manifest(lab):
    entry = lab.host("he2")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    # no known_hosts loaded: RejectPolicy must refuse the unknown key
    with pytest.raises(paramiko.SSHException):
        client.connect(entry["address"], entry["port"], username="root",
                       key_filename=lab.manifest["ssh_key"], allow_agent=False,
                       look_for_keys=False, timeout=5)
    host_key = lab.connect("he2").get_transport().get_remote_server_key()
    assert entry["known_hosts"].split()[2] == host_key.get_base64()


def test_it_is_real_bash(ssh):
    """What the small shell the lab used to have could not do."""
    script = r'''# a comment
FILES=" /etc/redhat-release"
FILES+=" /etc/nonexistent"
for f in $FILES; do
    if [ -e "$f" ]; then echo "have $f"; else echo "no $f"; fi
done
case $(hostname -s) in he*) echo host ;; *) echo other ;; esac
n=0; while [ $n -lt 3 ]; do n=$((n + 1)); [ $n -eq 2 ] && continue; echo "n=$n"; done
echo `echo back` \
    ticks
cd /etc/yum.repos.d && echo *.repo && cd - >/dev/null
export X=1; bash -c 'echo "child sees X=$X"'
set -e; false; echo never
'''
    result = ssh("he1", "bash -s", stdin=script)
    assert result.rc == 1
    assert result.out == ("have /etc/redhat-release\nno /etc/nonexistent\nhost\nn=1\nn=3\n"
                          "back ticks\nCentOS-Base.repo ovirt-4.3.repo\nchild sees X=1\n")


def test_it_has_coreutils_and_friends(ssh):
    assert ssh("he2", "cp /etc/hostname /tmp/h && sed 's/he2/x/' /tmp/h").out == "x.lab.local\n"
    assert ssh("he2", "printf 'b 2\\na 1\\n' | sort | awk '{print $2}'").out == "1\n2\n"
    assert ssh("he2", "find /etc/yum.repos.d -name '*.repo' | sort").out == \
        "/etc/yum.repos.d/CentOS-Base.repo\n/etc/yum.repos.d/ovirt-4.3.repo\n"
    assert ssh("he2", "wc -l /etc/hostname").out == "1 /etc/hostname\n"
    assert ssh("he2", "head -c 3 /etc/hostname").out == "he2"
    missing = ssh("he2", "tail /var/log/nothing.log")
    assert missing.rc == 1 and "No such file or directory" in missing.err
    assert ssh("he2", "which hosted-engine yum systemctl").out == \
        "/usr/sbin/hosted-engine\n/usr/bin/yum\n/usr/bin/systemctl\n"


def test_globs_and_rm_act_on_the_host_disk(ssh):
    ssh("he3", "mkdir -p /tmp/g && touch /tmp/g/a.ovirt /tmp/g/b.ovirt /tmp/g/c.txt")
    assert ssh("he3", "rm -fR /tmp/g/*ovirt* && ls /tmp/g").out == "c.txt\n"


def test_date_and_sleep_follow_the_scaled_clock(lab, ssh):
    start = time.monotonic()
    result = ssh("he1", "date +%s; sleep 60; date +%s; /usr/bin/sleep 30; command date +%s")
    elapsed = time.monotonic() - start
    first, second, third = map(int, result.out.split())
    assert 60 <= second - first <= 75 and 30 <= third - second <= 45
    assert elapsed < 90 / lab.speed + 2  # 90 simulated seconds in 1.5 real ones
    assert ssh("he1", "date -u +%Z").out == "UTC\n"


def test_sh_is_bash_as_on_el(ssh):
    assert ssh("he1", "sh -c 'echo ${BASH_VERSION:+bash}'").out == "bash\n"
    assert ssh("he1", "printf '#!/bin/sh\\n[[ -n x ]] && echo ok\\n' > /tmp/s && "
                      "chmod +x /tmp/s && /tmp/s").out == "ok\n"
