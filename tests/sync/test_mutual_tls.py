"""Mutual TLS against a real Mosquitto that requires a client certificate, takes its CN as the user name
and has an ACL keyed on it: the relay's sync.cert_file/key_file get a box in, a missing or foreign
certificate keeps it out with a reason an administrator can act on, and a box whose certificate does not
match its topics is told "not authorized" per publish; in every refusal the outbox rows stay."""
import json
import ssl
import threading

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import box_sections, broker_dir, issue_client_cert, load, make_pki, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from sync_util import fill, outbox_count

# Each identity (certificate CN) writes only under its own prefix and reads its own downlink and the global
# announcements; the hub reads every box's uplink and writes the acks.
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


class Hub:
    """A stand-in for the hub (its own certificate, CN "hub"): records each batch's event ids and, when
    ``acking``, sends the end-to-end ack the real hub sends after its commit."""

    def __init__(self, broker, pki, acking: bool):
        cert, key = issue_client_cert(pki, "hub")
        self.acking = acking
        self.batches: list[tuple[str, list[str]]] = []
        self.subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-hub", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.connect(broker.host, broker.port)
        c.subscribe("ce/v1/+/+/up/events", qos=1)
        c.loop_start()
        self.client = c
        assert self.subscribed.wait(10), broker.log_tail()

    def _on_message(self, cl, ud, msg):
        from appliance.sync import codec
        from appliance.sync.mqtt import user_properties

        batch = user_properties(msg)["batch"]
        self.batches.append((msg.topic, [e["event_id"] for e in codec.decode(msg.payload)]))
        if self.acking:
            cl.publish(msg.topic.rsplit("/up/", 1)[0] + "/down/ack", json.dumps({"batch": batch}), qos=1)

    def event_ids(self) -> set[str]:
        return {i for _, ids in self.batches for i in ids}

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def hub_factory():
    made = []

    def make(broker, pki, acking=True):
        h = Hub(broker, pki, acking)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def _box(tmp_path, broker, open_services, start_relay, n=20, device="box1", **sync):
    # No user name or password: the certificate alone says who the box is.
    cfg = load(box_sections(tmp_path / device, broker, user=device, username="", password="", **sync))
    box = open_services(cfg)
    ids = fill(box.db, n)
    return box, ids, start_relay(cfg, box.db)


def test_a_box_with_a_certificate_from_the_brokers_ca_relays_its_outbox(mtls_broker, pki, tmp_path, open_services,
                                                                         start_relay, hub_factory):
    hub = hub_factory(mtls_broker, pki)
    cert, key = issue_client_cert(pki, "box1")
    box, ids, relay = _box(tmp_path, mtls_broker, open_services, start_relay, cert_file=str(cert),
                           key_file=str(key))
    wait_until(lambda: hub.event_ids() == set(ids), what="the box's events at the hub")
    assert {t for t, _ in hub.batches} == {"ce/v1/school1/box1/up/events"}
    wait_until(lambda: outbox_count(box.db) == 0, what="rows deleted after the hub's ack")
    st = relay.status_dict()
    assert st["state"] == "online" and st["reason"] == "" and st["publish_refused"] is None
    assert st["events_acked"] == 20 and relay.status().state == "ok"
    # The broker took the certificate's CN as the user name (the ACL above is keyed on it).
    assert "as ce-school1-box1 (p5" in mtls_broker.log_tail(20000) and "u'box1')" in mtls_broker.log_tail(20000)


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
                                                                        start_relay, hub_factory):
    hub = hub_factory(mtls_broker, pki)
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
    assert not hub.batches
