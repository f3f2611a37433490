"""Tiny ONNX models made with onnx.helper, written into a real repository on disk.

``affine`` adds its version number to every input value, so a test can tell which version answered a
request; ``seqsum`` sums token ids over a padded sequence; ``echo`` returns its strings; ``lookup``
gathers rows of a table (an out-of-range id is a bad *value*, the model's own error).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def affine_model(offset: float, width: int = 4) -> bytes:
    """y = x * 2 + offset, [N, width] -> [N, width]."""
    return _model(
        [helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("Add", ["x2", "off"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        [numpy_helper.from_array(np.float32(2.0), "two"), numpy_helper.from_array(np.float32(offset), "off")],
    )


def dense_model(width: int = 64, seed: int = 0) -> bytes:
    """y = x @ W, [N, width] -> [N, width]: float weights in a MatMul, what int8 quantization shrinks."""
    weights = np.random.default_rng(seed).standard_normal((width, width)).astype(np.float32)
    return _model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        [numpy_helper.from_array(weights, "W")],
    )


def seqsum_model() -> bytes:
    """total[N] = sum over L of input_ids * attention_mask."""
    return _model(
        [helper.make_node("Mul", ["input_ids", "attention_mask"], ["m"]),
         helper.make_node("ReduceSum", ["m", "axes"], ["total"], keepdims=0)],
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "L"])],
        [helper.make_tensor_value_info("total", TensorProto.INT64, ["N"])],
        [numpy_helper.from_array(np.int64([1]), "axes")],
    )


def echo_model() -> bytes:
    return _model(
        [helper.make_node("Identity", ["text"], ["echo"])],
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["N"])],
    )


def lookup_model(rows: int = 5) -> bytes:
    table = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    return _model(
        [helper.make_node("Gather", ["table", "ids"], ["vec"], axis=0)],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("vec", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(table, "table")],
    )


def write_version(repo: Path, name: str, version: str, model: bytes, **meta) -> Path:
    d = Path(repo) / name / version
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.onnx").write_bytes(model)
    manifest = {"name": name, "version": version, "sha256": hashlib.sha256(model).hexdigest(),
                "provenance": {"built_by": "tests"}, **meta}
    (d / "model.json").write_text(json.dumps(manifest))
    return d


class Settings:
    """The [inference] defaults with overrides, without going through the environment."""

    def __new__(cls, **overrides):
        from appliance.config import load_config

        base = load_config(env={}).inference
        import dataclasses

        return dataclasses.replace(base, **{"watch_interval_s": 0.0, "models": [], **overrides})
