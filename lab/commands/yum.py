"""yum, yum-config-manager and rpm over the machine's package set and repo files.

Installing or removing a package puts its files on the machine's disk or takes them away
(lab/distro.py); removing one stops and disables its services first, as the packages'
%preun scriptlets do (ovirt-hosted-engine-ha.spec.in: %systemd_preun).

Adding a repo: `yum install -y http://resources.ovirt.org/pub/yum-repo/ovirt-release36.rpm`
(installs the release rpm, which drops /etc/yum.repos.d/ovirt-3.6.repo),
`yum-config-manager --add-repo URL`, or writing a .repo file (`cat > ... <<EOF`, `tee`).
"""

import fnmatch
import re
import time

from .. import catalog
from . import command

ARCH = {"vdsm": "x86_64", "kernel": "x86_64", "bash": "x86_64", "libvirt": "x86_64",
        "qemu-kvm-ev": "x86_64", "qemu-kvm": "x86_64", "openssh-server": "x86_64",
        "yum": "noarch", "dnf": "noarch"}

# Which packages an HE package drags in (a rough dependency graph); a name no enabled
# repo offers is skipped (each release has its own engine SDK package).
SDKS = ["ovirt-engine-sdk-python", "python2-ovirt-engine-sdk4", "python3-ovirt-engine-sdk4"]
REQUIRES = {
    "ovirt-hosted-engine-setup": ["ovirt-hosted-engine-ha", "vdsm"] + SDKS,
    "ovirt-hosted-engine-ha": ["vdsm"] + SDKS,
    "ovirt-engine": ["ovirt-engine-setup"],
}
HA_DAEMONS = ("ovirt-ha-broker", "ovirt-ha-agent")


def is_dnf(machine):
    """EL8 and EL9 have dnf, and `yum` is dnf there."""
    return catalog.uses_dnf(machine.os)


def matching(words, names):
    """Names matching yum's arguments, which may be globs (`ovirt*setup*`)."""
    return [name for name in names if any(fnmatch.fnmatchcase(name, word) for word in words)]


def nevra(machine, name, version):
    return f"{name}.{ARCH.get(name, 'noarch')} 0:{version}.{machine.os}"


def parse_opts(args):
    assume_yes = any(a in ("-y", "--assumeyes") for a in args)
    quiet = any(a in ("-q", "--quiet") for a in args)
    words = [a for a in args if not a.startswith("-")]
    return assume_yes, quiet, words


async def header(ctx):
    await ctx.sleep(2)
    if is_dnf(ctx.machine):
        when = time.strftime("%a %d %b %Y %I:%M:%S %p UTC", time.gmtime(ctx.cluster.clock.wall() - 192))
        ctx.print(f"Last metadata expiration check: 0:03:12 ago on {when}.")
        return
    ctx.print("Loaded plugins: fastestmirror, langpacks")
    ctx.print("Loading mirror speeds from cached hostfile")
    for release in sorted(ctx.machine.repo_releases(), key=catalog.version_key):
        ctx.print(f" * {catalog.URL_PATH[release]}: resources.ovirt.org")


async def confirm(ctx, assume_yes, download):
    """yum's userconfirm (output.py): no answer, or end of input, is No. The `d`
    (download only) choice is offered only when there is something to download (cli.py)."""
    if assume_yes:
        return True
    ctx.out.write("Is this ok [y/d/N]: " if download and not is_dnf(ctx.machine) else "Is this ok [y/N]: ")
    answer = (await ctx.stdin.readline()).strip().lower()
    if answer not in ("y", "yes"):
        if is_dnf(ctx.machine):
            ctx.print("Operation aborted.")
            return False
        ctx.print("Exiting on user command")
        ctx.print("Your transaction was saved, rerun it with:")
        ctx.print(" yum load-transaction /tmp/yum_save_tx.2026-11-25.10-00.Xq3xJ0.yumtx")
        return False
    return True


async def transaction(ctx, changes, verb, assume_yes):
    """Stream a yum transaction; `changes` is [(name, old, new)]. Returns rc."""
    machine = ctx.machine
    dnf = is_dnf(machine)
    if dnf:
        await ctx.sleep(0.5 * len(changes))
        ctx.print("Dependencies resolved.")
    else:
        ctx.print("Resolving Dependencies")
        ctx.print("--> Running transaction check")
        for name, old, new in changes:
            await ctx.sleep(0.5)
            state = {"install": "installed", "update": "an update", "remove": "erased"}[verb]
            shown = new or old
            ctx.print(f"---> Package {nevra(machine, name, shown)} will be {state}")
        ctx.print("--> Finished Dependency Resolution\n\nDependencies Resolved\n")
    ctx.print("=" * 80)
    ctx.print(f" {'Package':<34}{'Arch':<10}{'Version':<22}Repository")
    ctx.print("=" * 80)
    title = {"install": "Installing:", "update": "Upgrading:" if dnf else "Updating:",
             "remove": "Removing:"}[verb]
    ctx.print(title)
    for name, old, new in changes:
        repo = "installed" if verb == "remove" else repo_of(machine, name, new)
        ctx.print(f" {name:<34}{ARCH.get(name, 'noarch'):<10}{(new or old) + '.' + machine.os:<22}{repo}")
    ctx.print("\nTransaction Summary")
    ctx.print("=" * 80)
    word = {"install": "Install", "update": "Upgrade", "remove": "Remove"}[verb]
    ctx.print(f"{word}  {len(changes)} Package{'s' if len(changes) != 1 else ''}\n")
    if not await confirm(ctx, assume_yes, download=verb != "remove"):
        return 1
    if verb != "remove":
        ctx.print("Downloading packages:")
        for name, old, new in changes:
            await ctx.sleep(2)
            rpm = f"{name}-{new}.{machine.os}.{ARCH.get(name, 'noarch')}.rpm"
            ctx.print(f"{rpm:<60}| 1.2 MB  00:00:01")
    ctx.print("Running transaction check" + ("\nTransaction check succeeded." if dnf else ""))
    ctx.print("Running transaction test\nTransaction test succeeded" + ("." if dnf else ""))
    ctx.print("Running transaction")
    total = len(changes)
    step = {"install": "Installing", "update": "Upgrading" if dnf else "Updating",
            "remove": "Erasing"}[verb]
    for i, (name, old, new) in enumerate(changes, 1):
        await ctx.sleep(4)
        ctx.print(f"  {step} : {name}-{new or old}.{machine.os}.{ARCH.get(name, 'noarch'):<30} {i}/{total}")
        if verb == "remove":
            stop_services_of(ctx, name)
            machine.remove_packages([name])
        else:
            machine.install_packages({name: new})
    if verb == "update":
        for i, (name, old, new) in enumerate(changes, 1):
            await ctx.sleep(0.5)
            ctx.print(f"  Cleanup    : {name}-{old}.{machine.os}.{ARCH.get(name, 'noarch'):<30} {i}/{total}")
            if name == "ovirt-hosted-engine-ha":
                restart_ha(ctx)
    for i, (name, old, new) in enumerate(changes, 1):
        await ctx.sleep(0.3)
        ctx.print(f"  Verifying  : {name}-{new or old}.{machine.os}.{ARCH.get(name, 'noarch'):<30} {i}/{total}")
    past = {"install": "Installed:", "update": "Upgraded:" if dnf else "Updated:",
            "remove": "Removed:"}[verb]
    ctx.print("\n" + past)
    ctx.print("  " + "  ".join(f"{name}.{ARCH.get(name, 'noarch')} 0:{new or old}.{machine.os}"
                               for name, old, new in changes))
    ctx.print("\nComplete!")
    return 0


def restart_ha(ctx):
    """The old package's %postun (`%systemd_postun_with_restart`; 1.2: condrestart):
    running HA daemons restart with the new code."""
    machine = ctx.machine
    if machine.kind != "host":
        return
    for unit in HA_DAEMONS:
        if machine.services[unit]:
            ctx.cluster.restart_service(machine, unit)


def stop_services_of(ctx, package):
    """%preun on erase: `systemctl --no-reload disable --now` of the package's units."""
    machine = ctx.machine
    for unit in (u for u, p in catalog.SERVICE_PACKAGE.items() if p == package):
        if machine.kind == "host" and unit in machine.services:
            if machine.services[unit]:
                ctx.cluster.stop_service(machine, unit)
            machine.enabled[unit] = False
        elif unit == "ovirt-engine" and machine.kind == "engine-vm":
            machine.engine_running = False


def repo_of(machine, name, version):
    for release in machine.repo_releases():
        if machine.release_packages(release).get(name) == version:
            return catalog.URL_PATH[release]
    return "base"


def with_requires(names, machine):
    wanted = []
    for name in names:
        for dep in [name] + REQUIRES.get(name, []):
            if dep not in wanted and dep not in machine.packages:
                wanted.append(dep)
    return wanted


async def yum_install(ctx, assume_yes, words):
    machine = ctx.machine
    available = machine.available_packages()
    changes, missing = [], []
    for word in words:
        if word.startswith(("http://", "https://")) or word.endswith(".rpm"):
            release = catalog.release_of_url(word)
            if release is None:
                ctx.error(f"Cannot open: {word}. Skipping.")
                continue
            ctx.print(f"Examining {word}: {catalog.RELEASE_PACKAGE[release]}-1-1.noarch")
            ctx.print(f"Marking {word} to be installed")
            changes.append(("release", release))
            continue
        names = matching([word], available) or matching([word], machine.packages)
        if not names:
            missing.append(word)
            continue
        for name in names:
            if name in machine.packages:
                ctx.print(f"Package {name}-{machine.packages[name]}.{machine.os}.noarch "
                          "already installed and latest version")
                continue
            for dep in with_requires([name], machine):
                if dep in available and ("pkg", dep) not in changes:
                    changes.append(("pkg", dep))
    for word in missing:
        if is_dnf(machine):
            ctx.print(f"No match for argument: {word}")
            ctx.error(f"Error: Unable to find a match: {word}")
            return 1
        ctx.print(f"No package {word} available.")
    if not changes:
        if is_dnf(machine):
            ctx.print("Dependencies resolved.\nNothing to do.\nComplete!")
            return 0
        ctx.error("Error: Nothing to do")
        return 1
    plan = []
    for kind, what in changes:
        if kind == "release":
            plan.append((catalog.RELEASE_PACKAGE[what], None, "1-1"))
        else:
            plan.append((what, None, available[what]))
    return await transaction(ctx, plan, "install", assume_yes)  # a release rpm brings its repo


async def yum_update(ctx, assume_yes, words):
    outdated = ctx.machine.outdated_packages()
    if words:
        outdated = {n: outdated[n] for n in matching(words, outdated)}
    if not outdated:
        ctx.print("Dependencies resolved.\nNothing to do.\nComplete!" if is_dnf(ctx.machine)
                  else "No packages marked for update")
        return 0
    plan = [(name, ctx.machine.packages[name], version) for name, version in sorted(outdated.items())]
    return await transaction(ctx, plan, "update", assume_yes)


async def yum_remove(ctx, assume_yes, words):
    machine = ctx.machine
    names = matching(words, machine.packages)
    if not names:
        ctx.print("No Match for argument: " + " ".join(words))
        ctx.error("No Packages marked for removal")
        return 1
    plan = [(name, machine.packages[name], None) for name in sorted(names)]
    return await transaction(ctx, plan, "remove", assume_yes)


@command("dnf", when=is_dnf)
async def dnf(ctx, args):
    return await yum(ctx, args)


@command("yum")
async def yum(ctx, args):
    assume_yes, quiet, words = parse_opts(args)
    if not words:
        ctx.error("You need to give some command\nusage: yum [options] COMMAND")
        return 1
    sub, words = words[0], words[1:]
    if sub in ("clean", "makecache"):
        ctx.print("Loaded plugins: fastestmirror, langpacks")
        await ctx.sleep(1)
        ctx.print("Cleaning repos: base " + " ".join(
            catalog.URL_PATH[r] for r in sorted(ctx.machine.repo_releases())))
        return 0
    if sub == "repolist":
        ctx.print("Loaded plugins: fastestmirror, langpacks")
        ctx.print(f"{'repo id':<40}repo name")
        major = ctx.machine.os[2:]
        ctx.print(f"{'base/' + major + '/x86_64':<40}CentOS-{major} - Base")
        for release in sorted(ctx.machine.repo_releases(), key=catalog.version_key):
            ctx.print(f"{catalog.URL_PATH[release]:<40}Latest oVirt {release} Release")
        return 0
    if sub == "list":
        if not is_dnf(ctx.machine):
            ctx.print("Loaded plugins: fastestmirror, langpacks")
        ctx.print("Installed Packages")
        for name, version in sorted(ctx.machine.packages.items()):
            if not words[1:] or name in words[1:]:
                ctx.print(f"{name + '.' + ARCH.get(name, 'noarch'):<40}{version + '.' + ctx.machine.os:<25}@installed")
        return 0
    if sub == "check-update":
        await header(ctx)
        outdated = ctx.machine.outdated_packages()
        if outdated:
            ctx.print("")  # yum's and dnf's blank line between the header and the list
        for name, version in sorted(outdated.items()):
            ctx.print(f"{name + '.' + ARCH.get(name, 'noarch'):<40}{version + '.' + ctx.machine.os:<25}"
                      f"{repo_of(ctx.machine, name, version)}")
        return 100 if outdated else 0
    handlers = {"install": yum_install, "update": yum_update, "upgrade": yum_update,
                "remove": yum_remove, "erase": yum_remove}
    if sub not in handlers:
        ctx.error(f"No such command: {sub}. Please use /usr/bin/yum --help")
        return 1
    if sub in ("install", "remove", "erase") and not words:
        ctx.error(f"Error: Need to pass a list of pkgs to {sub}")
        return 1
    await header(ctx)
    return await handlers[sub](ctx, assume_yes, words)


@command("yum-config-manager")
async def yum_config_manager(ctx, args):
    if "--add-repo" not in args and not any(a.startswith("--add-repo=") for a in args):
        ctx.print("Loaded plugins: fastestmirror, langpacks")
        return 0
    urls = [a.split("=", 1)[1] for a in args if a.startswith("--add-repo=")]
    if "--add-repo" in args:
        i = args.index("--add-repo")
        urls += args[i + 1:i + 2]
    ctx.print("Loaded plugins: fastestmirror, langpacks")
    for url in urls:
        ctx.print(f"adding repo from: {url}")
        repo_id = re.sub(r"[^A-Za-z0-9.-]+", "_", url.split("://", 1)[-1]).strip("_")
        path = f"/etc/yum.repos.d/{repo_id}.repo"
        ctx.print(f"\n[{repo_id}]\nname=added from: {url}\nbaseurl={url}\nenabled=1\n")
        ctx.machine.fs.write(path, f"[{repo_id}]\nname=added from: {url}\nbaseurl={url}\nenabled=1\n")
    return 0


@command("rpm")
async def rpm(ctx, args):
    machine = ctx.machine
    if "-qa" in args or ("-q" in args and "-a" in args):
        for name, version in sorted(machine.packages.items()):
            ctx.print(f"{name}-{version}.{machine.os}.{ARCH.get(name, 'noarch')}")
        return 0
    if "-q" not in args:
        ctx.error("rpm: only queries (-q) are supported here")
        return 1
    rc = 0
    for name in (a for a in args if not a.startswith("-")):
        if name in machine.packages:
            ctx.print(f"{name}-{machine.packages[name]}.{machine.os}.{ARCH.get(name, 'noarch')}")
        else:
            ctx.print(f"package {name} is not installed")
            rc = 1
    return rc
