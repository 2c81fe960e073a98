"""systemctl (el7) and service (both) for vdsmd, the HA daemons and ovirt-engine."""

import time

from .. import catalog
from . import command

DESCRIPTIONS = {
    "vdsmd": "Virtual Desktop Server Manager",
    "ovirt-ha-agent": "oVirt Hosted Engine High Availability Monitoring Agent",
    "ovirt-ha-broker": "oVirt Hosted Engine High Availability Communications Broker",
    "ovirt-engine": "oVirt Engine",
    "sshd": "OpenSSH server daemon",
}
START_SECS = {"vdsmd": 3, "ovirt-ha-broker": 2, "ovirt-ha-agent": 1, "ovirt-engine": 20, "sshd": 0}
ALIASES = {"vdsm": "vdsmd", "supervdsmd": "vdsmd"}


def unit_name(word):
    name = word[:-len(".service")] if word.endswith(".service") else word
    return ALIASES.get(name, name)


def known_units(machine):
    if machine.kind == "host":
        return {"vdsmd", "ovirt-ha-agent", "ovirt-ha-broker", "sshd"}
    return {"ovirt-engine", "sshd"}


def is_active(ctx, unit):
    machine = ctx.machine
    if unit == "sshd":
        return True
    if machine.kind == "host":
        return machine.services[unit]
    return machine.engine_running


def is_enabled(ctx, unit):
    if unit == "sshd" or ctx.machine.kind != "host":
        return True
    return ctx.machine.enabled[unit]


def installed(ctx, unit):
    machine = ctx.machine
    package = catalog.SERVICE_PACKAGE.get(unit)
    return unit in known_units(machine) and (package is None or package in machine.packages)


async def do_action(ctx, action, unit):
    """start/stop/restart one unit; returns (rc, error text or None)."""
    machine, cluster = ctx.machine, ctx.cluster
    if action in ("stop", "restart") and is_active(ctx, unit):
        await ctx.sleep(1)
        if machine.kind == "host":
            cluster.stop_service(machine, unit)
        elif unit == "ovirt-engine":
            machine.engine_running = False
    if action in ("start", "restart"):
        await ctx.sleep(START_SECS.get(unit, 1))
        if machine.kind == "host":
            problem = cluster.start_service(machine, unit)
            if problem:
                return 1, problem
        elif unit == "ovirt-engine":
            if not machine.engine_configured:
                return 1, ("Job for ovirt-engine.service failed because the control process "
                           "exited with error code. See \"systemctl status "
                           "ovirt-engine.service\" and \"journalctl -xe\" for details.")
            machine.engine_running = True
    return 0, None


def print_status(ctx, unit):
    active = is_active(ctx, unit)
    enabled = "enabled" if is_enabled(ctx, unit) else "disabled"
    since = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(ctx.cluster.clock.wall() - 300))
    ctx.print(f"\u25cf {unit}.service - {DESCRIPTIONS[unit]}")
    ctx.print(f"   Loaded: loaded (/usr/lib/systemd/system/{unit}.service; {enabled}; vendor preset: disabled)")
    if active:
        ctx.print(f"   Active: active (running) since {since}; 5min ago")
        ctx.print(f" Main PID: {1000 + len(unit) * 37} ({unit})")
    else:
        ctx.print(f"   Active: inactive (dead) since {since}; 5min ago")
    return 0 if active else 3


@command("systemctl", when=lambda machine: machine.os != "el6")
async def systemctl(ctx, args):
    words = [a for a in args if not a.startswith("-")]
    if not words:
        ctx.error("systemctl: this lab supports start|stop|restart|status|is-active|enable|disable")
        return 1
    action, units = words[0], [unit_name(w) for w in words[1:]]
    if action not in ("start", "stop", "restart", "status", "is-active", "is-enabled",
                      "enable", "disable", "daemon-reload"):
        ctx.error(f"Unknown operation '{action}'.")
        return 1
    if action == "daemon-reload":
        return 0
    rc = 0
    for unit in units:
        if not installed(ctx, unit):
            if action == "status":
                ctx.error(f"Unit {unit}.service could not be found.")
                rc = 4
            elif action == "is-active":
                ctx.print("unknown")
                rc = 3
            else:
                ctx.error(f"Failed to {action} {unit}.service: Unit not found.")
                rc = 5
            continue
        if action == "status":
            rc = max(rc, print_status(ctx, unit))
        elif action == "is-active":
            ctx.print("active" if is_active(ctx, unit) else "inactive")
            rc = rc or (0 if is_active(ctx, unit) else 3)
        elif action == "is-enabled":
            ctx.print("enabled" if is_enabled(ctx, unit) else "disabled")
            rc = rc or (0 if is_enabled(ctx, unit) else 1)
        elif action in ("enable", "disable"):
            if ctx.machine.kind == "host" and unit in ctx.machine.enabled:
                ctx.machine.enabled[unit] = action == "enable"
                verb = "Created symlink" if action == "enable" else "Removed symlink"
                ctx.error(f"{verb} /etc/systemd/system/multi-user.target.wants/{unit}.service.")
        else:
            code, problem = await do_action(ctx, action, unit)
            if problem:
                ctx.error(problem)
                rc = code
    return rc


EL6_LINES = {
    "vdsmd": ("Shutting down vdsm daemon: ", "vdsm: Running run_final_hooks", "Starting up vdsm daemon: "),
    "ovirt-ha-agent": ("Stopping ovirt-ha-agent: ", None, "Starting ovirt-ha-agent: "),
    "ovirt-ha-broker": ("Stopping ovirt-ha-broker: ", None, "Starting ovirt-ha-broker: "),
    "ovirt-engine": ("Stopping oVirt Engine: ", None, "Starting oVirt Engine: "),
    "sshd": ("Stopping sshd: ", None, "Starting sshd: "),
}


@command("service", path="/usr/sbin")
async def service(ctx, args):
    if len(args) < 2:
        ctx.error("Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]")
        return 1
    unit, action = unit_name(args[0]), args[1]
    if not installed(ctx, unit):
        ctx.error(f"{args[0]}: unrecognized service")
        return 1
    if ctx.machine.os != "el6":  # systemd from el7 on
        ctx.error(f"Redirecting to /bin/systemctl {action} {unit}.service")
        return await systemctl(ctx, [action, unit])
    if action == "status":
        running = is_active(ctx, unit)
        ctx.print(f"{unit} (pid  {1000 + len(unit) * 37}) is running..." if running else f"{unit} is stopped")
        return 0 if running else 3
    if action not in ("start", "stop", "restart"):
        ctx.error(f"Usage: /etc/init.d/{unit} {{start|stop|status|restart}}")
        return 2
    stop_line, hook_line, start_line = EL6_LINES[unit]
    if action in ("stop", "restart"):
        ctx.print(f"{stop_line:<60}[  OK  ]")
        if hook_line:
            ctx.print(f"{hook_line:<60}[  OK  ]")
        await do_action(ctx, "stop", unit)
    if action in ("start", "restart"):
        code, problem = await do_action(ctx, "start", unit)
        ctx.print(f"{start_line:<60}" + ("[FAILED]" if problem else "[  OK  ]"))
        if problem:
            ctx.error(problem)
            return code
    return 0


@command("initctl", path="/usr/sbin", os="el6")
async def initctl(ctx, args):
    """Upstart on el6; libvirtd is its job on a host vdsm configured (/etc/init/libvirtd.conf)."""
    if len(args) < 2 or args[0] not in ("start", "stop", "status", "restart"):
        ctx.error("initctl: missing job name" if args else "initctl: missing command")
        return 1
    action, job = args[0], args[1]
    if not ctx.machine.fs.exists(f"/etc/init/{job}.conf"):
        ctx.error(f"initctl: Unknown job: {job}")
        return 1
    pid = 1000 + len(job) * 37
    ctx.print(f"{job} stop/waiting" if action == "stop" else f"{job} start/running, process {pid}")
    return 0


@command("chkconfig", path="/usr/sbin")
async def chkconfig(ctx, args):
    """Boot-time enablement; on el7 it hands systemd units over to systemctl."""
    machine = ctx.machine
    if not args or args[0] == "--list":
        units = args[1:] or sorted(u for u in known_units(machine) if installed(ctx, u))
        for unit in map(unit_name, units):
            if not installed(ctx, unit):
                ctx.error(f"error reading information on service {unit}: No such file or directory")
                return 1
            state = "on" if is_enabled(ctx, unit) else "off"
            ctx.print(f"{unit:<24}0:off\t1:off\t2:{state}\t3:{state}\t4:{state}\t5:{state}\t6:off")
        return 0
    unit = unit_name(args[0])
    if not installed(ctx, unit):
        ctx.error(f"error reading information on service {args[0]}: No such file or directory")
        return 1
    if len(args) == 1:
        return 0 if is_enabled(ctx, unit) else 1
    if args[1] not in ("on", "off"):
        ctx.error("chkconfig: invalid argument: " + args[1])
        return 1
    action = "enable" if args[1] == "on" else "disable"
    if machine.os != "el6":
        ctx.error(f"Note: Forwarding request to 'systemctl {action} {unit}.service'.")
        return await systemctl(ctx, [action, unit])
    if machine.kind == "host" and unit in machine.enabled:
        machine.enabled[unit] = action == "enable"
    return 0
