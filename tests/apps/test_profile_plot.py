"""``edgebrain profile --plot`` without a sensor (issue 12, item 13): the analytical estimate drawn per
decision (or per inference) over time. The per-step counts it is drawn from add up to
``metrics.count_ops``' totals (NeuroBench's definitions, checked against NeuroBench itself in
tests/test_metrics.py); the per-decision energies add up to the estimate over the same steps, at the
decision times an independent stream of the recording gives; the figure draws exactly those."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from edgebrain import metrics as M
from edgebrain import ops, zoo
from edgebrain.apps.profile import profile
from edgebrain.apps.profile.activity import step_counts
from edgebrain.cli import main
from edgebrain.energy.plot import draw_estimate_timeline
from edgebrain.model import Model
from edgebrain.stream.base import Sink
from edgebrain.stream.pipeline import build_pipeline, encode_file
from tests.conftest import need

IMU = "imu/sp-sw-har/s16/s16_01_sw.csv"
NMNIST = "events/nmnist-small/1.bs2"


def _encoded(model, path):
    cfg = model.graph.meta["stream"]
    x, _, t = encode_file(path, cfg["encoder"], rate=cfg["rate"], input_shape=model.input_shape)
    return x, t


def _bias_bytes(model) -> int:
    """Bytes of the biases the kernels read every step, by hand: a Linear has none; a convolution's
    all-zero bias (as NIR writes one it does not have) is not read."""
    total = 0
    for n in M.synaptic_layers(model):
        op = model.graph.nodes[n]
        if isinstance(op, ops.Linear) or op.bias is None:
            continue
        if isinstance(op, (ops.Conv1d, ops.Conv2d)) and not np.any(op.bias != 0):
            continue
        total += 4 * op.weight.shape[0]
    return total


@pytest.mark.parametrize("name,rec", [("har-l2mu", IMU), ("nmnist", NMNIST), ("basicmotions", None)])
def test_step_counts_add_up_to_count_ops(name, rec, datasets):
    """Per-step counts (a recurrent LMU, a convolutional network with its dense/sparse switch, a batch of
    three generated samples) summed over the steps, per sample, are count_ops' totals."""
    model = Model.load(zoo.path(name))
    if rec is None:
        x = np.random.default_rng(3).normal(size=(60, 3, *model.input_shape)).astype(np.float32)
    else:
        x, _ = _encoded(model, need(datasets / rec))
    counts = M.count_ops(model, x, "int")
    sc = step_counts(model, x, "int")
    B = sc["samples"]
    assert sc["steps"] == counts["steps"] == len(x)
    for k in ("eff_macs", "eff_acs", "membrane_updates"):
        assert sc[k].shape == (len(x), B)
        assert sc[k].sum() / B == pytest.approx(counts[k], rel=1e-12, abs=1e-9), k
    wbytes = model.quant["weight_bits"] / 8
    assert sc["weight_reads"].sum() / B * wbytes + _bias_bytes(model) * len(x) == pytest.approx(
        counts["weight_bytes_read"], rel=1e-12)
    assert (sc["eff_macs"] + sc["eff_acs"]).std() > 0   # the activity varies from step to step


class Keep(Sink):
    def __init__(self):
        self.decisions = []

    def emit(self, d):
        self.decisions.append(d)


def test_energy_per_decision(datasets):
    """s16_01 through zoo:har-l2mu with no sensor: one energy per decision, at the decisions' times of an
    independent stream; each decision charged the steps since the previous one (its window at first,
    then the hop); together with the steps after the last one they are the estimate over the steps."""
    path = need(datasets / IMU)
    model = Model.load(zoo.path("har-l2mu"))
    res = profile(model, source=str(path), timeline=True)
    tl = res["estimate_timeline"]
    keep = Keep()
    build_pipeline(model, str(path), sinks=[keep]).run()
    x, t = _encoded(model, path)
    assert tl["per"] == "decision" and len(tl["t"]) == len(keep.decisions) == res["workload"]["decisions_per_pass"]
    np.testing.assert_allclose(tl["t"], [d.t for d in keep.decisions])
    ends = np.searchsorted(t, tl["t"] + 1e-9)
    np.testing.assert_array_equal(tl["steps"], np.diff(np.concatenate([[0], ends])))
    assert tl["steps"][0] == 25 and set(tl["steps"][1:-1].tolist()) == {12}   # count:window=25,hop=12
    T = res["estimate"]["counts"]["steps"]
    assert T == len(x) and len(tl["step"]["t"]) == T
    np.testing.assert_allclose(tl["step"]["t"], t)
    whole = res["estimate"]["per_step_j"] * T
    after = tl["step"]["total_j"][ends[-1]:].sum()
    assert tl["energy_j"].sum() + after == pytest.approx(whole, rel=1e-9)
    parts = sum(tl["step"][k] for k in ("synaptic_j", "membrane_j", "memory_j"))
    np.testing.assert_allclose(parts, tl["step"]["total_j"], rtol=1e-12)
    b = res["estimate"]["breakdown_per_inference_j"]
    scale = T / res["workload"]["steps_per_inference"]
    assert tl["step"]["membrane_j"].sum() == pytest.approx(b["membrane_j"] * scale, rel=1e-9)
    assert tl["step"]["synaptic_j"].sum() == pytest.approx((b["synaptic_mac_j"] + b["synaptic_ac_j"]) * scale,
                                                           rel=1e-9)
    # the figure draws one bar per decision, over the stretch it is charged, as high as its energy
    fig, drawn = draw_estimate_timeline(res)
    try:
        bars = [p for p in drawn["axes"]["per_decision"].patches if p.get_gid() == "energy"]
        assert len(bars) == len(tl["t"])
        np.testing.assert_allclose([p.get_x() + p.get_width() for p in bars], tl["t"])
        np.testing.assert_allclose([p.get_x() for p in bars[1:]], tl["t"][:-1])
        heights = np.array([p.get_height() for p in bars])
        np.testing.assert_allclose(heights / heights.max(), tl["energy_j"] / tl["energy_j"].max(), rtol=1e-12)
        assert "ESTIMATE (no sensor)" in drawn["axes"]["per_decision"].get_title()
    finally:
        fig.clf()


def test_energy_per_inference_of_an_input_array():
    """An input array of three samples: one bar per sample (one inference each), their mean the
    estimate per inference."""
    model = Model.load(zoo.path("basicmotions"))
    x = np.random.default_rng(4).normal(size=(80, 3, *model.input_shape)).astype(np.float32)
    res = profile(model, xs=x, timeline=True)
    tl = res["estimate_timeline"]
    assert tl["per"] == "inference" and len(tl["energy_j"]) == 3 and list(tl["steps"]) == [80] * 3
    assert tl["energy_j"].mean() == pytest.approx(res["estimate"]["per_inference_j"], rel=1e-9)
    assert len(set(np.round(tl["energy_j"] / tl["energy_j"].mean(), 9))) > 1   # the samples differ
    fig, drawn = draw_estimate_timeline(res)
    try:
        assert len([p for p in drawn["axes"]["per_decision"].patches if p.get_gid() == "energy"]) == 3
    finally:
        fig.clf()


def _cli(args, capsys):
    box = {}

    def run():
        try:
            main([str(a) for a in args])
            box["code"] = 0
        except SystemExit as e:
            box["code"] = e.code

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(600)
    assert not th.is_alive()
    out = capsys.readouterr()
    return box["code"], out.out, out.err


def test_profile_plot_cli(datasets, tmp_path, capsys):
    """``profile --source REC --plot P.png --json``: the PNG, and per-decision estimates in the JSON
    (not the per-step arrays) that add up with the estimate's mean."""
    path = need(datasets / IMU)
    png = tmp_path / "energy.png"
    code, out, err = _cli(["profile", "zoo:har-l2mu", "--source", path, "--duration", 0.3, "--json", "--plot", png],
                          capsys)
    assert code == 0, err
    r = json.loads(out)
    tl = r["estimate_timeline"]
    assert set(tl) == {"per", "t", "energy_j", "steps", "mean_j", "note"}
    assert tl["per"] == "decision" and len(tl["t"]) == len(tl["energy_j"]) == r["workload"]["decisions_per_pass"]
    assert np.mean(tl["energy_j"]) == pytest.approx(tl["mean_j"])
    assert r["plot"]["per"] == "decision" and r["plot"]["estimate"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
