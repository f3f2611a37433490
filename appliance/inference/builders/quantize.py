"""int8 quantization of the sentence encoder.

Three steps, because the model's accuracy, size and speed live in different places:
- the MatMuls fed by a LayerNorm are rescaled first (SmoothQuant, see `smoothing`) so that their
  outlier activation channels do not eat the 8 bits;
- every MatMul with constant weights goes through onnxruntime's `quantize_dynamic` (per-channel,
  signed int8 weights; activations are quantized on the fly), which is where the time goes. On an x86
  CPU with AVX2 but without VNNI, ONNX Runtime multiplies uint8 activations by int8 weights with
  VPMADDUBSW, which adds each pair of products in 16 bits and saturates; emulated on the real
  activations, 32 of the 36 quantized MatMuls had saturating pairs, one output in 14 of a layer off by
  up to 0.65 of its spread. There the weights use 7 bits (`reduce_range`), as ONNX Runtime's
  documentation advises; ARM and x86 with VNNI keep 8 (`reduce_range_needed`). Each box builds its
  own model at install, so the choice is its own CPU's;
- the word-embedding table (30522 x 384, over half the file) is only ever gathered from, and
  `quantize_dynamic` would give it a single scale for the whole table. We store it as int8 with one
  scale per row (symmetric) and dequantize only the gathered rows: Gather(int8) and Gather(scale),
  then Cast and Mul. Per-row scales keep rare tokens with small vectors precise.
"""
from __future__ import annotations

import logging
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)


def quantize_embedding_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: table ~= q * scale[:, None]."""
    table = np.asarray(table, dtype=np.float32)
    amax = np.abs(table).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _quantize_gathers(model: onnx.ModelProto, min_elements: int = 1 << 20) -> int:
    """Replace Gather over a large float initializer by an int8 gather + per-row dequantize."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes, replaced = [], 0
    for node in graph.node:
        data = inits.get(node.input[0]) if node.op_type == "Gather" else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if data is None or axis != 0 or data.data_type != TensorProto.FLOAT or len(data.dims) != 2 \
                or int(np.prod(data.dims)) < min_elements:
            new_nodes.append(node)
            continue
        q, scale = quantize_embedding_rows(numpy_helper.to_array(data))
        base, ids, out = data.name, node.input[1], node.output[0]
        graph.initializer.remove(data)
        graph.initializer.extend([numpy_helper.from_array(q, base + ".int8"),
                                  numpy_helper.from_array(scale, base + ".row_scale")])
        new_nodes += [
            helper.make_node("Gather", [base + ".int8", ids], [out + ".q"], axis=0, name=node.name + ".q"),
            helper.make_node("Gather", [base + ".row_scale", ids], [out + ".s"], axis=0, name=node.name + ".s"),
            helper.make_node("Cast", [out + ".q"], [out + ".qf"], to=TensorProto.FLOAT, name=node.name + ".cast"),
            helper.make_node("Unsqueeze", [out + ".s", base + ".last_axis"], [out + ".s3"], name=node.name + ".unsq"),
            helper.make_node("Mul", [out + ".qf", out + ".s3"], [out], name=node.name + ".dq"),
        ]
        graph.initializer.append(numpy_helper.from_array(np.int64([-1]), base + ".last_axis"))
        replaced += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    return replaced


X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo does not say: not Linux, or ARM's
    "Features" line, which this does not need)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def reduce_range_needed(machine: str | None = None, flags: frozenset[str] | None = None) -> tuple[bool, str]:
    """Whether int8 weights must keep to 7 bits on this CPU, and why (see the module's docstring)."""
    machine = (machine or platform.machine()).lower()
    if machine not in X86:
        return False, f"{machine}: no 16-bit saturation in ONNX Runtime's int8 kernels"
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return True, "x86 whose CPU flags could not be read: 7-bit weights are safe on every x86 CPU"
    if flags & {"avx512_vnni", "avx_vnni"}:
        return False, "x86 with VNNI: products are summed in 32 bits"
    if "avx2" in flags:
        return True, "x86 with AVX2 and no VNNI: VPMADDUBSW sums pairs of products in 16 bits and saturates"
    return False, "x86 without AVX2: ONNX Runtime's SSE kernels widen to 16 bits before multiplying"


def quantize_int8(src: Path, dst: Path, calibration: list[dict] | None = None,
                  reduce_range: bool | None = None) -> dict:
    """fp32 ONNX file -> int8 ONNX file (MatMuls dynamic per-channel, embedding tables per row).

    `calibration`: model inputs (dicts of input_ids/attention_mask) for smoothing; without them
    the MatMuls are quantized as they are. `reduce_range`: 7-bit weights; None = as this CPU needs
    (`reduce_range_needed`). Returns what was done, for the manifest.
    """
    why = "asked for" if reduce_range is not None else ""
    if reduce_range is None:
        reduce_range, why = reduce_range_needed()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from appliance.inference.builders.smoothing import ALPHA, smooth_layernorm_matmuls
    from appliance.inference.versions import quiet_quantizer

    src, dst = Path(src), Path(dst)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        smoothed = 0
        if calibration:
            fp32 = onnx.load(str(src))
            smoothed = smooth_layernorm_matmuls(fp32, calibration)
            src = Path(tmp) / "smoothed.onnx"
            onnx.save(fp32, str(src))
        mid = Path(tmp) / "matmul_int8.onnx"
        with quiet_quantizer():
            quantize_dynamic(src, mid, per_channel=True, reduce_range=reduce_range, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"])
        model = onnx.load(str(mid))
    n = _quantize_gathers(model)
    if n == 0:
        log.warning("no embedding table was large enough to quantize in %s", src)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    log.info("quantized to %s (%d LayerNorm outputs smoothed, %d embedding tables to int8 rows)",
             dst.name, smoothed, n)
    return {"method": "onnxruntime quantize_dynamic", "weights": "int8",
            "reduce_range": {"on": reduce_range, "why": why}, "per_channel": True,
            "activations": "uint8, dynamic per tensor", "embedding_table": "int8, one scale per row",
            "smoothquant": {"alpha": ALPHA, "layernorm_outputs": smoothed,
                            "calibration_inputs": len(calibration or [])}}
