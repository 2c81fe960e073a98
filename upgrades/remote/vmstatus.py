"""Parse ``hosted-engine --vm-status`` output, plain or ``--json``, into one structure.

The plain format is meant for people and has changed between releases (field
order, header wording, key order inside "Engine status"), so it is read by
label, never by position. Both formats go through the same host builder, so a
host reads the same whichever format it came from. See docs/vm-status.md.
"""
import json
import re
from dataclasses import asdict, dataclass, field

# Real output is about 1 KB per host and there are at most 2000 hosts, so
# anything much bigger is not vm-status output; refuse it rather than churn.
MAX_INPUT_CHARS = 8_000_000
# "Engine status" is a short JSON object; the lenient fallback regex below is
# only safe on short strings.
MAX_ENGINE_STATUS_CHARS = 4096

GLOBAL_MAINTENANCE_MARK = "global maintenance"
STALE_DATA = "unknown stale-data"

# Text the CLI prints instead of a status, lower-cased. Any line holding one of
# these means the status could not be read, even if other lines follow.
ERROR_MARKERS = (
    "an error occured while retrieving vm status",  # sic, as printed
    "an error occurred while retrieving vm status",
    "you must run deploy first",
    "cannot connect to the ha daemon",
    "unable to connect the ha broker",
)

# Plain labels (normalised: lower case, single spaces) -> the JSON key. Labels
# not listed are kept as they are, which also covers old builds that printed
# raw keys such as "live-data" when no description existed.
PLAIN_LABELS = {
    "host id": "host-id",
    "host timestamp": "host-ts",
    "score": "score",
    "engine status": "engine-status",
    "hostname": "hostname",
    "local maintenance": "maintenance",
    "stopped": "stopped",
    "crc32": "crc32",
    "conf_on_shared_storage": "conf_on_shared_storage",
    "local_conf_timestamp": "local_conf_timestamp",
    "status up-to-date": "live-data",
    # oVirt 3.x printed "Host is alive" before "Status up-to-date" existed.
    "host is alive": "alive",
}

_INT = re.compile(r"[+-]?\d{1,18}")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
# Fallback for an "Engine status" that is not JSON, e.g. a Python dict repr
# ({'vm': u'up', ...}) from Python 2 era builds.
_ENGINE_PAIR = re.compile(r"""(['"])(vm|health|detail|reason)\1\s*:\s*u?(['"])(.*?)\3""")
_EXCEPTION_REPR = re.compile(r"""['"]exception['"]\s*:\s*u?(['"])(.*?)\1""")


class VmStatusParseError(ValueError):
    """The text is not vm-status output we can read; the message is one line."""

    def __init__(self, reason):
        super().__init__(_one_line(reason))


@dataclass(frozen=True)
class HostStatus:
    """One host block. The engine status is as the host printed it: ``--json`` keeps a
    stale host's last one, so ``up_to_date`` says whether to trust it (``engine_up`` does)."""

    host_id: int
    hostname: str
    score: int | None = None
    state: str | None = None
    up_to_date: bool = True
    local_maintenance: bool = False
    stopped: bool = False
    engine_vm: str | None = None
    health: str | None = None
    engine_detail: str | None = None
    engine_reason: str | None = None
    host_timestamp: int | None = None
    local_conf_timestamp: int | None = None
    crc32: str | None = None
    conf_on_shared_storage: bool | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def engine_up(self):
        return self.up_to_date and self.engine_vm == "up"


@dataclass(frozen=True)
class VmStatus:
    global_maintenance: bool
    hosts: tuple[HostStatus, ...]
    # "json" or "plain", and which ovirt-hosted-engine-setup series prints this layout
    # (docs/vm-status.md, "Which release printed it").
    format: str = "json"
    setup_series: str = ""

    def host(self, host_id):
        return next((h for h in self.hosts if h.host_id == host_id), None)

    def engine_host(self):
        """The live host running the engine VM, or None.

        During a migration the source reports up/good; a booting VM reports
        up/bad, so good health wins if two hosts claim the VM.
        """
        running = [h for h in self.hosts if h.engine_up]
        running.sort(key=lambda h: h.health != "good")
        return running[0] if running else None

    def to_dict(self):
        return {"global_maintenance": self.global_maintenance, "hosts": [asdict(h) for h in self.hosts]}


def parse_vm_status(text):
    """Parse plain or ``--json`` vm-status output. Raises only VmStatusParseError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise VmStatusParseError(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_INPUT_CHARS:
        raise VmStatusParseError(f"input too large ({len(text)} characters)")
    body = text.lstrip("\ufeff \t\r\n")
    if not body.strip():
        raise VmStatusParseError("empty input")
    lines = body.splitlines()
    _raise_on_error_text(lines)
    try:
        if body[0] in "{[":
            return _parse_json(body)
        return _parse_plain(lines)
    except VmStatusParseError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        # Safety net: whatever slips past the checks below is still bad input.
        raise VmStatusParseError(f"unreadable vm-status: {exc}") from exc


def _raise_on_error_text(lines):
    for line in lines:
        low = line.lower()
        if any(marker in low for marker in ERROR_MARKERS):
            # --json wraps the message as {'exception': '...'}; report the message.
            match = _EXCEPTION_REPR.search(line)
            raise VmStatusParseError(f"vm-status failed: {match.group(2) if match else line.strip()}")


def _parse_json(body):
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # --json prints a Python dict repr, not JSON, when the broker is down.
        match = _EXCEPTION_REPR.search(body[:4096])
        if match:
            raise VmStatusParseError(f"vm-status failed: {match.group(2)}") from None
        raise VmStatusParseError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VmStatusParseError(f"expected a JSON object, got {type(data).__name__}")
    if "exception" in data:
        raise VmStatusParseError(f"vm-status failed: {data['exception']}")
    hosts = []
    for key, value in data.items():
        # Host ids are the numeric keys; anything else is cluster-wide.
        if not (key.isascii() and key.isdigit()):
            continue
        if not isinstance(value, dict):
            raise VmStatusParseError(f"host {key[:20]}: expected an object")
        extra = value.get("extra")
        if extra is not None and not isinstance(extra, str):
            raise VmStatusParseError(f"host {key[:20]}: extra is not a string")
        where = f"host {key[:20]}"
        hosts.append(_build_host(value, _parse_extra((extra or "").splitlines()), _to_int(key, where), None, where))
    global_maintenance = _to_bool(data.get("global_maintenance"), "global_maintenance")
    # setup 2.0 and 2.1 printed no global_maintenance key in --json
    series = "2.2+" if "global_maintenance" in data else "2.0-2.1"
    return _make_status(bool(global_maintenance), hosts, "json", series)


class _Block:
    def __init__(self, header_id, header_name):
        self.header_id = header_id
        self.header_name = header_name
        self.fields = {}
        self.extra_lines = []


def _parse_plain(lines):
    global_maintenance = False
    blocks = []
    block = None
    in_extra = False
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("!!") and GLOBAL_MAINTENANCE_MARK in stripped.lower():
            global_maintenance = True
            continue
        header = _parse_header(stripped)
        if header is not None:
            block = _Block(*header)
            blocks.append(block)
            in_extra = False
            continue
        if block is None:
            continue  # banners, warnings or motd before the first host
        if in_extra and (line[0] in " \t" or _looks_like_key_value(stripped)):
            block.extra_lines.append(stripped)
            continue
        label, sep, value = stripped.partition(":")
        if not sep:
            continue
        label = " ".join(label.lower().split())
        if label.startswith("extra metadata"):
            in_extra = True
            continue
        in_extra = False
        block.fields[PLAIN_LABELS.get(label, label)] = value.strip()
    if not blocks and not global_maintenance:
        raise VmStatusParseError("no host status found in input")
    hosts = []
    for number, b in enumerate(blocks, 1):
        where = f"host block {number}"
        hosts.append(_build_host(b.fields, _parse_extra(b.extra_lines), b.header_id, b.header_name, where))
    return _make_status(global_maintenance, hosts, "plain", _plain_series(blocks))


def _plain_series(blocks):
    """The setup series whose plain layout this is: the header names the host from 2.3;
    before, 2.0 added conf_on_shared_storage and 1.3 added stopped."""
    if not blocks:
        return ""
    first = blocks[0]
    if first.header_name is not None:
        return "2.3+"
    if "conf_on_shared_storage" in first.fields:
        return "2.0-2.2"
    return "1.3" if "stopped" in first.fields else "1.2"


def _parse_header(stripped):
    """(id, hostname) from ``--== Host he1 (id: 1) status ==--`` or ``--== Host 1 status ==--``."""
    if not (stripped.startswith("--==") and stripped.endswith("==--")):
        return None
    words = stripped[4:-4].split()
    if len(words) < 3 or words[0].lower() != "host" or words[-1].lower() != "status":
        return None
    inner = " ".join(words[1:-1])
    if _INT.fullmatch(inner):
        return _to_int(inner, "header"), None
    at = inner.rfind("(id:")
    if at >= 0 and inner.endswith(")"):
        return _to_int(inner[at + 4 : -1].strip(), "header"), inner[:at].strip() or None
    return None, inner


def _looks_like_key_value(stripped):
    """True for an extra-metadata line that lost its TAB indent: ``key=value``."""
    eq = stripped.find("=")
    colon = stripped.find(":")
    return eq > 0 and (colon < 0 or eq < colon)


def _parse_extra(lines):
    extra = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key.strip():
            extra[key.strip()] = value.strip()
    return extra


def _build_host(raw, extra, header_id, header_name, where):
    """One HostStatus from JSON-keyed values (typed, or strings from the plain format)."""
    host_id = _to_int(raw.get("host-id"), f"{where} Host ID")
    if host_id is None:
        host_id = header_id if header_id is not None else _to_int(extra.get("host-id"), f"{where} host-id")
    elif header_id is not None and header_id != host_id:
        raise VmStatusParseError(f"{where}: header says id {header_id} but Host ID is {host_id}")
    if host_id is None:
        raise VmStatusParseError(f"{where}: no host id")
    where = f"host {host_id}"

    hostname = raw.get("hostname")
    hostname = (str(hostname).strip() if hostname is not None else "") or header_name
    if not hostname:
        raise VmStatusParseError(f"{where}: no hostname")

    vm, health, detail, reason, stale_text = _parse_engine_status(raw.get("engine-status"), where)
    live = _to_bool(raw.get("live-data", raw.get("alive")), f"{where} Status up-to-date")
    # The engine status stays as printed: plain says "unknown stale-data", --json keeps
    # a stale host's last status, which may still say "up". up_to_date decides.
    up_to_date = not stale_text and live is not False

    def flag(key, label):
        value = _to_bool(raw.get(key), f"{where} {label}")
        if value is None:
            value = _to_bool(extra.get(key), f"{where} extra {key}")
        return bool(value)

    score = _to_int(raw.get("score"), f"{where} Score")
    if score is None:
        score = _to_int(extra.get("score"), f"{where} extra score")
    host_ts = _to_int(raw.get("host-ts"), f"{where} Host timestamp")
    if host_ts is None and extra.get("timestamp"):
        # "3871245 (Tue Mar  5 10:15:42 2024)": monotonic seconds, then ctime.
        host_ts = _to_int(extra["timestamp"].split()[0], f"{where} extra timestamp")
    crc32 = raw.get("crc32")
    return HostStatus(
        host_id=host_id,
        hostname=hostname,
        score=score,
        state=extra.get("state") or None,
        up_to_date=up_to_date,
        local_maintenance=flag("maintenance", "Local maintenance"),
        stopped=flag("stopped", "stopped"),
        engine_vm=vm,
        health=health,
        engine_detail=detail,
        engine_reason=reason,
        host_timestamp=host_ts,
        local_conf_timestamp=_to_int(raw.get("local_conf_timestamp"), f"{where} local_conf_timestamp"),
        crc32=str(crc32).strip() if crc32 is not None else None,
        conf_on_shared_storage=_to_bool(raw.get("conf_on_shared_storage"), f"{where} conf_on_shared_storage"),
        extra=extra,
    )


def _parse_engine_status(value, where):
    """(vm, health, detail, reason, stale) from a dict, a JSON string or ``unknown stale-data``."""
    if value is None:
        return None, None, None, None, False
    if isinstance(value, str):
        text = value.strip()
        if text.lower().startswith(STALE_DATA):
            return "unknown", "unknown", None, "stale-data", True
        if len(text) > MAX_ENGINE_STATUS_CHARS:
            raise VmStatusParseError(f"{where}: Engine status too long")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = {m.group(2): m.group(4) for m in _ENGINE_PAIR.finditer(text)}
    if not isinstance(value, dict) or "vm" not in value:
        raise VmStatusParseError(f"{where}: unreadable Engine status {str(value)[:80]!r}")

    def text_of(key):
        item = value.get(key)
        return None if item is None else str(item)

    return text_of("vm"), text_of("health"), text_of("detail"), text_of("reason"), False


def _to_int(value, what):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise VmStatusParseError(f"{what} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise VmStatusParseError(f"{what} is not an integer: {str(value)[:40]!r}")


def _to_bool(value, what):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise VmStatusParseError(f"{what} is not a boolean: {str(value)[:40]!r}")


def _make_status(global_maintenance, hosts, fmt, series):
    seen = set()
    for host in hosts:
        if host.host_id in seen:
            raise VmStatusParseError(f"host id {host.host_id} appears twice")
        seen.add(host.host_id)
    return VmStatus(global_maintenance, tuple(sorted(hosts, key=lambda h: h.host_id)), fmt, series)


def _one_line(text):
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."
