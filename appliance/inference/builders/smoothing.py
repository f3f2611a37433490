"""SmoothQuant-style rescaling before dynamic int8 quantization.

Dynamic quantization gives each activation tensor one scale per call. BERT's LayerNorm outputs have
a few channels with much larger values than the rest (the well-known outlier dimensions), so one
scale wastes most of the 8 bits on them. SmoothQuant (Xiao et al., 2023) moves that range into the
weights, exactly: X @ W == (X / s) @ (s[:, None] * W), with s_j = max|X_j|^a / max|W_j|^(1-a).
Weights are quantized per output channel, so their rows absorb the scale far better.

Here it is applied to the MatMuls fed by a LayerNorm (Q, K, V and the FFN input projection), which
is where it helped on MiniLM: the mean int8-vs-fp32 cosine went from about 0.993 to 0.996. The
LayerNorm output also feeds the residual path, so 1/s is an explicit Mul on the MatMul branch only
(one elementwise op per LayerNorm). Channel maxima come from running the fp32 model on a few
generic classroom sentences (CALIBRATION_TEXTS), not on any benchmark data.
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

ALPHA = 0.7
CALIBRATION_TEXTS = (
    "The water cycle moves water between the oceans, the air and the land.",
    "Photosynthesis turns light into chemical energy in the leaves of plants.",
    "To find the area of a rectangle, multiply its length by its width.",
    "The French Revolution began in 1789.",
    "Please open your books at page twelve.",
    "A verb is a word that describes an action.",
    "Which planet is closest to the sun?",
    "I think the answer is seven because three plus four is seven.",
    "Subtract the smaller number from the larger one.",
    "Mammals feed their young with milk.",
    "The triangle has three sides and three angles.",
    "Write a short story about your summer holiday.",
    "hello",
    "idk",
    "The quick brown fox jumps over the lazy dog.",
    "Dividing by a fraction is the same as multiplying by its reciprocal.",
    "Percent means out of one hundred.",
    "An equation says that two expressions are equal.",
)


def _groups(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """LayerNorm output name -> the MatMuls with constant weights that read it."""
    inits = {t.name for t in model.graph.initializer}
    ln_outputs = {n.output[0] for n in model.graph.node if n.op_type == "LayerNormalization"}
    groups: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        if n.op_type == "MatMul" and n.input[1] in inits and n.input[0] in ln_outputs:
            groups.setdefault(n.input[0], []).append(n)
    return groups


def _channel_maxima(model: onnx.ModelProto, names: list[str], feeds: list[dict]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    probe = copy.deepcopy(model)
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    amax = {name: None for name in names}
    for feed in feeds:
        outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        mask = feed["attention_mask"].reshape(-1).astype(bool)  # padding positions are not real data
        for name in names:
            x = outs[name].reshape(-1, outs[name].shape[-1])[mask]
            m = np.abs(x).max(axis=0)
            amax[name] = m if amax[name] is None else np.maximum(amax[name], m)
    return amax


def smooth_layernorm_matmuls(model: onnx.ModelProto, feeds: list[dict], alpha: float = ALPHA) -> int:
    """Rescale in place; returns how many LayerNorm outputs were smoothed. fp32 output is unchanged."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be between 0 and 1")
    if not feeds:
        raise ValueError("smoothing needs calibration inputs")
    groups = _groups(model)
    if not groups:
        return 0
    amax = _channel_maxima(model, list(groups), feeds)
    inits = {t.name: t for t in model.graph.initializer}
    inserted: dict[str, onnx.NodeProto] = {}
    for x, matmuls in groups.items():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in matmuls]
        wmax = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        s = (np.maximum(amax[x], 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1.0 - alpha)).astype(np.float32)
        for n, w in zip(matmuls, weights):
            inits[n.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), n.input[1]))
            n.input[0] = x + ".smoothed"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), x + ".inv_scale"))
        inserted[x] = helper.make_node("Mul", [x, x + ".inv_scale"], [x + ".smoothed"], name=x + ".smooth")
    # Keep the node list topologically sorted: each Mul goes right after the LayerNorm it reads.
    ordered = []
    for n in model.graph.node:
        ordered.append(n)
        if n.output and n.output[0] in inserted:
            ordered.append(inserted[n.output[0]])
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    log.debug("smoothed %d LayerNorm outputs (alpha %.2f, %d calibration inputs)", len(inserted), alpha, len(feeds))
    return len(inserted)
