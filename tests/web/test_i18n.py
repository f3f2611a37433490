"""Languages: catalogs complete and compiled, the class or the browser picks, right-to-left works."""
from __future__ import annotations

import pytest
from lms_fixtures import page_csrf, pseudo_rtl_dir

from appliance.web import catalogs


def test_every_ui_string_is_translated_in_english_and_spanish():
    assert set(catalogs.languages()) >= {"en", "es"}
    for lang in ("en", "es"):
        assert catalogs.missing_translations(lang) == [], f"{lang} misses translations"
        assert catalogs.format_errors(lang) == [], f"{lang} has translations whose placeholders do not fit"
    assert len(catalogs.extract()) > 200  # the extractor really saw the templates and views


def test_committed_mo_files_match_their_po(tmp_path):
    """A .po edited without recompiling would ship stale text: compile fresh and compare bytes."""
    for fresh in catalogs.compile_all(target=tmp_path):
        lang = fresh.parents[1].name
        shipped = catalogs.TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo"
        assert shipped.read_bytes() == fresh.read_bytes(), f"{shipped} is stale: run python -m appliance.web.catalogs compile"


def test_browser_language_picks_spanish(app):
    page = app.test_client().get("/signin", headers={"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"})
    html = page.get_data(as_text=True)
    assert '<html lang="es" dir="ltr">' in html and "¡Hola! ¿En qué clase estás?" in html


def test_unknown_browser_language_falls_back_to_default(app):
    html = app.test_client().get("/signin", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert '<html lang="en"' in html and "Which class are you in?" in html


def test_language_switcher_sticks_for_the_session(app):
    c = app.test_client()
    token = page_csrf(c, "/signin")
    resp = c.post("/language", data={"csrf_token": token, "lang": "es", "next": "/signin"})
    assert resp.status_code == 302 and resp.location == "/signin"
    assert "Entrar" in c.get("/signin/staff").get_data(as_text=True)
    assert c.post("/language", data={"csrf_token": token, "lang": "xx"}).status_code == 400


def test_error_messages_from_the_people_module_are_translated(app, teacher):
    from lms_fixtures import sign_in_staff

    c = app.test_client()
    sign_in_staff(c, "tom")
    token = page_csrf(c, "/teach/")
    resp = c.post("/teach/classes", data={"csrf_token": token, "name": "   "}, headers={"Accept-Language": "es"})
    assert resp.status_code == 400 and "Escribe un nombre, por favor." in resp.get_data(as_text=True)


def test_spanish_json_errors_for_the_api(app, course, klass):
    from lms_fixtures import sign_in_student

    c = app.test_client()
    ana = klass["students"]["Ana"]
    sign_in_student(c, klass["id"], ana["id"], ana["pin"])
    token = page_csrf(c, "/learn")
    resp = c.post("/api/v1/attempts", headers={"X-CSRF-Token": token, "Accept-Language": "es"}, json={
        "attempt_uid": "0b6f0c1e-6a55-4b9e-9a53-5d7f1f0c0e11", "course_id": "fractions-mini", "exercise_id": "e3",
        "answer": {"value": "muchos"}})
    assert resp.status_code == 400 and resp.get_json()["error"].startswith("Escribe un número")


def add_translation_dir(app, root) -> None:
    app.extensions["babel"].translation_directories.append(str(root))
    app.extensions.pop("ce_languages", None)


def test_pseudo_rtl_catalog_sets_dir_rtl(app, tmp_path):
    pseudo_rtl_dir(tmp_path)
    add_translation_dir(app, tmp_path)
    html = app.test_client().get("/signin", headers={"Accept-Language": "ar"}).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html and "\u0639 Hello! Which class are you in?" in html
    from babel.support import Translations

    assert Translations.load(str(tmp_path), ["ar"]).gettext("Sign in") == "\u0639 Sign in"


def test_languages_are_named_in_their_own_words_and_the_default_is_one_the_pages_have():
    from pathlib import Path

    from appliance.config import ConfigError, load_config
    from appliance.people.classes import LANGUAGE_CODES
    from appliance.web.i18n import language_name

    assert [language_name(c) for c in ("es", "fr", "pt-BR", "xx-Bogus")] == ["Español", "Français", "Português (Brasil)", "xx-Bogus"]
    translated = sorted(p.name for p in (Path(__file__).parents[2] / "appliance/web/translations").iterdir() if p.is_dir())
    assert translated == sorted(LANGUAGE_CODES)
    with pytest.raises(ConfigError, match="web.default_language must be one of en, es"):
        load_config(env={"CLASSROOM_EDGE_WEB__DEFAULT_LANGUAGE": "de"})


def test_an_unexpected_error_is_told_in_the_page_s_language(app):
    from appliance.web.security import requires

    @app.get("/boom-for-the-test")
    @requires("anonymous")
    def boom():
        raise RuntimeError("a bug")

    page = app.test_client().get("/boom-for-the-test", headers={"Accept-Language": "es"})
    assert page.status_code == 500
    html = page.get_data(as_text=True)
    assert "Algo salió mal en el equipo" in html and "Something went wrong" not in html


def test_a_translation_whose_placeholders_do_not_fit_is_found(tmp_path, monkeypatch):
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    bad = Catalog(locale="es")
    bad.add(("%(num)s to check", "%(num)s to check"), ("%", "("), flags=["python-format"])
    bad.add("Hello %(name)s", "Hola %(nombre)s", flags=["python-format"])
    bad.add("Fine %(n)s", "Bien %(n)s", flags=["python-format"])
    (tmp_path / "es" / "LC_MESSAGES").mkdir(parents=True)
    with open(tmp_path / "es" / "LC_MESSAGES" / "messages.po", "wb") as f:
        write_po(f, bad)
    monkeypatch.setattr(catalogs, "TRANSLATIONS", tmp_path)
    found = catalogs.format_errors("es")
    assert any("to check" in f for f in found) and any("Hello" in f for f in found)
    assert not any("Fine" in f for f in found)
