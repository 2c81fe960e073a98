"""`hosted-engine --vm-status` output, plain and --json (facts §9)."""

import json

BANNER = "\n\n!! Cluster is in GLOBAL MAINTENANCE mode !!\n"
STALE = "unknown stale-data"


def extra_text(seg):
    ts = seg["host-ts"]
    lines = [
        "metadata_parse_version=1",
        "metadata_feature_version=1",
        f"timestamp={ts} ({seg['wall']})",
        f"host-id={seg['host-id']}",
        f"score={seg['score']}",
        f"vm_conf_refresh_time={ts} ({seg['wall']})",
        "conf_on_shared_storage=True",
        f"maintenance={seg['maintenance']}",
        f"state={seg['state']}",
        f"stopped={seg['stopped']}",
    ]
    if "timeout" in seg.get("extra", {}):
        lines.append(f"timeout={seg['extra']['timeout']}")
    return "".join(line + "\n" for line in lines)


def render_plain(segments, live, global_maintenance, old_header):
    """segments: sorted list; live: set of host ids with live data."""
    out = []
    if global_maintenance:
        out.append(BANNER)
    for seg in segments:
        host_id = seg["host-id"]
        is_live = host_id in live
        if old_header:
            out.append(f"\n\n--== Host {host_id} status ==--\n")
        else:
            out.append(f"\n\n--== Host {seg['hostname']} (id: {host_id}) status ==--\n")
        status = json.dumps(seg["engine-status"]) if is_live else STALE
        fields = [
            ("Host ID", host_id),
            ("Host timestamp", seg["host-ts"]),
            ("Score", seg["score"]),
            ("Engine status", status),
            ("Hostname", seg["hostname"]),
            ("Local maintenance", seg["maintenance"]),
            ("stopped", seg["stopped"]),
            ("crc32", seg["crc32"]),
            ("conf_on_shared_storage", seg["conf_on_shared_storage"]),
            ("local_conf_timestamp", seg["local_conf_timestamp"]),
            ("Status up-to-date", is_live),
        ]
        for label, value in fields:
            out.append(f"{label:<35}: {value}")
        out.append("Extra metadata (valid at timestamp):")
        out.append("".join("\t" + line + "\n" for line in extra_text(seg).splitlines()).rstrip("\n"))
    if global_maintenance:
        out.append(BANNER)
    return "\n".join(out) + "\n"


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
