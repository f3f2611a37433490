"""The words of the demo course, one table per language (``text_en``, ``text_es``).

Generators ask for text by key; a missing key or placeholder fails the build loudly rather than
shipping a half-translated exercise.
"""
from __future__ import annotations

import importlib

LANGUAGES = ("en", "es")


class Lang:
    def __init__(self, code: str):
        if code not in LANGUAGES:
            raise ValueError(f"the demo course has no language {code!r} (have: {', '.join(LANGUAGES)})")
        self.code = code
        self.table = importlib.import_module(f"appliance.content.demo.text_{code}")

    def __call__(self, key: str, **kw) -> str:
        return self.table.STRINGS[key].format(**kw)

    def list(self, key: str) -> list[str]:
        return list(self.table.LISTS[key])

    def words(self, n: int, d: int) -> list[str]:
        """Accepted ways to write n/d in words; the first is the one the course uses."""
        return self.table.fraction_words(n, d)

    @property
    def course(self) -> dict:
        return self.table.COURSE

    @property
    def skills(self) -> dict[str, tuple[str, str]]:
        return self.table.SKILLS

    @property
    def lessons(self) -> list[dict]:
        return self.table.LESSONS
