"""The PyTorch-side engines of tools/bench/kernels.py: snnTorch and Norse step loops, and ONNX
Runtime running one timestep of the same network exported from PyTorch.

ONNX: the network becomes one ``torch.nn.Module`` timestep ``(x, v_1 .. v_k) -> (y, v_1' .. v_k')``
(``y`` the last layer's output: spikes, or the leaky readout's membrane; ``v`` every layer's
membrane, fed back by the caller at the next step), with the same float32 weights as the other
engines and the same arithmetic as the NumPy engine (``v = β·v + W·h + b; s = v > θ; v -= s·θ``),
exported with ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter: the dynamo one
needs onnxscript) and run by ``onnxruntime.InferenceSession`` on the CPUExecutionProvider with one
intra-op and one inter-op thread, sequential execution, batch 1: what a user deploying an exported
PyTorch SNN would run. The export happens in a subprocess of the benchmark (``--onnx-export``), which
also checks the exported step against edgebrain's float session; the timing workers only load the
``.onnx`` file.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np

ORT_NAME = "ONNX Runtime step"


def torch_engines(layers, xs, have):
    """snnTorch and Norse step loops under torch.no_grad (skipped when not importable):
    ({name: (setup, body)}, notes)."""
    res, notes = {}, []
    try:
        import torch
    except ImportError:
        return res, ["torch not importable: snnTorch and Norse columns skipped"]
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed once per process
        pass
    have["torch"] = f"{torch.__version__} ({torch.get_num_threads()} thread)"
    xt = torch.from_numpy(xs).unsqueeze(1)  # (T, 1, n_in)

    def linears():
        out = []
        for W, b, *_ in layers:
            fc = torch.nn.Linear(W.shape[1], W.shape[0])
            with torch.no_grad():
                fc.weight.copy_(torch.from_numpy(W))
                fc.bias.copy_(torch.from_numpy(b))
            out.append(fc)
        return out

    try:
        import snntorch as snn
        from snntorch import utils as sutils

        have["snntorch"] = snn.__version__
        fcs = linears()
        mods = []
        for (W, b, kind, beta, thr), fc in zip(layers, fcs):
            mods.append(fc)
            last = len(mods) == 2 * len(layers) - 1
            if kind == "LIF":
                mods.append(snn.Leaky(beta=beta, threshold=thr, init_hidden=True, reset_mechanism="subtract",
                                      reset_delay=False, output=last))
            else:  # leaky readout: no reset, the membrane is the output
                mods.append(snn.Leaky(beta=beta, threshold=1.0, init_hidden=True, reset_mechanism="none",
                                      output=True))
        net = torch.nn.Sequential(*mods).eval()

        def loop():
            with torch.no_grad():
                for x in xt:
                    net(x)

        res["snnTorch step"] = (lambda: sutils.reset(net), loop)
    except ImportError:
        notes.append("snntorch not importable: column skipped")

    try:
        import norse
        import norse.torch as nt
        from norse.torch.functional.reset import reset_subtract

        have["norse"] = getattr(norse, "__version__", "?")
        fcs = linears()
        cells = []
        for W, b, kind, beta, thr in layers:
            inv = (1.0 - beta) / 1e-3  # dt·tau_mem_inv = 1 − beta
            if kind == "LIF":
                p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(inv), v_th=torch.tensor(thr),
                                        reset_method=reset_subtract)
                cells.append(nt.LIFBoxCell(p, dt=1e-3))
            else:
                cells.append(nt.LIBoxCell(nt.LIBoxParameters(tau_mem_inv=torch.tensor(inv)), dt=1e-3))

        def loop():
            states = [None] * len(cells)
            with torch.no_grad():
                for x in xt:
                    h = x
                    for k in range(len(cells)):
                        h, states[k] = cells[k](fcs[k](h), states[k])

        res["Norse step"] = (None, loop)
    except ImportError:
        notes.append("norse not importable: column skipped")
    return res, notes



# ============================================================================ ONNX Runtime


def _onnx_missing():
    """The first of torch / onnx / onnxruntime that is not importable, or None."""
    for mod in ("torch", "onnx", "onnxruntime"):
        try:
            __import__(mod)
        except ImportError:
            return mod
    return None


def _step_module(layers):
    """One timestep of the network as a torch module: forward(x, v_0 .. v_{k-1}) -> (y, v_0' ..)."""
    import torch

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = torch.nn.ModuleList()
            self.kinds, self.betas, self.thrs = [], [], []
            for W, b, kind, beta, thr in layers:
                fc = torch.nn.Linear(W.shape[1], W.shape[0])
                with torch.no_grad():
                    fc.weight.copy_(torch.from_numpy(W))
                    fc.bias.copy_(torch.from_numpy(b))
                self.fcs.append(fc)
                self.kinds.append(kind)
                self.betas.append(float(np.float32(beta)))
                self.thrs.append(float(np.float32(thr)) if thr is not None else None)

        def forward(self, x, *vs):
            h, new = x, []
            for k, fc in enumerate(self.fcs):
                v = self.betas[k] * vs[k] + fc(h)
                if self.kinds[k] == "LIF":
                    s = (v > self.thrs[k]).to(v.dtype)
                    v = v - s * self.thrs[k]
                    h = s
                else:  # leaky readout: no reset, the membrane is the output
                    h = v
                new.append(v)
            return (h, *new)

    return Step().eval()


def onnx_export(layers, path):
    """Export one timestep of ``layers`` to ``path``. Returns {"have": versions, "notes": [...],
    "path": path or None (skipped)}."""
    miss = _onnx_missing()
    if miss:
        return {"path": None, "have": {}, "notes": [f"{miss} not importable: ONNX Runtime column skipped "
                                                      "(pip install onnxruntime onnx torch, or the 'bench' extra)"]}
    import onnx
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    net = _step_module(layers)
    n_in = layers[0][0].shape[1]
    args = (torch.zeros(1, n_in),) + tuple(torch.zeros(1, W.shape[0]) for W, *_ in layers)
    names_in = ["x"] + [f"v{k}" for k in range(len(layers))]
    names_out = ["y"] + [f"v{k}_new" for k in range(len(layers))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, args, str(path), dynamo=False, input_names=names_in, output_names=names_out,
                          opset_version=17)
    onnx.checker.check_model(onnx.load(str(path)))
    have = {"onnxruntime": f"{onnxruntime.__version__} (1 intra-op + 1 inter-op thread, sequential, "
                           "CPUExecutionProvider)", "onnx": onnx.__version__}
    return {"path": str(path), "have": have, "notes": []}


def ort_session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort_stepper(sess):
    """(reset, step) over one ORT session: step(x of shape (1, n_in)) -> the outputs list
    [y, v_0', ..], with the new states fed back as the next step's inputs."""
    ins = [i.name for i in sess.get_inputs()]
    zeros = {i.name: np.zeros([int(d) for d in i.shape], np.float32) for i in sess.get_inputs()[1:]}
    states = ins[1:]
    feeds = {}
    run = sess.run

    def reset():
        feeds.clear()
        feeds.update(zeros)

    def step(x):
        feeds["x"] = x
        o = run(None, feeds)
        for k, nm in enumerate(states):
            feeds[nm] = o[k + 1]
        return o

    reset()
    return reset, step


def ort_engine(path, xs):
    """{ORT_NAME: (setup, body)}: one InferenceSession.run per timestep over xs, states fed back."""
    reset, step = _ort_stepper(ort_session(path))
    xs3 = np.ascontiguousarray(xs, np.float32).reshape(xs.shape[0], 1, -1)

    def loop():
        for x in xs3:
            step(x)

    return {ORT_NAME: (reset, loop)}


def ort_check(path, model, xs):
    """Does the exported step compute the same network as edgebrain's float session?

    * free run: ORT over all of xs from zero states against ``Session.run(xs, record=...)``: the
      largest difference of the output and of every layer's membrane, and the fraction of
      (step, neuron) whose membranes differ by more than 0.5 (a spike one side fired and the other
      did not: thresholds are 1, resets subtract 1);
    * one step at a time ("teacher-forced"): each step starts from edgebrain's membranes of the
      previous step, so a rounding difference cannot carry over; the largest difference of the
      output and of the new membranes, and how many spikes differ.
    """
    neurons = list(model.program("float").state_regions)
    s = model.session("float")
    y_eb, rec = s.run(xs, record=neurons)
    y_eb = np.asarray(y_eb, np.float32).reshape(xs.shape[0], -1)
    v_eb = [np.asarray(rec[f"v/{n}"], np.float32).reshape(xs.shape[0], -1) for n in neurons]
    sess = ort_session(path)
    reset, step = _ort_stepper(sess)
    xs3 = np.ascontiguousarray(xs, np.float32).reshape(xs.shape[0], 1, -1)
    t0 = time.perf_counter()
    outs = [[np.array(a[0], copy=True) for a in step(x)] for x in xs3]
    t_free = time.perf_counter() - t0
    y_ort = np.stack([o[0] for o in outs])
    v_ort = [np.stack([o[k + 1] for o in outs]) for k in range(len(neurons))]
    dv = [np.abs(a - b) for a, b in zip(v_ort, v_eb)]
    free = {"max_abs_diff_output": float(np.abs(y_ort - y_eb).max()),
            "max_abs_diff_membrane": {n: float(d.max()) for n, d in zip(neurons, dv)},
            "membrane_mismatch_over_0.5_fraction": {n: float((d > 0.5).mean()) for n, d in zip(neurons, dv)},
            "max_abs_membrane": {n: float(np.abs(v).max()) for n, v in zip(neurons, v_eb)}}
    # teacher-forced: edgebrain's states in, one ORT step, compared with edgebrain's next states
    run = sess.run
    tf_y, tf_v, flips = 0.0, [0.0] * len(neurons), 0
    for t in range(xs.shape[0]):
        feeds = {"x": xs3[t]}
        for k, v in enumerate(v_eb):
            feeds[f"v{k}"] = (v[t - 1] if t else np.zeros_like(v[0]))[None, :]
        o = run(None, feeds)
        tf_y = max(tf_y, float(np.abs(o[0][0] - y_eb[t]).max()))
        for k, v in enumerate(v_eb):
            d = np.abs(o[k + 1][0] - v[t])
            flips += int((d > 0.5).sum())
            tf_v[k] = max(tf_v[k], float(np.where(d > 0.5, 0, d).max()))
    forced = {"max_abs_diff_output": tf_y, "max_abs_diff_membrane": dict(zip(neurons, tf_v)),
              "spike_flips": flips}
    return {"free_run": free, "teacher_forced": forced, "T": int(xs.shape[0]), "free_run_wall_s": t_free}


def onnx_export_main(layers, model, xs, path):
    """--onnx-export: export, check, print one JSON line (see kernels.py's main)."""
    d = onnx_export(layers, path)
    if d["path"]:
        d["check"] = ort_check(path, model, xs)
    print(json.dumps(d))


def ort_check_line(c):
    """One line of the report from ort_check's result."""
    fr, tf = c["free_run"], c["teacher_forced"]
    flips = max(fr["membrane_mismatch_over_0.5_fraction"].values(), default=0.0)
    return (f"ONNX Runtime vs edgebrain float over {c['T']} steps: one step from the same state: max |Δ| output "
            f"{tf['max_abs_diff_output']:.2g}, membranes {max(tf['max_abs_diff_membrane'].values()):.2g}, "
            f"{tf['spike_flips']} spike(s) differ; free run: max |Δ| output {fr['max_abs_diff_output']:.2g}, "
            f"membranes {max(fr['max_abs_diff_membrane'].values()):.2g} (largest |v| "
            f"{max(fr['max_abs_membrane'].values()):.2g}), (step, neuron) pairs off by a spike {flips:.4f}")
