"""Language codes as courses, classes and pages carry them ("es", "es-MX", Babel's "es_ES")."""
from __future__ import annotations


def base_language(code: str | None) -> str:
    """The base language, lower case: "es" for "es", "es-MX", "es_ES" or "ES"; "" for none. Courses,
    classes and the page's locale are compared by it."""
    return (code or "").replace("_", "-").split("-")[0].lower()
