"""People rules: names, usernames, passwords and PINs, roster CSV parsing."""
from __future__ import annotations

import pytest

from appliance.errors import BadRequest
from appliance.people import classes
from appliance.people.accounts import clean_name, clean_username
from appliance.people.passwords import (
    hash_password,
    hash_pin,
    new_pin,
    verify_password,
    verify_pin,
)


def test_roster_csv_formats():
    assert classes.parse_roster_csv("name,age\nAna,9\nBen,10\n") == ["Ana", "Ben"]
    assert classes.parse_roster_csv("\ufeffFirst Name;Last Name\nLi;Wei\nSam;\n") == ["Li Wei", "Sam"]
    assert classes.parse_roster_csv("Ana\nBen\n\n  Carla   Diaz \n") == ["Ana", "Ben", "Carla Diaz"]
    assert classes.parse_roster_csv("given name\tfamily name\nJo\tSmith\n") == ["Jo Smith"]
    # A Spanish spreadsheet's headings, with both surnames (the heading row was added as a pupil "Nombre").
    assert classes.parse_roster_csv("Nombre;Apellidos\nLucía;Fernández\nMateo;Ruiz\n") == ["Lucía Fernández", "Mateo Ruiz"]
    assert classes.parse_roster_csv("Nombre,Primer apellido,Segundo apellido\nAna,Gil,Sanz\n") == ["Ana Gil Sanz"]
    assert classes.parse_roster_csv("Alumno\nLeo Martín\n") == ["Leo Martín"]
    with pytest.raises(BadRequest, match="twice"):
        classes.parse_roster_csv("name\nAna\nana\n")
    assert classes.parse_roster_csv("name\rAna\rBen\r") == ["Ana", "Ben"]  # old Mac line ends (a csv error, a 500)
    with pytest.raises(BadRequest, match="could not be read as a class list"):
        classes.parse_roster_csv("name\n" + "x" * 200_000)  # csv's own error (a field over its limit), not a 500
    with pytest.raises(BadRequest):
        classes.parse_roster_csv("   \n")
    with pytest.raises(BadRequest):
        classes.parse_roster_csv("name\n\n")


def test_class_list_files_are_decoded_or_refused():
    text = "Name\nZoë\nLi\n"
    assert classes.decode_roster(text.encode("utf-16")) == "\ufeff" + text or classes.decode_roster(text.encode("utf-16")) == text
    assert classes.parse_roster_csv(classes.decode_roster(text.encode("utf-16"))) == ["Zoë", "Li"]  # Excel "Unicode text"
    assert classes.decode_roster("Zoë".encode("latin-1")) == "Zoë"
    for not_a_list in (b"PK\x03\x04\x14\x00zip", b"N\x00a\x00m\x00e\x00"):  # a zip; UTF-16 without its mark
        with pytest.raises(BadRequest, match="not a class list"):
            classes.decode_roster(not_a_list)


def test_names_and_usernames():
    assert clean_name("  Ana   María ") == "Ana María"
    assert clean_name("Zo\x00e\x07") == "Zo e"  # control characters are no part of a name
    with pytest.raises(BadRequest):
        clean_name("\x00")
    with pytest.raises(BadRequest):
        clean_name(" ")
    with pytest.raises(BadRequest):
        clean_name("x" * 61)
    assert clean_username(" Tom.K ") == "tom.k"
    for bad in ("a", "tom k", "../x", "-tom", "t" * 41):
        with pytest.raises(BadRequest):
            clean_username(bad)


def test_the_passwords_a_guesser_tries_first_are_refused():
    from appliance.people.passwords import check_password_rules

    for weak in ("password", "Password", "12345678", "contraseña", "aaaaaaaaaa"):  # QA: "password" made the first admin
        with pytest.raises(BadRequest, match="first a guesser tries"):
            check_password_rules(weak)
    check_password_rules("purple tractor window")


def test_password_and_pin_hashing():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$") and verify_password(h, "correct horse") and not verify_password(h, "wrong one")
    assert not verify_password(None, "anything")
    with pytest.raises(BadRequest):
        hash_password("short")
    pin = new_pin()
    assert len(pin) == 4 and pin.isdigit() and len(set(pin)) > 1
    ph = hash_pin(pin)
    assert ph.startswith("$argon2id$") and verify_pin(ph, pin)
    assert not verify_pin(ph, "12345") and not verify_pin(ph, "abcd") and not verify_pin(ph, "")
    with pytest.raises(BadRequest):
        hash_pin("12a4")
