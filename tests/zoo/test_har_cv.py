"""tools/train/har_cv.py, the leave-subjects-out cross-validation of issue 18: the folds partition the subjects
(fold 5 is the zoo's fixed split), the augmentation is what its docstring says (a rotation keeps the
accelerometer's magnitude, the other wrist is a reflection), and a sweep is resumable and refuses to run beside
another one."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

for mod in ("torch", "snntorch", "nir"):
    pytest.importorskip(mod, reason=f"{mod} not installed (the train extra: pip install -e '.[train]')")
sys.path.insert(0, str(REPO / "tools" / "train"))
import har_cv  # noqa: E402


def test_six_folds_partition_the_subjects_and_fold_5_is_the_fixed_split():
    tests = [s for k in range(6) for s in har_cv.fold_split(k)["test"]]
    assert sorted(tests) == list(range(1, 19))
    for k in range(6):
        f = har_cv.fold_split(k)
        assert sorted(f["train"] + f["val"] + f["test"]) == list(range(1, 19))
        assert len(f["train"]) == 12 and len(f["val"]) == 3 and not set(f["val"]) & set(f["test"])
    assert har_cv.fold_split(5) == {"train": list(range(1, 13)), "val": [13, 14, 15], "test": [16, 17, 18]}


def test_augmentation_acts_on_the_raw_axes():
    rng = np.random.default_rng(0)
    off = np.array([0.1, -0.2, 9.6, 0.01, 0.02, -0.03], np.float32)
    sc = np.array([2.0, 1.5, 3.0, 0.7, 0.9, 1.1], np.float32)
    raw = rng.standard_normal((300, 6)).astype(np.float32) * 3
    x = (raw - off) * sc

    def back(xa):
        return xa / sc + off
    same = har_cv.augment(x, rng, stats=(off, sc))
    np.testing.assert_allclose(same, x, rtol=1e-6, atol=1e-5)
    rot = back(har_cv.augment(x, rng, rotate_deg=40, stats=(off, sc)))
    # a rotation of the frame: each sensor's vector keeps its length, and both sensors turn alike
    np.testing.assert_allclose(np.linalg.norm(rot[:, :3], axis=1), np.linalg.norm(raw[:, :3], axis=1), rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(rot[:, 3:], axis=1), np.linalg.norm(raw[:, 3:], axis=1), rtol=1e-4)
    R = np.linalg.lstsq(raw[:, :3], rot[:, :3], rcond=None)[0]
    np.testing.assert_allclose(raw[:, 3:] @ R, rot[:, 3:], atol=1e-3)
    assert np.linalg.det(R) == pytest.approx(1, abs=1e-4) and np.degrees(np.arccos((np.trace(R) - 1) / 2)) <= 40.01
    mir = back(har_cv.augment(x, rng, mirror=1.0, stats=(off, sc)))
    np.testing.assert_allclose(mir, raw * np.array([-1, 1, 1, 1, -1, -1]), rtol=1e-4, atol=1e-4)
    g = har_cv.augment(x, rng, gain=0.2, stats=(off, sc)) / np.where(x == 0, 1, x)
    assert np.all(np.abs(g - 1) <= 0.2 + 1e-5) and np.allclose(g, g[0], rtol=1e-4)   # one gain per channel
    w = har_cv.augment(x, rng, warp=0.2, stats=(off, sc))
    assert 300 / 1.2 - 1 <= len(w) <= 300 / 0.8 + 1 and w.shape[1] == 6


def test_a_sweep_is_resumable_and_never_runs_beside_another(datasets, tmp_path):
    if not (datasets / "imu" / "sp-sw-har" / "s16").is_dir():
        pytest.skip(f"no s16 recordings under {datasets}")
    env = dict(os.environ, EDGEBRAIN_DATA=str(datasets))
    cmd = [sys.executable, str(REPO / "tools" / "train" / "har_cv.py"), "--models", "gru", "--folds", "5",
           "--seeds", "0", "--epochs", "1", "--variant", "smoke", "--results", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((tmp_path / "gru-smoke-f5-s0.json").read_text())
    assert res["subjects"]["test"] == [16, 17, 18] and res["float"]["decisions"] > 0
    assert 0 <= res["float"]["accuracy"] <= 1 and all(n.startswith("s1") for n in res["test_files"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert r.returncode == 0 and "done before, skipped" in r.stdout, r.stdout + r.stderr
    with open(tmp_path / ".training.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert r.returncode != 0 and "never two at once" in r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("mode", ["global", "layer"])
def test_magnitude_pruning_keeps_the_largest_weights(mode):
    """Pruning to 80 %: that share of the trained weights is zero (in each layer for ``layer``), every kept
    weight is at least as large as every pruned one of its scope, and the L2MU's fixed Legendre matrices and the
    zeros of its block-diagonal input layer are left alone."""
    import har as H

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = H.L2MU()
    fixed = {n: m.weight.detach().clone() for n, m in (("A", net.A), ("B", net.B))}
    before = {n: m.weight.detach().clone() for n, m in har_cv.prunable(net).items()}
    assert "A" not in before and "B" not in before
    har_cv.apply_masks(net, har_cv.prune_masks(net, 0.8, mode))
    assert har_cv.weight_sparsity(net) == pytest.approx(0.8, abs=2e-3)
    for n, m in fixed.items():
        assert torch.equal(getattr(net, n).weight, m)
    kept, cut = [], []
    for n, m in har_cv.prunable(net).items():
        w0 = before[n] * (net.mask if n == "enc0" else 1)
        live = w0 != 0
        k = (m.weight.detach() != 0) & live
        assert torch.equal(m.weight.detach()[k], before[n][k])      # kept weights unchanged
        if mode == "layer":
            assert 1 - k.sum() / live.sum() == pytest.approx(0.8, abs=0.02)
            assert w0[k].abs().min() >= w0[live & ~k].abs().max()
        kept.append(w0[k].abs())
        cut.append(w0[live & ~k].abs())
    if mode == "global":
        assert torch.cat(kept).min() >= torch.cat(cut).max()


def test_current_based_memory_l2mu_is_snntorch_and_edgebrain_alike(tmp_path):
    """The L2MU ablation with a current-based memory population: the written-out step equals snnTorch's own
    Synaptic module, and the network's output spikes equal edgebrain's (float) after its NIR export (CubaLIF)."""
    import common as C
    import har as H
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    pop = C.cuba(8, alpha=0.6, beta=0.8, threshold=0.7)
    cur = torch.randn(50, 3, 8) * 0.8
    syn = mem = torch.zeros(3, 8)
    syn_ref, mem_ref = torch.zeros(3, 8), torch.zeros(3, 8)
    ref = snn.Synaptic(alpha=pop.alpha.detach(), beta=pop.beta.detach(), threshold=pop.threshold.detach(),
                       reset_mechanism="subtract")
    for t in range(50):
        s, syn, mem = C.synaptic_step(pop, cur[t], syn, mem)
        s_ref, syn_ref, mem_ref = ref(cur[t], syn_ref, mem_ref)
        assert torch.equal(s, s_ref) and torch.allclose(mem, mem_ref, atol=1e-6)
    net = H.L2MU(mem_neuron="cuba")
    x = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.tensor(x)[:, None])[:, 0].numpy()
    m = C.to_edgebrain(net.export(), tmp_path / "cuba.nir")
    assert "CubaLIF" in {type(m.graph.nodes[n]).__name__ for n in m.graph.order}
    got, _ = m.session("float").run(x)
    assert want.sum() > 0 and np.array_equal(np.asarray(got), want)
