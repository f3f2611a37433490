"""Hub workers against a real Mosquitto: shared subscriptions, ack after commit, replays stored once."""
import json
import threading

import paho.mqtt.client as mqtt
from mqtt_broker import box_sections, hub_sections, load, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.hub.store import HubStore
from appliance.sync import codec, outbox


def _events(prefix, n):
    return [{"event_id": f"{prefix}-{i}", "type": "attempt", "schema": 1, "ts": "2024-01-01T00:00:00.000Z",
             "priority": 0, "payload": {"i": i}} for i in range(n)]


class FakeBox:
    """A bare MQTT client acting as a box: publishes raw batches and records the hub's acks."""

    def __init__(self, broker, device="box1"):
        self.acks = []
        self.topic = f"ce/v1/school1/{device}"
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-{device}", protocol=mqtt.MQTTv5)
        self.c.username_pw_set("box1", "box1-secret")
        self.c.on_message = lambda cl, ud, msg: self._on_ack(msg)
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect(broker.host, broker.port)
        self.c.subscribe(f"{self.topic}/down/ack", qos=1)
        self.c.loop_start()
        assert self.subscribed.wait(5)
        self.on_ack = None

    def _on_ack(self, msg):
        doc = json.loads(msg.payload)
        if self.on_ack:
            doc["_seen"] = self.on_ack(doc)
        self.acks.append(doc)

    def send(self, batch_id, data):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("batch", batch_id)]
        self.c.publish(f"{self.topic}/up/events", data, qos=1, properties=props).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_replays_are_stored_once_and_every_delivery_is_acked_after_commit(mqtt_broker, tmp_path, start_hub):
    cfg = load(hub_sections(tmp_path / "hub", mqtt_broker))
    start_hub(cfg)
    reader = HubStore(cfg).open()
    box = FakeBox(mqtt_broker)
    try:
        # When the ack arrives, every event of the batch must already be committed in the hub's database.
        box.on_ack = lambda doc: reader.query("SELECT count(*) FROM hub_events WHERE batch_id = ?",
                                              (doc["batch"],))[0][0]
        data = codec.encode_events(_events("e", 300))
        for _ in range(3):
            box.send("b-1", data)
        wait_until(lambda: len(box.acks) == 3, what="three acks")
        assert [a["new"] for a in box.acks] == [300, 0, 0]
        assert all(a["_seen"] == 300 and a["events"] == 300 for a in box.acks)
        assert reader.event_count() == 300
    finally:
        box.close()
        reader.close()


def test_malformed_batches_are_rejected_and_the_worker_carries_on(mqtt_broker, tmp_path, start_hub):
    cfg = load(hub_sections(tmp_path / "hub", mqtt_broker))
    worker = start_hub(cfg)
    box = FakeBox(mqtt_broker)
    try:
        box.send("bad-1", b"garbage")
        box.send("bad-2", codec.MAGIC + b"\x28\xb5\x2f\xfd garbage")
        box.send("good", codec.encode_events(_events("g", 5)))
        wait_until(lambda: len(box.acks) == 3, what="two refusals and one ack")
        assert worker.stats["rejected"] == 2 and worker.alive
        by_batch = {a["batch"]: a for a in box.acks}
        assert "magic" in by_batch["bad-1"]["rejected"] and "corrupt" in by_batch["bad-2"]["rejected"]
        assert by_batch["good"]["new"] == 5 and "rejected" not in by_batch["good"]
    finally:
        box.close()


def test_two_workers_split_the_load_through_the_shared_subscription(mqtt_broker, tmp_path, start_hub):
    cfg = load(hub_sections(tmp_path / "hub", mqtt_broker))
    w1, w2 = start_hub(cfg, index=1), start_hub(cfg, index=2)
    wait_until(lambda: w1.state == "online" and w2.state == "online", what="both workers online")
    box = FakeBox(mqtt_broker)
    try:
        for b in range(40):
            box.send(f"b-{b}", codec.encode_events(_events(f"b{b}", 50)))
        wait_until(lambda: len(box.acks) == 40, what="40 acks")
        assert w1.stats["batches"] > 0 and w2.stats["batches"] > 0
        assert w1.stats["batches"] + w2.stats["batches"] == 40
        reader = HubStore(cfg).open()
        try:
            assert reader.event_count() == 2000
        finally:
            reader.close()
    finally:
        box.close()


def test_a_federated_update_travels_in_chunks_and_is_deleted_on_the_hubs_ack(mqtt_broker, tmp_path, open_services,
                                                                            start_relay, start_hub):
    import os

    hub_cfg = load(hub_sections(tmp_path / "hub", mqtt_broker))
    seen = []
    start_hub(hub_cfg, on_update=lambda site, device, event_id: seen.append((site, device, event_id)))
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker))
    box = open_services(box_cfg)
    data = os.urandom(700_000)
    eid = box.db.write(lambda c: outbox.enqueue_blob(c, "fl_update", data, {"round": 4, "model": "mastery"}))
    start_relay(box_cfg, box.db)
    wait_until(lambda: seen, what="the update stored at the hub")
    assert seen == [("school1", "box1", eid)]

    def blobs_left():
        with box.db.read() as c:
            return c.execute("SELECT count(*) FROM sync_blobs").fetchone()[0]

    wait_until(lambda: blobs_left() == 0, what="the blob deleted on the box")
    reader = HubStore(hub_cfg).open()
    try:
        (row,) = reader.query("SELECT type, meta, data FROM hub_fl_updates WHERE event_id = ?", (eid,))
        assert row[0] == "fl_update" and json.loads(row[1]) == {"model": "mastery", "round": 4}
        assert bytes(row[2]) == data
    finally:
        reader.close()


def test_two_workers_on_postgresql_store_a_relayed_backlog_exactly_once(mqtt_broker, tmp_path, postgres_url,
                                                                       open_services, start_relay, start_hub):
    from pg_server import fresh_database

    hub_cfg = load(hub_sections(tmp_path / "hub", mqtt_broker,
                                database_url=fresh_database(postgres_url, "hub_ingest_live")))
    w1, w2 = start_hub(hub_cfg, index=1), start_hub(hub_cfg, index=2)
    assert w1.store.kind == "postgresql"
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, batch_max_events=100))
    box = open_services(box_cfg)
    ids = box.db.write(lambda c: [outbox.enqueue(c, "attempt", {"i": i}) for i in range(3000)])
    start_relay(box_cfg, box.db)

    def left():
        with box.db.read() as c:
            return c.execute("SELECT count(*) FROM outbox").fetchone()[0]

    wait_until(lambda: left() == 0, what="the backlog to drain into PostgreSQL")
    reader = HubStore(hub_cfg).open()
    try:
        stored = [r[0] for r in reader.query("SELECT event_id FROM hub_events")]
    finally:
        reader.close()
    assert sorted(stored) == sorted(ids)
    assert w1.stats["batches"] > 0 and w2.stats["batches"] > 0
