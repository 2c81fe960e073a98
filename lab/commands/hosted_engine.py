"""`hosted-engine` on an HE host (facts §6, §8, §9), as each ovirt-hosted-engine-setup
version has it (src/bin/hosted-engine.in and src/ovirt_hosted_engine_setup/*.py at the
tags of ovirt-releases.md): the commands it knows, where its messages go, and its checks.
"""

from .. import catalog, distro, vm
from ..vmstatus import render_json, render_plain
from . import command
from .deploy import deploy
from .hosted_engine_help import HELP

PROG = "/usr/sbin/hosted-engine"

BROKER_DOWN = ("An error occured while retrieving vm status, please make sure the HA daemon "
               "is ready and reachable.")
OLD_BROKER_DOWN = "Cannot connect to the HA daemon, please check the logs."
LOCAL_REFUSED = ("Unable to enter local maintenance mode: the engine VM is running on the current "
                 "host, please migrate it before entering local maintenance mode.")
LOCAL_NO_HOSTS = ("Unable to enter local maintenance mode: there are no available hosts capable "
                  "of running the engine VM.")
NO_VM_CONF = {"1.3": "Unable to read vm.conf, please check ovirt-ha-agent logs",
              "2.2": "The hosted engine configuration has not been retrieved from shared storage. "
                     "Please ensure that ovirt-ha-agent is running and the storage server is "
                     "reachable."}


def series(ctx):
    """The setup series whose command line this host's build has (hosted_engine_help): the
    lab's builds are 1.2.6.1, 1.3.7.4, 2.3.12/13 and 2.7.0/1; a build in between gets the
    nearest older text (2.0-2.2 lack some 2.3 commands: not modelled, no lab release has them)."""
    key = catalog.setup_key(ctx.host)
    for floor in ("2.4", "2.0", "1.3"):
        if key >= catalog.version_key(floor):
            return {"2.4": "2.7", "2.0": "2.3", "1.3": "1.3"}[floor]
    return "1.2"


def help_text(ctx, name=""):
    return HELP[series(ctx)][name].replace("{prog}", PROG)


def option(args, name):
    """Value of --name=V, else None: the script matches `--mode=*` only."""
    for arg in args:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def setup_at_least(ctx, floor):
    return catalog.setup_key(ctx.host) >= catalog.version_key(floor)


def usage(ctx):
    return help_text(ctx)


# Commands that run without a deployed host (src/bin/hosted-engine.in: they do not test
# ${vmid}/${conf}); 1.2's --connect-storage (1.3 tests ${vmid}) and --start-pool do not either.
NO_DEPLOY_CHECK = {"--check-liveliness", "--check-deployed", "--console", "--start-pool"}
# Commands that call check_vm_conf first (1.3 and later).
VM_CONF_CHECK = {"--vm-start", "--vm-start-paused", "--vm-status", "--clean-metadata"}


@command("hosted-engine", path="/usr/sbin", machines=("host",),
         package="ovirt-hosted-engine-setup")
async def hosted_engine(ctx, args):
    """cli_broker of src/bin/hosted-engine.in: unknown commands get "Invalid option" on
    stderr and the usage, exit 1; `--help CMD` (1.3+) and `CMD --help` the command's help."""
    commands = HELP[series(ctx)]
    if not args:
        ctx.out.write(usage(ctx))
        return 1
    verb, rest = args[0], args[1:]
    if verb == "--help":
        if rest and series(ctx) != "1.2":  # usage "$@": cli_broker CMD --help
            if rest[0] not in commands or not rest[0].startswith("--"):
                ctx.error(f"Invalid option '{rest[0]}'")
                ctx.out.write(usage(ctx))
                return 1
            ctx.out.write(help_text(ctx, rest[0]))
            return 0
        ctx.out.write(usage(ctx))
        return 0
    if verb not in commands or not verb.startswith("--"):
        ctx.error(f"Invalid option '{verb}'")
        ctx.out.write(usage(ctx))
        return 1
    if rest[:1] == ["--help"]:
        ctx.out.write(help_text(ctx, verb))
        return 0
    if verb == "--deploy":
        return await deploy(ctx, rest)
    checked = verb not in NO_DEPLOY_CHECK and (verb != "--connect-storage" or series(ctx) != "1.2")
    if checked and not ctx.host.configured:
        if verb == "--set-maintenance":
            return await set_maintenance(ctx, rest)  # the mode is checked first
        ctx.print("You must run deploy first")  # echo, on stdout; 1.2 then exits 0
        return 1 if setup_at_least(ctx, "1.3") else 0
    if verb in VM_CONF_CHECK and setup_at_least(ctx, "1.3") and not vm_conf_ready(ctx):
        return 1
    return await HANDLERS[verb](ctx, rest)


def vm_conf_ready(ctx):
    """check_vm_conf: the agent has not fetched vm.conf since the boot (its text per
    release: 1.3, 2.2.0 and 2.5.4, commit bb3f623)."""
    if ctx.host.fs.exists(distro.VM_CONF):
        return True
    if setup_at_least(ctx, "2.5.4"):
        ctx.print("The hosted engine configuration has not been retrieved from shared storage yet,")
        ctx.print("please ensure that ovirt-ha-agent service is running." if not
                  ctx.host.services["ovirt-ha-agent"] else "for more details please check sanlock status.")
        ctx.print()
    else:
        ctx.print(NO_VM_CONF["2.2" if setup_at_least(ctx, "2.2") else "1.3"])
    return False


def broker_up(ctx):
    return ctx.host.services["ovirt-ha-broker"]


async def vm_status(ctx, args):
    await ctx.sleep(1)
    if not broker_up(ctx):
        if setup_at_least(ctx, "2.2"):
            ctx.error(BROKER_DOWN)
        else:
            ctx.error(f"[Errno 2] No such file or directory\n{OLD_BROKER_DOWN}")
        return 1
    cluster, now = ctx.cluster, ctx.now()
    segments = sorted(cluster.segments.values(), key=lambda s: s["host-id"])
    live = {seg["host-id"] for seg in cluster.live_segments(ctx.host.host_id, now)}
    version = ctx.host.packages.get("ovirt-hosted-engine-setup", "0")
    if "--json" in args and setup_at_least(ctx, "2.0"):  # 1.x ignores the flag
        ctx.out.write(render_json(segments, live, cluster.global_maintenance))
    else:
        ctx.out.write(render_plain(segments, live, cluster.global_maintenance, version))
        if not segments:  # print_status returns the (empty) stats: `sys.exit(1)` (vm_status.py)
            return 1
    return 0


def vdsm_check(ctx):
    if not ctx.cluster.vdsm_up(ctx.host, ctx.now()):
        ctx.error("Connection to VDSM failed: [Errno 111] Connection refused")
        return False
    return True


def existing_vm(ctx):
    """cmd_vm_start's look at the VM vdsm has here, its lines echoed on stdout: a Down VM is
    destroyed first (1.x "destroying it", 2.x "cleaning up and restarting"; a Paused one too
    from 2.4.4, commit 42a2cf6); any other status ends it with exit 1. True to go on."""
    rec = ctx.host.vm
    if rec is None:
        return True
    status = rec["status"]
    if status == "Down" or (status == "Paused" and setup_at_least(ctx, "2.4.4")):
        if not setup_at_least(ctx, "2.0"):
            ctx.print("VM exists and is down, destroying it")
        else:
            ctx.print(f"VM exists and is {status.lower() if status == 'Down' else status}, "
                      "cleaning up and restarting")
        vm.vm_poweroff(ctx.cluster, ctx.host, ctx.now())
        return True
    ctx.print(f"VM exists and its status is {status}")
    return False


async def vm_start(ctx, args, paused=False):
    await ctx.sleep(2)
    if not vdsm_check(ctx):
        return 1
    if not existing_vm(ctx):
        return 1
    ok, message = vm.vm_start(ctx.cluster, ctx.host, ctx.now(), paused=paused)
    (ctx.print if ok else ctx.error)(message)
    return 0 if ok else 1


async def vm_shutdown(ctx, args):
    return await _vm_stop(ctx, vm.vm_shutdown, "VM.shutdown")


async def vm_poweroff(ctx, args):
    return await _vm_stop(ctx, vm.vm_poweroff, "VM.destroy")


async def _vm_stop(ctx, stop, verb):
    """--vm-shutdown and --vm-poweroff: the vdsm call, and its failure as vdsm words it."""
    await ctx.sleep(1)
    if not vdsm_check(ctx):
        return 1
    ok, message = stop(ctx.cluster, ctx.host, ctx.now())
    if not ok:
        ctx.error(f"Command {verb} with args {{'vmID': '3f8a2a0e-8e0f-4b7c-8d64-2f4cfe0d6a70'}} "
                  f"failed:\n(code=1, message={message})")
        return 1
    return 0


async def check_liveliness(ctx, args):
    """check_liveliness.py: reads fqdn from hosted-engine.conf (exit 2 without it)."""
    await ctx.sleep(1)
    if not ctx.host.fs.exists(distro.HE_CONF):
        ctx.error("Error reading the configuration file")
        return 2
    if ctx.cluster.engine_healthy():
        ctx.print("Hosted Engine is up!")
        return 0
    ctx.print("Hosted Engine is not up!")
    return 1


async def check_deployed(ctx, args):
    if ctx.host.configured:
        if setup_at_least(ctx, "2.4.9"):  # commit f27d727
            ctx.print("The hosted engine has been deployed")
        return 0
    ctx.print("The hosted engine has not been deployed")
    return 1


def local_refusal(ctx):
    """Why this setup version refuses local maintenance here, or None
    (src/ovirt_hosted_engine_setup/set_maintenance.py): 1.x and 2.0.0 accept it (a 1.x
    agent migrates the VM away); 2.1.0-2.3.10 refuse when no other live host has a
    positive score (commit feb6eee); 2.3.11 and later refuse when the engine VM runs here,
    whatever the other hosts (commit 4a36099, cherry-picked into 2.3.11; 4297b4f in 2.4.0)."""
    host, cluster = ctx.host, ctx.cluster
    if setup_at_least(ctx, "2.3.11"):
        # vdsm's Host.getVMList(): every VM vdsm knows here, a Down one not yet destroyed too
        # (but not a migration's source: the engine destroys it once the migration is done)
        rec = host.vm
        gone = rec is not None and rec["status"] == "Down" and rec.get("reason") == "migrated"
        return LOCAL_REFUSED if rec is not None and not gone else None
    if setup_at_least(ctx, "2.1"):
        others = [seg for seg in cluster.live_segments(host.host_id, ctx.now())
                  if seg["host-id"] != host.host_id and seg["score"] > 0]
        return None if others else LOCAL_NO_HOSTS
    return None


async def set_maintenance(ctx, args):
    """cmd_set_maintenance reads only its first word (`--mode=*`), then set_maintenance.py:
    LOCAL and GLOBAL written by every release, LOCAL_MANUAL too from 2.2.15 (commit 81ad7ca;
    the engine's activation clears only LOCAL). 2.3.11+ ask vdsm first for local; with vdsm
    down that fails after util.py's 60 tries, a second apart."""
    mode = option(args[:1], "--mode")
    if mode is None:
        ctx.print("You must specify a maintenance mode with --mode")
        return 1
    if mode not in ("global", "local", "none"):
        ctx.print(f"Invalid value '{mode}' for --mode")
        return 1
    if not ctx.host.configured:
        ctx.print("You must run deploy first")
        return 1 if setup_at_least(ctx, "1.3") else 0
    await ctx.sleep(1)
    host, cluster = ctx.host, ctx.cluster
    if mode == "local" and setup_at_least(ctx, "2.3.11") and not ctx.cluster.vdsm_up(host, ctx.now()):
        await ctx.sleep(60)
        ctx.error("Traceback (most recent call last):")
        ctx.error(f'  File "{site_packages(ctx)}/ovirt_hosted_engine_ha/lib/util.py", in '
                  "__vdsm_json_rpc_connect\n    timeout=VDSM_MAX_RETRY * VDSM_DELAY")
        ctx.error("RuntimeError: Couldn't  connect to VDSM within 60 seconds")
        return 1
    refusal = local_refusal(ctx) if mode == "local" else None
    if refusal:
        ctx.error(refusal)
        return 1
    # facts §6: every mode writes all the flags its release has.
    cluster.global_maintenance = mode == "global"
    host.local_maintenance = mode == "local"
    if setup_at_least(ctx, "2.2.15"):
        host.local_maintenance_manual = mode == "local"
    cluster.changed()
    return 0


# `raise Exception(...)` lines of reset_lockspace in client/client.py per HA build (global
# maintenance, active agent): v1.3.5.8, v2.3.5, v2.3.6 and v2.5.0/v2.5.1.
RESET_RAISES = {"1.3": (312, 316), "2.3.5": (298, 302)}
# CPython's runpy frames for `python -m` (el7: 2.7, el8: 3.6, el9: 3.9).
RUNPY = {"el7": (("/usr/lib64/python2.7/runpy.py", 162, "in _run_module_as_main",
                  '"__main__", fname, loader, pkg_name)'),
                 ("/usr/lib64/python2.7/runpy.py", 72, "in _run_code", "exec code in run_globals")),
         "el8": (("/usr/lib64/python3.6/runpy.py", 193, "in _run_module_as_main", '"__main__", mod_spec)'),
                 ("/usr/lib64/python3.6/runpy.py", 85, "in _run_code", "exec(code, run_globals)")),
         "el9": (("/usr/lib64/python3.9/runpy.py", 197, "in _run_module_as_main",
                  "return _run_code(code, main_globals, None,"),
                 ("/usr/lib64/python3.9/runpy.py", 87, "in _run_code", "exec(code, run_globals)"))}


def reset_traceback(ctx, last, message):
    """The uncaught exception of `python -m ovirt_hosted_engine_setup.reinitialize_lockspace`
    (reinitialize_lockspace.py line 30 at 1.3.7.3 to 2.7.1 calls reset_lockspace bare)."""
    ha = ctx.host.packages.get("ovirt-hosted-engine-ha", "0")
    lines = RESET_RAISES.get(".".join(ha.split("-")[0].split(".")[:3]),
                             RESET_RAISES.get(ha[:3], (301, 305)))
    frames = [(path, line, where, code) for path, line, where, code in RUNPY.get(ctx.host.os, RUNPY["el7"])]
    site = site_packages(ctx)
    frames.append((f"{site}/ovirt_hosted_engine_setup/reinitialize_lockspace.py", 30, "in <module>",
                   "ha_cli.reset_lockspace(force)"))
    if last == "maintenance":
        frames.append((f"{site}/ovirt_hosted_engine_ha/client/client.py", lines[0], "in reset_lockspace",
                       'raise Exception("Lockfile reset can be performed in"'))
    elif last == "agent":
        frames.append((f"{site}/ovirt_hosted_engine_ha/client/client.py", lines[1], "in reset_lockspace",
                       'raise Exception("Lockfile reset cannot be performed with"'))
    ctx.error("Traceback (most recent call last):")
    for path, line, where, code in frames:
        ctx.error(f'  File "{path}", line {line}, {where}\n    {code}')
    ctx.error(message)
    return 1


async def reinitialize_lockspace(ctx, args):
    """reset_lockspace of the HA client (client/client.py at 1.3.5.8, v2.3.6, v2.5.1): without
    --force (only as the first word: reinitialize_lockspace.py reads sys.argv[1]) the global
    block must say maintenance and every host block `stopped`; a refusal is an uncaught
    Exception, so a traceback and exit 1 on every release that has the command."""
    cluster = ctx.cluster
    await ctx.sleep(2)
    if not broker_up(ctx):  # BrokerLink's socket is missing
        error = "FileNotFoundError" if ctx.host.os in ("el8", "el9") else "socket.error"
        return reset_traceback(ctx, "broker", f"{error}: [Errno 2] No such file or directory")
    if args[:1] != ["--force"]:
        if not cluster.global_maintenance:
            return reset_traceback(ctx, "maintenance", "Exception: Lockfile reset can be performed in "
                                                       "global maintenance mode only.")
        if any(not seg["stopped"] for seg in cluster.segments.values()):
            return reset_traceback(ctx, "agent", "Exception: Lockfile reset cannot be performed with "
                                                 "an active agent.")
    cluster.lockspace_corrupt = False
    return 0


# ovirt-ha-agent's options (agent/agent.py, optparse): 1.3.5.6 has --no-daemon too.
AGENT_OPTIONS = {"--pdb": False, "--cleanup": False, "--force-cleanup": False, "--host-id": True,
                 "--version": False, "--help": False}


def agent_options(ctx, args):
    """optparse's reading of ovirt-ha-agent --cleanup ARGS: `--opt value` and `--opt=value`,
    any unique prefix of a long option (`--force` is --force-cleanup), an int for --host-id.
    Returns (options, None) or (None, error message)."""
    known = dict(AGENT_OPTIONS)
    if not catalog.at_least(ctx.host.packages.get("ovirt-hosted-engine-ha", "0"), "2.0"):
        known["--no-daemon"] = False
    options, rest = {}, list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue  # positional arguments are left to the program, which ignores them
        name, eq, value = arg.partition("=")
        matches = [opt for opt in known if opt == name] or [opt for opt in known if opt.startswith(name)]
        if not matches:
            return None, f"no such option: {name}"
        if len(matches) > 1:
            return None, f"ambiguous option: {name} ({', '.join(sorted(matches))}?)"
        name = matches[0]
        if known[name]:
            if not eq:
                if not rest:
                    return None, f"{name} option requires an argument"
                value = rest.pop(0)
            try:
                options[name] = int(value)
            except ValueError:
                return None, f"option {name}: invalid integer value: '{value}'"
        elif eq:
            return None, f"{name} option does not take a value"
        else:
            options[name] = True
    return options, None


async def clean_metadata(ctx, args):
    """`hosted-engine --clean-metadata` execs `ovirt-ha-agent --cleanup "$@"`
    (hosted-engine.in@1.3.7.3, @2.3.13): the agent's optparse, then HostedEngine.clean()
    (agent/hosted_engine.py at 1.3.5.6, v2.3.6, v2.5.1). Its log goes to stderr; exit codes:
    0 whatever clean() decided about the block, 2 for a parse error, 254 (-2) when vdsm is
    down, 157 (-99) when an exception ends it (the broker unreachable; sanlock refusing the
    host id without --force-cleanup, as on a corrupted lockspace)."""
    cluster = ctx.cluster
    options, problem = agent_options(ctx, args)
    if problem:
        ctx.error("Usage: ovirt-ha-agent [options]\n\novirt-ha-agent: error: " + problem)
        return 2
    version = ctx.host.packages.get("ovirt-hosted-engine-ha", "")
    if options.get("--help"):
        ctx.print("Usage: ovirt-ha-agent [options]")
        return 0
    if options.get("--version"):
        ctx.print(f"ovirt-hosted-engine-ha agent {version.rsplit('-', 1)[0]}")
        return 0
    host_id = options.get("--host-id", ctx.host.host_id)
    force = options.get("--force-cleanup", False)
    agent = "ovirt_hosted_engine_ha.agent.agent.Agent:"
    he = "ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine:"
    ctx.error(f"INFO:{agent}ovirt-hosted-engine-ha agent {version.rsplit('-', 1)[0]} started")
    await ctx.sleep(3)
    if not ctx.cluster.vdsm_up(ctx.host, ctx.now()):
        ctx.error(f"ERROR:{he}Required service vdsmd is not up.")
        ctx.error(f"INFO:{agent}Agent shutting down")
        return 254
    failure = None
    if not broker_up(ctx):
        failure = "error: [Errno 2] No such file or directory"
    elif cluster.lockspace_corrupt:
        if force:
            ctx.error(f"WARNING:{he}Force requested, overriding sanlock failure.")
        else:
            failure = ("SanlockException: (-223, 'Sanlock lockspace add failure', "
                       "'Sanlock lockspace add failure')")
    if failure:
        if catalog.at_least(version, "2.0"):
            ctx.error(f"ERROR:{agent}Traceback (most recent call last):\n"
                      f'  File "{site_packages(ctx)}/ovirt_hosted_engine_ha/agent/agent.py", '
                      "in _run_agent\n    return action(he)\n" + failure)
            ctx.error(f"ERROR:{agent}Trying to restart agent")
        else:  # 1.3: ten tries 5 s apart (AGENT_START_RETRIES, AGENT_START_RETRY_WAIT)
            for attempt in range(10):
                ctx.error(f"ERROR:{agent}Error: '{failure.split(': ', 1)[1]}' - trying to restart agent")
                await ctx.sleep(5)
                ctx.error(f"WARNING:{agent}Restarting agent, attempt '{attempt}'")
            ctx.error(f"ERROR:{agent}Too many errors occurred, giving up. Please review the log and "
                      "consider filing a bug.")
        ctx.error(f"INFO:{agent}Agent shutting down")
        return 157
    seg = cluster.segments.get(str(host_id))
    if seg is None:
        # clean(): the broker returns no blank blocks, so the id is missing from the stats
        ctx.error(f"ERROR:{he}Metadata for current host missing.")
    elif seg["stopped"] or force:
        ctx.error(f"INFO:{he}Cleaning the metadata block!")
        del cluster.segments[str(host_id)]
        cluster.changed()
    else:
        ctx.error(f"ERROR:{he}Cannot clean unclean metadata block. Consider --force-clean.")
    ctx.error(f"INFO:{agent}Agent shutting down")
    return 0


def site_packages(ctx):
    """Where the host's Python keeps the oVirt modules (for tracebacks)."""
    return {"el6": "/usr/lib/python2.6/site-packages", "el7": "/usr/lib/python2.7/site-packages",
            "el8": "/usr/lib/python3.6/site-packages"}.get(ctx.host.os, "/usr/lib/python3.9/site-packages")


def vdsm_error(ctx, verb, message):
    """A vdsm ServerError as vdsm_helper prints it (str(e), exit 1)."""
    ctx.error(f"Command {verb} with args {{'vmID': '{vm.VM_ID}'}} failed:\n(code=1, message={message})")
    return 1


async def vm_start_paused(ctx, args):
    """cmd_vm_start_paused: vm.conf plus launchPaused=true, created through vdsm; qemu stays
    paused (vdsm status Paused) until someone resumes or powers it off."""
    return await vm_start(ctx, args, paused=True)


async def add_console_password(ctx, args):
    """cmd_add_console_password: --password=, else a line read from stdin (readpassword;
    without a terminal its `die` is not defined, so it only complains and reads on), then
    setVmTicket on the VM here. 2.x's vdsm_helper says where VNC listens; 1.x's vdsClient
    prints nothing the sources show (the lab prints nothing)."""
    password = option(args[:1], "--password")
    if password is None:
        line = f"{PROG}: line 1: die: command not found"
        ctx.error(line)
        ctx.error("stty: 'standard input': Inappropriate ioctl for device")
        ctx.error(line)
        ctx.err.write("Enter password: ")
        password = (await ctx.stdin.readline()).rstrip("\n")
        ctx.error("")
    await ctx.sleep(1)
    if not vdsm_check(ctx):
        return 1
    if vm.running_status(ctx.host) is None:
        return vdsm_error(ctx, "VM.updateDevice", "Virtual machine does not exist")
    if setup_at_least(ctx, "2.0"):
        ctx.print(f"You can now connect the hosted-engine VM with VNC at {ctx.host.address}:5900")
    return 0


async def console(ctx, args):
    """cmd_console: 2.3+ opens the serial console with virsh (which needs a terminal);
    1.x execs remote-viewer, which a host has not got."""
    await ctx.sleep(1)
    if not setup_at_least(ctx, "2.3"):
        ctx.print("Use the password you've set using --add-console-password for logging in")
        ctx.error(f"{PROG}: line 1: /usr/bin/remote-viewer: No such file or directory")
        return 127
    if not ctx.host.configured:  # checkVmStatus without a vm id: argparse refuses
        ctx.error("usage: vdsm_helper.py checkVmStatus [-h] vmid")
        ctx.error("vdsm_helper.py checkVmStatus: error: " + (
            "the following arguments are required: vmid" if series(ctx) == "2.7" else "too few arguments"))
        ctx.print("The engine VM is not on this host")
        return 0
    status = ctx.host.vm["status"] if ctx.host.vm and vdsm_check(ctx) else None
    if status is None:
        vdsm_error(ctx, "VM.getStats", "Virtual machine does not exist")
        ctx.print("The engine VM is not on this host")
        return 0
    if status == "Up":
        ctx.print("The engine VM is running on this host")
    elif series(ctx) == "2.3":
        ctx.print(f"The engine VM is on this host but its status is {status}")
        return 1
    else:
        ctx.print(f"The engine VM is on this host but its status is {status}")
        ctx.print("Trying anyway to connect to its console:")
        ctx.print()
    ctx.print("Escape character is ^]")
    ctx.error("error: Cannot run interactive console without a controlling TTY")
    return 1


async def connect_storage(ctx, args):
    """1.2: the script's own vdsClient connectStorageServer; 1.3+: the HA client's
    connect_storage_server (silent on success)."""
    await ctx.sleep(1)
    if not setup_at_least(ctx, "1.3"):
        text = ctx.host.fs.read(distro.HE_CONF) or ""
        kind = next((line.split("=", 1)[1] for line in text.splitlines()
                     if line.startswith("domainType=")), "")
        if kind not in ("nfs3", "nfs4", "glusterfs", "iscsi"):
            ctx.print(f"Storage type not supported: {kind}")
            return 1
        ctx.print("Connecting Storage Server")
    return 0 if vdsm_check(ctx) else 1


async def disconnect_storage(ctx, args):
    await ctx.sleep(1)
    return 0 if vdsm_check(ctx) else 1


async def start_pool(ctx, args):
    """1.2 only: connectStoragePool, spmStart, activateStorageDomain through vdsClient."""
    for line in ("Connecting Storage Pool", "Starting SPM", "Activating Storage Domain"):
        ctx.print(line)
        await ctx.sleep(1)
    return 0


# --get/--set-shared-config: the HA client's Config (env/config.py at HA 2.3.6 and 2.5.1):
# he_local (the host's hosted-engine.conf), he_shared (the copy on the shared storage; the
# lab keeps it next to vm.conf), ha (ha.conf), broker (broker.conf), vm (read-only).
SHARED_COPY = "/run/ovirt-hosted-engine-ha/hosted-engine.conf"
CONFIG_FILES = (("he_local", distro.HE_CONF), ("broker", "/var/lib/ovirt-hosted-engine-ha/broker.conf"),
                ("he_shared", SHARED_COPY), ("ha", "/var/lib/ovirt-hosted-engine-ha/ha.conf"),
                ("vm", distro.VM_CONF))


def read_config(ctx, path):
    if path == SHARED_COPY and not ctx.host.fs.exists(path):
        path = distro.HE_CONF
    values = {}
    for line in (ctx.host.fs.read(path) or "").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def config_file(ctx, key, wanted):
    """(type, path) holding key, or the refusal text; KeyError when no file has it."""
    found = [(kind, path) for kind, path in CONFIG_FILES
             if key in read_config(ctx, path) and (not wanted or kind == wanted)]
    if not found:
        raise KeyError(key)
    if len(found) > 1:
        return None, ("Duplicate key {0}, please specify the key type. Available types are: [{1}]"
                      .format(key, ", ".join(f"'{kind}'" for kind, _ in found)))
    if found[0][0] == "vm":
        return None, ("Invalid configuration type {0}, supported types are: [{1}]"
                      .format(wanted or None, ", ".join(f"'{kind}'" for kind, _ in CONFIG_FILES)))
    return found[0], None


def invalid_key(ctx, key, wanted):
    ctx.error(f"Invalid configuration key {key}.")
    ctx.error("Available keys are:")
    for kind, path in CONFIG_FILES:
        if kind != "vm" and (not wanted or kind == wanted):
            ctx.error(f"{kind} : {sorted(read_config(ctx, path))}")
    return 1


async def _shared_config(ctx, key, wanted):
    """(kind, path) of the file holding ``key``, or the exit status after saying why not."""
    await ctx.sleep(1)
    try:
        found, refusal = config_file(ctx, key, wanted)
    except KeyError:
        return invalid_key(ctx, key, wanted)
    if refusal:
        ctx.error(refusal)
        return 1
    return found


async def get_shared_config(ctx, args):
    key = args[0] if args else ""
    wanted = option(args[1:2], "--type") or ""
    if not key:
        ctx.print("You must specify a key to get")
        return 1
    found = await _shared_config(ctx, key, wanted)
    if isinstance(found, int):
        return found
    kind, path = found
    ctx.print(f"\n{key} : {read_config(ctx, path)[key]}, type : {kind}\n")
    return 0


async def set_shared_config(ctx, args):
    key = args[0] if args else ""
    value = args[1] if len(args) > 1 else ""
    wanted = option(args[2:3], "--type") or ""
    if not key:
        ctx.print("You must specify a key to set")
        return 1
    if not value:
        ctx.print("You must specify a new value to set")
        return 1
    found = await _shared_config(ctx, key, wanted)
    if isinstance(found, int):
        return found
    kind, path = found
    source = distro.HE_CONF if path == SHARED_COPY and not ctx.host.fs.exists(path) else path
    lines = (ctx.host.fs.read(source) or "").splitlines()
    lines = [f"{key}={value}" if line.split("=", 1)[0].strip() == key else line for line in lines]
    ctx.host.fs.write(path, "\n".join(lines) + "\n")
    return 0


HANDLERS = {
    "--vm-status": vm_status,
    "--vm-start": vm_start,
    "--vm-shutdown": vm_shutdown,
    "--vm-poweroff": vm_poweroff,
    "--check-liveliness": check_liveliness,
    "--check-deployed": check_deployed,
    "--set-maintenance": set_maintenance,
    "--reinitialize-lockspace": reinitialize_lockspace,
    "--clean-metadata": clean_metadata,
    "--vm-start-paused": vm_start_paused,
    "--add-console-password": add_console_password,
    "--console": console,
    "--connect-storage": connect_storage,
    "--disconnect-storage": disconnect_storage,
    "--start-pool": start_pool,
    "--get-shared-config": get_shared_config,
    "--set-shared-config": set_shared_config,
}
