"""The runbooks' shell text uses nothing an EL6 or EL7 host's userland lacks.

A lab host runs this machine's (Debian's) bash, coreutils, sed, grep and gawk, so a runbook
passing on the lab proves nothing about options newer than EL6's and EL7's builds (the lab
leaves out only whole programs: docs/lab.md, "The hosts' userland"). This guard reads every
runbook module's text for the constructs below, each with the release that brought it:
coreutils NEWS (coreutils/coreutils, tags v8.22 and v8.32), GNU sed's sed.c of 2009 (4.2.x:
no `-z` in SHORTOPTS; `-E` accepted, undocumented), bash's and gawk's release notes.
EL6: coreutils 8.4, sed 4.2.1, gawk 3.1.7, bash 4.1; EL7: coreutils 8.22, sed 4.2.2, gawk
4.0.2, bash 4.2."""
import re
from pathlib import Path

import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "upgrades" / "runbooks"

# (pattern, what it is, the EL releases whose tool lacks it)
MISSING = [
    (r"\brealpath\b", "realpath (coreutils 8.15)", "EL6"),
    (r"\bnumfmt\b", "numfmt (coreutils 8.21)", "EL6"),
    (r"\btimeout\s+(-k\b|--kill-after)", "timeout --kill-after (coreutils 8.5)", "EL6"),
    (r"\btimeout\s+--foreground", "timeout --foreground (coreutils 8.13)", "EL6"),
    (r"\btimeout\s+(\S+\s+)*?[0-9]*\.[0-9]", "a sub-second timeout (coreutils 8.13)", "EL6"),
    (r"\btimeout\s+--preserve-status", "timeout --preserve-status (coreutils 8.21)", "EL6"),
    (r"\btimeout\s+(-v\b|--verbose)", "timeout --verbose (coreutils 8.29)", "EL6, EL7"),
    (r"\bln\s+(-\w*r\w*\b|--relative)", "ln --relative (coreutils 8.16)", "EL6"),
    (r"\bdf\s+(\S+\s+)*?--output", "df --output (coreutils 8.21)", "EL6"),
    (r"\bdu\s+(\S+\s+)*?--inodes", "du --inodes (coreutils 8.22)", "EL6"),
    (r"\benv\s+(-S\b|--split-string)", "env -S (coreutils 8.30)", "EL6, EL7"),
    (r"\bdate\s+(\S+\s+)*?--debug", "date --debug (coreutils 8.26)", "EL6, EL7"),
    (r"\bsed\s+(-\w*z\w*\b|--null-data|(\S+\s+)*?-z\b)", "sed -z (sed 4.2.2)", "EL6"),
    (r"\bsed\s+(\S+\s+)*?(--sandbox|--debug)", "sed --sandbox/--debug (sed 4.3, 4.6)",
     "EL6, EL7"),
    (r"\[\[\s+-v\s", "[[ -v NAME ]] (bash 4.2)", "EL6"),
    (r"\bwait\s+-n\b", "wait -n (bash 4.3)", "EL6, EL7"),
    (r"\b(declare|local|typeset)\s+-n\b", "namerefs (bash 4.3)", "EL6, EL7"),
    (r"\$\{\w+@[QEPAa]\}", "${var@Q} transformations (bash 4.4)", "EL6, EL7"),
    (r"\b(mapfile|readarray)\s+(\S+\s+)*?-d\b", "mapfile -d (bash 4.4)", "EL6, EL7"),
    (r"\bEPOCH(SECONDS|REALTIME)\b", "$EPOCHSECONDS (bash 5.0)", "EL6, EL7, EL8"),
    (r"\bawk\b[^|;]*/[^/]*\{[0-9]", "a regex interval in awk (gawk 3.1 needs --re-interval)",
     "EL6"),
]


def offences(text: str) -> list[str]:
    found = []
    for line_no, line in enumerate(text.splitlines(), 1):
        for pattern, what, releases in MISSING:
            if re.search(pattern, line):
                found.append(f"line {line_no}: {what}, missing on {releases}: {line.strip()}")
    return found


@pytest.mark.parametrize("sample, what", [
    ("realpath /etc", "realpath"), ("timeout -k 5 60 yum -y update", "timeout --kill-after"),
    ("timeout 0.5 true", "sub-second"), ("sed -z 's/a/b/'", "sed -z"),
    ("sed -nz p", "sed -z"), ("[[ -v answers ]] && echo", "[[ -v"), ("wait -n", "wait -n"),
    ("echo ${x@Q}", "@Q"), ("awk '/^Score {2}/'", "interval"), ("ln -sr a b", "ln --relative"),
])
def test_the_guard_sees_each_construct(sample, what):
    """Each pattern catches what it is for (the guard below would pass vacuously otherwise)."""
    assert any(what in o for o in offences(sample)), offences(sample)


@pytest.mark.parametrize("sample", [
    "sed -E 's/^([^=]*[Pp]assword[^=]*=[a-z]+:).*/\\1(hidden)/' \"$answers\"",
    "timeout 60 hosted-engine --vm-status", "awk -v id=3 '/^Host ID +:/ { hid = $NF }'",
    "grep -qxF storage=x /etc/ovirt-hosted-engine/hosted-engine.conf", "readlink -f /etc",
])
def test_the_guard_passes_what_el6_has(sample):
    """`sed -E` is in EL6's sed 4.2.1 (accepted, undocumented: `case 'E': case 'r':`)."""
    assert offences(sample) == []


def test_no_runbook_uses_what_el6_or_el7_lacks():
    found = {path.name: offences(path.read_text()) for path in sorted(RUNBOOKS.glob("*.py"))}
    assert {name: o for name, o in found.items() if o} == {}
    assert len(found) >= 10  # the runbooks were read
