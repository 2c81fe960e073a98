"""Every example in docs/cli.md runs, for real, and prints what the page says.

A code block whose lines start with ``$ `` is a shell session: each command
runs in bash (``manage.py`` is this checkout's, with the test's settings)
against a lab registered as cluster "Lab", in the order of the page, and its
output (stdout and stderr, as a terminal shows them) must match the lines
that follow it: line for line, where ``...`` inside a line stands for any
text and a line that is only ``...`` for any number of lines. ``$ echo $?``
prints the exit code of the command before. Blocks of ``manage.py runbook``
lines without ``$`` are the synopsis: each verb and option they name exists.
"""
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT, child_env, wait_until
from upgrades.management.commands.runbook import Command

DOC = ROOT / "docs" / "cli.md"


def blocks(text):
    """The page's fenced code blocks, each as its list of lines."""
    return [block.splitlines() for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)]


def sessions(text):
    """[(command, expected lines)] for every ``$`` session on the page, in order."""
    found = []
    for lines in blocks(text):
        if not lines or not lines[0].startswith("$ "):
            continue
        for line in lines:
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def matches(expected, actual):
    """``expected`` lines (with ``...``) against ``actual`` lines: all of them, in order."""
    def line_pattern(line):
        return re.compile("".join(".*" if part == "..." else re.escape(part)
                                  for part in re.split(r"(\.\.\.)", line)) + r"\Z")

    def match(e, a):
        if e == len(expected):
            return a == len(actual)
        if expected[e] == "...":
            return any(match(e + 1, n) for n in range(a, len(actual) + 1))
        return a < len(actual) and bool(line_pattern(expected[e]).match(actual[a])) and match(e + 1, a + 1)

    return match(0, 0)


def test_the_matcher_is_strict():
    assert matches(["Run #1 ...", "...", "Run #1 succeeded."], ["Run #1 started", "a", "b", "Run #1 succeeded."])
    assert not matches(["Run #1 ..."], ["Run #1 started", "one line more"])
    assert not matches(["Run #2 ..."], ["Run #1 started"])
    assert not matches(["[2] text"], ["[2] texts"])


def test_the_synopsis_names_only_verbs_and_options_that_exist():
    parser = Command().create_parser("manage.py", "runbook")
    verbs = next(a for a in parser._actions if a.dest == "action").choices
    synopsis = [line for lines in blocks(DOC.read_text()) for line in lines if line.startswith("manage.py runbook ")]
    assert len(synopsis) >= 10
    named = set()
    for line in synopsis:
        words = line.split()[2:]
        for verb in words[0].split("|"):
            assert verb in verbs, line
            named.add(verb)
            options = {o for a in verbs[verb]._actions for o in a.option_strings}
            for option in re.findall(r"--[a-z-]+", line):
                assert option in options, f"{verb} has no {option}: {line}"
    assert named == set(verbs)  # every verb is in the synopsis


def run_shell(command):
    """One command of the page in bash, ``manage.py`` being this checkout's: (exit code, output lines)."""
    env = {**child_env(), "PYTHON": sys.executable,
           # The production default: a run that changes hosts waits for a second person.
           "APPROVAL_REQUIRED_BY_DEFAULT": "true"}
    done = subprocess.run(["bash", "-c", 'manage.py() { "$PYTHON" manage.py "$@"; }\n' + command], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    return done.returncode, done.stdout.splitlines()


@pytest.mark.django_db(transaction=True, reset_sequences=True)  # the page's run numbers start at 1
@pytest.mark.slow
def test_every_session_on_the_page_prints_what_the_page_shows(ha_poller, fresh_lab_cluster, make_user):
    cluster = fresh_lab_cluster  # a lab of its own: the page changes its maintenance and moves its engine VM
    cluster.name = "Lab"  # as the page names it
    cluster.save(update_fields=["name"])
    cluster.lab.wait_for(lambda state: all(h["agent_state"] in ("EngineUp", "EngineDown")
                                           for h in state["hosts"].values()), sim_seconds=300)
    # As in a deployment, the HA poller has read the cluster (its release, for the migration).
    wait_until(lambda: cluster.refresh_from_db() or cluster.detected_release, 60, "the poller reading the release")
    make_user("operator")
    make_user("approver")
    found = sessions(DOC.read_text())
    assert len(found) >= 8
    code = None
    for command, expected in found:
        if command == "echo $?":
            assert expected == [str(code)], f"after the command before {command!r}"
            continue
        assert command.startswith("manage.py runbook "), command
        assert shlex.split(command)  # quoted as a shell reads it
        code, actual = run_shell(command)
        assert matches(expected, actual), f"$ {command}\n--- the page shows:\n" + "\n".join(expected) + \
            "\n--- it printed (exit " + str(code) + "):\n" + "\n".join(actual)
