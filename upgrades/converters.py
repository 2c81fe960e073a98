"""``<id:name>`` in URL and websocket routes: a database id, or no match.

Django's ``<int:...>`` takes any number of digits, and an id beyond the
database's 64-bit range then fails inside the query (SQLite: "Python int too
large to convert"), after a streaming response has begun. Refusing it here
makes the resolver answer 404 (a websocket: the catch-all route) before any
view runs. The pattern is ASCII only: ``str.isdigit()`` and ``\\d`` in
``str`` patterns would also take "²" or "٣".
"""
from django.urls import register_converter

MAX_ID = 2**63 - 1  # BigAutoField, and the widest integer column we have


def parse_id(text):
    """``text`` as an id when it is 1-19 ASCII digits within range, else None."""
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value):
        parsed = parse_id(value)
        if parsed is None:
            raise ValueError(f"{value!r} is not a database id")
        return parsed

    def to_url(self, value):
        return str(value)


register_converter(IdConverter, "id")
