"""TensorRT optimisation profiles (min/opt/max shape per input), shared by the ONNX Runtime
TensorRT provider and the native engine builder so both build the same engine for a model.

TensorRT compiles for a range of shapes; a request outside the range fails, and a range far wider than
needed wastes build time and memory on a Jetson. So the batch axis spans 1..max_batch_size (the
batcher never sends more), other variable axes span 1..``trt_max_dim``, and a model may pin exact
ranges in ``model.json`` under ``trt_profile``.
"""
from __future__ import annotations

from appliance.inference.tensors import TensorSpec


def shape_profile(inputs: list[TensorSpec], max_batch_size: int, settings, meta: dict) -> dict[str, dict[str, tuple]]:
    """``{"min"|"opt"|"max": {input: shape}}`` for every input with a variable dimension."""
    explicit = meta.get("trt_profile") or {}
    out: dict[str, dict[str, tuple]] = {"min": {}, "opt": {}, "max": {}}
    for spec in inputs:
        if all(d >= 0 for d in spec.shape) and spec.name not in explicit.get("max", {}):
            continue  # static input: TensorRT needs no profile for it
        for kind in ("min", "opt", "max"):
            pinned = explicit.get(kind, {}).get(spec.name)
            if pinned is not None:
                out[kind][spec.name] = tuple(int(d) for d in pinned)
                continue
            dims = []
            for axis, d in enumerate(spec.shape):
                if d >= 0:
                    dims.append(d)
                elif axis == 0 and max_batch_size > 0:
                    dims.append({"min": 1, "opt": max_batch_size, "max": max_batch_size}[kind])
                else:
                    dims.append({"min": 1, "opt": settings.trt_opt_dim, "max": settings.trt_max_dim}[kind])
            out[kind][spec.name] = tuple(dims)
    return out


def ort_profile_options(profile: dict[str, dict[str, tuple]]) -> dict[str, str]:
    """The profile as the ONNX Runtime TensorRT provider options ``trt_profile_*_shapes``."""
    if not profile["min"]:
        return {}
    def fmt(shapes):
        return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())
    return {f"trt_profile_{kind}_shapes": fmt(profile[kind]) for kind in ("min", "opt", "max")}
