"""The uplink cut and restored for real: box and hub in their own network namespaces, a veth cable between
them, the box's end taken down and up again. The backlog must drain by itself once the link is back."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import (
    Broker,
    box_sections,
    broker_dir,
    hub_sections,
    load,
    require_mosquitto,
    wait_until,
    write_config,
)
from sync_util import fill, outbox_count

from appliance.hub.store import HubStore

HUB_IP, BOX_IP, PORT = "10.77.0.1", "10.77.0.2", 18830


def _netns():
    """The discovery engineer's namespace helper (tests/e2e/netns.py), loaded by path."""
    if "netns" in sys.modules:
        return sys.modules["netns"]
    path = Path(__file__).resolve().parents[1] / "e2e" / "netns.py"
    spec = importlib.util.spec_from_file_location("netns", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["netns"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def lab():
    yield from _netns().lab_for_test()


def _hub_events(cfg) -> int:
    store = HubStore(cfg).open()
    try:
        return store.event_count()
    finally:
        store.close()


def _state(status_file: Path) -> str:
    try:
        return json.loads(status_file.read_text()).get("state", "")
    except (OSError, ValueError):
        return ""


@pytest.mark.root
@pytest.mark.slow
def test_backlog_drains_by_itself_after_the_link_comes_back(lab, tmp_path, open_services):
    require_mosquitto()
    box_ns, hub_ns = lab.namespace("box"), lab.namespace("hub")
    lab.link(box_ns, "eth0", hub_ns, "eth0", a_cidr=f"{BOX_IP}/24", b_cidr=f"{HUB_IP}/24")
    root = broker_dir()
    broker = Broker(root / "broker", host=HUB_IP, port=PORT, netns=hub_ns.name,
                    users={"box1": "box1-secret", "hub": "hub-secret"}).start()
    procs: list[subprocess.Popen] = []
    try:
        hub_sec = hub_sections(tmp_path / "hub", broker)
        box_sec = box_sections(tmp_path / "box", broker, keepalive_s=3, backoff_max_s=2.0, ack_timeout_s=5.0,
                               connect_timeout_s=3.0)
        hub_cfg, box_cfg = load(hub_sec), load(box_sec)
        box = open_services(box_cfg)
        for ns, sections, cmd, log in ((hub_ns, hub_sec, "hub", "hub.log"), (box_ns, box_sec, "sync", "relay.log")):
            conf = write_config(tmp_path / f"{cmd}.toml", sections)
            with open(tmp_path / log, "wb") as fh:
                procs.append(ns.popen([sys.executable, "-m", "appliance", "--config", str(conf), cmd],
                                      stdout=fh, stderr=subprocess.STDOUT))
        status = tmp_path / "box" / "sync" / "status.json"
        first = fill(box.db, 500)
        wait_until(lambda: outbox_count(box.db) == 0 and _hub_events(hub_cfg) == 500, timeout=60,
                   what="the first 500 events at the hub")

        box_ns.ip("link", "set", "eth0", "down")           # the cable is pulled
        second = fill(box.db, 1000)
        wait_until(lambda: _state(status) == "offline", timeout=30, what="the relay to notice the cut")
        assert outbox_count(box.db) == 1000 and _hub_events(hub_cfg) == 500

        box_ns.ip("link", "set", "eth0", "up")             # and plugged back in
        wait_until(lambda: outbox_count(box.db) == 0, timeout=90, interval=0.2, what="the backlog to drain")
        wait_until(lambda: _state(status) == "online", timeout=10, what="the status file to say online")
        store = HubStore(hub_cfg).open()
        try:
            stored = {r[0] for r in store.query("SELECT event_id FROM hub_events")}
        finally:
            store.close()
        assert stored == set(first) | set(second)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        for log in ("hub.log", "relay.log"):
            if (tmp_path / log).exists():
                print(f"----- {log} -----\n" + (tmp_path / log).read_text(errors="replace")[-3000:])
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
