"""The relay against a real Mosquitto and a real hub worker."""
import json
import threading

import paho.mqtt.client as mqtt
from mqtt_broker import box_sections, hub_sections, load, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from sync_util import fill, hub_event_ids, outbox_count


def _watch_retained(broker, topic):
    """A plain paho subscriber recording the payloads seen on ``topic`` (the admin's view of a box)."""
    seen = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher", protocol=mqtt.MQTTv5)
    c.username_pw_set("hub", "hub-secret")
    c.on_message = lambda cl, ud, msg: seen.append(json.loads(msg.payload) if msg.payload else None)
    c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(topic, qos=1)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c, seen


def test_backlog_drains_to_the_hub_and_rows_go_only_on_the_hubs_ack(mqtt_broker, tmp_path, open_services,
                                                                       start_relay, start_hub):
    # Nobody subscribed yet, so the broker drops the first batches: they are resent after ack_timeout_s.
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, ack_timeout_s=2.0))
    hub_cfg = load(hub_sections(tmp_path / "hub", mqtt_broker))
    box = open_services(box_cfg)
    ids = fill(box.db, 3000)
    relay = start_relay(box_cfg, box.db)
    # No hub yet: the broker PUBACKs every batch, and still nothing may leave the outbox.
    wait_until(lambda: relay.relay.uplink.stats["batches_sent"] >= 6 and not relay.relay.uplink.unpubacked,
               what="batches PUBACKed by the broker")
    assert outbox_count(box.db) == 3000
    st = relay.status_dict()
    assert st["state"] == "online" and st["backlog"]["events"] == 3000 and st["last_success"] is None

    start_hub(hub_cfg)
    wait_until(lambda: outbox_count(box.db) == 0, what="the outbox to drain")
    assert sorted(hub_event_ids(hub_cfg)) == sorted(ids)
    st = relay.status_dict()
    assert st["events_acked"] == 3000 and st["last_success"] and st["bytes_sent"] > 0 and st["resends"] > 0
    assert st["bytes_sent"] < 0.4 * st["json_bytes_sent"]
    assert st["backlog"]["events"] == 0 and st["backlog"]["age_s"] is None
    # Every event counted once as delivered, though batches were resent and acked more than once.
    # The bytes confirmed count each batch once too: fewer than were sent (resends included).
    assert st["delivered"]["events"] == 3000 and 0 < st["delivered"]["bytes"] < st["bytes_sent"]
    delivered_bytes = st["delivered"]["bytes"]
    # A restarted relay starts its counters at 0, but the box still knows when it last synced and
    # what it has delivered.
    relay.stop()
    again = start_relay(box_cfg, box.db)
    st = again.status_dict()
    assert st["events_acked"] == 0 and st["delivered"]["events"] == 3000
    assert st["bytes_sent"] == 0 and st["delivered"]["bytes"] == delivered_bytes
    assert st["last_success"] and st["last_success"] >= "2026"


def test_inflight_is_capped_by_the_brokers_receive_maximum(broker_factory, tmp_path, open_services, start_relay):
    broker = broker_factory(users={"box1": "box1-secret"}, extra_conf="max_inflight_messages 3\n")
    cfg = load(box_sections(tmp_path / "box", broker, max_inflight=50, batch_max_events=20))
    box = open_services(cfg)
    fill(box.db, 2000)
    relay = start_relay(cfg, box.db)
    wait_until(lambda: relay.relay.uplink.stats["batches_sent"] >= 32, what="a full window of batches")
    st = relay.status_dict()
    assert st["receive_maximum"] == 3 and st["inflight_cap"] == 3
    assert relay.relay.uplink.stats["max_unpubacked"] <= 3


def test_status_topic_is_retained_with_a_last_will(mqtt_broker, tmp_path, open_services, start_relay):
    cfg = load(box_sections(tmp_path / "box", mqtt_broker))
    box = open_services(cfg)
    relay = start_relay(cfg, box.db)
    watcher, seen = _watch_retained(mqtt_broker, "ce/v1/school1/box1/status")
    try:
        wait_until(lambda: any(s and s["state"] == "online" for s in seen), what="retained online status")
        relay.stop(10)
        wait_until(lambda: seen and seen[-1]["state"] == "offline", what="offline status after a clean stop")
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def test_relay_reconnects_after_the_broker_comes_back(mqtt_broker, tmp_path, open_services, start_relay, start_hub):
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, backoff_max_s=2.0))
    box = open_services(box_cfg)
    relay = start_relay(box_cfg, box.db)
    wait_until(lambda: relay.status_dict()["state"] == "online", what="online")
    mqtt_broker.stop()
    wait_until(lambda: relay.status_dict()["state"] == "offline", what="offline")
    assert "refused" in relay.status_dict()["reason"] or "lost" in relay.status_dict()["reason"]
    ids = fill(box.db, 700)
    mqtt_broker.start()
    start_hub(load(hub_sections(tmp_path / "hub", mqtt_broker)))
    wait_until(lambda: outbox_count(box.db) == 0, what="drain after reconnect")
    assert sorted(hub_event_ids(load(hub_sections(tmp_path / "hub", mqtt_broker)))) == sorted(ids)


def test_paho_is_only_touched_by_the_relay_thread_and_the_first_batch_leaves_with_the_connack(
        mqtt_broker, tmp_path, open_services, start_relay, monkeypatch):
    """Threading contract: every publish happens on the relay thread (callbacks only queue events), and
    the first batch is published while handling the CONNACK, before the network loop runs again."""
    import appliance.sync.mqtt as m
    import appliance.sync.relay as r

    cfg = load(box_sections(tmp_path / "box", mqtt_broker))
    box = open_services(cfg)
    fill(box.db, 10)
    calls = {"loops": 0, "connack_at": None, "first_batch_at": None, "threads": set()}
    loop, publish, connected = m.Link.loop, m.Link.publish, r.Relay._connected

    def spy_loop(self, *a, **kw):
        calls["loops"] += 1
        return loop(self, *a, **kw)

    def spy_publish(self, topic, *a, **kw):
        calls["threads"].add(threading.current_thread().name)
        if topic.endswith("/up/events") and calls["first_batch_at"] is None:
            calls["first_batch_at"] = calls["loops"]
        return publish(self, topic, *a, **kw)

    def spy_connected(self, *a, **kw):
        calls["connack_at"] = calls["loops"]
        return connected(self, *a, **kw)

    monkeypatch.setattr(m.Link, "loop", spy_loop)
    monkeypatch.setattr(m.Link, "publish", spy_publish)
    monkeypatch.setattr(r.Relay, "_connected", spy_connected)
    relay = start_relay(cfg, box.db)
    wait_until(lambda: relay.relay.uplink.stats["batches_sent"] >= 1, what="first batch")
    assert calls["connack_at"] is not None and calls["first_batch_at"] == calls["connack_at"]
    assert calls["threads"] == {"sync-relay"}


def test_a_batch_the_hub_refuses_stays_in_the_outbox_with_the_reason_shown(mqtt_broker, tmp_path, open_services,
                                                                           start_relay):
    from appliance.sync.mqtt import user_properties

    def nack(cl, ud, msg):  # a hub that cannot store anything and says why
        batch = user_properties(msg)["batch"]
        cl.publish("ce/v1/school1/box1/down/ack", json.dumps({"batch": batch, "rejected": "schema 9 unknown"}), qos=1)

    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="strict-hub", protocol=mqtt.MQTTv5)
    hub.username_pw_set("hub", "hub-secret")
    hub.on_message = nack
    subscribed = threading.Event()
    hub.on_subscribe = lambda *a: subscribed.set()
    hub.connect(mqtt_broker.host, mqtt_broker.port)
    hub.subscribe("ce/v1/+/+/up/events", qos=1)
    hub.loop_start()
    try:
        assert subscribed.wait(10)
        cfg = load(box_sections(tmp_path / "box", mqtt_broker))
        box = open_services(cfg)
        fill(box.db, 50)
        relay = start_relay(cfg, box.db)
        st = wait_until(lambda: (s := relay.status_dict())["hub_rejected"] and s, what="the refusal on the status")
        assert "schema 9 unknown" in st["hub_rejected"] and st["events_acked"] == 0
        assert outbox_count(box.db) == 50
    finally:
        hub.loop_stop()
        hub.disconnect()
