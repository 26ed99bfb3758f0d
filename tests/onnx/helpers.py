"""What the tests of tests/onnx share: the fixtures, the command line in a child process, the zoo model's
real recordings encoded as its stream encodes them, and small ONNX models built with the ``onnx`` package
(for the state convention and the sidecar's fields)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import REPO, cli, need, one_error_line  # noqa: F401 - cli, one_error_line: for the tests here

DATA = Path(__file__).parent / "data"
STEP, WINDOW = DATA / "har_lif_step.onnx", DATA / "har_lif_window.onnx"
FACTS = json.loads((DATA / "models.json").read_text())
HAR = "imu/sp-sw-har"
FIRST = "s16/s16_01_sw.csv"  # the test recording the fixture set holds


def har_recordings(datasets) -> list[Path]:
    """The zoo's HAR test subjects' smartwatch recordings (s16–s18) present: every one with the full
    datasets, s16's first with the fixture set."""
    root = datasets / HAR
    files = sorted(p for s in ("s16", "s17", "s18") for p in (root / s).glob("*_sw.csv"))
    return files or [need(root / FIRST)]



def encoded(path):
    """(zoo:har-lif, the recording at ``path`` encoded by the model's own stream settings: (T, 6) float32)."""
    from edgebrain.model import Model
    from edgebrain.stream.pipeline import encode_file

    model = Model.load("zoo:har-lif")
    cfg = model.graph.meta["stream"]
    return model, encode_file(path, cfg["encoder"], float(cfg["rate"]), model.input_shape)[0]


def save_model(graph, path, nodes=None):
    """A graph of ``onnx.helper`` nodes as an opset-17 model file checked by ``onnx.checker``."""
    import onnx
    from onnx import helper

    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgebrain tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def accumulator(path, state_in="acc", state_out="acc2", batch="N"):
    """y = acc + x, acc' = y: inputs x and ``state_in`` (batch, 3), outputs y and ``state_out``; the names do
    not pair by the convention unless given so."""
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    g = helper.make_graph(
        [helper.make_node("Add", ["x", state_in], ["y"]), helper.make_node("Identity", ["y"], [state_out])], "acc",
        [helper.make_tensor_value_info("x", f, [batch, 3]), helper.make_tensor_value_info(state_in, f, [batch, 3])],
        [helper.make_tensor_value_info("y", f, [batch, 3]), helper.make_tensor_value_info(state_out, f, [batch, 3])])
    return save_model(g, path)


def flat_window(path, T=4, C=3, n_out=2):
    """A stateless model over flat windows: x (1, T*C) → MatMul → (1, n_out), weights 0.01·k."""
    from onnx import TensorProto, helper, numpy_helper

    w = (0.01 * np.arange(T * C * n_out, dtype=np.float32)).reshape(T * C, n_out)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["p"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, T * C])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, n_out])], [numpy_helper.from_array(w, "w")])
    return save_model(g, path), w
