"""Export the learner model to ONNX: features [N, F] -> MatMul -> Add -> Sigmoid -> p_correct [N, 1].

The feature spec travels inside the ONNX file (metadata "learner_feature_spec") as well as in
model.json, so a model file on its own still says how to build its input rows.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from appliance.learning.learner_train import LearnerModel

log = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "features", "p_correct"


def learner_to_onnx(model: LearnerModel) -> onnx.ModelProto:
    f = model.spec.n_features
    w = np.asarray(model.weights, dtype=np.float32).reshape(f, 1)
    if not np.all(np.isfinite(w)) or not np.isfinite(model.bias):
        raise ValueError("refusing to export a learner model with NaN or infinite parameters")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [INPUT, "W"], ["logit_w"]),
         helper.make_node("Add", ["logit_w", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], [OUTPUT])],
        "learner",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", f])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(w, "W"),
                     numpy_helper.from_array(np.float32([model.bias]), "b")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="classroom-edge", producer_version="1")
    # Pin the IR version to what this opset needs so older onnxruntime builds (JetPack) load it.
    proto.ir_version = 8
    helper.set_model_props(proto, {"learner_feature_spec": json.dumps(model.spec.to_dict(), sort_keys=True)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_against_numpy(proto: onnx.ModelProto, model: LearnerModel, rows: np.ndarray,
                        atol: float = 1e-5) -> float:
    """Run the exported graph in onnxruntime and compare with the numpy model; returns max |diff|."""
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT], {INPUT: rows.astype(np.float32)})[0].reshape(-1)
    want = model.predict(rows)
    diff = float(np.max(np.abs(got - want))) if len(rows) else 0.0
    if diff > atol:
        raise ValueError(f"exported learner model disagrees with numpy by {diff:.2e} (> {atol:g})")
    return diff
