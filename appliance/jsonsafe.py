"""``json.loads`` for bytes from outside (a browser, a box, the hub, a course bundle).

A document nested deeper than the parser's stack (100,000 ``[``) raises ``RecursionError``, which is
not a ``ValueError``: every ``except json.JSONDecodeError`` let it through, as a 500 on the web, a
poison batch at the hub or a traceback on import. Here it is invalid JSON like any other, so each
caller's existing "not JSON" handling answers it.
"""
from __future__ import annotations

import json


def loads(raw, **kwargs):
    try:
        return json.loads(raw, **kwargs)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
