"""TLS with a pinned CA and per-box credentials: the right ones connect, everything else is refused
with a reason an administrator can act on, and the outbox is left alone."""
import pytest
from mqtt_broker import box_sections, broker_dir, load, make_pki, wait_until
from sync_util import fill, outbox_count


@pytest.fixture
def tls_broker(broker_factory):
    pki = make_pki(broker_dir("ce-pki-"))
    return broker_factory(users={"box1": "box1-secret", "hub": "hub-secret"}, tls=pki)


def _relay(tmp_path, broker, open_services, start_relay, **sync):
    cfg = load(box_sections(tmp_path / "box", broker, **sync))
    box = open_services(cfg)
    fill(box.db, 20)
    return box, start_relay(cfg, box.db)


def test_right_credentials_and_pinned_ca_connect(tls_broker, tmp_path, open_services, start_relay):
    _, relay = _relay(tmp_path, tls_broker, open_services, start_relay)
    st = wait_until(lambda: (s := relay.status_dict())["state"] == "online" and s, what="online over TLS")
    assert st["broker"].endswith("(TLS)") and st["reason"] == ""
    assert relay.status().state == "ok"


@pytest.mark.parametrize("sync, expected", [
    ({"password": "wrong"}, "refused our credentials"),
    ({"username": "", "password": ""}, "refused our credentials"),       # anonymous
])
def test_wrong_password_and_anonymous_are_refused(tls_broker, tmp_path, open_services, start_relay, sync, expected):
    box, relay = _relay(tmp_path, tls_broker, open_services, start_relay, **sync)
    st = wait_until(lambda: (s := relay.status_dict())["state"] == "refused" and s, what="refused status")
    assert expected in st["reason"] and "sync.username/password" in st["reason"]
    part = relay.status()
    assert part.state == "degraded" and "refused" in part.detail
    assert outbox_count(box.db) == 20 and st["events_sent"] == 0


def test_a_broker_certificate_from_another_ca_is_refused(tls_broker, tmp_path, open_services, start_relay):
    other = make_pki(broker_dir("ce-pki-other-"), cn="Someone else's CA")
    box, relay = _relay(tmp_path, tls_broker, open_services, start_relay, ca_file=str(other.ca_file))
    st = wait_until(lambda: "TLS" in (s := relay.status_dict())["reason"] and s, what="TLS failure status")
    assert st["state"] == "offline"
    assert "not trusted" in st["reason"] and "sync.ca_file" in st["reason"]
    assert outbox_count(box.db) == 20 and st["events_sent"] == 0


def test_a_plain_client_cannot_talk_to_the_tls_listener(tls_broker, tmp_path, open_services, start_relay):
    box, relay = _relay(tmp_path, tls_broker, open_services, start_relay,
                        broker_url=f"mqtt://127.0.0.1:{tls_broker.port}")
    wait_until(lambda: relay.relay.backoff.attempt >= 2, what="two failed attempts")
    st = relay.status_dict()
    assert st["state"] == "offline" and st["reason"] and outbox_count(box.db) == 20
