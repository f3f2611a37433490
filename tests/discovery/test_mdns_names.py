"""Names and TXT records: what goes on the wire is checked first, with errors that name the setting."""
from __future__ import annotations

import pytest

from appliance.discovery import names
from appliance.errors import ConfigError


@pytest.mark.parametrize("given, label", [
    ("room12", "room12"),
    ("Room 12", "room-12"),
    ("room12.local", "room12"),
    ("ROOM12.local.", "room12"),
    ("  Physik / Raum 3 ", "physik-raum-3"),
    ("-lab--7-", "lab-7"),
])
def test_host_label_makes_a_usable_dns_label(given, label):
    assert names.host_label(given) == label


@pytest.mark.parametrize("bad", ["", "   ", "---", ".local", "é"])
def test_host_label_refuses_names_without_letters_or_digits(bad):
    with pytest.raises(ConfigError, match="mdns.hostname"):
        names.host_label(bad)


def test_host_label_keeps_room_for_the_clash_suffix():
    assert names.host_label("a" * 60) == "a" * 60
    with pytest.raises(ConfigError, match="longer than 60"):
        names.host_label("a" * 61)


def test_candidates_count_up_from_two_and_stop():
    got = list(names.candidates("room12", limit=4))
    assert got == ["room12", "room12-2", "room12-3", "room12-4"]
    assert len(list(names.candidates("x"))) == names.MAX_CANDIDATES


def test_instance_and_host_names_round_trip():
    assert names.host_fqdn("room12") == "room12.local."
    inst = names.instance_name("room12-2", names.BOX_TYPE)
    assert inst == "room12-2._classroom-edge._tcp.local."
    assert names.label_of_instance(inst) == "room12-2"
    assert names.label_of_instance("room12._http._tcp.local.") == "room12"


def _advert(**kw):
    base = {"box_id": "box-a", "version": "0.1.0", "room": "Room 12", "site": "school-a", "port": 8080}
    base.update(kw)
    return names.Advert(**base)


def test_txt_record_carries_id_version_room_site_and_both_paths():
    assert _advert().txt() == {"id": "box-a", "ver": "0.1.0", "room": "Room 12", "site": "school-a",
                               "path": "/", "api": "/v2"}


def test_txt_entry_of_exactly_230_bytes_fits_and_231_does_not():
    room_ok = "r" * (230 - len("room="))
    assert len(("room=" + room_ok).encode()) == 230
    assert _advert(room=room_ok).txt()["room"] == room_ok
    with pytest.raises(ConfigError, match="TXT entry 'room' is 231 bytes"):
        _advert(room=room_ok + "r").txt()


def test_txt_size_counts_utf8_bytes_not_characters():
    # 113 two-byte letters + "room=" = 231 bytes although only 118 characters.
    with pytest.raises(ConfigError, match="231 bytes"):
        _advert(room="ä" * 113).txt()


def test_validate_rejects_bad_port_and_empty_box_id():
    with pytest.raises(ConfigError, match="web.port"):
        _advert(port=0).validate()
    with pytest.raises(ConfigError, match="sync.device"):
        _advert(box_id="").validate()


@pytest.mark.parametrize("key", ["", "a=b", "ключ", "tab\t"])
def test_txt_keys_must_be_printable_ascii_without_equals(key):
    with pytest.raises(ConfigError, match="TXT key"):
        names.validate_txt_entry(key, "v")


def test_decode_txt_turns_bytes_and_bare_keys_into_text():
    assert names.decode_txt({b"id": b"box-a", b"flag": None, "room": "R"}) == {"id": "box-a", "flag": "", "room": "R"}
