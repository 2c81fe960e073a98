"""`hosted-engine --deploy` for an additional host, prompting over the SSH channel.

Only the additional-host flow is modelled: the lab's HE storage already holds the engine
VM, so pointing at it makes the installer switch to "Installing on additional host", as in
the howto. Answers come from `--config-append` otopi files first, then from stdin.
"""

import time

from ..machines import STORAGE

ANSWERS_DIR = "/var/lib/ovirt-hosted-engine-setup/answers"
PAD = " " * 10


class Abort(Exception):
    pass


def parse_answers(text):
    """otopi INI: `[environment:default]` then `KEY=type:value` lines."""
    answers = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        kind, _, value = raw.partition(":")
        if kind == "bool":
            answers[key] = value == "True"
        elif kind == "int":
            answers[key] = int(value)
        elif kind == "none":
            answers[key] = None
        else:
            answers[key] = value
    return answers


def render_answers(answers):
    lines = ["[environment:default]"]
    for key, value in answers.items():
        kind = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "str"
        lines.append(f"{key}={kind}:{value}")
    return "\n".join(lines) + "\n"


class Dialog:
    def __init__(self, ctx, answers):
        self.ctx = ctx
        self.answers = answers
        self.given = {}

    async def ask(self, key, prompt, default=None, secret=False):
        """Return the answer: from the answer files, else typed on stdin."""
        if key in self.answers:
            value = self.answers.pop(key)
            self.given[key] = value
            return value
        self.ctx.out.write(f"{PAD}{prompt}")
        line = await self.ctx.stdin.readline()
        if line == "":
            raise Abort("Failed to execute stage 'Environment customization': End of file")
        if not secret:
            self.ctx.out.write("\n")
        value = line.strip() or (default if default is not None else "")
        self.given[key] = value
        return value

    async def yes_no(self, key, prompt, default=True, end=":"):
        while True:
            dflt = "Yes" if default else "No"
            value = await self.ask(key, f"{prompt} (Yes, No)[{dflt}]{end} ", dflt)
            if isinstance(value, bool):
                return value
            if value.lower() in ("yes", "y", "no", "n"):
                result = value.lower().startswith("y")
                self.given[key] = result
                return result
            self.ctx.print("[ ERROR ] Invalid value")


def info(ctx, text):
    ctx.print(f"[ INFO  ] {text}")


def free_host_id(cluster, host):
    used = {h.host_id for h in cluster.hosts.values() if h.configured and h is not host}
    used |= {int(k) for k in cluster.segments}
    candidate = 2
    while candidate in used:
        candidate += 1
    return candidate


async def ask_host_id(dialog, cluster, host):
    default = free_host_id(cluster, host)
    taken = {h.host_id for h in cluster.hosts.values() if h.configured and h is not host}
    while True:
        value = await dialog.ask("OVEHOSTED_STORAGE/hostID",
                                 f"Please specify the Host ID [Must be integer, default: {default}]: ",
                                 str(default))
        try:
            host_id = int(value)
        except ValueError:
            dialog.ctx.print("[ ERROR ] Invalid value for Host ID: must be integer")
            continue
        if host_id == 1:
            # The howto: you cannot supply host id 1, even when reinstalling the first host.
            dialog.ctx.print("[ ERROR ] Cannot use the same ID used by first host")
        elif host_id in taken or host_id < 1 or host_id > 250:
            dialog.ctx.print(f"[ ERROR ] Invalid value for Host ID: {host_id} is already in use")
        else:
            dialog.given["OVEHOSTED_STORAGE/hostID"] = host_id
            return host_id


async def deploy(ctx, args):
    host, cluster = ctx.host, ctx.cluster
    answers = {}
    for arg in args:
        if arg.startswith("--config-append="):
            path = arg.split("=", 1)[1]
            text = ctx.machine.files.get(path)
            if text is None:
                ctx.error(f"[ ERROR ] Failed to execute stage 'Initializing': "
                          f"[Errno 2] No such file or directory: '{path}'")
                return 1
            answers.update(parse_answers(text))
    dialog = Dialog(ctx, answers)
    try:
        return await run_deploy(ctx, dialog, host, cluster)
    except Abort as exc:
        ctx.print(f"[ ERROR ] {exc}")
        info(ctx, "Stage: Clean up")
        info(ctx, "Stage: Pre-termination")
        info(ctx, "Stage: Termination")
        ctx.error(f"[ ERROR ] Hosted Engine deployment failed: {exc}")
        return 1


async def run_deploy(ctx, dialog, host, cluster):
    info(ctx, "Stage: Initializing")
    await ctx.sleep(2)
    info(ctx, "Generating a temporary VNC password.")
    info(ctx, "Stage: Environment setup")
    if host.configured:
        raise Abort("Failed to execute stage 'Environment setup': "
                    "Hosted Engine is already deployed on this host")
    ctx.print(f"{PAD}Continuing will configure this host for serving as hypervisor and create a VM "
              "where you have to install the engine afterwards.")
    if not await dialog.yes_no("OVEHOSTED_CORE/deployProceed", "Are you sure you want to continue?"):
        raise Abort("Aborted by user")
    info(ctx, "Hardware supports virtualization")
    info(ctx, "Stage: Environment packages setup")
    info(ctx, "Stage: Programs detection")
    info(ctx, "Stage: Environment setup")
    await ctx.sleep(3)
    info(ctx, "Stage: Environment customization")
    ctx.print(f"\n{PAD}--== STORAGE CONFIGURATION ==--\n")
    await dialog.ask("OVEHOSTED_STORAGE/domainType",
                     "Please specify the storage you would like to use "
                     "(glusterfs, iscsi, fc, nfs3, nfs4)[nfs3]: ", "nfs3")
    path = await dialog.ask("OVEHOSTED_STORAGE/storageDomainConnection",
                            "Please specify the full shared storage connection path to use "
                            "(example: host:/path): ")
    await ctx.sleep(2)
    if path != STORAGE:
        raise Abort(f"Failed to execute stage 'Environment customization': the lab only models "
                    f"additional hosts; use the existing HE storage {STORAGE}")
    additional = await dialog.yes_no(
        "OVEHOSTED_CORE/isAdditionalHost",
        "The specified storage location already contains a data domain. "
        "Is this an additional host setup", end="?")
    if not additional:
        raise Abort("Failed to execute stage 'Environment customization': "
                    "the storage already contains a hosted-engine data domain")
    info(ctx, "Installing on additional host")
    host_id = await ask_host_id(dialog, cluster, host)
    ctx.print(f"\n{PAD}--== NETWORK CONFIGURATION ==--\n")
    bridge_if = await dialog.ask("OVEHOSTED_NETWORK/bridgeIf",
                                 "Please indicate a nic to set ovirtmgmt bridge on: (eth0) [eth0]: ",
                                 "eth0")
    gateway = await dialog.ask("OVEHOSTED_NETWORK/gateway",
                               "Please indicate a pingable gateway IP address [192.168.122.1]: ",
                               "192.168.122.1")
    ctx.print(f"\n{PAD}--== HOSTED ENGINE CONFIGURATION ==--\n")
    app_name = await dialog.ask(
        "OVEHOSTED_ENGINE/appHostName",
        f"Enter the name which will be used to identify this host inside the Administrator "
        f"Portal [hosted_engine_{host_id}]: ", f"hosted_engine_{host_id}")
    while True:
        from_file = "OVEHOSTED_ENGINE/adminPassword" in dialog.answers
        password = await dialog.ask("OVEHOSTED_ENGINE/adminPassword",
                                    "Enter 'admin@internal' user password that will be used for "
                                    "accessing the Administrator Portal: ", secret=True)
        if from_file:
            break
        ctx.out.write("\n")
        again = await dialog.ask("_confirm_password", "Confirm 'admin@internal' user password: ",
                                 secret=True)
        ctx.out.write("\n")
        dialog.given.pop("_confirm_password", None)
        if password and password == again:
            break
        ctx.print("[ ERROR ] Passwords do not match" if password else "[ ERROR ] Empty password")
    cluster_name = await dialog.ask("OVEHOSTED_ENGINE/clusterName",
                                    "Enter the name of the cluster to which you want to add the "
                                    "host (Default) [Default]: ", "Default")
    info(ctx, "Stage: Setup validation")
    ctx.print(f"\n{PAD}--== CONFIGURATION PREVIEW ==--\n")
    for label, value in (("Bridge interface", bridge_if), ("Engine FQDN", cluster.engine_fqdn),
                         ("Bridge name", "ovirtmgmt"), ("Host address", host.name),
                         ("Gateway address", gateway), ("Host name for web application", app_name),
                         ("Host ID", host_id), ("Storage Domain type", "nfs3"),
                         ("Image size GB", 25), ("Storage connection", path),
                         ("Engine VM cluster", cluster_name)):
        ctx.print(f"{PAD}{label:<40}: {value}")
    if not await dialog.yes_no("OVEHOSTED_CORE/confirmSettings",
                               "Please confirm installation settings"):
        raise Abort("Aborted by user")
    for step, seconds in (("Stage: Transaction setup", 2), ("Stage: Misc configuration", 2),
                          ("Stage: Package installation", 5), ("Stage: Misc configuration", 2),
                          ("Configuring libvirt", 5), ("Configuring VDSM", 5),
                          ("Starting vdsmd", 10), ("Waiting for VDSM hardware info", 5),
                          ("Connecting Storage Domain", 10), ("Configuring VM", 3),
                          ("Updating hosted-engine configuration", 3),
                          ("Stage: Transaction commit", 1), ("Stage: Closing up", 1),
                          ("Acquiring internal CA cert from the engine", 3),
                          ("The following CA certificate is going to be used, please immediately "
                           "interrupt if not correct:", 1),
                          ("Issuer: C=US, O=lab.local, CN=engine.lab.local.12345, "
                           "Subject: C=US, O=lab.local, CN=engine.lab.local.12345", 1)):
        info(ctx, step)
        await ctx.sleep(seconds)
    if not cluster.engine_healthy():
        raise Abort("Failed to execute stage 'Closing up': Cannot connect to the engine at "
                    f"https://{cluster.engine_fqdn}/ovirt-engine/api")
    info(ctx, f"Adding the host {app_name} to the cluster {cluster_name}")
    cluster.register_with_engine(host)
    await ctx.sleep(30)
    info(ctx, "Waiting for the host to become operational in the engine. "
              "This may take several minutes...")
    await ctx.sleep(30)
    info(ctx, "The VDSM Host is now operational")
    host.deploy_files(host_id)
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(cluster.clock.wall()))
    answers_path = f"{ANSWERS_DIR}/answers-{stamp}.conf"
    text = render_answers(dialog.given)
    host.files[answers_path] = text
    host.files["/etc/ovirt-hosted-engine/answers.conf"] = text
    for service in ("vdsmd", "ovirt-ha-broker", "ovirt-ha-agent"):
        cluster.start_service(host, service)
    info(ctx, "Enabling and starting HA services")
    info(ctx, "Stage: Clean up")
    info(ctx, f"Generating answer file '{answers_path}'")
    info(ctx, "Generating answer file '/etc/ovirt-hosted-engine/answers.conf'")
    info(ctx, "Stage: Pre-termination")
    info(ctx, "Stage: Termination")
    info(ctx, "Hosted Engine successfully set up")
    return 0
