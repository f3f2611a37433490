"""Translation catalogs of the web UI: extract, update, compile and check them with Babel's API.

    python -m appliance.web.catalogs extract   # messages.pot from the code and templates
    python -m appliance.web.catalogs update    # merge new messages into every <lang>/messages.po
    python -m appliance.web.catalogs compile   # .po -> .mo (run at install time and by the tests)
    python -m appliance.web.catalogs check     # exit 1 if a language misses a translation

The tests call ``compile_all`` and ``missing_translations`` so a string added without a Spanish
translation fails CI, and a stale .mo can never be what users see.
"""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

PACKAGE = Path(__file__).resolve().parents[1]          # appliance/
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None}
METHOD_MAP = [("web/templates/**.html", "jinja2"), ("web/**.py", "python"), ("people/**.py", "python"),
              ("learning/grading.py", "python"), ("learning/progress.py", "python"),
              ("learning/recommender.py", "python"), ("learning/overrides.py", "python"),
              ("learning/search.py", "python")]
OPTIONS = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}


def extract() -> Catalog:
    catalog = Catalog(project="classroom-edge", msgid_bugs_address="", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            PACKAGE, METHOD_MAP, options_map=OPTIONS, keywords=KEYWORDS):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def languages() -> list[str]:
    return sorted(p.name for p in TRANSLATIONS.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists())


def _po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def load(lang: str) -> Catalog:
    with open(_po_path(lang), "rb") as f:
        return read_po(f, locale=lang)


def save(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_po(buf, catalog, width=100, no_location=True, omit_header=False, sort_output=True)
    path.write_bytes(buf.getvalue())


def update() -> None:
    template = extract()
    for lang in languages():
        catalog = load(lang)
        catalog.update(template, no_fuzzy_matching=True)
        save(catalog, _po_path(lang))


def compile_all(target: Path | None = None) -> list[Path]:
    """Write every .mo next to its .po (or under ``target``); returns the files written."""
    out = []
    for lang in languages():
        catalog = load(lang)
        dest = (target or TRANSLATIONS) / lang / "LC_MESSAGES" / "messages.mo"
        dest.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        write_mo(buf, catalog, use_fuzzy=False)
        if not dest.exists() or dest.read_bytes() != buf.getvalue():
            dest.write_bytes(buf.getvalue())
        out.append(dest)
    return out


def missing_translations(lang: str) -> list[str]:
    """Message ids used in the code that ``lang`` does not translate (or only fuzzily)."""
    catalog = load(lang)
    missing = []
    for msg in extract():
        if not msg.id:
            continue
        have = catalog.get(msg.id)
        strings = have.string if have is not None else None
        if have is None or have.fuzzy or not strings or (isinstance(strings, tuple) and not all(strings)):
            missing.append(msg.id if isinstance(msg.id, str) else msg.id[0])
    return missing


_PLACEHOLDER = re.compile(r"%\((\w+)\)")


def format_errors(lang: str) -> list[str]:
    """Translations whose placeholders do not fit their message id: Babel's python-format check, and
    each translation formatted with the id's placeholders, as gettext will (a msgstr "%" for
    "%(num)s to check" passed both the missing check and Babel's, and made the page a 500)."""
    catalog = load(lang)
    out = [f"{_first(msg.id)!r}: {'; '.join(map(str, errors))}" for msg, errors in catalog.check()]
    for msg in catalog:
        if not msg.id or not msg.python_format:
            continue
        ids = msg.id if isinstance(msg.id, tuple) else (msg.id,)
        values = {name: 1 for text in ids for name in _PLACEHOLDER.findall(text)}
        for text in (msg.string if isinstance(msg.string, tuple) else (msg.string,)):
            try:
                _ = text % values if text else ""
            except (ValueError, KeyError, TypeError) as exc:
                out.append(f"{_first(msg.id)!r}: {text!r} cannot be formatted ({exc})")
    return out


def _first(msgid) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def main(argv: list[str] | None = None) -> int:
    cmd = (argv or sys.argv[1:] or ["check"])[0]
    if cmd == "extract":
        save(extract(), TRANSLATIONS / "messages.pot")
    elif cmd == "update":
        update()
    elif cmd == "compile":
        for path in compile_all():
            print(path)
    elif cmd == "check":
        bad = {lang: [f"missing {i!r}" for i in missing_translations(lang)] + format_errors(lang) for lang in languages()}
        for lang, problems in bad.items():
            for problem in problems:
                print(f"{lang}: {problem}")
        return 1 if any(bad.values()) else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
