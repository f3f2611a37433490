"""What every page shares: template globals, the language, security headers, the signed-in user.

Installed once by ``appliance.web.auth.init_app`` (the app factory calls it with the blueprints).
"""
from __future__ import annotations

import hashlib
import math
from functools import cache
from pathlib import Path

from flask import g, request, url_for
from flask_babel import get_locale, get_translations, gettext
from markupsafe import Markup

from appliance import __version__
from appliance.localtime import local_date_text, local_time_text
from appliance.web import i18n
from appliance.web.security import csrf_token, current_user

# Only our own files: no inline script, no third-party origin. Media and PDFs come from /content.
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; script-src 'self'; "
       "object-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'")


def _decimal(value: float, digits: int = 1) -> str:
    """A number in the page's language: 1672.7 in English, 1672,7 in Spanish."""
    from flask_babel import format_decimal

    return format_decimal(value, "#,##0." + "0" * digits if digits else "#,##0")


def _named(action, item) -> str:
    """A control's accessible name, "Remove: Fractions", for an aria-label: its visible word first (what a
    voice-control user says), then what it acts on. Not a visually hidden span after the word: Chromium
    puts a space before a positioned element's text, and screen readers said "Remove : Fractions"."""
    # The result is plain text that the template escapes once, in the attribute. A template's translated
    # string with variables arrives as Markup with the variables already escaped ("O&#39;Brien"): back
    # to plain text first, or a screen reader reads the entity. The item is a bidi isolate (FSI ... PDI),
    # as typed names are elsewhere: a right-to-left override in a name must not reorder the words around it.
    action, item = (v.unescape() if isinstance(v, Markup) else str(v) for v in (action, item))
    return gettext("%(action)s: %(item)s", action=action, item=f"\u2068{item}\u2069")


def init_app(app) -> None:
    i18n.init_app(app)
    # Flask-Babel resolves the translations through three context lookups per string; a lesson page
    # has ~80 strings, so keep the request's catalog on ``g`` (i18n.use_class_language drops it).
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        newstyle=True,
    )
    app.jinja_env.globals.update(
        static_url=lambda filename: _static_url(app.static_folder, filename),
        csrf_token=csrf_token,
        current_user=_user_or_none,
        text_direction=i18n.text_direction,
        current_language=lambda: str(get_locale() or "en"),
        available_languages=i18n.available_languages,
        language_name=i18n.language_name,
        app_version=__version__,
        percent=_percent,
        decimal=_decimal,
        named=_named,
    )
    app.jinja_env.filters.update(local_date=local_date_text, local_time=local_time_text)  # the box's clock, not UTC
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.before_request(_pick_language)
    app.after_request(_headers)


def _percent(p: float | None) -> str:
    """0.849 -> "84%", not "85%": rounded up, a skill just under the mastery threshold (0.85) read
    "85% … Learning" next to a legend that says 85% is mastered."""
    return f"{math.floor((p or 0) * 100 + 1e-9)}%"


@cache
def _static_digest(folder: str, filename: str) -> str:
    return hashlib.sha256((Path(folder) / filename).read_bytes()).hexdigest()[:12]


def _static_url(folder: str, filename: str) -> str:
    # The file's own hash, not the app version, busts browsers' caches: a fixed script or style
    # reaches every browser at the next page load, even when the version number did not change.
    return f"{url_for('static', filename=filename)}?v={_static_digest(folder, filename)}"


def _pick_language():
    # Decide the language before the view opens a database snapshot: the choice may read the
    # student's class, and a view that calls gettext inside its own ``db.read()`` must not nest one.
    get_locale()


def _translations():
    t = g.get("_ce_translations")
    if t is None:
        t = g._ce_translations = get_translations()
    return t


def _user_or_none():
    try:
        return current_user()
    except Exception:  # noqa: BLE001 - a bad token is reported by the view; the layout just shows no user
        return None


def _headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Pages show personal progress: never cached by a shared browser or proxy.
        response.headers.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/"):
        # A URL from static_url names the file's content, so it can be kept for good; a bare URL
        # may change under the same name.
        fingerprinted = "v" in request.args and response.status_code == 200
        response.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if fingerprinted
                                             else "public, max-age=3600")
    g.pop("class_language", None)
    return response
