"""ONNX export + graph checks (checker, dynamic batch, op list vs the CUDA EP
kernel table, size, dtypes)."""
import json
import os
import warnings

import torch
import torch.nn as nn

OPSET = 13
MAX_BYTES = 5 * 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


class ExportWrapper(nn.Module):
    """image (pixel/255, [B,1,28,28]) -> probabilities [B,10] (+ attention)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        out = self.model(image)
        if isinstance(out, tuple):
            logits, attention = out
            return torch.softmax(logits, dim=1), attention
        return torch.softmax(out, dim=1)


def output_names(model):
    return ["probabilities", "attention"] if model.has_attention else ["probabilities"]


def export(model, path):
    import onnx

    model.eval()
    wrapper = ExportWrapper(model).eval()
    names = output_names(model)
    dummy = torch.rand(2, 1, 28, 28)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # torch 1.13's exporter warns about prim::Constant shape inference and
        # LSTM batch sizes; the graph is checked below and in the Jest tests.
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            wrapper, (dummy,), path,
            input_names=["image"], output_names=names,
            dynamic_axes={n: {0: "batch"} for n in ["image"] + names},
            opset_version=OPSET, do_constant_folding=True,
        )
    m = onnx.load(path)
    # torch's shape inference leaves the attention width symbolic
    # ("Divattention_dim_1"); pin every non-batch output dim to its real size.
    with torch.no_grad():
        ref = wrapper(dummy)
    ref = ref if isinstance(ref, tuple) else (ref,)
    for vi, t in zip(m.graph.output, ref):
        for d, size in zip(list(vi.type.tensor_type.shape.dim)[1:], t.shape[1:]):
            d.Clear()
            d.dim_value = int(size)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return m


def load_cuda_table():
    with open(os.path.join(HERE, "cuda_ep_ops.json")) as f:
        return json.load(f)


def check_graph(m, path, expect_lstm):
    """Raises on any contract violation; returns facts for the card."""
    import onnx
    from onnx import TensorProto

    problems = []
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        problems.append(f"{size} bytes > 5 MB")
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    if opset != OPSET:
        problems.append(f"opset {opset} != {OPSET}")

    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            problems.append(f"{vi.name} is not float32")
        d = dims(vi)
        if not d or d[0] != "batch":
            problems.append(f"{vi.name} has no dynamic batch axis: {d}")
    for init in m.graph.initializer:
        if init.data_type not in (TensorProto.FLOAT, TensorProto.INT64):
            problems.append(f"initializer {init.name} has dtype {init.data_type}")

    op_types = sorted({n.op_type for n in m.graph.node})
    domains = {n.domain for n in m.graph.node} - {"", "ai.onnx"}
    if domains:
        problems.append(f"non-standard op domains {domains}")
    table = load_cuda_table()["ops"]
    missing = []
    for op in op_types:
        if op == "Constant":  # folded into initializers when the session loads
            continue
        ranges = table.get(op)
        if not ranges or not any(lo <= opset and (hi is None or opset <= hi) for lo, hi in ranges):
            missing.append(op)
    if missing:
        problems.append(f"ops without a CUDA EP float kernel at opset {opset}: {missing}")
    lstm_nodes = sum(1 for n in m.graph.node if n.op_type == "LSTM")
    if expect_lstm and lstm_nodes != 1:
        problems.append(f"expected exactly one LSTM node, found {lstm_nodes}")
    if problems:
        raise RuntimeError(f"{path}: " + "; ".join(problems))
    counts = {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(size_bytes=size, opset=opset, op_types=op_types, op_counts=counts,
                inputs={vi.name: dims(vi) for vi in m.graph.input},
                outputs={vi.name: dims(vi) for vi in m.graph.output})
