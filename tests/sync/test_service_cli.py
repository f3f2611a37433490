"""The sync part as the runtime, the web process and systemd see it."""
import json
import signal
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
from mqtt_broker import box_sections, load, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from sync_util import fill

from appliance.services import Services
from appliance.sync.service import make_part, part_status, read_status


def test_without_a_broker_the_part_is_disabled(tmp_path):
    services = Services.open(load(box_sections(tmp_path / "box", None)))
    try:
        assert make_part(services) is None
        (st,) = [s for s in services.statuses() if s.name == "sync"]
        assert st.state == "disabled" and "sync.broker_url" in st.detail
        assert read_status(services.cfg, services.db)["state"] == "disabled"
    finally:
        services.close()


def test_the_web_process_reads_the_relays_status_and_the_live_backlog(mqtt_broker, tmp_path, open_services,
                                                                      start_relay):
    cfg = load(box_sections(tmp_path / "box", mqtt_broker))
    box = open_services(cfg)
    st = read_status(cfg, box.db)
    assert st["state"] == "failed" and "not running" in st["reason"]
    relay = start_relay(cfg, box.db)
    wait_until(lambda: read_status(cfg, box.db)["state"] == "online", what="status file says online")
    fill(box.db, 25)
    st = read_status(cfg, box.db)
    assert st["limits"]["state"] == "ok" and st["broker"] == relay.status_dict()["broker"]
    relay.stop(10)
    assert read_status(cfg, box.db)["state"] == "stopped"
    # With the relay stopped nothing drains: the live backlog is exactly what the outbox holds.
    fill(box.db, 7)
    with box.db.read() as c:
        waiting = c.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert waiting >= 7 and read_status(cfg, box.db)["backlog"]["events"] == waiting
    assert part_status({"state": "online", "broker": "b", "limits": {"state": "alarm", "message": "disk"}}).state \
        == "degraded"


def test_sync_command_runs_until_sigterm_and_its_will_marks_a_killed_box_offline(mqtt_broker, tmp_path):
    sections = box_sections(tmp_path / "box", mqtt_broker)
    conf = write_config(tmp_path / "box.toml", sections)
    seen = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="admin-view", protocol=mqtt.MQTTv5)
    watcher.username_pw_set("hub", "hub-secret")
    watcher.on_message = lambda cl, ud, msg: seen.append(json.loads(msg.payload)["state"])
    watcher.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe("ce/v1/school1/box1/status", qos=1)
    watcher.connect(mqtt_broker.host, mqtt_broker.port)
    watcher.loop_start()
    cmd = [sys.executable, "-m", "appliance", "--config", str(conf), "sync"]
    log = open(tmp_path / "relay.log", "wb")  # noqa: SIM115 - shared by two processes, closed in finally
    proc = None
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: seen and seen[-1] == "online", what="online from the command")
        status = subprocess.run(cmd + ["--status"], capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "online"
        proc.send_signal(signal.SIGKILL)                  # no goodbye: the broker's last will speaks
        proc.wait(10)
        wait_until(lambda: seen[-1] == "offline", what="the last will")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: seen[-1] == "online", what="online again")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)                  # a clean stop says offline itself
        assert proc.wait(30) == 0, (tmp_path / "relay.log").read_text()[-2000:]
        wait_until(lambda: seen[-1] == "offline", what="offline after SIGTERM")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        watcher.loop_stop()
        watcher.disconnect()
    no_broker = write_config(tmp_path / "nobroker.toml", box_sections(tmp_path / "box2", None))
    out = subprocess.run([sys.executable, "-m", "appliance", "--config", str(no_broker), "sync"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1 and "sync.broker_url is not set" in out.stderr


def test_the_relay_asks_for_a_week_long_persistent_session_and_a_retained_last_will(tmp_path):
    from appliance.sync.relay import Relay

    services = Services.open(load(box_sections(tmp_path / "box", None, broker_url="mqtt://127.0.0.1:1")))
    try:
        relay = Relay(services.cfg, services.db)
        assert relay.link.clean_start is False and relay.link.session_expiry >= 7 * 24 * 3600
        topic, payload = relay.link.will
        assert topic == "ce/v1/school1/box1/status" and json.loads(payload)["state"] == "offline"
        assert relay.link.client_id == "ce-school1-box1"
    finally:
        services.close()
