"""The clash watch: which records count as someone else's claim, and who gives way."""
from __future__ import annotations

import ipaddress
import time
from types import SimpleNamespace

from zeroconf import DNSAddress, DNSService, DNSText, RecordUpdate
from zeroconf.const import _CLASS_IN, _TYPE_A, _TYPE_SRV, _TYPE_TXT

from appliance.discovery.conflicts import ConflictWatch, parse_txt


def _a(name, addr, ttl=120):
    return DNSAddress(name, _TYPE_A, _CLASS_IN, ttl, ipaddress.ip_address(addr).packed)


def _txt(name, pairs: dict, ttl=4500):
    raw = b"".join(bytes([len(e)]) + e for e in (f"{k}={v}".encode() for k, v in pairs.items()))
    return DNSText(name, _TYPE_TXT, _CLASS_IN, ttl, raw)


def _srv(name, server, port=8080, ttl=120):
    return DNSService(name, _TYPE_SRV, _CLASS_IN, ttl, 0, 0, port, server)


def _feed(watch, *records):
    watch.async_update_records(None, 0.0, [RecordUpdate(r, None) for r in records])


def _watch():
    w = ConflictWatch(box_id="box-a", port=8080)
    w.set_own_addresses(["10.0.0.5"])
    w.watch("room12")
    return w


def test_parse_txt_reads_length_prefixed_pairs():
    raw = b"\x08id=box-b\x09room=R 12\x04flag"
    assert parse_txt(raw) == {"id": "box-b", "room": "R 12", "flag": ""}


def test_our_own_echo_is_not_a_claim():
    w = _watch()
    _feed(w, _a("room12.local.", "10.0.0.5"), _txt("room12._http._tcp.local.", {"id": "box-a"}),
          _srv("room12._http._tcp.local.", "room12.local."))
    assert w.foreign("room12") is None


def test_another_address_for_our_host_name_is_a_claim():
    w = _watch()
    _feed(w, _a("room12.local.", "10.0.0.9"), _txt("room12._classroom-edge._tcp.local.", {"id": "box-b"}))
    ev = w.foreign("room12")
    assert set(ev.addresses) == {"10.0.0.9"} and set(ev.box_ids) == {"box-b"} and not ev.other


def test_names_nobody_watches_are_ignored():
    w = _watch()
    _feed(w, _a("room7.local.", "10.0.0.9"), _a("iphone.local.", "10.0.0.10"))
    assert w.foreign("room7") is None and w.foreign("room12") is None


def test_a_service_pointing_elsewhere_is_someone_elses():
    w = _watch()
    _feed(w, _srv("room12._http._tcp.local.", "printer.local."))
    ev = w.foreign("room12")
    assert set(ev.other) == {"printer.local."}
    assert w.we_keep(ev, ["10.0.0.200"]) is False  # never fight a device that does not share our rule


def test_goodbye_withdraws_the_claim():
    w = _watch()
    _feed(w, _a("room12.local.", "10.0.0.9"))
    assert w.foreign("room12") is not None
    _feed(w, _a("room12.local.", "10.0.0.9", ttl=0))
    assert w.foreign("room12") is None


def test_claims_expire_with_their_ttl():
    w = _watch()
    _feed(w, _a("room12.local.", "10.0.0.9", ttl=1))
    assert w.foreign("room12") is not None
    time.sleep(1.1)
    assert w.foreign("room12") is None


def test_tie_break_is_the_same_seen_from_both_sides():
    w = _watch()
    _feed(w, _a("room12.local.", "10.0.0.9"))
    ev = w.foreign("room12")
    assert w.we_keep(ev, ["10.0.0.5"]) is False  # lower address gives way
    assert w.we_keep(ev, ["10.0.0.20"]) is True
    # Compared as addresses, not strings: "10.0.0.10" > "10.0.0.9".
    assert w.we_keep(ev, ["10.0.0.10"]) is True


def test_settled_after_contest_fires_once_after_the_claim_is_gone():
    w = _watch()
    assert w.settled_after_contest("room12", quiet_s=0) is False  # never contested
    _feed(w, _a("room12.local.", "10.0.0.9"))
    assert w.settled_after_contest("room12", quiet_s=0) is False  # still claimed
    _feed(w, _a("room12.local.", "10.0.0.9", ttl=0))
    assert w.settled_after_contest("room12", quiet_s=60) is False  # goodbyes may still be coming
    assert w.settled_after_contest("room12", quiet_s=0) is True
    assert w.settled_after_contest("room12", quiet_s=0) is False


def test_forget_drops_a_label_and_its_evidence():
    w = _watch()
    _feed(w, _a("room12.local.", "10.0.0.9"))
    w.forget("room12")
    assert w.foreign("room12") is None
    _feed(w, _a("room12.local.", "10.0.0.9"))
    assert w.foreign("room12") is None  # no longer watched


def test_a_broken_record_never_raises_into_zeroconf():
    w = _watch()

    class Weird:
        name = None  # .lower() fails

    w.async_update_records(None, 0.0, [SimpleNamespace(new=Weird())])
    assert w.foreign("room12") is None
