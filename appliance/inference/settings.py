"""The ``[inference]`` section: model repository and execution backends."""
from __future__ import annotations

from appliance.config import section, setting


@section("inference")
class InferenceSettings:
    """On-device inference (ONNX Runtime or TensorRT)."""

    repository: str = setting("", "Model repository directory; empty means <data_dir>/models.")
    backend: str = setting("onnxruntime", "Backend used for models that do not name one.", choices=("onnxruntime", "tensorrt"))
    providers: list[str] = setting(["CPUExecutionProvider"], "ONNX Runtime execution providers, in order of preference.")
    trusted_keys: list[str] = setting([], "Ed25519 public keys (base64) allowed to sign models; when set, unsigned models are refused.")
