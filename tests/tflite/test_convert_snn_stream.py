"""A model converted by ``edgebrain convert MODEL.tflite --to-snn`` streams as the ANN did: one decision per
window of the encoded stream, each window presented for T steps from the initial state
(edgebrain/stream/snn_window.py; docs/conversion.md, "Streaming").

The committed int8 HAR MLP (tests/tflite/data, with its sidecar) is converted, calibrated on the windows of a
real recording encoded as the sidecar says (so that convert's report measures the very windows the stream
decides on), quantized, at T = 64. Then ``edgebrain stream snn.ebm --source REC.csv --json``:

* gives one decision per window, whose labels equal the argmax of the readout computed here independently:
  ``Model.load(...).session("int")`` reset and run for T steps on each window, the windows cut by NumPy from
  the recording normalised as the sidecar's encoder does (50 samples every 25, as tflite_stream windows them);
* its accuracy and its agreement with LiteRT's decisions on those windows are convert's report's figures for
  T = 64 at int precision, to the last window (the stream presents a window as the report presents a sample),
  and the agreement is ≥ 95 %;
* ``--backend c`` decides the same, and ``--target qemu-m4`` (skipped without QEMU or the cross compiler)
  the same on the first windows;
* rate coding (encoder populations in the graph) streams as the float session presents it too;
* the stream settings come from the sidecar and from ``--encoder/--class-names/--rate``; ``--decoder``
  other than ``window`` and a converted model that does not say its window are one line, exit code 2.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import need
from tests.tflite.test_tflite import DATA, TEST_FILES, cli, litert_invoke, one_error_line
from tests.tflite.test_tflite_stream import read_csv, sidecar, spec_values, stream_json

pytest.importorskip("ai_edge_litert.interpreter", reason="the tflite extra is not installed")

NAME, T, WINDOW, HOP = "har_mlp_int8", 64, 50, 25


def encoded_windows(path):
    """The recording as the sidecar's direct encoder gives it, cut as tflite_stream cuts it: (windows (N, 50, 6),
    the index of each window's last sample, each window's truth (its most frequent label), the sample times)."""
    raw, t = read_csv(path)
    enc = sidecar(NAME)["encoder"]
    x = ((raw.astype(np.float32).astype(np.float64) - spec_values(enc, "offset")) * spec_values(enc, "scale")
         ).astype(np.float32)
    labels = sidecar(NAME)["labels"]
    lab = np.array([labels.index(v) for v in np.loadtxt(path, delimiter=",", skiprows=1, usecols=[7], dtype=str)])
    ends = np.arange(WINDOW - 1, len(x), HOP)
    wins = np.stack([x[e - WINDOW + 1:e + 1] for e in ends])
    truth = np.array([np.bincount(lab[e - WINDOW + 1:e + 1], minlength=len(labels)).argmax() for e in ends])
    return wins, ends, truth, t


def readouts(model_path, wins, steps, precision):
    """Independently of the stream: the model's session reset and run for ``steps`` steps on each window (the
    window flattened, as the MLP's input), the readout after the last step."""
    from edgebrain.model import Model

    s = Model.load(model_path).session(precision)
    out = []
    for w in wins:
        s.reset()
        y, _ = s.run(np.repeat(w.reshape(1, -1), steps, 0))
        out.append(np.asarray(y)[-1].ravel())
    return np.array(out)


@pytest.fixture(scope="module")
def converted(datasets, tmp_path_factory):
    d = tmp_path_factory.mktemp("snn_stream")
    rec = need(datasets / "imu" / "sp-sw-har" / TEST_FILES[0])
    wins, ends, truth, t = encoded_windows(rec)
    np.save(d / "x.npy", wins.reshape(len(wins), -1))
    np.save(d / "y.npy", truth)
    rc, out, err = cli("convert", DATA / f"{NAME}.tflite", "--to-snn", "--calib", d / "x.npy", "--labels",
                       d / "y.npy", "--timesteps", str(T), "--quantize", "int8", "-o", d / "snn.ebm", "--json")
    assert rc == 0, err
    ds, summary = stream_json(d / "snn.ebm", rec)
    return dict(dir=d, rec=rec, wins=wins, ends=ends, truth=truth, t=t, report=json.loads(out), ds=ds,
                summary=summary)


def test_stream_settings_come_from_the_sidecar(converted):
    from edgebrain.model import Model

    meta = Model.load(converted["dir"] / "snn.ebm").graph.meta["stream"]
    side = sidecar(NAME)
    assert {k: meta[k] for k in ("encoder", "labels", "rate", "hop", "channels")} == {
        k: side[k] for k in ("encoder", "labels", "rate", "hop", "channels")}
    assert meta["window"] == WINDOW and meta["present_steps"] == T == converted["report"]["timesteps"]
    assert meta["present_shape"] == [WINDOW * 6]
    assert meta["output_lambda"] == pytest.approx(converted["report"]["output_lambda"])


def test_one_decision_per_window_equal_to_the_readout_run_here(converted):
    """int precision (as deployed): labels = argmax of the readout after T steps from the initial state on each
    window, time = the window's last sample; accuracy and agreement with LiteRT = convert's report at T."""
    ds, s, wins = converted["ds"], converted["summary"], converted["wins"]
    labels = sidecar(NAME)["labels"]
    assert len(ds) == len(wins) == s["decisions"] > 10 and s["precision"] == "int"
    want = readouts(converted["dir"] / "snn.ebm", wins, T, "int").argmax(1)
    assert [d["label"] for d in ds] == [labels[k] for k in want]
    assert [d["truth"] for d in ds] == [labels[k] for k in converted["truth"]]
    assert all(abs(d["t"] - converted["t"][e]) <= 0.0105 for d, e in zip(ds, converted["ends"]))
    lite = litert_invoke(DATA / f"{NAME}.tflite", wins.reshape(len(wins), -1)).argmax(1)
    agree = float((want == lite).mean())
    row = [r for r in converted["report"]["evaluated"] if r["precision"] == "int" and r["timesteps"] == T][0]
    print(f"{NAME} → SNN, T={T}, int: stream agrees with LiteRT on {agree:.4f} of {len(wins)} windows; "
          f"accuracy {s['accuracy']:.4f} (LiteRT {float((lite == converted['truth']).mean()):.4f})")
    assert agree == pytest.approx(row["agreement"]) and agree >= 0.95
    assert s["accuracy"] == round(row["accuracy"], 4)
    assert len({d["label"] for d in ds}) > 1


def test_backend_c_decides_as_int(converted):
    from tests.firmware.conftest import need_compiler

    need_compiler()
    ds, _ = stream_json(converted["dir"] / "snn.ebm", converted["rec"], "--backend", "c")
    key = ("t", "label", "confidence", "truth")
    assert [[d[k] for k in key] for d in ds] == [[d[k] for k in key] for d in converted["ds"]]


def test_qemu_m4_decides_as_int(converted):
    """The emulated Cortex-M4 (RESET over the link before each window): the first 3 windows (--duration 1,
    about 7 s of CPU) decide exactly as the Python integer path (time, label, confidence, truth)."""
    from edgebrain.stream import emulated as E

    b = E.BOARDS["qemu-m4"]
    for tool, apt in ((b.qemu, b.qemu_apt), (b.cc, b.cc_apt)):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install {apt})")
    ds, s = stream_json(converted["dir"] / "snn.ebm", converted["rec"], "--target", "qemu-m4", "--duration", "1")
    key = ("t", "label", "confidence", "truth")
    assert len(ds) >= 3
    assert [[d[k] for k in key] for d in ds] == [[d[k] for k in key] for d in converted["ds"][:len(ds)]]
    assert s["board"]["board"]["errors"] == 0 and s["board"]["link"]["crc_errors"] == 0


def test_rate_coding_streams_as_the_float_session_presents_it(converted):
    """--coding rate: the encoder populations are in the graph, so a window is presented as the same analog input
    at every step; the float stream's labels are the float session's argmax, its accuracy the report's."""
    d = converted["dir"]
    rc, out, err = cli("convert", DATA / f"{NAME}.tflite", "--to-snn", "--calib", d / "x.npy", "--labels",
                       d / "y.npy", "--timesteps", "32", "--coding", "rate", "-o", d / "rate.ebm", "--json")
    assert rc == 0, err
    ds, s = stream_json(d / "rate.ebm", converted["rec"])
    want = readouts(d / "rate.ebm", converted["wins"], 32, "float").argmax(1)
    labels = sidecar(NAME)["labels"]
    assert s["precision"] == "float" and [x["label"] for x in ds] == [labels[k] for k in want]
    row = [r for r in json.loads(out)["evaluated"] if r["timesteps"] == 32][0]
    assert s["accuracy"] == round(row["accuracy"], 4)


def test_convert_options_and_bad_settings(converted, tmp_path):
    from edgebrain.model import Model

    x = np.load(converted["dir"] / "x.npy")[:8]
    np.save(tmp_path / "x.npy", x)
    base = ["convert", DATA / f"{NAME}.tflite", "--to-snn", "--calib", tmp_path / "x.npy", "--timesteps", "4"]
    rc, _, err = cli(*base, "-o", tmp_path / "o.ebm", "--class-names", "a,b,c,d,e", "--rate", "50", "--encoder",
                     "direct:scale=2", "--decoder", "window")
    assert rc == 0, err
    meta = Model.load(tmp_path / "o.ebm").graph.meta["stream"]
    assert (meta["labels"], meta["rate"], meta["encoder"], meta["window"]) == (list("abcde"), 50, "direct:scale=2", 50)
    assert "decoder" not in meta
    one_error_line(*cli(*base, "-o", tmp_path / "p.ebm", "--decoder", "count:window=4")[::2], "--decoder",
                   "once per window")
    one_error_line(*cli(*base, "-o", tmp_path / "p.ebm", "--class-names", "a,b")[::2], "--class-names", "5 outputs")
    assert not (tmp_path / "p.ebm").exists()
    # a flat model without a sidecar: its window is not known, and streaming it says what to do
    rc, _, err = cli("convert", DATA / "har_res_float.tflite", "--to-snn", "--calib", tmp_path / "x.npy",
                     "--timesteps", "4", "-o", tmp_path / "res.ebm")
    assert rc == 0, err
    one_error_line(*cli("stream", tmp_path / "res.ebm", "--source", converted["rec"])[::2], "meta.stream.window",
                   "sidecar")


def test_profile_counts_each_decision_as_one_window_presented_for_T_steps(converted):
    """``edgebrain profile snn.ebm --source REC``: one inference per decision (the stream's), T model steps
    each, the operations counted on the windows cut here by NumPy, each run from the initial state."""
    from edgebrain.metrics import count_ops
    from edgebrain.model import Model

    rc, out, err = cli("profile", converted["dir"] / "snn.ebm", "--source", converted["rec"], "--device", "rpi4b",
                       "--json")
    assert rc == 0, err
    r = json.loads(out)
    w, met = r["workload"], r["metrics"]
    assert w["decisions_per_pass"] == converted["summary"]["decisions"] == len(converted["wins"])
    assert w["steps_per_inference"] == T and met["steps"] == T and met["samples"] == len(converted["wins"])
    m = Model.load(converted["dir"] / "snn.ebm")
    x = np.broadcast_to(converted["wins"].reshape(len(converted["wins"]), -1), (T,) + converted["wins"].reshape(
        len(converted["wins"]), -1).shape)
    want = count_ops(m, np.ascontiguousarray(x, np.float32), "int")
    assert met["per_inference"]["Effective_MACs"] == pytest.approx(want["eff_macs"])
    assert met["per_inference"]["Effective_ACs"] == pytest.approx(want["eff_acs"])
    assert met["per_inference"]["membrane_updates"] == pytest.approx(want["membrane_updates"])
    # the windows are counted from reset: a continuous run over them would count other spikes
    cont = count_ops(m, np.ascontiguousarray(x.transpose(1, 0, 2).reshape(-1, x.shape[2]), np.float32), "int")
    assert cont["eff_acs"] / len(converted["wins"]) != pytest.approx(want["eff_acs"], rel=1e-9)


def test_spike_rates_count_each_window_at_its_decision(converted):
    """The stream's spike rate of the IF layer: the spikes of every window's T steps (counted here by running the
    session on each window with the layer recorded), per neuron and stream step."""
    from edgebrain.model import Model

    s = Model.load(converted["dir"] / "snn.ebm").session("int")
    total, n = 0.0, None
    for w in converted["wins"]:
        s.reset()
        _, rec = s.run(np.repeat(w.reshape(1, -1), T, 0), record=["if0"])
        total += float(rec["spikes/if0"].sum())
        n = rec["spikes/if0"].reshape(T, -1).shape[1]
    rate = converted["summary"]["spike_rate"]
    assert set(rate) == {"if0"} and total > 0
    assert rate["if0"] == pytest.approx(total / (converted["summary"]["steps"] * n), rel=1e-4)
