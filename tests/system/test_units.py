"""The unit files: `systemd-analyze verify` is silent, sandboxing scores <= 2.0, the contract holds."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from systemd_units import (
    ALL_UNITS,
    EXE,
    JETSON_UNITS,
    SERVICES,
    UNIT_DIR,
    analyze,
    directives,
    exposure,
    make_root,
)

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def test_verify_prints_nothing(tmp_path):
    root = make_root(tmp_path)
    out = analyze("verify", f"--root={root}", *ALL_UNITS)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_verify_prints_nothing_with_jetson_dropin(tmp_path):
    root = make_root(tmp_path, jetson=True)
    out = analyze("verify", f"--root={root}", *JETSON_UNITS)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_verify_would_catch_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt directive and a missing binary both make noise."""
    broken = (UNIT_DIR / "classroom-edge-sync.service").read_text().replace("WatchdogSec=", "WatchDogSec=")
    root = make_root(tmp_path, units={"classroom-edge-sync.service": broken})
    out = analyze("verify", f"--root={root}", "classroom-edge-sync.service")
    assert "WatchDogSec" in out.stderr
    (root / EXE.lstrip("/")).unlink()
    out = analyze("verify", f"--root={root}", "classroom-edge-web.service")
    assert out.returncode != 0 and "not executable" in out.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_security_exposure_at_most_2(tmp_path, service):
    assert exposure(make_root(tmp_path), f"{service}.service") <= 2.0


@pytest.mark.parametrize("unit", JETSON_UNITS)
def test_security_exposure_at_most_2_on_jetson(tmp_path, unit):
    assert exposure(make_root(tmp_path, jetson=True), unit) <= 2.0


def test_exposure_check_can_fail(tmp_path):
    """An unhardened service scores far above 2.0, so the threshold really discriminates."""
    plain = "[Service]\nExecStart=/opt/classroom-edge/venv/bin/classroom-edge web\n"
    root = make_root(tmp_path, units={"plain.service": plain})
    assert exposure(root, "plain.service") > 5.0


@pytest.mark.parametrize("service,command", [(s, s.rsplit("-", 1)[1]) for s in SERVICES])
def test_each_service_runs_its_command_as_the_service_user(service, command):
    d = directives(UNIT_DIR / f"{service}.service")
    assert d["Service.ExecStart"] == [f"{EXE} {command} --config /etc/classroom-edge/appliance.toml"]
    assert d["Service.User"] == ["classroom-edge"]
    assert d["Service.StateDirectory"] == ["classroom-edge"]
    assert d["Service.CacheDirectory"] == ["classroom-edge"]
    assert d["Unit.PartOf"] == ["classroom-edge.target"]


@pytest.mark.parametrize("service", ["classroom-edge-web", "classroom-edge-sync", "classroom-edge-mdns"])
def test_long_running_services_are_notify_with_watchdog(service):
    d = directives(UNIT_DIR / f"{service}.service")
    assert d["Service.Type"] == ["notify"]
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.WatchdogSec"] and d["Service.WatchdogSec"][0] != "0"
    assert d["Install.WantedBy"] == ["classroom-edge.target"]


def test_address_families():
    families = {s: directives(UNIT_DIR / f"{s}.service")["Service.RestrictAddressFamilies"][0].split()
                for s in SERVICES}
    assert sorted(families["classroom-edge-web"]) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert "AF_NETLINK" in families["classroom-edge-mdns"]
    assert "AF_NETLINK" not in families["classroom-edge-sync"]
    assert families["classroom-edge-train"] == ["AF_UNIX"]


def test_train_is_a_oneshot_with_a_nightly_timer():
    d = directives(UNIT_DIR / "classroom-edge-train.service")
    assert d["Service.Type"] == ["oneshot"] and d["Service.PrivateNetwork"] == ["yes"]
    assert "Install.WantedBy" not in d  # started by the timer, not at boot
    t = directives(UNIT_DIR / "classroom-edge-train.timer")
    assert t["Timer.OnCalendar"] == ["*-*-* 02:30:00"]
    assert t["Install.WantedBy"] == ["classroom-edge.target"]
    out = analyze("calendar", "--iterations=2", t["Timer.OnCalendar"][0])
    assert out.returncode == 0 and out.stdout.count("02:30:00") >= 2


def test_target_is_wanted_at_boot():
    assert directives(UNIT_DIR / "classroom-edge.target")["Install.WantedBy"] == ["multi-user.target"]


def test_sysusers_creates_the_service_user(tmp_path):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers not installed")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", tmp_path / "etc" / name)
    out = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", "-"], check=False, capture_output=True,
                         input=(UNIT_DIR / "classroom-edge.sysusers").read_text(), text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    entry = [line for line in (tmp_path / "etc/passwd").read_text().splitlines() if line.startswith("classroom-edge:")]
    assert entry and entry[0].endswith(":/var/lib/classroom-edge:/usr/sbin/nologin")
