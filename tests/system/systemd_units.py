"""Helpers for the unit-file tests: a scratch root for systemd-analyze and a tiny unit parser."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
SERVICES = ("classroom-edge-web", "classroom-edge-sync", "classroom-edge-mdns", "classroom-edge-train")
ALL_UNITS = tuple(f"{s}.service" for s in SERVICES) + ("classroom-edge-train.timer", "classroom-edge.target")
JETSON_UNITS = ("classroom-edge-web.service", "classroom-edge-train.service")
EXE = "/opt/classroom-edge/venv/bin/classroom-edge"


def make_root(tmp: Path, jetson: bool = False, units: dict[str, str] | None = None) -> Path:
    """A root directory holding the distribution's units plus ours, as the box would.

    `systemd-analyze verify` checks that ExecStart= is executable, so the root gets a placeholder at
    the venv path; the real binary is checked inside the booted box by tests/e2e/test_nspawn_boot.py.
    """
    root = tmp / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for name in ALL_UNITS:
        shutil.copy(UNIT_DIR / name, etc / name)
    for name, text in (units or {}).items():
        (etc / name).write_text(text)
    if jetson:
        for name in JETSON_UNITS:
            (etc / f"{name}.d").mkdir()
            shutil.copy(UNIT_DIR / "jetson/50-jetson.conf", etc / f"{name}.d/50-jetson.conf")
    exe = root / EXE.lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return root


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], check=False, capture_output=True, text=True, timeout=120)


def exposure(root: Path, unit: str) -> float:
    out = analyze("security", "--offline=yes", f"--root={root}", "--no-pager", unit)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, f"no score for {unit}: {out.stdout[-500:]} {out.stderr}"
    return float(m.group(1))


def directives(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> every value assigned (units may repeat keys), comments dropped."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out
