"""Build the preprocessing and the MLP as one ONNX graph, straight from the bundle's
parameters (no torch needed).

Inputs: ``numeric`` (float64 raw values, NaN = missing) and, when the model has categorical
features, ``onehot`` (float32, encoded by numpy). The numeric part is imputed and
standardised in float64 and then cast to float32, the same operations in the same
precision as ``components.core.data.features.Preprocessor.transform``; then come Gemm/Relu
pairs (dropout is the identity at inference) and a Softmax: the class probabilities
(``probabilities``). A regressor's graph ends at the last Gemm, whose output (``values``) is
the predicted value in the target's unit (``mlp_numpy.read_layers`` folded the target's
scale and mean into that layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

OPSET = 13
IR_VERSION = 8  # understood by every onnxruntime since 1.10
NUMERIC = "numeric"
ONEHOT = "onehot"
OUTPUT = "probabilities"  # a classifier's output: one probability per class
VALUES = "values"  # a regressor's output: (rows, 1) predicted values


def mlp_to_onnx(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    medians: np.ndarray,
    means: np.ndarray,
    scales: np.ndarray,
    onehot_width: int = 0,
    *,
    regression: bool = False,
) -> bytes:
    """Serialized ONNX model: softmax(MLP(concat(scale(impute(numeric)), onehot))), output
    ``OUTPUT``; with ``regression``, MLP(...) itself, output ``VALUES``.

    ``layers`` holds (weight [out, in], bias [out]) float32 pairs as torch stores them.
    """
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> None:
        initializers.append(numpy_helper.from_array(value, name))

    nodes = []
    initializers: list[Any] = []
    inputs = []
    parts = []
    n_numeric = len(medians)
    if n_numeric:
        inputs.append(
            helper.make_tensor_value_info(NUMERIC, TensorProto.DOUBLE, ["rows", n_numeric])
        )
        const("medians", np.asarray(medians, np.float64))
        const("means", np.asarray(means, np.float64))
        const("scales", np.asarray(scales, np.float64))
        nodes += [
            helper.make_node("IsNaN", [NUMERIC], ["is_missing"]),
            helper.make_node("Where", ["is_missing", "medians", NUMERIC], ["imputed"]),
            helper.make_node("Sub", ["imputed", "means"], ["centred"]),
            helper.make_node("Div", ["centred", "scales"], ["scaled64"]),
            helper.make_node("Cast", ["scaled64"], ["scaled"], to=TensorProto.FLOAT),
        ]
        parts.append("scaled")
    if onehot_width:
        inputs.append(
            helper.make_tensor_value_info(ONEHOT, TensorProto.FLOAT, ["rows", onehot_width])
        )
        parts.append(ONEHOT)
    if len(parts) > 1:
        nodes.append(helper.make_node("Concat", parts, ["features"], axis=1))
        current = "features"
    else:
        current = parts[0]
    for i, (weight, bias) in enumerate(layers):
        const(f"W{i}", np.asarray(weight, np.float32))
        const(f"b{i}", np.asarray(bias, np.float32))
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"b{i}"], [f"z{i}"], transB=1))
        current = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"a{i}"]))
            current = f"a{i}"
    if regression:
        output = VALUES
        nodes.append(helper.make_node("Identity", [current], [output]))
    else:
        output = OUTPUT
        nodes.append(helper.make_node("Softmax", [current], [output], axis=1))
    n_out = int(layers[-1][0].shape[0])
    graph = helper.make_graph(
        nodes,
        "sigdeploy_mlp",
        inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["rows", n_out])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sigdeploy"
    )
    model.ir_version = IR_VERSION
    return model.SerializeToString()
