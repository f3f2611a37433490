"""The status file the web service reads: written on change, read back safely, stale when abandoned."""
from __future__ import annotations

import json
import os
import time

from appliance.config import load_config
from appliance.discovery import status as st


def _cfg(tmp_path, **mdns):
    env = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path / "data"), "CLASSROOM_EDGE_MDNS__ENABLED": "true"}
    env.update({f"CLASSROOM_EDGE_MDNS__{k.upper()}": str(v) for k, v in mdns.items()})
    return load_config(env=env)


def test_default_path_is_in_the_data_dir_and_can_be_set(tmp_path):
    assert st.status_path(_cfg(tmp_path)) == tmp_path / "data" / "mdns-status.json"
    assert st.status_path(_cfg(tmp_path, status_file=tmp_path / "x.json")) == tmp_path / "x.json"


def test_writer_writes_on_change_only_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "d" / "s.json"
    w = st.StatusWriter(path)
    w.write({"state": "probing"})
    first = json.loads(path.read_text())
    assert first["state"] == "probing" and first["pid"] == os.getpid()
    w.write({"state": "probing"})  # unchanged: no rewrite
    assert json.loads(path.read_text())["updated_at"] == first["updated_at"]
    time.sleep(0.01)
    w.write({"state": "advertising"})
    assert json.loads(path.read_text())["state"] == "advertising"
    assert [p.name for p in path.parent.iterdir()] == ["s.json"]


def test_writer_rewrites_unchanged_status_when_the_heartbeat_is_due(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    w = st.StatusWriter(path)
    w.write({"state": "advertising"})
    before = json.loads(path.read_text())["updated_at"]
    monkeypatch.setattr(st, "HEARTBEAT_S", 0.0)
    time.sleep(0.01)
    w.write({"state": "advertising"})
    assert json.loads(path.read_text())["updated_at"] > before


def test_writer_survives_an_unwritable_path(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    st.StatusWriter(blocker / "s.json").write({"state": "x"})
    assert "cannot write mDNS status" in caplog.text


def test_read_status_reports_disabled_missing_unreadable_and_stale(tmp_path):
    disabled = load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path / "data")})
    assert st.read_status(disabled) == {"enabled": False, "state": "disabled"}

    cfg = _cfg(tmp_path)
    assert st.read_status(cfg)["state"] == "not-running"

    path = st.status_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    assert st.read_status(cfg)["state"] == "unknown"

    st.StatusWriter(path).write({"state": "advertising", "hostname": "room12.local"})
    fresh = st.read_status(cfg)
    assert fresh["state"] == "advertising" and fresh["hostname"] == "room12.local"
    later = st.read_status(cfg, now=time.time() + st.STALE_AFTER_S + 5)
    assert later["state"] == "stale" and "last state: advertising" in later["detail"]


def test_part_status_for_the_web_process_maps_states_and_keeps_the_part_name(tmp_path):
    cfg = _cfg(tmp_path)
    assert st.part_status(cfg).state == "failed"  # enabled but never reported: not running
    st.StatusWriter(st.status_path(cfg)).write(
        {"state": "advertising", "detail": "room12-2.local at 10.0.0.5", "label": "room12-2",
         "hostname": "room12-2.local", "peers": [{"name": "room12"}]})
    part = st.part_status(cfg)
    assert part.state == "ok" and part.detail == "room12-2.local at 10.0.0.5"
    body = part.to_json()
    assert body["name"] == "mdns" and body["phase"] == "advertising" and body["hostname"] == "room12-2.local"
    assert body["peers"] == [{"name": "room12"}]
    for phase, state in (("waiting-for-web", "starting"), ("waiting-for-network", "degraded"),
                         ("failed", "failed"), ("something-new", "degraded")):
        assert st.to_part_status({"state": phase, "detail": ""}).state == state
