"""The playbook's GPU build of ONNX Runtime (roles/app/tasks/onnxruntime_gpu.yml), applied for real with
ansible-playbook and pip to a virtualenv, twice and after an upgrade that brought the CPU build back.

The real wheels weigh hundreds of MB (the GPU one) and need CUDA, so small stand-ins take their names
and their one relevant trait: both install an ``onnxruntime`` module, and only the GPU one lists
CUDAExecutionProvider. The GPU one has a ``cuda`` extra, as the real one does, whose package must come
along."""
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

STAND_INS = {
    # distribution -> (module files, install_requires, extras)
    "onnxruntime": ({"onnxruntime/__init__.py": "def get_available_providers():\n"
                                                "    return ['CPUExecutionProvider']\n"}, [], {}),
    "onnxruntime-gpu": ({"onnxruntime/__init__.py": "def get_available_providers():\n"
                                                    "    return ['CUDAExecutionProvider', 'CPUExecutionProvider']\n"},
                        [], {"cuda": ["nvidia-stand-in-runtime"]}),
    "nvidia-stand-in-runtime": ({"nvidia_stand_in/__init__.py": ""}, [], {}),
}


def _build_wheels(root: Path) -> Path:
    house = root / "wheelhouse"
    for dist, (files, requires, extras) in STAND_INS.items():
        src = root / "src" / dist
        for rel, text in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(text)
        packages = sorted({rel.split("/")[0] for rel in files})
        (src / "setup.py").write_text(textwrap.dedent(f"""
            from setuptools import setup
            setup(name={dist!r}, version="1.20.0", packages={packages!r},
                  install_requires={requires!r}, extras_require={extras!r})
        """))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(house), str(src)], check=True, capture_output=True, timeout=120)
    return house


def _imports_cuda(venv: Path) -> bool:
    out = subprocess.run([str(venv / "bin/python"), "-c", "import onnxruntime as o; print(o.get_available_providers())"],
                         capture_output=True, text=True, check=True).stdout
    return "CUDAExecutionProvider" in out


def _installed(venv: Path) -> set[str]:
    out = subprocess.run([str(venv / "bin/python"), "-m", "pip", "list", "--format=json"], capture_output=True,
                         text=True, check=True).stdout
    return {p["name"].lower() for p in json.loads(out)}


def _changed(out: subprocess.CompletedProcess) -> int:
    assert out.returncode == 0, out.stdout + out.stderr
    return int(re.search(r"changed=(\d+)", out.stdout).group(1))


@pytest.fixture
def box(tmp_path):
    """A venv with the CPU build, as the appliance's install leaves it, and a play that runs the role's
    task file against it from a wheelhouse (no index reachable)."""
    house = _build_wheels(tmp_path)
    app_home = tmp_path / "opt"
    (app_home / "wheelhouse").mkdir(parents=True)
    for wheel in house.iterdir():
        (app_home / "wheelhouse" / wheel.name).write_bytes(wheel.read_bytes())
    venv = app_home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--no-index", "--find-links", str(house), "onnxruntime"],
                   check=True, timeout=120)
    play = [{
        "name": "GPU build of ONNX Runtime",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {**yaml.safe_load((PROV / "roles/app/defaults/main.yml").read_text()),
                 "app_home": str(app_home), "app_venv": str(venv), "ce_wheelhouse_dir": str(house),
                 "ce_onnxruntime_gpu_package": "onnxruntime-gpu[cuda]",
                 "ansible_python_interpreter": sys.executable},
        "tasks": [{"name": "The role's tasks", "ansible.builtin.include_tasks": str(PROV / "roles/app/tasks/onnxruntime_gpu.yml")}],
        "handlers": [{"name": "Restart Classroom Edge", "ansible.builtin.debug": {"msg": "restart"}}],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))

    def apply() -> int:
        return _changed(ansible("ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml"), cwd=tmp_path))

    return venv, house, apply


def test_gpu_build_installed_kept_and_put_back(box):
    venv, house, apply = box
    assert not _imports_cuda(venv)

    assert apply() > 0
    assert _imports_cuda(venv)
    # Both stay registered, so pip finds the appliance's onnxruntime requirement met; the extra's package came too.
    assert {"onnxruntime", "onnxruntime-gpu", "nvidia-stand-in-runtime"} <= _installed(venv)
    assert apply() == 0

    # An upgrade that reinstalled the CPU build: its files are back over the GPU build's.
    subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--no-deps", "--force-reinstall", "--no-index",
                    "--find-links", str(house), "onnxruntime"], check=True, timeout=120)
    assert not _imports_cuda(venv)
    assert apply() > 0
    assert _imports_cuda(venv)
    assert apply() == 0
