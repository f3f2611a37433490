"""Models and content from the hub: signed, chunked, resumable, verified before use."""
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import (
    box_sections,
    broker_dir,
    hub_sections,
    load,
    wait_until,
    write_config,
)
from paho.mqtt.enums import CallbackAPIVersion
from sync_util import fill, outbox_count
from tcp_proxy import TcpProxy

from appliance.hub.publisher import Publisher, generate_key
from appliance.sync import manifest as mf
from appliance.sync.handlers import InstallHandler, pack_model_dir, unpack_model


class Recorder:
    """A DownlinkHandler that keeps a copy of what it was handed (and can delegate models)."""

    def __init__(self, delegate=None):
        self.calls = []
        self.delegate = delegate

    def on_model(self, name, version, path):
        self.calls.append(("model", name, version, Path(path).read_bytes()))
        if self.delegate:
            self.delegate.on_model(name, version, path)

    def on_content(self, course, path):
        self.calls.append(("content", course, None, Path(path).read_bytes()))


@pytest.fixture
def keys(tmp_path):
    d = broker_dir("ce-keys-")
    pub = generate_key(d / "signing.key")
    return d / "signing.key", pub


def _hub_cfg(tmp_path, broker, key_file):
    return load(hub_sections(tmp_path / "hub", broker, signing_key_file=str(key_file)))


def _model_dir(root: Path, name: str, size: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    weights = os.urandom(size)
    (d / "model.onnx").write_bytes(weights)
    (d / "model.json").write_text(json.dumps({"name": name, "backend": "onnxruntime",
                                              "sha256": hashlib.sha256(weights).hexdigest()}))
    return d


def _raw_publisher(broker):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="evil-or-broken", protocol=mqtt.MQTTv5)
    c.username_pw_set("hub", "hub-secret")
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def test_a_published_model_is_verified_and_imported_into_the_repository(mqtt_broker, tmp_path, keys, open_services,
                                                                        start_relay):
    key_file, pub = keys
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, trusted_keys=[pub]))
    box = open_services(box_cfg)
    recorder = Recorder(delegate=InstallHandler(box))
    relay = start_relay(box_cfg, box.db, recorder)
    src = _model_dir(tmp_path / "src", "mastery", 700_000)
    archive = tmp_path / "mastery.tar"
    pack_model_dir(src, archive)
    with Publisher(_hub_cfg(tmp_path, mqtt_broker, key_file)) as p:
        m = p.publish("model", "mastery", "3", archive)
    assert len(m.chunks) == 3
    wait_until(lambda: relay.relay.downlink.stats["installed"] == 1, what="model installed")
    (kind, name, version, data), = recorder.calls
    assert (kind, name, version) == ("model", "mastery", "3") and data == archive.read_bytes()
    imported = tmp_path / "box" / "models" / "mastery" / "3"
    assert (imported / "model.onnx").read_bytes() == (src / "model.onnx").read_bytes()
    with box.db.read() as c:
        assert c.execute("SELECT version, sha256 FROM sync_downlink WHERE name = 'mastery'").fetchone()[:] \
            == ("3", m.sha256)
    # Retained: a restarted relay sees the announcement again and does not install it twice.
    relay.stop(10)
    relay2 = start_relay(box_cfg, box.db, recorder)
    wait_until(lambda: relay2.status_dict()["state"] == "online", what="online again")
    # The retained announcement arrives again on reconnect; give a wrong re-fetch time to happen, then
    # check it did not (waiting for "zero bytes" alone would pass at once, before anything could go wrong).
    wait_until(lambda: relay2.relay.downlink.stats["announcements"] >= 1, what="announcement seen again")
    time.sleep(2)
    assert relay2.relay.downlink.stats["chunk_bytes"] == 0 and len(recorder.calls) == 1, "fetched twice"


def test_bad_downlink_messages_are_rejected_logged_and_the_relay_keeps_working(
        mqtt_broker, tmp_path, keys, open_services, start_relay, start_hub, caplog):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_file, pub = keys
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, trusted_keys=[pub], max_announcement_kb=4,
                                ack_timeout_s=3.0))
    box = open_services(box_cfg)
    recorder = Recorder()
    relay = start_relay(box_cfg, box.db, recorder)
    wait_until(lambda: relay.status_dict()["state"] == "online", what="online")
    payload = tmp_path / "course.zip"
    payload.write_bytes(os.urandom(300_000))
    good = mf.build("content", "fractions", "2", payload, Ed25519PrivateKey.generate())  # not our key
    unsigned = json.dumps(good.unsigned_doc()).encode()
    caplog.set_level(logging.WARNING, logger="appliance.sync.downlink")
    raw = _raw_publisher(mqtt_broker)
    try:
        for topic, data in [
            ("ce/v1/global/models/a", b"\x00\xff not json"),                  # malformed
            ("ce/v1/global/models/b", b"{" + b" " * 6000 + b"}"),             # oversized (> 4 KiB)
            ("ce/v1/global/content/fractions", unsigned),                    # unsigned
            ("ce/v1/global/content/fractions", good.to_bytes()),             # wrongly signed
        ]:
            raw.publish(topic, data, qos=1).wait_for_publish(5)
        wait_until(lambda: relay.relay.downlink.stats["rejected"] >= 4, what="four rejections")
        reasons = " | ".join(r.getMessage() for r in caplog.records)
        for expected in ("not JSON", "exceeds", "unsigned", "does not match any trusted key"):
            assert expected in reasons
        # A correctly signed manifest whose chunk was swapped on the broker: the chunk is refused.
        with Publisher(_hub_cfg(tmp_path, mqtt_broker, key_file)) as p:
            m = mf.build("content", "algebra", "1", payload, p.key)
            p._publish(m.chunk_topic(0), os.urandom(m.chunk_length(0)))
            p._publish(m.chunk_topic(1), payload.read_bytes()[mf.CHUNK_SIZE:])
            p._publish(m.topic, m.to_bytes())
            p._wait(lambda: not p._pending, "PUBACKs")
        wait_until(lambda: "algebra" in str(relay.relay.downlink.stats["last_rejection"]), what="bad chunk rejected")
        assert recorder.calls == []
    finally:
        raw.loop_stop()
        raw.disconnect()
    # Still alive: the uplink drains and a good update is installed.
    st = relay.status_dict()
    assert st["state"] == "online" and relay.relay.alive
    start_hub(load(hub_sections(tmp_path / "hub", mqtt_broker)))
    fill(box.db, 100)
    wait_until(lambda: outbox_count(box.db) == 0, what="uplink still drains")
    with Publisher(_hub_cfg(tmp_path, mqtt_broker, key_file)) as p:
        p.publish("content", "fractions", "3", payload)
    wait_until(lambda: recorder.calls, what="good content handed over")
    assert recorder.calls[0][:2] == ("content", "fractions") and recorder.calls[0][3] == payload.read_bytes()


def _box_behind_slow_link(tmp_path, mqtt_broker, pub, open_services, start_relay):
    """A box whose uplink runs through a throttled proxy (~2 s for 8 MiB), online and ready to receive."""
    proxy = TcpProxy(mqtt_broker.port, rate=4_000_000)
    sections = box_sections(tmp_path / "box", mqtt_broker, trusted_keys=[pub], chunk_window=2)
    sections["sync"]["broker_url"] = proxy.url
    box_cfg = load(sections)
    box = open_services(box_cfg)
    recorder = Recorder()
    relay = start_relay(box_cfg, box.db, recorder)
    wait_until(lambda: relay.status_dict()["state"] == "online", what="online")
    return proxy, box_cfg, box, recorder, relay


def test_a_cut_half_way_costs_at_most_10_percent_extra(mqtt_broker, tmp_path, keys, open_services, start_relay):
    key_file, pub = keys
    proxy, box_cfg, box, recorder, relay = _box_behind_slow_link(tmp_path, mqtt_broker, pub, open_services, start_relay)
    try:
        payload = tmp_path / "big.bin"
        payload.write_bytes(os.urandom(8 * 1024 * 1024))
        with Publisher(_hub_cfg(tmp_path, mqtt_broker, key_file)) as p:
            m = p.publish("content", "video-course", "1", payload)
        start_down = proxy.bytes_down
        dl = relay.relay.downlink

        def half_done():
            t = dl.transfers.get(("content", "video-course"))
            return t is not None and len(t.missing) <= len(m.chunks) // 2

        wait_until(half_done, interval=0.01, what="half of the chunks")
        assert proxy.cut() == 1
        wait_until(lambda: recorder.calls, timeout=60, what="the transfer to finish after the cut")
        assert recorder.calls[0][3] == payload.read_bytes()
        assert proxy.connections >= 2, "the relay must have reconnected"
        assert dl.stats["chunk_bytes"] <= 1.1 * m.size
        assert proxy.bytes_down - start_down <= 1.1 * m.size
    finally:
        proxy.close()


def test_a_restarted_relay_resumes_from_the_chunks_on_disk(mqtt_broker, tmp_path, keys, open_services, start_relay):
    key_file, pub = keys
    proxy, box_cfg, box, recorder, relay = _box_behind_slow_link(tmp_path, mqtt_broker, pub, open_services, start_relay)
    try:
        payload = tmp_path / "big.bin"
        payload.write_bytes(os.urandom(6 * 1024 * 1024))
        with Publisher(_hub_cfg(tmp_path, mqtt_broker, key_file)) as p:
            m = p.publish("content", "atlas", "5", payload)
        dl = relay.relay.downlink
        wait_until(lambda: (t := dl.transfers.get(("content", "atlas"))) and len(t.missing) <= len(m.chunks) // 2,
                   interval=0.01, what="half of the chunks")
        relay.stop(10)
        first = dl.stats["chunk_bytes"]
        relay2 = start_relay(box_cfg, box.db, recorder)
        wait_until(lambda: recorder.calls, timeout=60, what="the resumed transfer to finish")
        assert recorder.calls[0][3] == payload.read_bytes()
        assert first >= m.size // 3 and first + relay2.relay.downlink.stats["chunk_bytes"] <= 1.1 * m.size
    finally:
        proxy.close()


def test_publish_model_from_the_command_line(mqtt_broker, tmp_path, keys, open_services, start_relay):
    import subprocess
    import sys

    key_file, pub = keys
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, trusted_keys=[pub]))
    box = open_services(box_cfg)
    recorder = Recorder(delegate=InstallHandler(box))
    start_relay(box_cfg, box.db, recorder)
    src = _model_dir(tmp_path / "src", "recommender", 50_000)
    conf = write_config(tmp_path / "hub.toml", hub_sections(tmp_path / "hub", mqtt_broker,
                                                            signing_key_file=str(key_file)))
    out = subprocess.run([sys.executable, "-m", "appliance", "--config", str(conf), "hub", "publish-model",
                          "--name", "recommender", "--version", "2", "--dir", str(src)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["published"] == "ce/v1/global/models/recommender"
    wait_until(lambda: recorder.calls, what="model handed over")
    unpack = tmp_path / "unpacked"
    unpack.mkdir()
    archive = tmp_path / "got.tar"
    archive.write_bytes(recorder.calls[0][3])
    unpack_model(archive, unpack)
    assert (unpack / "model.onnx").read_bytes() == (src / "model.onnx").read_bytes()
    assert (tmp_path / "box" / "models" / "recommender" / "2" / "model.json").is_file()


def test_a_published_course_bundle_is_imported_by_the_content_importer(mqtt_broker, tmp_path, keys, open_services,
                                                                       start_relay):
    from appliance.content import attach
    from appliance.content.writer import write_bundle

    key_file, pub = keys
    box_cfg = load(box_sections(tmp_path / "box", mqtt_broker, trusted_keys=[pub]))
    box = open_services(box_cfg)
    attach(box)
    clip = os.urandom(400_000)
    doc = {"schema_version": 1, "id": "fractions", "version": "2.0.0", "title": "Fractions", "language": "en",
           "skills": [{"id": "s", "name": "Halves"}],
           "lessons": [{"id": "l1", "title": "Halves", "blocks": [{"type": "video", "asset": "clip.mp4",
                                                                    "title": "Clip"}]}],
           "exercises": [{"id": "e1", "lesson": "l1", "kind": "numeric", "prompt": "1/2 + 1/2", "skills": ["s"],
                          "spec": {"answer": 1, "tolerance": 0}}],
           "assets": {"clip.mp4": {"sha256": hashlib.sha256(clip).hexdigest(), "size": len(clip),
                                   "mime": "video/mp4"}}}
    bundle = write_bundle(tmp_path / "fractions.zip", json.dumps(doc).encode(), {hashlib.sha256(clip).hexdigest(): clip})
    relay = start_relay(box_cfg, box.db, InstallHandler(box))
    with Publisher(_hub_cfg(tmp_path, mqtt_broker, key_file)) as p:
        p.publish("content", "fractions", "2.0.0", bundle)
    wait_until(lambda: relay.relay.downlink.stats["installed"] == 1 or relay.relay.downlink.stats["install_error"],
               what="the course imported")
    assert relay.relay.downlink.stats["install_error"] is None
    with box.db.read() as c:
        assert c.execute("SELECT version, title FROM courses WHERE id = 'fractions'").fetchone()[:] == ("2.0.0",
                                                                                                        "Fractions")
