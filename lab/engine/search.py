"""The engine's `search=` query language, as far as clients of the lab use it.

Terms look like `name=he*`, `status!=up` or `cluster=Default`; they are joined
by spaces or `and`, and by `or`. AND binds tighter than OR, as in the SQL
WHERE clause the engine's search backend builds from the terms in order
(unconfirmed against a real engine): the cluster_upgrade role's
`cluster=C name=a or name=b status=up` then means
`(cluster=C and name=a) or (name=b and status=up)`.
"""
import fnmatch
import re

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<conj>and|or)(?=\s|$)
      | (?P<field>[A-Za-z_][\w.]*)\s*(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>"[^"]*"|[^\s"]+)
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Fields whose values are enums or numbers: always compared case-insensitively,
# and underscores are ignored (the engine searches `status=preparingformaintenance`).
_ENUM_FIELDS = {"status", "update_available", "type", "severity"}


class SearchError(ValueError):
    pass


def parse(query: str) -> list[list[tuple[str, str, str]]]:
    """Return the query as OR-groups of AND-ed (field, op, value) terms."""
    query = re.sub(r"^\s*\w+\s*:", "", query)  # optional "Hosts:" prefix
    groups: list[list[tuple[str, str, str]]] = [[]]
    pos = 0
    while pos < len(query) and query[pos:].strip():
        match = _TOKEN.match(query, pos)
        if not match:
            raise SearchError(f"Invalid search syntax near '{query[pos:].strip()}'")
        pos = match.end()
        if match["conj"]:
            if match["conj"].lower() == "or":
                groups.append([])
            continue
        groups[-1].append((match["field"].lower(), match["op"], match["value"].strip('"')))
    if any(not group for group in groups[1:]) or (len(groups) > 1 and not groups[0]):
        raise SearchError(f"Invalid search syntax: '{query}'")
    return groups


def matches(groups, record: dict, *, case_sensitive: bool = True) -> bool:
    """True if `record` (field name -> value) satisfies the parsed query."""
    return any(all(_term(t, record, case_sensitive) for t in group) for group in groups)


def _term(term: tuple[str, str, str], record: dict, case_sensitive: bool) -> bool:
    field, op, wanted = term
    if field not in record:
        raise SearchError(f"Invalid search field '{field}'")
    actual = record[field]
    actual = "" if actual is None else str(actual)
    if field in _ENUM_FIELDS:
        actual, wanted = actual.lower().replace("_", ""), wanted.lower().replace("_", "")
    elif not case_sensitive:
        actual, wanted = actual.lower(), wanted.lower()
    if op in ("<", ">", "<=", ">="):
        try:
            a, w = float(actual), float(wanted)
        except ValueError:
            return False
        return {"<": a < w, ">": a > w, "<=": a <= w, ">=": a >= w}[op]
    equal = fnmatch.fnmatchcase(actual, wanted) if "*" in wanted else actual == wanted
    return equal if op == "=" else not equal
