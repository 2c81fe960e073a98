"""`hosted-engine --vm-status` output, plain and --json (facts §9), as each setup version
prints it (src/ovirt_hosted_engine_setup/vm_status.py at 1.2.6.1, 1.3.7.3, 2.0.0, 2.3.0).

Python 2 builds (setup 1.x and 2.0-2.3) print a host's fields in dict order; setup 1.2
has no `stopped`/`crc32` (HA 1.2's metadata lacks them), 2.0 adds the configuration
fields. Up to setup 2.2 the header is `--== Host N status ==--`. A stale host's Engine
status is `unknown stale-data` in every plain format since setup 1.1.0; --json (2.0+)
keeps its last engine status and says `live-data: false`.
"""

import json

from .catalog import version_key

BANNER = "\n\n!! Cluster is in GLOBAL MAINTENANCE mode !!\n"
STALE = "unknown stale-data"


def extra_text(seg):
    """The metadata's extra block as the publishing agent wrote it (agent/hosted_engine.py
    `_generate_local_blocks`): five header lines, from HA 2.0 also vm_conf_refresh_time and
    conf_on_shared_storage, then the state's metadata() sorted by key (agent/states.py):
    maintenance, state, stopped (HA 1.3+; 1.2.10 has no `stopped`), timeout."""
    ts = seg["host-ts"]
    extra = seg.get("extra", {})
    series = extra.get("series", "2")
    lines = [
        "metadata_parse_version=1",
        "metadata_feature_version=1",
        f"timestamp={ts} ({seg['wall']})",
        f"host-id={seg['host-id']}",
        f"score={seg['score']}",
    ]
    if series == "2":
        lines += [f"vm_conf_refresh_time={ts} ({seg['wall']})",
                  f"conf_on_shared_storage={seg['conf_on_shared_storage']}"]
    lines += [f"maintenance={seg['maintenance']}", f"state={seg['state']}"]
    if series != "1.2":
        lines.append(f"stopped={seg['stopped']}")
    if "timeout" in extra:
        lines.append(f"timeout={extra['timeout']}")
    return "".join(line + "\n" for line in lines)


LABELS = {"host-id": "Host ID", "host-ts": "Host timestamp", "score": "Score",
          "engine-status": "Engine status", "hostname": "Hostname",
          "maintenance": "Local maintenance", "live-data": "Status up-to-date"}
# Field order per setup version (newest first): (first version, keys).
FIELD_ORDERS = (
    ("2.4", ("host-id", "host-ts", "score", "engine-status", "hostname", "maintenance",
             "stopped", "crc32", "conf_on_shared_storage", "local_conf_timestamp", "live-data")),
    ("2.0", ("conf_on_shared_storage", "live-data", "hostname", "host-id", "engine-status",
             "score", "stopped", "maintenance", "crc32", "local_conf_timestamp", "host-ts")),
    ("1.3", ("live-data", "hostname", "host-id", "engine-status", "score", "stopped",
             "maintenance", "crc32", "host-ts")),
    ("0", ("live-data", "hostname", "host-id", "engine-status", "score", "maintenance",
           "host-ts")),
)


def field_order(setup_version):
    return next(keys for floor, keys in FIELD_ORDERS
                if version_key(setup_version) >= version_key(floor))


def render_plain(segments, live, global_maintenance, setup_version):
    """segments: sorted list; live: set of host ids with live data."""
    out = []
    if global_maintenance:
        out.append(BANNER)
    old_header = version_key(setup_version) < version_key("2.3")
    # 1.x prints the banner once; 2.0.0 prints it after the hosts again (commit 35dd496)
    banner_twice = version_key(setup_version) >= version_key("2.0")
    for seg in segments:
        host_id = seg["host-id"]
        is_live = host_id in live
        if old_header:
            out.append(f"\n\n--== Host {host_id} status ==--\n")
        else:
            out.append(f"\n\n--== Host {seg['hostname']} (id: {host_id}) status ==--\n")
        values = dict(seg, **{"live-data": is_live})
        values["engine-status"] = json.dumps(seg["engine-status"]) if is_live else STALE
        fields = [(LABELS.get(key, key), values[key]) for key in field_order(setup_version)]
        for label, value in fields:
            out.append(f"{label:<35}: {value}")
        out.append("Extra metadata (valid at timestamp):")
        out.append("".join("\t" + line + "\n" for line in extra_text(seg).splitlines()).rstrip("\n"))
    if global_maintenance and banner_twice:
        out.append(BANNER)
    return "\n".join(out) + "\n" if out else ""


def render_json(segments, live, global_maintenance):
    doc = {}
    for seg in segments:
        doc[str(seg["host-id"])] = {
            "host-id": seg["host-id"], "host-ts": seg["host-ts"], "score": seg["score"],
            "engine-status": seg["engine-status"], "hostname": seg["hostname"],
            "maintenance": seg["maintenance"], "stopped": seg["stopped"], "crc32": seg["crc32"],
            "conf_on_shared_storage": seg["conf_on_shared_storage"],
            "local_conf_timestamp": seg["local_conf_timestamp"], "extra": extra_text(seg),
            "live-data": seg["host-id"] in live,
        }
    doc["global_maintenance"] = global_maintenance
    return json.dumps(doc) + "\n"
