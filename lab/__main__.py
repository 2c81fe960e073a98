"""Command line: `python -m lab up ...`, `python -m lab fault KIND ...` and
`python -m lab admin ACTION ...`."""

import argparse
import asyncio
import json
import logging
import os
import sys

from .admin import ACTIONS
from .catalog import ALIASES, OS_RELEASE, RELEASES
from .control import FAULT_KINDS
from .errors import LabError
from .launcher import control_request


OSES = tuple(OS_RELEASE)
VERSIONS = tuple(RELEASES) + tuple(ALIASES)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m lab")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run a simulated hosted-engine cluster in the foreground")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    up.add_argument("--state-dir", required=True)
    up.add_argument("--os", choices=OSES, default=None,
                    help="the hosts' OS (default: the release's newest: el7 up to 4.3, el9 for 4.5)")
    up.add_argument("--engine-version", choices=VERSIONS, default="4.3",
                    help="the oVirt release of the engine and the hosts (4.x: the newest, 4.5)")
    up.add_argument("--ssh-port-base", type=int, default=0,
                    help="host N listens on BASE+N-1, the engine VM on BASE+hosts")
    up.add_argument("--undeployed", action="store_true",
                    help="hosts without hosted-engine, empty HE storage: deploy the first host")
    up.add_argument("--outdated", action="store_true",
                    help="hosts and engine VM run the release's previous build; its repo offers "
                         "the current one (a minor update)")
    up.add_argument("--from-snapshot", metavar="FILE",
                    help="a lab shaped like the cluster in FILE (a portal snapshot, "
                         "docs/lab.md): its release, host names, HE ids, versions, guest VMs")
    up.add_argument("--log-level", default="INFO")
    up.add_argument("--exit-with-parent", dest="parent", type=int, metavar="PID",
                    help="stop when process PID, the one starting the lab, dies (used by lab.launcher)")

    fault = sub.add_parser("fault", help="inject a fault into a running lab")
    fault.add_argument("kind", choices=FAULT_KINDS)
    fault.add_argument("--state-dir", required=True)
    fault.add_argument("--host")
    fault.add_argument("--pattern", help="fail-next-command: regex or substring of the command")
    fault.add_argument("--factor", type=float, help="slow-host: how many times slower")
    fault.add_argument("--os", choices=OSES, help="reinstall-host: the new OS")

    admin = sub.add_parser("admin", help="do what the engine's web admin would (any release)")
    admin.add_argument("action", choices=ACTIONS)
    admin.add_argument("--state-dir", required=True)
    admin.add_argument("--host")
    admin.add_argument("--cluster")
    admin.add_argument("--version", help="compatibility version, MAJOR.MINOR")
    admin.add_argument("--cpu", help="create-cluster: the CPU type")
    admin.add_argument("--policy", help="set-scheduling-policy: e.g. cluster_maintenance, none")
    admin.add_argument("--vm", help="add-vm, set-vm-affinity, remove-vm: the guest VM's name")
    admin.add_argument("--affinity", help="add-vm, set-vm-affinity: the VM's migration mode, "
                                          "migratable, user_migratable or pinned")

    state = sub.add_parser("state", help="print the running lab's state as JSON")
    state.add_argument("--state-dir", required=True)
    return parser.parse_args(argv)


def control_url(state_dir):
    path = os.path.join(state_dir, "manifest.json")
    try:
        with open(path) as f:
            return json.load(f)["control"]["url"]
    except FileNotFoundError:
        raise SystemExit(f"no running lab in {state_dir} (no manifest.json)")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "up":
        logging.basicConfig(level=args.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        from .up import run
        try:
            asyncio.run(run(args))
        except LabError as exc:
            raise SystemExit(f"lab: {exc}")
        return 0
    url = control_url(args.state_dir)
    if args.command == "state":
        print(json.dumps(control_request(url, "/state"), indent=2))
        return 0
    if args.command == "admin":
        body = {"action": args.action}
        keys = ("host", "cluster", "version", "cpu", "policy", "vm", "affinity")
        path = "/admin"
    else:
        body = {"kind": args.kind, "host": args.host}
        keys = ("pattern", "factor", "os")
        path = "/fault"
    for key in keys:
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    result = control_request(url, path, body)
    if not result.get("ok"):
        print(f"lab: {result.get('error')}", file=sys.stderr)
        return 1
    print(result["message"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
