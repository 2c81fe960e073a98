"""Steps shared by ``deploy-host`` and ``host-os-upgrade``: deploying one more
hosted-engine host, the way the cluster's release does it.

- setup 1.x (oVirt 3.5, 3.6; 2.0 too): ``hosted-engine --deploy`` on the host as an
  additional host, answered by an otopi answer file the plan shows in full (host id
  >= 2, never 1: setup refuses it even for the reinstalled first host; the cluster's
  storage path). The admin@internal password, which setup 1.x asks for to add the
  host to the engine, is written on the host by a person into a file of its own:
  the portal never holds it, so it is in no command, plan or log.
- setup 2.1 and later (oVirt 4.1+) refuse additional hosts from the command line
  ("not allowed anymore"): the engine adds the host with hosted-engine deploy
  (``hosts.add(..., deploy_hosted_engine=True)``), which installs the packages from
  the host's repos and assigns the host id itself.

Either way the last step waits until vm-status, read on the new host, lists it (by
its own host name) live with a positive score: its agent has joined.

Per-host values that are not parameters (host ids, the host name in titles and
``on``) are put into the step templates when the plan is made; ``literal`` escapes
braces so they are never read as template fields. Host names never go into a
command: the commands that need the name ask the host (``$(hostname)``).
"""
from .base import Check, Engine, Manual, Param, Ssh, Wait

# The oVirt release rpm that adds a release's repos (the lab's catalog and resources.ovirt.org).
RELEASE_RPM = "http://resources.ovirt.org/pub/yum-repo/ovirt-release{}{}.rpm"
# ovirt-hosted-engine-setup series per release, for the releases that deploy from the CLI.
SETUP_SERIES = {(3, 5): "1.2", (3, 6): "1.3", (4, 0): "2.0"}
# The host OS releases each oVirt release installs on (ovirt-releases.md).
RELEASE_OS = {(3, 5): ("el6", "el7"), (3, 6): ("el7",), (4, 0): ("el7",), (4, 1): ("el7",), (4, 2): ("el7",),
              (4, 3): ("el7",), (4, 4): ("el8",), (4, 5): ("el8", "el9")}
ANSWERS = "/root/he-deploy-answers.conf"
PASSWORD_FILE = "/root/he-deploy-password.conf"
JOIN_TRIES = 90  # vm-status read every 10 s: 15 minutes for the new agent to publish

PARAMS = (
    Param("storage", "Hosted-engine storage", pattern=r"[A-Za-z0-9._-]+:/[A-Za-z0-9._/-]*",
          pattern_help="host:/path, as in storage= of /etc/ovirt-hosted-engine/hosted-engine.conf",
          required=False,
          help="setup 1.x (oVirt 3.5/3.6): the storage path of the cluster's hosted-engine setup (the same "
               "as on the first host), checked on a deployed host before the deploy."),
    Param("storage_type", "Storage type", kind="choice", choices=("nfs3", "nfs4", "glusterfs", "iscsi", "fc"),
          default="nfs3", required=False),
    Param("gateway", "Gateway", pattern=r"\d{1,3}(\.\d{1,3}){3}", pattern_help="an IPv4 address",
          required=False, help="setup 1.x: a pingable gateway for the HA agent's network test."),
    Param("nic", "NIC for the ovirtmgmt bridge", pattern=r"[A-Za-z0-9_.:-]{1,15}",
          pattern_help="an interface name such as eth0", default="eth0", required=False),
)


DEFAULTS = {"storage_type": "nfs3", "nic": "eth0"}


def with_defaults(ctx, defaults, release):
    """Fill the optional parameters left empty (a bound form keeps no initial value) and
    check what setup 1.x needs."""
    from ..plan import PlanError  # not at import: upgrades.plan imports the runbook format

    for name, value in defaults.items():
        ctx.params.setdefault(name, value)
    if uses_cli(release):
        missing = [name for name in ("storage", "gateway") if not ctx.params.get(name)]
        if missing:
            raise PlanError(f"setup 1.x (oVirt {release[0]}.{release[1]}) needs {' and '.join(missing)} "
                            "for its answer file.")


def literal(text):
    """Text put into a step template as it is: braces doubled."""
    return str(text).replace("{", "{{").replace("}", "}}")


def uses_cli(release):
    """setup 1.x and 2.0 deploy additional hosts themselves; 2.1+ (oVirt 4.1+) through the engine."""
    return release < (4, 1)


def os_check(key, host, allowed):
    """The host runs one of ``allowed`` (el7, ...): catches a host not (yet) reinstalled."""
    numbers = "|".join(name[2:] for name in allowed)
    return Ssh(key, f"Check that {host} runs {' or '.join(allowed)}", "cat /etc/redhat-release",
               on=host, output_check=rf"release ({numbers})(\.|\s|$)")


def repo_steps(key, host, release):
    """The release's repos (its release rpm), then, for setup 1.x, the setup package of that
    release; the version check catches a host that has another release's repo."""
    rpm = f"ovirt-release{release[0]}{release[1]}"
    steps = [Ssh(f"{key}repo", f"Add the oVirt {release[0]}.{release[1]} repos on {host}",
                 f"rpm -q {rpm} >/dev/null || yum install -y {RELEASE_RPM.format(*release)}",
                 on=host, changes=True)]
    if uses_cli(release):
        series = SETUP_SERIES.get(release, "")
        steps.append(Ssh(
            f"{key}install-setup", f"Install ovirt-hosted-engine-setup on {host}",
            "(rpm -q ovirt-hosted-engine-setup >/dev/null || yum install -y ovirt-hosted-engine-setup) "
            "&& rpm -q ovirt-hosted-engine-setup", on=host, changes=True,
            output_check=rf"^ovirt-hosted-engine-setup-{series.replace('.', r'[.]')}[.]" if series else ""))
    return steps


def deploy_steps(key, host, release, *, host_id=None, redeploy=False, cluster="{target_cluster}",
                 address=None):
    """Deploy ``host`` (a name template: ``{host}`` or a literal name) as an additional HE host.

    ``host_id``: the id for setup 1.x (>= 2); ``redeploy``: it is the host's own old id,
    still on the whiteboard, so setup's re-deployment question is answered yes.
    ``address``: what the engine connects to (4.x), a template like ``{host}``.
    """
    if not uses_cli(release):
        return [
            Engine(f"{key}add-host", f"Add {host} to the engine with hosted-engine deploy",
                   "add_host", {"host": host, "address": address or host, "cluster": cluster,
                                "deploy_hosted_engine": True},
                   rerun_safe=False, timeout=1800, guards=(Check("engine-vm-running"),)),
            joined_step(key, host),
        ]
    if host_id is None or host_id < 2:
        raise ValueError("setup 1.x takes host ids from 2 up")
    lines = ["[environment:default]",
             "OVEHOSTED_CORE/deployProceed=bool:True",
             "'OVEHOSTED_STORAGE/domainType=str:'{storage_type}",
             "'OVEHOSTED_STORAGE/storageDomainConnection=str:'{storage}",
             "OVEHOSTED_CORE/isAdditionalHost=bool:True",
             f"OVEHOSTED_STORAGE/hostID=int:{int(host_id)}"]
    if redeploy:
        lines.append("OVEHOSTED_CORE/additionalHostReDeployment=bool:True")
    lines += ["'OVEHOSTED_NETWORK/bridgeIf=str:'{nic}",
              "'OVEHOSTED_NETWORK/gateway=str:'{gateway}",
              '"OVEHOSTED_ENGINE/appHostName=str:$(hostname)"',
              f"'OVEHOSTED_ENGINE/clusterName=str:'{cluster}",
              "OVEHOSTED_CORE/confirmSettings=bool:True"]
    quoted = " ".join(line if line[0] in "'\"" else f"'{line}'" for line in lines)
    return [
        Ssh(f"{key}same-storage", "Check that {storage} is the cluster's hosted-engine storage",
            "grep -qxF storage={storage} /etc/ovirt-hosted-engine/hosted-engine.conf", on="any"),
        Ssh(f"{key}answers", f"Write the answer file on {host} (host id {int(host_id)})",
            f"umask 077; printf '%s\\n' {quoted} > {ANSWERS} && cat {ANSWERS}", on=host, changes=True),
        Manual(f"{key}password", f"Put the admin@internal password on {host}",
               f"setup 1.x asks for the engine's admin@internal password to add {host} to the engine. "
               "The portal never handles it, so it is in no command, plan or log: on "
               f"{host}, as root, run\n"
               f"  umask 077; read -rsp 'admin@internal password: ' p; "
               f"printf '[environment:default]\\nOVEHOSTED_ENGINE/adminPassword=str:%s\\n' \"$p\" "
               f"> {PASSWORD_FILE}; unset p\n"
               "then confirm. The deploy removes the file when it succeeds."),
        Ssh(f"{key}deploy", f"Deploy {host} as an additional hosted-engine host",
            f"test -s {PASSWORD_FILE} || {{{{ echo 'missing {PASSWORD_FILE}: the admin@internal password "
            "is written there first (the step before)' >&2; exit 1; }}; "
            f"hosted-engine --deploy --config-append={ANSWERS} --config-append={PASSWORD_FILE} "
            f"&& rm -f {PASSWORD_FILE}",
            on=host, changes=True, rerun_safe=False, timeout=3600,
            output_check="Hosted Engine successfully set up", guards=(Check("engine-vm-running"),)),
        joined_step(key, host),
    ]


def joined_step(key, host):
    """Wait, on the new host, until vm-status lists it by its own name live with a score
    (plain text: setup 1.x ignores --json). A leftover stale block of the same name, from
    before a reinstall, does not count."""
    return Ssh(
        f"{key}joined", f"Wait until {host}'s agent shows live in vm-status with a score",
        "me=$(hostname); last=; "
        f"for try in $(seq 1 {JOIN_TRIES}); do "
        "seen=$(hosted-engine --vm-status 2>/dev/null | awk -v me=\"$me\" "
        "'/^--== Host /{{ if (h == me) print up, score; h = \"\"; up = \"\"; score = \"\" }} "
        "/^Hostname /{{ h = $NF }} /^Status up-to-date /{{ up = $NF }} /^Score /{{ score = $NF }} "
        "END {{ if (h == me) print up, score }}'); "
        "if [ \"$seen\" != \"$last\" ]; then echo \"vm-status for $me (up-to-date, score): "
        "${{seen:-not listed yet}}\" | tr '\\n' ' '; echo; last=$seen; fi; "
        "if printf '%s\\n' \"$seen\" | grep -Eq '^True [1-9]'; then exit 0; fi; "
        "sleep 10; done; "
        "echo \"$me does not show live with a score in vm-status\" >&2; exit 1",
        on=host, timeout=3600)


def evacuate_steps(key, host, release):
    """The howto's step 1: the host to maintenance from the engine, then vm-status shows it in
    local maintenance; first, another host must be able to take the engine VM.

    On 3.x a person does it in the web admin. The engine only migrates the engine VM within
    its cluster, and the hosts already moved to the new cluster are not in it; so first the
    host's own HA agent is put in local maintenance, which a 1.x agent accepts on the engine
    VM's host too and answers by migrating the VM away itself (ovirt-releases.md).
    """
    first = Wait(f"{key}other-host", f"Wait until a host other than {host} can run the engine VM",
                 Check("other-engine-host", {"host": host}), timeout=900)
    settle = Wait(f"{key}local-maintenance", f"Wait until {host} shows local maintenance",
                  Check("local-maintenance", {"host": host, "on": True}), timeout=900)
    if release[0] >= 4:
        return [first, Engine(f"{key}maintenance", f"Put {host} into maintenance from the engine",
                              "deactivate_host", {"host": host}, timeout=1800), settle]
    return [
        first,
        Ssh(f"{key}ha-local", f"Set local maintenance on {host} (its agent moves the engine VM away)",
            "hosted-engine --set-maintenance --mode=local", on=host, changes=True,
            guards=(Check("not-last-engine-host", {"host": host}),)),
        Wait(f"{key}vm-elsewhere", f"Wait until the engine VM runs on a host other than {host}",
             Check("engine-vm-up", {"not_on": host}), timeout=900),
        Manual(f"{key}maintenance", f"Put {host} into maintenance in the web admin",
               f"oVirt {release[0]}.{release[1]} engines have no v4 API. In the web admin: Hosts, select "
               f"{host}, Maintenance, OK; the engine migrates its other VMs away. Confirm once the host "
               "shows Maintenance."),
        settle,
    ]


def clean_own_block_steps(key, host, release):
    """The howto's "Remove old host from the metadata whiteboard", on the host itself before it
    is reinstalled: its agent stopped first, then ``--clean-metadata`` (setup 1.3 and later;
    3.5 has no such option, so there the block stays, stale). Without it the reinstalled host
    would show twice, its old block stale."""
    if release < (3, 6):
        return []
    return [Ssh(f"{key}clean-metadata", f"Stop the agent on {host} and clean its block off the whiteboard",
                "service ovirt-ha-agent stop && hosted-engine --clean-metadata", on=host, changes=True,
                output_check=r"Cleaning the metadata block|Metadata block for host \d+ is already clean")]


def remove_from_engine_step(key, host, release):
    """The engine must forget the host before it is added again: setup 1.x fails while the
    engine knows it ("Cannot automatically add the host", add_host.py), and so does hosts.add."""
    if release[0] < 4:
        return Manual(f"{key}remove", f"Remove {host} from the engine in the web admin",
                      f"In the web admin: Hosts, select {host} (in Maintenance), Remove, OK. Deploying it "
                      "again adds it to the engine, which fails while the engine still knows it.")
    return Engine(f"{key}remove", f"Remove {host} from the engine", "remove_host", {"host": host},
                  rerun_safe=False, timeout=600)


def next_free_id(used):
    """The smallest host id from 2 up that no host uses (setup refuses 1)."""
    host_id = 2
    while host_id in used:
        host_id += 1
    return host_id
