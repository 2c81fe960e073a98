"""The one configuration file every process reads (docs/deployment.md, "Configuration").

daphne, the RQ workers, the HA poller and ``manage.py`` in any shell all import
the settings, which call ``load()`` first: the environment, then the file named
by ``HEPORTAL_CONFIG`` (default ``data/heportal.env``), one ``KEY=VALUE`` a line.
A variable already in the environment wins over the file. The format is the
subset systemd's ``EnvironmentFile=`` reads the same way, so production units
and a shell read one file: blank lines, comments starting with ``#`` or ``;``,
``KEY=VALUE`` with the value optionally in single or double quotes (no escapes,
no variable expansion). Anything else is refused, naming the file and line.
"""
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PATH = BASE_DIR / "data" / "heportal.env"
_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def config_path(environ=os.environ):
    """The file named by HEPORTAL_CONFIG, else data/heportal.env in the checkout."""
    return Path(environ.get("HEPORTAL_CONFIG") or DEFAULT_PATH)


def parse(text, path):
    """{KEY: VALUE} from the file's text; ImproperlyConfigured naming ``path:line`` for a bad line."""
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ImproperlyConfigured(
                f"{path}, line {number}: expected KEY=VALUE (a letter or _ first, then letters, digits, _), "
                f"a comment starting with # or a blank line")
        key, value = match[1], match[2].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
            raise ImproperlyConfigured(f"{path}, line {number}: {key}: unmatched quote")
        if key in values:
            raise ImproperlyConfigured(f"{path}, line {number}: {key} is set twice")
        values[key] = value
    return values


def load(environ=os.environ):
    """Add the file's settings to ``environ`` where it has none; returns the file read (or None).

    A file named by HEPORTAL_CONFIG must exist; the default one may not (a fresh checkout).
    """
    path = config_path(environ)
    try:
        text = path.read_text()
    except FileNotFoundError:
        if environ.get("HEPORTAL_CONFIG"):
            raise ImproperlyConfigured(f"HEPORTAL_CONFIG={path}: no such file") from None
        return None
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read the configuration file {path}: {exc.strerror}") from None
    for key, value in parse(text, path).items():
        environ.setdefault(key, value)
    return path
