"""The runtime part's configuration checks and status, without touching any network."""
from __future__ import annotations

import json

import pytest

from appliance import loopback
from appliance.config import load_config
from appliance.discovery import netif
from appliance.discovery.service import DiscoveryService, box_id, health_url, make_part
from appliance.errors import ConfigError
from appliance.services import Services


def _cfg(tmp_path, web_host="0.0.0.0", **mdns):
    env = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path / "data"), "CLASSROOM_EDGE_SYNC__DEVICE": "box-a",
           "CLASSROOM_EDGE_WEB__HOST": web_host}
    env.update({f"CLASSROOM_EDGE_MDNS__{k.upper()}": str(v) for k, v in mdns.items()})
    return load_config(env=env)


def test_disabled_part_reports_disabled_and_starts_nothing(tmp_path):
    svc = DiscoveryService(_cfg(tmp_path))
    svc.start()
    assert not svc.alive
    assert svc.status().state == "disabled"
    assert svc.stop(1.0) is True
    on_disk = json.loads((tmp_path / "data" / "mdns-status.json").read_text())
    assert on_disk["enabled"] is False and on_disk["state"] == "disabled"


def test_enabled_without_interfaces_is_refused_with_the_key_named(tmp_path):
    with pytest.raises(ConfigError, match=r"mdns.interfaces is empty.*\[\"\*\"\]"):
        DiscoveryService(_cfg(tmp_path, enabled="true"))


@pytest.mark.parametrize("interfaces, message", [
    ("*,eth0", "cannot be combined"),
    ("averyveryverylongname0", "not an interface name"),
])
def test_bad_interface_lists_are_refused(tmp_path, interfaces, message):
    with pytest.raises(ConfigError, match=message):
        DiscoveryService(_cfg(tmp_path, enabled="true", interfaces=interfaces))


def test_bad_values_are_refused_before_anything_starts(tmp_path):
    with pytest.raises(ConfigError, match="mdns.hostname"):
        DiscoveryService(_cfg(tmp_path, enabled="true", interfaces="eth0", hostname="---"))
    with pytest.raises(ConfigError, match="TXT entry 'room'"):
        DiscoveryService(_cfg(tmp_path, enabled="true", interfaces="eth0", room="x" * 300))
    with pytest.raises(ConfigError, match="poll_interval_s"):
        DiscoveryService(_cfg(tmp_path, enabled="true", interfaces="eth0", poll_interval_s="0"))
    with pytest.raises(ConfigError, match="recheck_s"):
        DiscoveryService(_cfg(tmp_path, enabled="true", interfaces="eth0", recheck_s="-1"))


def test_ip_version_is_one_of_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="mdns.ip_version must be one of v4, v6, all"):
        _cfg(tmp_path, ip_version="v5")


def test_status_before_start_names_the_requested_name_and_txt(tmp_path):
    svc = DiscoveryService(_cfg(tmp_path, enabled="true", interfaces="eth0", hostname="Room 12", room="R12"))
    part = svc.status()
    assert part.name == "mdns" and part.state == "disabled"  # not started = stopped
    info = part.to_json()
    assert info["requested_name"] == "room-12" and info["label"] is None and info["hostname"] is None
    assert info["txt"]["id"] == "box-a" and info["txt"]["room"] == "R12" and info["txt"]["api"] == "/v2"
    assert info["phase"] == "stopped" and info["state"] == "disabled"


def test_box_id_prefers_the_configured_device(tmp_path):
    assert box_id(_cfg(tmp_path)) == "box-a"
    cfg = load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path)})
    assert box_id(cfg)  # machine id or host name, never empty


def test_check_interfaces_and_snapshot_of_loopback_only():
    assert netif.check_interfaces(["eth0", "wlan0"]) == ["eth0", "wlan0"]
    assert netif.check_interfaces(["*"]) == ["*"]
    snap = netif.snapshot(["lo"])
    assert not snap and snap.addresses == []  # loopback never counts


def test_has_link_reads_operstate(tmp_path):
    for name, state in (("eth0", "up"), ("eth1", "down"), ("wlan0", "dormant"), ("br0", "unknown")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "operstate").write_text(state + "\n")
    assert netif.has_link("eth0", str(tmp_path)) is True
    assert netif.has_link("eth1", str(tmp_path)) is False
    assert netif.has_link("wlan0", str(tmp_path)) is False  # associated but not yet authenticated
    assert netif.has_link("br0", str(tmp_path)) is True
    assert netif.has_link("missing", str(tmp_path)) is True


def test_a_web_service_on_loopback_is_not_announced(tmp_path):
    with pytest.raises(ConfigError, match=r"web.host = 127.0.0.1: students could not open"):
        DiscoveryService(_cfg(tmp_path, web_host="127.0.0.1", enabled="true", interfaces="eth0"))


@pytest.mark.parametrize("web_host, url", [
    ("0.0.0.0", "http://127.0.0.1:8080/api/v1/health"),
    ("::", "http://[::1]:8080/api/v1/health"),
    ("::1", "http://[::1]:8080/api/v1/health"),
    ("localhost", "http://127.0.0.1:8080/api/v1/health"),
    ("192.168.4.2", "http://192.168.4.2:8080/api/v1/health"),
    ("fd00::2", "http://[fd00::2]:8080/api/v1/health"),
])
def test_health_url_follows_where_the_web_service_listens(tmp_path, web_host, url, monkeypatch):
    """The same address the web server's own readiness probe uses (appliance.loopback)."""
    monkeypatch.setattr(loopback, "has_ipv6_loopback", lambda: True)
    assert health_url(_cfg(tmp_path, web_host=web_host)) == url
    assert health_url(_cfg(tmp_path, web_host=web_host, health_url="http://x/h")) == "http://x/h"


def test_make_part_is_none_when_disabled_and_provides_the_part_otherwise(tmp_path):
    off = Services.open(_cfg(tmp_path / "off"))
    on = Services.open(_cfg(tmp_path / "on", enabled="true", interfaces="eth0"))
    try:
        assert make_part(off) is None
        part = make_part(on)
        assert isinstance(part, DiscoveryService) and on.get("mdns") is part
        assert part.name == "mdns" and part.essential is False
    finally:
        off.close()
        on.close()


class _Recorder:
    def __init__(self):
        self.calls = []

    def ready(self, status=""):
        self.calls.append(("ready", status))

    def watchdog(self):
        self.calls.append(("watchdog", ""))

    def status(self, text):
        self.calls.append(("status", text))


def test_no_address_yet_is_a_running_state_for_systemd_not_a_failed_start(tmp_path):
    """A box whose cable is out must not fail its start and restart in a loop: READY once, with the
    reason, while the part itself still says it is not announcing."""
    rec = _Recorder()
    svc = DiscoveryService(_cfg(tmp_path, enabled="true", interfaces="ceabsent0"), notifier=rec)
    svc._step()
    svc._step()
    readies = [c for c in rec.calls if c[0] == "ready"]
    assert readies == [("ready", "waiting for a network address on ceabsent0")]
    assert not svc.ready.is_set()
    assert svc.status().state != "ok"
