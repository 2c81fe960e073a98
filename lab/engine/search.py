"""The engine's `search=` query language, as far as clients of the lab use it.

Terms look like `name=he*`, `status!=up` or `cluster=Default`; they are joined
by spaces or `and`, and by `or`. AND binds tighter than OR, as in the SQL
WHERE clause the engine's search backend builds from the terms in order
(unconfirmed against a real engine): the cluster_upgrade role's
`cluster=C name=a or name=b status=up` then means
`(cluster=C and name=a) or (name=b and status=up)`.

Also as in ovirt-engine's SearchBackend/SyntaxChecker (backend/manager/modules/searchbackend,
at ovirt-engine-4.3.10 and 4.5.x alike): `sortby FIELD [asc|desc]` and `page N` at the end
(pages of the request's `max`), a bare word as free text (matched against the entity's
text fields, `*` wildcards), and cross-entity fields written `host.name` or, for events,
`event_host` (both the host's name).
"""
import fnmatch
import re

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<conj>and|or)(?=\s|$)
      | (?P<field>[A-Za-z_][\w.]*)\s*(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>"[^"]*"|[^\s"]+)
      | (?P<free>"[^"]*"|[^\s"=<>!]+)
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Fields whose values are enums or numbers: always compared case-insensitively,
# and underscores are ignored (the engine searches `status=preparingformaintenance`).
_ENUM_FIELDS = {"status", "update_available", "type", "severity"}


# Cross-entity fields and their record keys.
_ALIASES = {"host.name": "host", "cluster.name": "cluster", "vm.name": "vm",
            "datacenter.name": "datacenter", "event_host": "host", "event_vm": "vm",
            "event_cluster": "cluster"}
_TAIL = re.compile(r"(?:\s+sortby\s+(?P<sort>[\w.]+)(?:\s+(?P<dir>asc|desc))?)?"
                   r"(?:\s+page\s+(?P<page>\d+))?\s*$", re.IGNORECASE)


class SearchError(ValueError):
    pass


def split(query: str) -> tuple[str, str | None, bool, int | None]:
    """(conditions, sortby field, descending, page) of a query."""
    match = _TAIL.search(" " + query)
    rest = (" " + query)[:match.start()].strip()
    sort = match["sort"].lower() if match["sort"] else None
    return (rest, _ALIASES.get(sort, sort), (match["dir"] or "").lower() == "desc",
            int(match["page"]) if match["page"] else None)


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
        if match["free"]:
            groups[-1].append(("*", "=", match["free"].strip('"')))
            continue
        field = match["field"].lower()
        groups[-1].append((_ALIASES.get(field, field), match["op"], match["value"].strip('"')))
    if any(not group for group in groups[1:]) or (len(groups) > 1 and not groups[0]):
        raise SearchError(f"Invalid search syntax: '{query}'")
    return groups


def matches(groups, record: dict, *, case_sensitive: bool = True) -> bool:
    """True if `record` (field name -> value) satisfies the parsed query."""
    return any(all(_term(t, record, case_sensitive) for t in group) for group in groups)


def _term(term: tuple[str, str, str], record: dict, case_sensitive: bool) -> bool:
    field, op, wanted = term
    if field == "*":  # free text: any text field, case-insensitive
        wanted = wanted.lower() if "*" in wanted else f"*{wanted.lower()}*"
        return any(isinstance(v, str) and fnmatch.fnmatchcase(v.lower(), wanted)
                   for v in record.values())
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


def sort_key(value):
    """Numbers sort as numbers, text case-insensitively, missing values first."""
    if value is None:
        return (0, 0, "")
    try:
        return (1, float(value), "")
    except (TypeError, ValueError):
        return (2, 0, str(value).lower())
