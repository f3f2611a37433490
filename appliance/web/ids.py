"""Row ids from URLs and forms: numbers SQLite can hold, or nothing.

``str.isdigit`` accepts "²" and "٣", which ``int`` refuses or reads as another number, and a number
past 2**63 - 1 reaches SQLite as an int it cannot bind (OverflowError, a 500)."""
from __future__ import annotations

ROW_ID_MAX = 2**63 - 1


def row_id(text: str | None) -> int | None:
    """The non-negative id ``text`` spells in ASCII digits, if SQLite can hold it; else None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= ROW_ID_MAX else None
