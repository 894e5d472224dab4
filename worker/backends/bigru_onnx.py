"""The bigru-crf encoder as an ONNX graph, written node by node from the weights.

Tracing cannot export the model's Python loop over time steps, and ONNX's own GRU
operator with linear_before_reset=0 is exactly LAC's cell, so the graph is built
directly: embedding, then per layer a forward GRU and a backward one run as a
forward GRU over each sequence reversed within its own length (reverse_index, as
for lstm-crf), so padding never reaches a real position; then the emission layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17


def _onnx_gru_weights(gru) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W, R, B of ONNX's GRU (gates z, r, h) for one LacGru direction.

    ONNX keeps (1 - z) of the candidate where LAC keeps u, so z = 1 - u = sigmoid(-(...)):
    the update gate's weights and bias change sign.
    """
    hidden = gru.hidden_size
    weight = gru.input_projection.weight.detach().double().numpy().copy()  # (3H, in): u, r, c
    bias = gru.input_projection.bias.detach().double().numpy().copy()
    gates = gru.recurrent_gates.detach().double().numpy()  # (H, 2H): u, r
    candidate = gru.recurrent_candidate.detach().double().numpy()  # (H, H)
    recurrent = np.concatenate([gates[:, :hidden].T, gates[:, hidden:].T, candidate.T], axis=0)
    weight[:hidden], bias[:hidden], recurrent[:hidden] = -weight[:hidden], -bias[:hidden], -recurrent[:hidden]
    biases = np.concatenate([bias, np.zeros(3 * hidden)])
    as32 = lambda array: array.astype(np.float32)[None]  # noqa: E731 - num_directions = 1
    return as32(weight), as32(recurrent), as32(biases)


def build_graph(model, path: Path) -> list[str]:
    """Write the emission graph of a ModelScope bigru-crf model to path; returns its input names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    encoder = model.encoder.encoder
    ffn = model.head.ffn
    nodes, initializers = [], []

    def constant(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def reindex(tensor: str, name: str) -> str:
        """tensor (batch, tokens, width) with each row's first `length` positions reversed."""
        index = node("Expand", [unsqueezed, node("Shape", [tensor], f"{name}_shape")], f"{name}_index")
        return node("GatherElements", [tensor, index], f"{name}_reversed", axis=1)

    def gru(tensor: str, direction, name: str) -> str:
        weight, recurrent, bias = _onnx_gru_weights(direction)
        time_major = node("Transpose", [tensor], f"{name}_x", perm=[1, 0, 2])
        states = node("GRU", [time_major, constant(f"{name}_W", weight), constant(f"{name}_R", recurrent),
                              constant(f"{name}_B", bias)], f"{name}_y",
                      hidden_size=direction.hidden_size, linear_before_reset=0)  # fmt: skip
        squeezed = node("Squeeze", [states, axis_one], f"{name}_squeezed")
        return node("Transpose", [squeezed], f"{name}_out", perm=[1, 0, 2])

    axis_one = constant("axis_one", np.array([1], dtype=np.int64))
    unsqueezed = node("Unsqueeze", ["reverse_index", constant("axis_two", np.array([2], dtype=np.int64))], "rev3")
    embedding = constant("embedding", encoder.embedding.weight.detach().float().numpy())
    hidden = node("Gather", [embedding, "input_ids"], "embedded", axis=0)
    for i, layer in enumerate(encoder.layers):
        forward = gru(hidden, layer.forward_gru, f"l{i}_fw")
        backward = reindex(gru(reindex(hidden, f"l{i}_in"), layer.backward_gru, f"l{i}_bw"), f"l{i}_bw_out")
        hidden = node("Concat", [forward, backward], f"l{i}_hidden", axis=2)
    weight = constant("ffn_weight", ffn.weight.detach().float().numpy().T.copy())
    scores = node("MatMul", [hidden, weight], "scores")
    node("Add", [scores, constant("ffn_bias", ffn.bias.detach().float().numpy())], "emissions")
    axes = ["batch", "tokens"]
    graph = helper.make_graph(
        nodes,
        "bigru_crf_emissions",
        [helper.make_tensor_value_info(name, TensorProto.INT64, axes) for name in ("input_ids", "reverse_index")],
        [helper.make_tensor_value_info("emissions", TensorProto.FLOAT, [*axes, ffn.out_features])],
        initializers,
    )
    # IR version 8 is what opset 17 came with; newer onnx packages default to IRs ONNX Runtime may not read.
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    return ["input_ids", "reverse_index"]
