"""Languages: Flask-Babel set-up and the rule that picks the language of each page.

Order (first that applies wins):
1. the language a person picked with the switcher (kept in their session),
2. their account's language,
3. their class's language (students; or the class whose sign-in page is open),
4. the browser's Accept-Language,
5. ``web.default_language``.
Only languages with a compiled catalog (plus English, the source language) are offered.
"""
from __future__ import annotations

import logging
from functools import cache

from babel import Locale, UnknownLocaleError
from flask import current_app, g, request, session
from flask_babel import Babel, get_locale, refresh

from appliance.languages import base_language

log = logging.getLogger(__name__)

LANGUAGE_NAMES = {"en": "English", "es": "Español", "ar": "العربية"}


def init_app(app) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.extensions["ce"].cfg.web.default_language)
    Babel(app, locale_selector=_selected_locale)


@cache
def _locale(code: str) -> Locale:
    # Flask-Babel parses the selector's code on every request, and babel's parse checks that the
    # locale's data file exists on disk: a stat per request. A Locale is passed through untouched.
    return Locale.parse(code)


def _selected_locale() -> Locale:
    return _locale(select_locale())


def available_languages() -> list[str]:
    """Language codes with a catalog. Computed once per app (the catalogs ship with the package)."""
    cached = current_app.extensions.get("ce_languages")
    if cached is None:
        babel = current_app.extensions["babel"].instance
        cached = sorted({str(loc) for loc in babel.list_translations()} | {"en"})
        current_app.extensions["ce_languages"] = cached
    return cached


def _usable(code: str | None) -> str | None:
    if not code:
        return None
    langs = available_languages()
    if code in langs:
        return code
    base = base_language(code)
    return base if base in langs else None


def select_locale() -> str:
    from appliance.web.security import current_user

    chosen = _usable(session.get("lang"))
    if chosen:
        return chosen
    user = current_user() if request else None
    if user is not None:
        own = _usable(user.get("language"))
        if own:
            return own
        if user["role"] == "student":
            cls = _usable(_student_class_language(user["id"]))
            if cls:
                return cls
    cls = _usable(g.get("class_language"))
    if cls:
        return cls
    best = request.accept_languages.best_match(available_languages())
    return best or current_app.extensions["ce"].cfg.web.default_language


def _student_class_language(student_id: int) -> str | None:
    db = current_app.extensions["ce"].db
    with db.read() as conn:
        row = conn.execute(
            "SELECT c.language FROM classes c JOIN class_members m ON m.class_id = c.id"
            " WHERE m.student_id = ? AND c.language IS NOT NULL ORDER BY c.id LIMIT 1", (student_id,)
        ).fetchone()
    return row[0] if row else None


def use_class_language(code: str | None) -> None:
    """A page about one class (its sign-in pages) speaks that class's language."""
    g.class_language = code
    g.pop("_ce_translations", None)
    refresh()  # the language was already chosen before the view ran; choose again


def text_direction() -> str:
    loc = get_locale()
    return getattr(loc, "text_direction", "ltr") or "ltr"


def language_name(code: str) -> str:
    """A language's own name for itself ("français", "português (Brasil)"); the code when unknown."""
    if code in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[code]
    return _own_name(code or "")


@cache
def _own_name(code: str) -> str:
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name()
    except (ValueError, TypeError, UnknownLocaleError):
        return code
    return name[:1].upper() + name[1:] if name else code
