"""Commands inside the engine VM: engine-setup and engine-backup."""

import time

from .. import catalog
from . import command

HE_NOT_GLOBAL = (
    "[ ERROR ] It seems that you are running your engine inside of the hosted-engine VM and "
    "are not in \"Global Maintenance\" mode.\n In that case you should put the system into the "
    "\"Global Maintenance\" mode before running engine-setup, or the hosted-engine HA agent "
    "might kill the machine, which might corrupt your data.\n")


def release_of_engine_setup(version):
    for release, packages in catalog.ENGINE_PACKAGES.items():
        if packages["ovirt-engine-setup"] == version:
            return release
    return None


def checks_global_maintenance(setup_version):
    """engine-setup refuses outside global maintenance only from 3.6.9 and 4.0.2.1."""
    key = catalog.version_key(setup_version)
    return key >= catalog.version_key("4.0.2.1") or (
        catalog.version_key("3.6.9") <= key < catalog.version_key("4"))


@command("engine-setup", machines=("engine-vm",), package="ovirt-engine-setup")
async def engine_setup(ctx, args):
    vm = ctx.machine
    ctx.print("[ INFO  ] Stage: Initializing")
    ctx.print("[ INFO  ] Stage: Environment setup")
    ctx.print("          Configuration files: ['/etc/ovirt-engine-setup.conf.d/10-packaging.conf', "
              "'/etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf']")
    await ctx.sleep(3)
    ctx.print("[ INFO  ] Stage: Environment packages setup")
    ctx.print("[ INFO  ] Stage: Programs detection")
    ctx.print("[ INFO  ] Stage: Environment customization")
    await ctx.sleep(2)
    if not vm.engine_configured:
        return await fresh_setup(ctx, args)
    if ctx.cluster.he_deployed and not ctx.cluster.global_maintenance \
            and checks_global_maintenance(vm.packages.get("ovirt-engine-setup", "0")):
        ctx.err.write(HE_NOT_GLOBAL)
        ctx.error("[ ERROR ] Failed to execute stage 'Setup validation': Hosted Engine setup "
                  "detected, but Global Maintenance is not set.")
        ctx.print("[ INFO  ] Stage: Clean up")
        ctx.print("[ INFO  ] Stage: Pre-termination")
        ctx.print("[ INFO  ] Stage: Termination")
        ctx.print("[ ERROR ] Execution of setup failed")
        return 1
    if "--accept-defaults" not in args:
        ctx.out.write("          During execution engine service will be stopped (OK, Cancel) [OK]: ")
        answer = await ctx.stdin.readline()
        if answer == "":
            ctx.error("[ ERROR ] Failed to execute stage 'Environment customization': End of file")
            return 1
        ctx.out.write("\n")
        if answer.strip().lower() == "cancel":
            ctx.error("[ ERROR ] Failed to execute stage 'Environment customization': Aborted by user")
            return 1
    ctx.print("[ INFO  ] Stage: Setup validation")
    ctx.print("[ INFO  ] Stage: Transaction setup")
    ctx.print("[ INFO  ] Stopping engine service")
    vm.setup_running = True
    try:
        for step, seconds in (("Stopping ovirt-fence-kdump-listener service", 2),
                              ("Stopping dwh service", 2), ("Stage: Misc configuration", 2),
                              ("Stage: Package installation", 5), ("Stage: Misc configuration", 2),
                              ("Backing up database localhost:engine to "
                               "'/var/lib/ovirt-engine/backups/engine-20261125100000.sql'.", 20),
                              ("Creating/refreshing Engine database schema", 40),
                              ("Upgrading CA", 5), ("Stage: Transaction commit", 2),
                              ("Stage: Closing up", 2), ("Starting engine service", 15)):
            ctx.print(f"[ INFO  ] {step}")
            await ctx.sleep(seconds)
        release = release_of_engine_setup(vm.packages.get("ovirt-engine-setup", ""))
        if release:
            vm.engine_version = release
            vm.install_packages({"ovirt-engine": catalog.ENGINE_PACKAGES[release]["ovirt-engine"]})
        vm.engine_running = True
    finally:
        vm.setup_running = False
    return setup_summary(ctx, vm.name)


def setup_summary(ctx, fqdn):
    """engine-setup's closing lines, the same for an upgrade and a fresh install."""
    ctx.print("\n          --== SUMMARY ==--\n")
    ctx.print("          Web access is enabled at:")
    ctx.print(f"              http://{fqdn}:80/ovirt-engine")
    ctx.print(f"              https://{fqdn}:443/ovirt-engine")
    ctx.print("\n          --== END OF SUMMARY ==--\n")
    for stage in ("Stage: Clean up", "Stage: Pre-termination", "Stage: Termination",
                  "Execution of setup completed successfully"):
        ctx.print(f"[ INFO  ] {stage}")
    return 0


async def ask(ctx, prompt, secret=False):
    """One answer from stdin; None at end of input (the caller fails like otopi)."""
    ctx.out.write(f"          {prompt}")
    line = await ctx.stdin.readline()
    if line == "":
        ctx.error("[ ERROR ] Failed to execute stage 'Environment customization': End of file")
        return None
    ctx.out.write("\n")
    return line.strip()


async def fresh_setup(ctx, args):
    """First engine-setup in a new engine VM (the howto's first-host deployment).

    Only the answers the lab uses are asked: the FQDN (must match the one given to
    hosted-engine --deploy, the howto's note) and the admin password (must match too).
    """
    vm = ctx.machine
    defaults = "--accept-defaults" in args
    ctx.print("\n          --== NETWORK CONFIGURATION ==--\n")
    fqdn = vm.name
    if not defaults:
        fqdn = await ask(ctx, f"Host fully qualified DNS name of this server [{vm.name}]: ")
        if fqdn is None:
            return 1
        fqdn = fqdn or vm.name
    ctx.print("\n          --== OVIRT ENGINE CONFIGURATION ==--\n")
    while True:
        password = await ask(ctx, "Engine admin password: ", secret=True)
        if password is None:
            return 1
        again = await ask(ctx, "Confirm engine admin password: ", secret=True)
        if again is None:
            return 1
        if password and password == again:
            break
        ctx.print("[ ERROR ] Passwords do not match" if password else "[ ERROR ] Empty password")
    ctx.print("[ INFO  ] Stage: Setup validation")
    ctx.print("\n          --== CONFIGURATION PREVIEW ==--\n")
    ctx.print(f"          {'Host FQDN':<40}: {fqdn}")
    ctx.print(f"          {'Engine database name':<40}: engine")
    if not defaults:
        answer = await ask(ctx, "Please confirm installation settings (OK, Cancel) [OK]: ")
        if answer is None:
            return 1
        if answer.lower() == "cancel":
            ctx.error("[ ERROR ] Failed to execute stage 'Setup validation': Aborted by user")
            return 1
    vm.setup_running = True
    try:
        for step, seconds in (("Stage: Transaction setup", 2), ("Stage: Misc configuration", 2),
                              ("Stage: Package installation", 3), ("Stage: Misc configuration", 2),
                              ("Initializing PostgreSQL", 5),
                              ("Creating PostgreSQL 'engine' database", 3),
                              ("Configuring PostgreSQL", 2), ("Creating CA", 3),
                              ("Creating/refreshing Engine database schema", 30),
                              ("Generating post install configuration file "
                               "'/etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf'", 1),
                              ("Stage: Transaction commit", 1), ("Stage: Closing up", 1),
                              ("Starting engine service", 10)):
            ctx.print(f"[ INFO  ] {step}")
            await ctx.sleep(seconds)
        vm.engine_fqdn = fqdn
        vm.admin_password = password
        vm.engine_configured = vm.engine_running = True
        ctx.cluster.set_admin_password(password)
    finally:
        vm.setup_running = False
    return setup_summary(ctx, fqdn)


@command("engine-backup", machines=("engine-vm",), package="ovirt-engine")
async def engine_backup(ctx, args):
    opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    mode = opts.get("mode", "backup")
    path = opts.get("file") and ctx.path(opts["file"])
    if mode not in ("backup", "restore"):
        ctx.error(f"FATAL: Invalid mode '{mode}'")
        return 1
    if not path:
        ctx.error("FATAL: --file is missing")
        return 1
    if mode == "restore":
        if ctx.machine.fs.read(path) is None:
            ctx.error(f"FATAL: Backup file '{opts['file']}' not found")
            return 1
        for line, seconds in (("Preparing to restore:", 1), ("- Unpacking file", 5),
                              ("Restoring:", 1), ("- Files", 5), ("Provisioning PostgreSQL users/databases:", 3),
                              ("- Engine database 'engine'", 30), ("Done.", 0)):
            ctx.print(line)
            await ctx.sleep(seconds)
        return 0
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(ctx.cluster.clock.wall()))
    ctx.print(f"Start of engine-backup with mode 'backup'\nscope: all\narchive file: {opts['file']}")
    for line, seconds in (("Backing up:", 1), ("Notifying engine", 1), ("- Files", 5),
                          ("- Engine database 'engine'", 30),
                          ("- DWH database 'ovirt_engine_history'", 10),
                          (f"Packing into file '{opts['file']}'", 5), ("Notifying engine", 1)):
        ctx.print(line)
        await ctx.sleep(seconds)
    ctx.machine.fs.write(path, f"ovirt-engine-backup {stamp} engine "
                               f"{ctx.machine.packages.get('ovirt-engine')}\n", mode=0o600)
    if "log" in opts:
        ctx.machine.fs.write(ctx.path(opts["log"]), f"{stamp} engine-backup: backup done\n")
    ctx.print("Done.")
    return 0
