"""Language codes as courses, classes and pages carry them ("es", "es-MX", Babel's "es_ES"), and text
compared without its case and accents."""
from __future__ import annotations

import unicodedata


def base_language(code: str | None) -> str:
    """The base language, lower case: "es" for "es", "es-MX", "es_ES" or "ES"; "" for none. Courses,
    classes and the page's locale are compared by it."""
    return (code or "").replace("_", "-").split("-")[0].lower()


def in_language_sql(column: str) -> str:
    """SQL true when ``column`` (a language tag) is the base language bound to ``:lang`` or a regional
    form of it ("es" and "es-MX" for "es"). The query binds its parameters by name: ``:lang`` appears
    twice, and numbered placeholders bound from a tuple make Python 3.12.0-3.12.3 warn (3.14 refuses)."""
    return f"({column} = :lang OR {column} LIKE :lang || '-%')"


def without_accents(text: str) -> str:
    """``text`` in lower case without its accents: "Íñigo" -> "inigo". Search and the spelling rule
    compare words by it, and names are sorted by it (SQLite's NOCASE knows ASCII only)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(ch))
