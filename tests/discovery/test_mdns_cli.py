"""``classroom-edge mdns``: refuses to run when disabled, ``--status`` reads the status file."""
from __future__ import annotations

import json

from appliance.cli.main import main
from appliance.discovery.status import StatusWriter


def _env(monkeypatch, tmp_path, **mdns):
    monkeypatch.setenv("CLASSROOM_EDGE_STORAGE__DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLASSROOM_EDGE_WEB__HOST", "0.0.0.0")
    for k, v in mdns.items():
        monkeypatch.setenv(f"CLASSROOM_EDGE_MDNS__{k.upper()}", v)


def test_mdns_command_refuses_when_disabled(monkeypatch, tmp_path, capsys):
    _env(monkeypatch, tmp_path)
    assert main(["mdns"]) == 1
    assert "mdns.enabled is false" in capsys.readouterr().err


def test_mdns_command_reports_a_config_error(monkeypatch, tmp_path, capsys):
    _env(monkeypatch, tmp_path, enabled="true")
    assert main(["mdns"]) == 1
    assert "mdns.interfaces is empty" in capsys.readouterr().err


def test_status_flag_prints_the_last_report(monkeypatch, tmp_path, capsys):
    _env(monkeypatch, tmp_path, enabled="true", interfaces="eth0")
    assert main(["mdns", "--status"]) == 1
    assert json.loads(capsys.readouterr().out)["state"] == "not-running"
    StatusWriter(tmp_path / "mdns-status.json").write({"state": "advertising", "hostname": "room12-2.local"})
    assert main(["mdns", "--status"]) == 0
    assert json.loads(capsys.readouterr().out)["hostname"] == "room12-2.local"
