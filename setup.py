"""Packaging for Classroom Edge (distribution ``classroom-edge``, import package ``appliance``)."""
from setuptools import find_packages, setup

CORE = [
    "flask>=3.0",
    "flask-babel>=4.0",
    "gunicorn>=22",
    "paho-mqtt>=2.1",
    "zeroconf>=0.150",
    "onnxruntime>=1.18",
    "onnx>=1.16",
    "numpy>=1.26",
    "scipy>=1.11",
    "tokenizers>=0.19",
    "safetensors>=0.4",
    "cryptography>=42",
    "argon2-cffi>=23.1",
    "zstandard>=0.22",
    "fsrs>=5.0",
    "jsonschema>=4.21",
    "prometheus-client>=0.20",
    "waitress>=3.0",
    "snowballstemmer>=2.2",
]

EXTRAS = {
    # onnxruntime-gpu on a PC with an NVIDIA card, installed next to onnxruntime (both own the onnxruntime
    # module; the files are the last one installed): provisioning/roles/app/tasks/onnxruntime_build.yml.
    "gpu": ["onnxruntime-gpu>=1.18"],
    # On a Jetson, TensorRT's Python binding comes from JetPack (apt python3-libnvinfer), matched to its
    # CUDA and GPU driver, so it is not listed: PyPI's bare ``tensorrt`` installs a different TensorRT
    # built for another CUDA (or fails on aarch64). The venv must see the system binding
    # (--system-site-packages, same Python); see firmware-notes/jetson-orin-nano.md. pycuda builds
    # against the installed CUDA.
    "jetson": ["pycuda"],
    "hub": ["psycopg[binary]>=3.1"],
    "systemd": ["systemd-python>=235"],
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "requests>=2.31",
        "playwright>=1.45",
        "pyBKT>=1.4",
        "ansible-core>=2.16",
        "ansible-lint>=24",
        "ruff==0.17.6",
        "matplotlib>=3.8",
        "openapi-spec-validator>=0.7",
        "psycopg[binary]>=3.1",
    ],
    # The reference MiniLM for tests/inference/test_builders.py; brings torch, so not in dev
    # (docs/inference.md says why). Without it the test uses its own numpy forward pass.
    "reference": ["sentence-transformers>=3.0"],
}

setup(
    name="classroom-edge",
    version="0.1.0",
    description="An offline classroom server: LMS, on-device models, store-and-forward sync.",
    packages=find_packages(include=["appliance", "appliance.*"]),
    include_package_data=True,
    package_data={"appliance": ["web/templates/**/*", "web/static/**/*", "web/translations/**/*",
                                "content/schema/*.json", "**/*.sql"]},
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["classroom-edge=appliance.cli.main:main"]},
)
