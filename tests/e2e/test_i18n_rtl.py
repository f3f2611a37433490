"""A pseudo right-to-left catalog for the browser tests (no RTL translation exists yet)."""
from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

from appliance.web import catalogs


def pseudo_rtl_dir(root: Path) -> Path:
    """Write ``<root>/ar/LC_MESSAGES/messages.mo``: every UI string prefixed with an Arabic letter."""
    catalog = Catalog(locale="ar", charset="utf-8")
    for msg in catalogs.extract():
        if not msg.id:
            continue
        if isinstance(msg.id, tuple):
            catalog.add(msg.id, tuple(f"\u0639 {msg.id[1]}" for _ in range(6)))
        else:
            catalog.add(msg.id, f"\u0639 {msg.id}")
    dest = root / "ar" / "LC_MESSAGES"
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    (dest / "messages.mo").write_bytes(buf.getvalue())
    return root


def test_pseudo_catalog_is_right_to_left(tmp_path):
    from babel.support import Translations

    pseudo_rtl_dir(tmp_path)
    t = Translations.load(str(tmp_path), ["ar"])
    assert t.gettext("Sign in") == "\u0639 Sign in"
