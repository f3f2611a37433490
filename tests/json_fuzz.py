"""Every JSON request a client could get wrong: each field of a valid document swapped, in turn, for a
value of every other JSON type. The API tests send them all and expect a 2xx or a 4xx with a reason,
never a 500 (a handler that trusted a type)."""
from __future__ import annotations

import json

WRONG = [None, True, 7, -1.5, "x", [], [1, "a"], {}, {"k": [None]}]


def replacements(doc, path=()):
    """(path, value) for every place in ``doc`` (the whole document too), each with every value of WRONG.
    Lists of plain numbers count as one value: swapping each number would only repeat the same case."""
    for value in WRONG:
        yield path, value
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from replacements(v, (*path, k))
    elif isinstance(doc, list) and doc and not all(isinstance(v, (int, float)) for v in doc):
        for i, v in enumerate(doc):
            yield from replacements(v, (*path, i))


def replaced(doc, path, value):
    """A deep copy of ``doc`` with the place at ``path`` set to ``value``."""
    if not path:
        return value
    out = json.loads(json.dumps(doc))
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out
