"""`hosted-engine --deploy`, prompting over the SSH channel (the howto's flows).

The storage path picks the flow, as in the real installer:
- an empty storage: first-host deployment ("Creating VM", the OS and then the engine
  installed by the admin, the engine checked, the host added, HA started);
- the storage of a finished deployment: "Installing on additional host";
- the storage where this host's first-host deployment was cut short: the VM is already
  there, so the four choices of "Restarting from a partially deployed system" are offered.

Answers come from `--config-append` otopi files first, then from stdin. An answer file is
written in the clean-up stage, on failure too, and when the client goes away mid-way, so
`--config-append=<it>` can resume. Everything the installer prints also goes to its log,
/var/log/ovirt-hosted-engine-setup/ovirt-hosted-engine-setup-<date>-<id>.log.
"""

import asyncio
import random
import string
import time

from .. import catalog
from ..distro import ANSWERS_DIR, HE_ANSWERS, SETUP_LOG_DIR
from ..errors import LabError

PAD = " " * 10


class SetupLog:
    """A stream that also writes each complete line to the setup log, as otopi's
    dialog logs what it sends."""

    def __init__(self, stream, fs, path, clock):
        self.stream, self.fs, self.path, self.clock = stream, fs, path, clock
        self.partial = ""

    def write(self, text):
        self.stream.write(text)
        *lines, self.partial = (self.partial + text).split("\n")
        date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock.wall()))
        for line in lines:
            self.fs.append(self.path, f"{date} DEBUG otopi.plugins.otopi.dialog.human "
                                      f"dialog.__logString:204 DIALOG:SEND       {line}\n")

    def __getattr__(self, name):
        return getattr(self.stream, name)


def start_setup_log(ctx):
    wall = ctx.cluster.clock.wall()
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    path = (f"{SETUP_LOG_DIR}/ovirt-hosted-engine-setup-"
            f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(wall))}-{suffix}.log")
    ctx.machine.fs.append(path, "")
    ctx.out = SetupLog(ctx.out, ctx.machine.fs, path, ctx.cluster.clock)
    ctx.err = SetupLog(ctx.err, ctx.machine.fs, path, ctx.cluster.clock)
    return path


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
        if key.startswith("_"):
            continue  # one-off questions (confirmations, menus) are not replayed
        kind = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "str"
        lines.append(f"{key}={kind}:{value}")
    return "\n".join(lines) + "\n"


class Dialog:
    def __init__(self, ctx, answers):
        self.ctx = ctx
        self.answers = answers
        self.given = {}
        self.stage = "Environment customization"

    async def ask(self, key, prompt, default=None, secret=False):
        """Return the answer: from the answer files, else typed on stdin."""
        if key in self.answers:
            value = self.answers.pop(key)
            self.given[key] = value
            return value
        self.ctx.out.write(f"{PAD}{prompt}")
        line = await self.ctx.stdin.readline()
        if line == "":
            self.ctx.out.write("\n")
            raise Abort(f"Failed to execute stage '{self.stage}': End of file")
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

    async def choice(self, key, prompt, choices, default):
        """A value out of `choices`, case-insensitive; returned lower-case."""
        while True:
            value = str(await self.ask(key, f"{prompt} ({', '.join(choices)})[{default}]: ",
                                       default)).lower()
            if value in (c.lower() for c in choices):
                self.given[key] = value
                return value
            self.ctx.print("[ ERROR ] Invalid value")

    async def number(self, key, prompt, default, low, high, too_low, too_high):
        while True:
            value = await self.ask(key, f"{prompt} [Defaults to minimum requirement: {default}]: ",
                                   str(default))
            try:
                number = int(value)
            except ValueError:
                self.ctx.print(f"[ ERROR ] Invalid value: {value}")
                continue
            if number < low:
                self.ctx.print(f"[ ERROR ] {too_low}")
            elif number > high:
                self.ctx.print(f"[ ERROR ] {too_high.format(number)}")
            else:
                self.given[key] = str(number)  # otopi keeps these as str (facts §8)
                return number


def info(ctx, text):
    ctx.print(f"[ INFO  ] {text}")


ADDITIONAL_REFUSED = ("Setup of additional hosts using this software is not allowed anymore. "
                      "Please use the engine web interface to deploy any additional hosts.")


async def ask_host_id(dialog, cluster, host):
    """setup 1.x (storage/storage.py at 1.2.6.1): the default offered is always 2; an id
    already on the whiteboard is accepted only as a re-deployment of that host."""
    while True:
        value = await dialog.ask("OVEHOSTED_STORAGE/hostID",
                                 "Please specify the Host ID [Must be integer, default: 2]: ", "2")
        try:
            host_id = int(value)
        except ValueError:
            dialog.ctx.print("[ ERROR ] Invalid value for Host ID: must be integer")
            continue
        if host_id == 1:
            # The howto: you cannot supply host id 1, even when reinstalling the first host.
            dialog.ctx.print("[ ERROR ] Cannot use the same ID used by first host")
        elif host_id < 1 or host_id > 250:
            dialog.ctx.print(f"[ ERROR ] Invalid value for Host ID: {host_id}")
        else:
            dialog.given["OVEHOSTED_STORAGE/hostID"] = host_id
            break
    if str(host_id) in cluster.segments and not await dialog.yes_no(
            "OVEHOSTED_CORE/additionalHostReDeployment",
            "The Host ID is already known. Is this a re-deployment on an additional host that "
            "was previously set up", end="?"):
        raise Abort("Failed to execute stage 'Environment customization': "
                    "Invalid value for Host ID: already used")
    return host_id


async def ask_cluster(dialog, cluster):
    """The engine's clusters are the valid answers (add_host.py at 1.2.6.1)."""
    names = cluster.engine_cluster_names() or ["Default"]
    default = "Default" if "Default" in names else names[0]
    while True:
        name = await dialog.ask("OVEHOSTED_ENGINE/clusterName",
                                "Enter the name of the cluster to which you want to add the host "
                                f"({', '.join(names)}) [{default}]: ", default)
        if name in names:
            return name
        dialog.ctx.print("[ ERROR ] Invalid value")


async def deploy(ctx, args):
    answers = {}
    for arg in args:
        if arg.startswith("--config-append="):
            path = arg.split("=", 1)[1]
            text = ctx.machine.fs.read(ctx.path(path))
            if text is None:
                ctx.error(f"[ ERROR ] Failed to execute stage 'Initializing': "
                          f"[Errno 2] No such file or directory: '{path}'")
                return 1
            answers.update(parse_answers(text))
    log = start_setup_log(ctx)
    dialog = Dialog(ctx, answers)
    try:
        return await run_deploy(ctx, dialog, ctx.host, ctx.cluster, log)
    except Abort as exc:
        path = write_answers(ctx, dialog)
        ctx.print(f"[ ERROR ] {exc}")
        info(ctx, "Stage: Clean up")
        ctx.print(f"{PAD}Log file is located at {log}")
        info(ctx, f"Generating answer file '{path}'")
        info(ctx, "Stage: Pre-termination")
        info(ctx, "Stage: Termination")
        ctx.error(f"[ ERROR ] Hosted Engine deployment failed: {exc}")
        return 1
    except (Exception, asyncio.CancelledError):
        # The client went away mid-dialog: otopi still runs its clean-up stage.
        write_answers(ctx, dialog)
        raise


def write_answers(ctx, dialog):
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(ctx.cluster.clock.wall()))
    path = f"{ANSWERS_DIR}/answers-{stamp}.conf"
    ctx.host.fs.write(path, render_answers(dialog.given))
    ctx.cluster.save()
    return path


async def run_deploy(ctx, dialog, host, cluster, log):
    info(ctx, "Stage: Initializing")
    await ctx.sleep(2)
    info(ctx, "Generating a temporary VNC password.")
    info(ctx, "Stage: Environment setup")
    ctx.print(f"{PAD}Configuration files: []")
    ctx.print(f"{PAD}Log file: {log}")
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
    while True:
        path = await dialog.ask("OVEHOSTED_STORAGE/storageDomainConnection",
                                "Please specify the full shared storage connection path to use "
                                "(example: host:/path): ")
        if ":/" in path:
            break
        ctx.print(f"[ ERROR ] Invalid value for storage connection path: {path!r}")
    await ctx.sleep(2)
    if cluster.he_storage is None:
        return await first_host(ctx, dialog, host, cluster, path, resume=False)
    if path != cluster.he_storage:
        raise Abort(f"Failed to execute stage 'Environment customization': the lab models one "
                    f"hosted-engine setup; use its storage {cluster.he_storage}")
    if cluster.deploying == host.name:
        return await first_host(ctx, dialog, host, cluster, path, resume=True)
    if cluster.deploying:
        raise Abort("Failed to execute stage 'Environment customization': the storage holds the "
                    f"VM of an unfinished deployment started on {cluster.deploying}")
    if catalog.setup_key(host) >= catalog.version_key("2.1"):
        ctx.print("[ ERROR ] The selected device already contains a storage domain.")
        ctx.print(f"[ ERROR ] {ADDITIONAL_REFUSED}")
        raise Abort(f"Failed to execute stage 'Environment customization': {ADDITIONAL_REFUSED}")
    return await additional_host(ctx, dialog, host, cluster, path)


async def ask_network(ctx, dialog):
    ctx.print(f"\n{PAD}--== NETWORK CONFIGURATION ==--\n")
    bridge_if = await dialog.ask("OVEHOSTED_NETWORK/bridgeIf",
                                 "Please indicate a nic to set ovirtmgmt bridge on: (eth0) [eth0]: ",
                                 "eth0")
    gateway = await dialog.ask("OVEHOSTED_NETWORK/gateway",
                               "Please indicate a pingable gateway IP address [192.168.122.1]: ",
                               "192.168.122.1")
    return bridge_if, gateway


async def ask_password(ctx, dialog):
    while True:
        from_file = "OVEHOSTED_ENGINE/adminPassword" in dialog.answers
        password = await dialog.ask("OVEHOSTED_ENGINE/adminPassword",
                                    "Enter 'admin@internal' user password that will be used for "
                                    "accessing the Administrator Portal: ", secret=True)
        if from_file:
            return password
        ctx.out.write("\n")
        again = await dialog.ask("_confirm_password", "Confirm 'admin@internal' user password: ",
                                 secret=True)
        ctx.out.write("\n")
        if password and password == again:
            return password
        ctx.print("[ ERROR ] Passwords do not match" if password else "[ ERROR ] Empty password")


async def confirm_preview(ctx, dialog, rows):
    info(ctx, "Stage: Setup validation")
    ctx.print(f"\n{PAD}--== CONFIGURATION PREVIEW ==--\n")
    for label, value in rows:
        ctx.print(f"{PAD}{label:<40}: {value}")
    if not await dialog.yes_no("OVEHOSTED_CORE/confirmSettings",
                               "Please confirm installation settings"):
        raise Abort("Aborted by user")


async def steps(ctx, items):
    for step, seconds in items:
        info(ctx, step)
        await ctx.sleep(seconds)


async def additional_host(ctx, dialog, host, cluster, path):
    additional = await dialog.yes_no(
        "OVEHOSTED_CORE/isAdditionalHost",
        "The specified storage location already contains a data domain. "
        "Is this an additional host setup", end="?")
    if not additional:
        raise Abort("Failed to execute stage 'Environment customization': "
                    "the storage already contains a hosted-engine data domain")
    info(ctx, "Installing on additional host")
    host_id = await ask_host_id(dialog, cluster, host)
    bridge_if, gateway = await ask_network(ctx, dialog)
    ctx.print(f"\n{PAD}--== HOSTED ENGINE CONFIGURATION ==--\n")
    app_name = await dialog.ask(
        "OVEHOSTED_ENGINE/appHostName",
        f"Enter the name which will be used to identify this host inside the Administrator "
        f"Portal [hosted_engine_{host_id}]: ", f"hosted_engine_{host_id}")
    await ask_password(ctx, dialog)
    cluster_name = await ask_cluster(dialog, cluster)
    await confirm_preview(ctx, dialog, (
        ("Bridge interface", bridge_if), ("Engine FQDN", cluster.engine_fqdn),
        ("Bridge name", "ovirtmgmt"), ("Host address", host.name),
        ("Gateway address", gateway), ("Host name for web application", app_name),
        ("Host ID", host_id), ("Storage Domain type", "nfs3"),
        ("Image size GB", 25), ("Storage connection", path),
        ("Engine VM cluster", cluster_name)))
    dialog.stage = "Closing up"
    await steps(ctx, (("Stage: Transaction setup", 2), ("Stage: Misc configuration", 2),
                      ("Stage: Package installation", 5), ("Stage: Misc configuration", 2),
                      ("Configuring libvirt", 5), ("Configuring VDSM", 5),
                      ("Starting vdsmd", 10), ("Waiting for VDSM hardware info", 5),
                      ("Connecting Storage Domain", 10), ("Configuring VM", 3),
                      ("Updating hosted-engine configuration", 3),
                      ("Stage: Transaction commit", 1), ("Stage: Closing up", 1)))
    await ca_steps(ctx)
    if not cluster.engine_healthy():
        raise Abort("Failed to execute stage 'Closing up': Cannot connect to the engine at "
                    f"https://{cluster.engine_fqdn}/ovirt-engine/api")
    info(ctx, f"Adding the host {app_name} to the cluster {cluster_name}")
    await add_host(ctx, cluster, host, cluster_name)
    return await finish(ctx, dialog, host, cluster, host_id, path)


async def ca_steps(ctx):
    await steps(ctx, (("Acquiring internal CA cert from the engine", 3),
                      ("The following CA certificate is going to be used, please immediately "
                       "interrupt if not correct:", 1),
                      ("Issuer: C=US, O=lab.local, CN=engine.lab.local.12345, "
                       "Subject: C=US, O=lab.local, CN=engine.lab.local.12345", 1)))


async def add_host(ctx, cluster, host, cluster_name="Default"):
    try:
        cluster.register_with_engine(host, cluster_name, new=True)
    except LabError as exc:  # add_host.py: the engine refused the host
        ctx.print(f"[ ERROR ] Cannot automatically add the host to cluster {cluster_name}:\n"
                  f"{exc}\n")
        raise Abort(f"Failed to execute stage 'Closing up': Cannot add the host to cluster "
                    f"{cluster_name}") from None
    await ctx.sleep(30)
    info(ctx, "Waiting for the host to become operational in the engine. "
              "This may take several minutes...")
    await ctx.sleep(30)
    info(ctx, "The VDSM Host is now operational")


async def finish(ctx, dialog, host, cluster, host_id, path):
    host.deploy_files(host_id, path, time.strftime("%Y%m%d%H%M%S",
                                                    time.gmtime(cluster.clock.wall())))
    for service in ("vdsmd", "ovirt-ha-broker", "ovirt-ha-agent"):
        cluster.start_service(host, service)
    info(ctx, "Enabling and starting HA services")
    info(ctx, "Stage: Clean up")
    answers_path = write_answers(ctx, dialog)
    host.fs.write(HE_ANSWERS, host.fs.read(answers_path))
    info(ctx, f"Generating answer file '{answers_path}'")
    info(ctx, "Generating answer file '/etc/ovirt-hosted-engine/answers.conf'")
    info(ctx, "Stage: Pre-termination")
    info(ctx, "Stage: Termination")
    info(ctx, "Hosted Engine successfully set up")
    return 0


# -- first host -----------------------------------------------------------------------

HOST_CPUS = 8
HOST_MEMORY_MB = 16384
RESERVED_MEMORY_MB = 512   # he_reserved_memory_MB (facts §11)
MIN_MEMORY_MB = 4096       # he_minimal_mem_size_MB
FQDN_NOTE = ("Please provide the FQDN for the engine you would like to use.",
             "This needs to match the FQDN that you will use for the engine installation "
             "within the VM.",
             "Note: This will be the FQDN of the VM you are now going to create,",
             "it should not point to the base host or to any other existing machine.")
OS_NOTE = ("Please install the OS on the VM.",
           "When the installation is completed reboot or shutdown the VM: "
           "the system will wait until then")
RESTART_MENU = ("The VM has been started.  Install the OS and shut down or reboot it.  "
                "To continue please make a selection:", "",
                "(1) Continue setup - VM installation is complete",
                "(2) Reboot the VM and restart installation",
                "(3) Abort setup",
                "(4) Destroy VM and abort setup", "")
ENGINE_WAIT = 300          # how long a starting engine is polled before asking


async def first_host(ctx, dialog, host, cluster, path, resume):
    """The howto's first-host deployment; `resume`: the VM already exists on `path`."""
    host_id = 1
    bridge_if, gateway = await ask_network(ctx, dialog)
    ctx.print(f"\n{PAD}--== VM CONFIGURATION ==--\n")
    boot = await dialog.choice("OVEHOSTED_VM/vmBoot",
                               "Please specify the device to boot the VM from",
                               ("cdrom", "disk", "pxe"), "cdrom")
    if boot == "cdrom":
        await dialog.ask("OVEHOSTED_VM/vmCDRom", "Please specify path to installation media "
                                                 "you would like to use [None]: ", "None")
    elif boot == "disk":
        await dialog.ask("OVEHOSTED_VM/ovfArchive", "Please specify path to the OVF archive "
                                                    "you would like to use [None]: ", "None")
    available = HOST_MEMORY_MB - RESERVED_MEMORY_MB
    memory = await dialog.number(
        "OVEHOSTED_VM/vmMemSizeMB", "Please specify the memory size of the VM in MB",
        MIN_MEMORY_MB, MIN_MEMORY_MB, available,
        f"Minimum requirements not met: the engine VM needs at least {MIN_MEMORY_MB} MB",
        "Invalid memory size specified: {}, while only " + f"{available} are available on the host")
    vcpus = await dialog.number(
        "OVEHOSTED_VM/vmVCpus", "Please specify the number of virtual CPUs for the VM",
        2, 2, HOST_CPUS, "Minimum requirements not met: the engine VM needs at least 2 vCPUs",
        "Invalid number of cpu specified: {}, while only " + f"{HOST_CPUS} are available on the host")
    ctx.print(f"\n{PAD}--== HOSTED ENGINE CONFIGURATION ==--\n")
    app_name = await dialog.ask(
        "OVEHOSTED_ENGINE/appHostName",
        "Enter the name which will be used to identify this host inside the Administrator "
        f"Portal [hosted_engine_{host_id}]: ", f"hosted_engine_{host_id}")
    password = await ask_password(ctx, dialog)
    while True:
        if "OVEHOSTED_NETWORK/fqdn" not in dialog.answers:
            for line in FQDN_NOTE:
                ctx.print(PAD + line)
        fqdn = await dialog.ask("OVEHOSTED_NETWORK/fqdn", "Engine FQDN: ")
        if fqdn == cluster.engine_fqdn:  # the only name the lab's DNS knows for a VM
            break
        ctx.print(f"[ ERROR ] Host name is not valid: {fqdn} did not resolve into an IP address")
    await confirm_preview(ctx, dialog, (
        ("Bridge interface", bridge_if), ("Engine FQDN", fqdn), ("Bridge name", "ovirtmgmt"),
        ("Host address", host.name), ("Gateway address", gateway),
        ("Host name for web application", app_name), ("Host ID", host_id),
        ("Storage Domain type", "nfs3"), ("Image size GB", 25), ("Storage connection", path),
        ("Console type", "vnc"), ("Memory size MB", memory), ("Number of CPUs", vcpus),
        ("Boot type", boot)))
    dialog.stage = "Misc configuration"
    await steps(ctx, (("Stage: Transaction setup", 2), ("Stage: Misc configuration", 2),
                      ("Stage: Package installation", 5), ("Stage: Misc configuration", 2),
                      ("Configuring libvirt", 5), ("Configuring VDSM", 5), ("Starting vdsmd", 10)))
    cluster.start_service(host, "vdsmd")
    if resume:
        await steps(ctx, (("Connecting Storage Domain", 10),))
    else:
        await steps(ctx, (("Creating Storage Domain", 10), ("Creating Storage Pool", 5),
                          ("Connecting Storage Pool", 5),
                          ("Verifying sanlock lockspace initialization", 5),
                          ("Creating VM Image", 10), ("Destroying Storage Pool", 3),
                          ("Start monitoring domain", 5)))
        cluster.create_he_storage(host, path)
    await steps(ctx, (("Configuring VM", 3), ("Updating hosted-engine configuration", 3),
                      ("Stage: Transaction commit", 1), ("Stage: Closing up", 1)))
    dialog.stage = "Closing up"
    await install_os(ctx, dialog, cluster, host, boot, resume)
    await wait_for_engine(ctx, dialog, cluster, fqdn, password)
    await ca_steps(ctx)
    info(ctx, "Connecting to the Engine")
    await add_host(ctx, cluster, host)
    cluster.finish_first_deploy()
    return await finish(ctx, dialog, host, cluster, host_id, path)


async def install_os(ctx, dialog, cluster, host, boot, resume):
    """Start the VM from its boot device until the admin says the OS is in, then from disk."""
    info(ctx, "Creating VM")
    cluster.boot_setup_vm(host)
    guest = cluster.engine_vm
    if resume:
        while True:
            for line in RESTART_MENU:
                ctx.print(PAD + line if line else "")
            choice = await dialog.ask("_vmChoice", "(1, 2, 3, 4)[1]: ", "1")
            if choice == "1":
                break
            if choice == "2":
                info(ctx, "Creating VM")
                cluster.boot_setup_vm(host)
            elif choice in ("3", "4"):
                if choice == "4":
                    cluster.destroy_setup_vm(host)
                raise Abort("Failed to execute stage 'Closing up': Setup aborted by user")
            else:
                ctx.print("[ ERROR ] Invalid value")
    elif boot != "disk":  # an OVF image ("disk") already holds the OS
        ctx.print(f"{PAD}You can now connect to the VM with the following command:")
        ctx.print(f"{PAD}\t/bin/remote-viewer vnc://localhost:5900")
        ctx.print(f"{PAD}Use temporary password \"4219TvYq\" to connect to vnc console.")
        while True:
            for line in OS_NOTE:
                ctx.print(PAD + line)
            if await dialog.yes_no("_osInstalled",
                                   "Has the OS installation been completed successfully?", end="?"):
                break
            info(ctx, "Creating VM")  # start again from the boot device
            cluster.boot_setup_vm(host)
    if not guest.os_installed:
        guest.install_guest()
    await ctx.sleep(5)
    info(ctx, "Creating VM")  # now from the VM's own disk
    cluster.boot_setup_vm(host)
    await dialog.ask("_engineInstalled",
                     "Please install the engine in the VM, hit enter when finished.")


async def wait_for_engine(ctx, dialog, cluster, fqdn, password):
    """Poll the health page; like the real installer, ask before giving up."""
    guest = cluster.engine_vm
    while True:
        waited = 0
        while not cluster.engine_healthy() and (guest.engine_running or guest.setup_running) \
                and waited < ENGINE_WAIT:
            await ctx.sleep(10)
            waited += 10
        if cluster.engine_healthy():
            break
        ctx.print(f"{PAD}Engine health status page is not yet reachable.")
        ctx.print(f"{PAD}Please ensure that the engine is correctly configured, up and running.")
        answer = await dialog.choice("_engineCheck",
                                     "Do you want to check again or to abort?",
                                     ("Check", "Abort"), "Check")
        if answer == "abort":
            raise Abort("Failed to execute stage 'Closing up': Engine polling aborted by user")
    info(ctx, "Engine replied: DB Up!Welcome to Health Status!")
    if guest.engine_fqdn != fqdn:
        raise Abort(f"Failed to execute stage 'Closing up': the engine was set up as "
                    f"'{guest.engine_fqdn}', not as the engine FQDN '{fqdn}' given here: "
                    f"its certificate does not match")
    if guest.admin_password != password:
        raise Abort("Failed to execute stage 'Closing up': Cannot authenticate user "
                    "'admin@internal': The username or password is incorrect.")
