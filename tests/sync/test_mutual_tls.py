"""Mutual TLS against a real Mosquitto that requires a client certificate, takes its CN as the user name
and has an ACL keyed on it: the relay's sync.cert_file/key_file and the hub's hub.cert_file/key_file get a
box and a real hub ingest worker in, and events travel end to end (stored by the hub, acked, outbox empty);
a missing or foreign certificate keeps either out with a reason an administrator can act on, and a box whose
certificate does not match its topics is told "not authorized" per publish; in every refusal the outbox
rows stay and nothing crashes."""
import logging

import pytest
from mqtt_broker import box_sections, broker_dir, hub_sections, issue_client_cert, load, make_pki, wait_until
from sync_util import fill, hub_event_ids, outbox_count

# Each identity (certificate CN) writes only under its own prefix and reads its own downlink and the global
# announcements; the hub reads every box's uplink (through its shared subscription) and writes the acks.
ACL = """\
pattern write ce/v1/school1/%u/#
pattern read ce/v1/school1/%u/down/#
pattern read ce/v1/global/#
user hub
topic read ce/v1/+/+/up/#
topic read ce/v1/+/+/status
topic write ce/v1/+/+/down/ack
"""


@pytest.fixture
def pki():
    return make_pki(broker_dir("ce-pki-"))


@pytest.fixture
def mtls_broker(broker_factory, pki):
    return broker_factory(tls=pki, require_certificate=True, use_identity_as_username=True, acl=ACL)


def _hub_cfg(tmp_path, broker, cert=None, key=None):
    # No user name or password: with a certificate the broker takes "hub" from its CN.
    hub = {"cert_file": str(cert), "key_file": str(key)} if cert else {}
    return load(hub_sections(tmp_path / "hub", broker, user="", password="", **hub))


@pytest.fixture
def real_hub(mtls_broker, pki, tmp_path, start_hub):
    """The real hub ingest worker with its own certificate (CN "hub"), subscribed; returns its config."""
    cert, key = issue_client_cert(pki, "hub")
    cfg = _hub_cfg(tmp_path, mtls_broker, cert, key)
    worker = start_hub(cfg)
    assert worker.state == "online", worker.status()
    return cfg


def _box(tmp_path, broker, open_services, start_relay, n=20, device="box1", **sync):
    # No user name or password: the certificate alone says who the box is.
    # Under TLS 1.3 the broker's "certificate required" alert can lose the race with the socket closing,
    # and that attempt reads as "connection closed before CONNACK"; the refusal shows on a later one. With
    # the default backoff (doubling to 60 s) a loaded machine saw only four attempts in the 30 s the
    # refusal tests wait (it failed twice in one session); short waits give them a dozen.
    sync.setdefault("backoff_max_s", 2.0)
    cfg = load(box_sections(tmp_path / device, broker, user=device, username="", password="", **sync))
    box = open_services(cfg)
    ids = fill(box.db, n)
    return box, ids, start_relay(cfg, box.db)


def test_a_box_and_the_real_hub_with_certificates_deliver_events_end_to_end(mtls_broker, tmp_path, pki,
                                                                            open_services, start_relay, real_hub):
    cert, key = issue_client_cert(pki, "box1")
    box, ids, relay = _box(tmp_path, mtls_broker, open_services, start_relay, cert_file=str(cert),
                           key_file=str(key))
    # Stored by the hub (its database, keyed by the box's site and device), acked, and deleted on the box.
    wait_until(lambda: sorted(hub_event_ids(real_hub)) == sorted(ids), what="the box's events in the hub's database")
    wait_until(lambda: outbox_count(box.db) == 0, what="rows deleted after the hub's ack")
    st = relay.status_dict()
    assert st["state"] == "online" and st["reason"] == "" and st["publish_refused"] is None
    assert st["events_acked"] == 20 and relay.status().state == "ok"
    # The broker took each certificate's CN as the user name (the ACL above is keyed on it).
    log = mtls_broker.log_tail(20000)
    assert "as ce-school1-box1 (p5" in log and "u'box1')" in log and "u'hub')" in log


def _refused(relay, box, expected):
    st = wait_until(lambda: (s := relay.status_dict())["state"] == "refused" and s, what="a refusal on the status")
    assert expected in st["reason"] and "sync.cert_file" in st["reason"], st["reason"]
    assert st["events_sent"] == 0 and st["failed"] is None and relay.relay.alive
    part = relay.status()
    assert part.state == "degraded" and expected in part.detail
    assert outbox_count(box.db) == 20


def test_a_box_without_a_client_certificate_is_refused(mtls_broker, pki, tmp_path, open_services, start_relay):
    box, _, relay = _box(tmp_path, mtls_broker, open_services, start_relay)
    _refused(relay, box, "the broker wants a client certificate")


def test_a_box_with_a_certificate_from_another_ca_is_refused(mtls_broker, pki, tmp_path, open_services, start_relay):
    other = make_pki(broker_dir("ce-pki-other-"), cn="Someone else's CA")
    cert, key = issue_client_cert(other, "box1")
    box, _, relay = _box(tmp_path, mtls_broker, open_services, start_relay, cert_file=str(cert), key_file=str(key))
    _refused(relay, box, "does not trust our client certificate")


def test_a_certificate_that_does_not_match_the_topics_is_not_authorized(mtls_broker, pki, tmp_path, open_services,
                                                                        start_relay, real_hub):
    cert, key = issue_client_cert(pki, "box1")  # box1's certificate on a box configured as box2
    box, _, relay = _box(tmp_path, mtls_broker, open_services, start_relay, device="box2", cert_file=str(cert),
                         key_file=str(key), ack_timeout_s=1.0)
    st = wait_until(lambda: (s := relay.status_dict())["publish_refused"] and s["resends"] >= 1 and s,
                    what="a refused publish, sent again after ack_timeout_s")
    refused = st["publish_refused"]
    assert "Not authorized" in refused and "0x87" in refused and "ce/v1/school1/box2/" in refused
    # Connected, yet nothing delivered: the rows stay, and the batch went again only on the ack timeout.
    assert st["state"] == "online" and st["events_acked"] == 0 and outbox_count(box.db) == 20
    assert st["inflight_batches"] == 1 and st["batches_sent"] <= 1 + st["resends"]
    part = relay.status()
    assert part.state == "degraded" and "Not authorized" in part.detail
    assert hub_event_ids(real_hub) == []


def _hub_refused(worker, expected, caplog):
    st = wait_until(lambda: (s := worker.status())["state"] == "refused" and s, what="the hub worker refused")
    assert expected in st["reason"] and "hub.cert_file" in st["reason"], st["reason"]
    assert worker.alive and not worker.subscribed.is_set() and st["batches"] == 0
    assert any(r.levelno == logging.WARNING and r.name == "appliance.hub.ingest" and expected in r.getMessage()
               and "hub.cert_file" in r.getMessage() for r in caplog.records), caplog.text


def test_a_hub_without_a_client_certificate_is_refused_and_keeps_running(mtls_broker, pki, tmp_path, open_services,
                                                                         start_relay, start_hub, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.hub.ingest")
    worker = start_hub(_hub_cfg(tmp_path, mtls_broker), wait=False)
    _hub_refused(worker, "the broker wants a client certificate", caplog)
    # A box with a good certificate still gets in; its events wait in its outbox (nobody stores or acks them).
    cert, key = issue_client_cert(pki, "box1")
    box, _, relay = _box(tmp_path, mtls_broker, open_services, start_relay, cert_file=str(cert), key_file=str(key))
    wait_until(lambda: relay.status_dict()["batches_sent"] >= 1, what="the box sending its first batch")
    assert relay.status_dict()["events_acked"] == 0 and outbox_count(box.db) == 20
    assert worker.status()["state"] == "refused" and worker.alive


def test_a_hub_with_a_certificate_from_another_ca_is_refused(mtls_broker, tmp_path, start_hub, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.hub.ingest")
    other = make_pki(broker_dir("ce-pki-other-"), cn="Someone else's CA")
    cert, key = issue_client_cert(other, "hub")
    worker = start_hub(_hub_cfg(tmp_path, mtls_broker, cert, key), wait=False)
    _hub_refused(worker, "does not trust our client certificate", caplog)
