"""The backend registry: the ``backend`` field of a model (or ``inference.backend``) picks a module.

Explicit and lazy: the dict names every backend, and a module is imported only when a model asks for
it, so a board without TensorRT or pycuda never imports them (importing them there would fail, or
worse, initialise a GPU driver that is not there).
"""
from __future__ import annotations

import importlib
import logging

from appliance.errors import Unavailable

log = logging.getLogger(__name__)

# type -> (module, class name)
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("appliance.inference.backends.onnxruntime", "OnnxRuntimeBackend"),
    "tensorrt": ("appliance.inference.backends.tensorrt", "TensorRTBackend"),
}

# The file each backend loads from a version directory when model.json names none.
DEFAULT_FILES = {"onnxruntime": "model.onnx", "tensorrt": "model.onnx"}


def backend_class(type_name: str):
    """The backend class for ``type_name``; Unavailable (with the reason) when it cannot run here."""
    try:
        module_name, class_name = BACKENDS[type_name]
    except KeyError:
        raise Unavailable(f"unknown inference backend {type_name!r} (known: {', '.join(sorted(BACKENDS))})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unavailable(f"the {type_name} backend cannot be used on this box: {exc}") from None
    cls = getattr(module, class_name)
    reason = cls.check_environment()
    if reason:
        raise Unavailable(f"the {type_name} backend cannot be used on this box: {reason}")
    return cls
