"""The playbook's choice of ONNX Runtime build (roles/app/tasks/onnxruntime_build.yml), applied for real
with ansible-playbook and pip to a virtualenv: the GPU build installed, kept through runs that change
nothing, put back after upgrades that brought the CPU build's files back (at the newer version when the
upgrade asked for one), and the CPU build restored when the variable is emptied.

The real wheels weigh hundreds of MB (the GPU one) and need CUDA, so small stand-ins take their names,
versions and their one relevant trait: both install an ``onnxruntime`` module, and only the GPU one
lists CUDAExecutionProvider. The GPU one has a ``cuda`` extra, as the real one does, whose package must
come along."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.provisioning.test_playbook import PROV, ansible

pytestmark = pytest.mark.slow

CPU_PROVIDERS = "def get_available_providers():\n    return ['CPUExecutionProvider']\n"
GPU_PROVIDERS = "def get_available_providers():\n    return ['CUDAExecutionProvider', 'CPUExecutionProvider']\n"
STAND_INS = [
    # distribution, version, module files, extras
    ("onnxruntime", "1.20.0", {"onnxruntime/__init__.py": CPU_PROVIDERS}, {}),
    ("onnxruntime", "1.22.0", {"onnxruntime/__init__.py": CPU_PROVIDERS}, {}),
    ("onnxruntime-gpu", "1.21.0", {"onnxruntime/__init__.py": GPU_PROVIDERS}, {"cuda": ["nvidia-stand-in-runtime"]}),
    ("onnxruntime-gpu", "1.22.0", {"onnxruntime/__init__.py": GPU_PROVIDERS}, {"cuda": ["nvidia-stand-in-runtime"]}),
    ("nvidia-stand-in-runtime", "1.0.0", {"nvidia_stand_in/__init__.py": ""}, {}),
]


def _build_wheels(root: Path) -> Path:
    house = root / "wheelhouse"
    for dist, version, files, extras in STAND_INS:
        src = root / "src" / f"{dist}-{version}"
        for rel, text in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(text)
        packages = sorted({rel.split("/")[0] for rel in files})
        (src / "setup.py").write_text(textwrap.dedent(f"""
            from setuptools import setup
            setup(name={dist!r}, version={version!r}, packages={packages!r}, extras_require={extras!r})
        """))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(house), str(src)], check=True, capture_output=True, timeout=120)
    return house


def _imports_cuda(venv: Path) -> bool:
    out = subprocess.run([str(venv / "bin/python"), "-c", "import onnxruntime as o; print(o.get_available_providers())"],
                         capture_output=True, text=True, check=True).stdout
    return "CUDAExecutionProvider" in out


def _installed(venv: Path) -> dict[str, str]:
    out = subprocess.run([str(venv / "bin/python"), "-m", "pip", "list", "--format=json"], capture_output=True,
                         text=True, check=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


@pytest.fixture
def box(tmp_path):
    """A venv with the CPU build 1.20 and the GPU build 1.21 installed after it (a box set up earlier),
    and a play that runs the role's task file against it from a wheelhouse (no index reachable)."""
    house = _build_wheels(tmp_path)
    app_home = tmp_path / "opt"
    (app_home / "wheelhouse").mkdir(parents=True)
    for wheel in house.iterdir():
        (app_home / "wheelhouse" / wheel.name).write_bytes(wheel.read_bytes())
    venv = app_home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    def pip(*args: str) -> None:
        subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--no-index", "--find-links", str(house), *args],
                       check=True, timeout=120)

    pip("onnxruntime==1.20.0")

    def apply(gpu_package: str) -> int:
        play = [{
            "name": "ONNX Runtime build",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {**yaml.safe_load((PROV / "roles/app/defaults/main.yml").read_text()),
                     "app_home": str(app_home), "app_venv": str(venv), "ce_wheelhouse_dir": str(house),
                     "ce_onnxruntime_gpu_package": gpu_package, "ansible_python_interpreter": sys.executable},
            "tasks": [{"name": "The role's tasks",
                       "ansible.builtin.include_tasks": str(PROV / "roles/app/tasks/onnxruntime_build.yml")}],
            "handlers": [{"name": "Restart Classroom Edge", "ansible.builtin.debug": {"msg": "restart"}}],
        }]
        (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
        out = ansible("ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml"), cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        return int(re.search(r"changed=(\d+)", out.stdout).group(1))

    return venv, pip, apply


def test_gpu_build_installed_kept_and_put_back(box):
    venv, pip, apply = box
    assert apply("") == 0 and not _imports_cuda(venv)  # a CPU box: nothing to do

    assert apply("onnxruntime-gpu[cuda]") > 0
    assert _imports_cuda(venv)
    # Both stay registered, so pip finds the appliance's onnxruntime requirement met; the extra's package came too.
    assert _installed(venv).keys() >= {"onnxruntime", "onnxruntime-gpu", "nvidia-stand-in-runtime"}
    assert apply("onnxruntime-gpu[cuda]") == 0

    # An upgrade that reinstalled the CPU build at the same version: its files are back over the GPU build's.
    pip("--no-deps", "--force-reinstall", "onnxruntime==1.20.0")
    assert not _imports_cuda(venv)
    assert apply("onnxruntime-gpu[cuda]") > 0 and _imports_cuda(venv)
    assert apply("onnxruntime-gpu[cuda]") == 0


def test_an_upgrade_to_a_newer_cpu_build_brings_the_gpu_build_to_that_version(box):
    venv, pip, apply = box
    pip("--no-deps", "onnxruntime-gpu==1.21.0")  # set up by an earlier run, when 1.21 was the newest
    assert _imports_cuda(venv)
    pip("--upgrade", "--no-deps", "onnxruntime==1.22.0")  # a new appliance wheel asked for 1.22
    assert not _imports_cuda(venv)

    assert apply("onnxruntime-gpu[cuda]>=1.18") > 0  # a version written in the variable is the role's to choose
    installed = _installed(venv)
    assert _imports_cuda(venv) and installed["onnxruntime-gpu"] == installed["onnxruntime"] == "1.22.0"
    assert apply("onnxruntime-gpu[cuda]") == 0

    # The variable emptied: back to the CPU build, whose files the GPU build's removal took.
    assert apply("") > 0
    assert not _imports_cuda(venv) and "onnxruntime-gpu" not in _installed(venv)
    assert _installed(venv)["onnxruntime"] == "1.22.0"
    assert apply("") == 0
