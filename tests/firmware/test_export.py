"""``edgebrain firmware export``: every zoo model exported for a target it fits, the folder compiled
with the host C compiler (model_blob.c + the runtime + a test main, strict warnings) and run on a
real recording, its outputs equal to the Numba integer session's bit for bit; and the refusals (a
model too big for the target, an op the C runtime lacks, a float model, a non-empty folder), each
one error line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgebrain import blob as B
from edgebrain import devices as D
from edgebrain.apps import firmware as FW
from edgebrain.cbuild import SOURCE_DIR
from edgebrain.errors import ModelError
from edgebrain.model import Model
from tests.conftest import REPO
from tests.firmware import cases
from tests.firmware.conftest import need_compiler

#: zoo model -> a target it fits (RAM and flash), and steps of its recording to run
TARGETS = {"kws": ("rp2040", 60), "har-lif": ("stm32f446", 80), "har-l2mu": ("nrf52840", 80),
           "basicmotions": ("rp2350", 80), "nmnist": ("stm32h743", 12)}

#: reads T steps of float32 inputs, runs them, writes the float32 outputs; checks the header's
#: macros against what the runtime computes from the loaded blob
TEST_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "eb_runtime.h"
#include "model.h"

static eb_model model;
static eb_session sess;
static int32_t state[MODEL_STATE_WORDS];
static int32_t act[MODEL_ACT_WORDS];
static int64_t scratch[MODEL_SCRATCH_WORDS];
static float x[MODEL_N_IN], y[MODEL_N_OUT];
static const unsigned input_shape[] = MODEL_INPUT_SHAPE;
#if MODEL_N_CLASSES
static const char *const classes[] = MODEL_CLASS_NAMES;
#endif

int main(int argc, char **argv) {
    eb_error err;
    FILE *in, *out;
    unsigned k, n = 1;
    if (argc != 3) return 90;
    if (((uintptr_t)model_blob) % 8u) return 91;
    if (eb_model_load(&model, model_blob, model_blob_len, &err) != EB_OK) return 92;
    if (eb_state_bytes(&model) != MODEL_STATE_BYTES || eb_act_bytes(&model) != MODEL_ACT_BYTES ||
        eb_scratch_bytes(&model) != MODEL_SCRATCH_BYTES || model.n_in != MODEL_N_IN || model.n_out != MODEL_N_OUT ||
        model_blob_len != MODEL_BLOB_LEN || MODEL_BLOB_FORMAT_VERSION != EB_FORMAT_VERSION ||
        strcmp(MODEL_EDGEBRAIN_VERSION, EB_EDGEBRAIN_VERSION) != 0)
        return 93;
    for (k = 0; k < MODEL_INPUT_NDIM; k++) n *= input_shape[k];
    if (n != MODEL_N_IN) return 94;
#if MODEL_N_CLASSES
    if (MODEL_N_CLASSES != MODEL_OUTPUT0_SIZE || strlen(classes[0]) == 0) return 95;
#endif
    if (eb_session_init(&sess, &model, state, sizeof state, act, sizeof act, scratch, sizeof scratch) != EB_OK)
        return 96;
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out) return 97;
    while (fread(x, sizeof x, 1, in) == 1) {
        if (eb_step(&sess, x, y) != EB_OK) return 98;
        fwrite(y, sizeof y, 1, out);
    }
    fclose(in);
    fclose(out);
    return 0;
}
"""

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off", "-O2"]


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """``edgebrain firmware ...`` in a new process: the command group as the command line runs it."""
    code = ("import sys, typer\n"
            "from edgebrain import cli\n"
            "from edgebrain.cli_common import run_app\n"
            "from edgebrain.cli_groups import firmware_app\n"
            "app = cli.app\n"
            "if not any(g.name == 'firmware' for g in app.registered_groups):\n"
            "    app.add_typer(firmware_app, name='firmware')\n"
            "run_app(app, sys.argv[1:])\n")
    return subprocess.run([sys.executable, "-c", code, "firmware", "export", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, "COLUMNS": "200"})


def build(folder, tmp_path, extra=()) -> str:
    cc = need_compiler()
    main = tmp_path / "test_main.c"
    main.write_text(TEST_MAIN)
    exe = tmp_path / "model_test"
    srcs = [str(p) for p in sorted(SOURCE_DIR.glob("*.c"))]
    r = subprocess.run([*cc, *STRICT, *extra, "-I", str(SOURCE_DIR), "-I", str(folder), "-o", str(exe), str(main),
                        str(folder / "model_blob.c"), *srcs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    return str(exe)


def run_c(exe, xs, tmp_path, n_out) -> np.ndarray:
    xin, yout = tmp_path / "xs.f32", tmp_path / "ys.f32"
    np.ascontiguousarray(xs, np.float32).reshape(len(xs), -1).tofile(xin)
    r = subprocess.run([exe, str(xin), str(yout)], capture_output=True, text=True)
    assert r.returncode == 0, f"test main exited {r.returncode}"
    return np.fromfile(yout, np.float32).reshape(len(xs), n_out)


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_zoo_model_exports_compiles_and_matches_numba_bit_for_bit(datasets, tmp_path, name):
    target, steps = TARGETS[name]
    got = cases.zoo_input(name, datasets)
    if got is None:
        pytest.skip(f"recordings {cases.ZOO[name][0]} not all found under {datasets}")
    model, xs = got
    xs = xs[:steps]
    out = tmp_path / "out"
    r = cli(f"zoo:{name}", "-o", str(out), "--target", target, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert sorted(os.listdir(out)) == sorted(FW.FILES)
    data = B.pack(model.program("int"))
    assert res["sizes"]["blob"] == len(data) and res["ram"]["fits"] and res["flash"]["fits"]
    assert res["runtime"]["source"] == "measured"
    h = (out / "model.h").read_text()
    assert f"#define MODEL_BLOB_LEN {len(data)}u" in h
    labels = model.graph.meta["stream"]["labels"]
    assert f"#define MODEL_N_CLASSES {len(labels)}u" in h and f'"{labels[-1]}"' in h
    c = (out / "model_blob.c").read_text()
    assert "const uint8_t model_blob[MODEL_BLOB_LEN]" in c and "__attribute__((aligned(8)))" in h
    exe = build(out, tmp_path)
    ys = run_c(exe, xs, tmp_path, res["n_out"])
    ref, _ = model.session("int").run(xs)
    ref = np.asarray(ref, np.float32).reshape(len(xs), -1)
    np.testing.assert_array_equal(ys.view(np.uint32), ref.view(np.uint32))
    if name == "har-lif":  # the C99 fallback without any alignment attribute: a union with uint64_t
        exe = build(out, tmp_path, ["-DMODEL_BLOB_PORTABLE"])
        np.testing.assert_array_equal(run_c(exe, xs, tmp_path, res["n_out"]).view(np.uint32), ref.view(np.uint32))


def test_a_model_too_big_for_the_target_is_refused_with_the_overflow_per_buffer(tmp_path):
    out = tmp_path / "nmnist"
    r = cli("zoo:nmnist", "-o", str(out), "--target", "stm32f446")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: zoo:nmnist does not fit stm32f446"), r.stderr
    msg = lines[0]
    for part in ("flash needs", "RAM needs", "too much", "blob ", "runtime code", "state ", "act ", "scratch ",
                 "nothing written"):
        assert part in msg, (part, msg)
    sizes = json.loads((REPO / "edgebrain" / "data" / "firmware_footprint.json").read_text())["zoo_blobs"]["zoo:nmnist"]
    over = sizes["blob"] + json.loads((REPO / "edgebrain" / "data" / "firmware_footprint.json").read_text()) \
        ["targets"]["m4f"]["text"] - 512 * 1024
    assert f"({over} B) too much" in msg
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing, not even a temporary folder


def test_an_op_the_c_runtime_lacks_is_named(tmp_path):
    """A runtime without the convolution kernel (a copy of the real one, its dispatch of conv rows
    removed): exporting the convolutional zoo model names the node and the op, and writes nothing."""
    rt = tmp_path / "runtime"
    shutil.copytree(SOURCE_DIR, rt)
    src = (rt / "eb_runtime.c").read_text()
    assert "case EB_OP_CONV:" in src
    (rt / "eb_runtime.c").write_text(src.replace("case EB_OP_CONV:", "/* conv removed */"))
    assert "CONV" not in FW.c_ops(rt) and "CONV" in FW.c_ops()
    model = Model.load("zoo:nmnist")
    with pytest.raises(ModelError) as e:
        FW.export(model, D.load("stm32h743"), str(tmp_path / "out"), runtime_dir=rt)
    msg = str(e.value)
    conv = next(n for n in model.graph.order if model.graph.nodes[n].kind.startswith("Conv"))
    assert f"node '{conv}'" in msg and "op conv, which the C runtime does not implement" in msg
    assert not (tmp_path / "out").exists()


def test_a_neuron_flag_the_c_runtime_lacks_is_named():
    from edgebrain.kernels import layout as L

    model = Model.load("zoo:har-lif")
    prog = model.program("int")
    bad = prog.prog.copy()
    r = int(np.flatnonzero(bad[:, L.OP] == L.OP_NEURON)[0])
    bad[r, L.NEURON_FLAGS] |= 1 << 20  # a bit no kernel defines
    prog2 = type(prog)(**{**prog.__dict__, "prog": bad})
    with pytest.raises(ModelError, match=rf"node '{prog.instr_node[r]}' \(\w+\): neuron flag\(s\) 0x100000 not implemented"):
        FW.check_c_support(prog2, model.graph)
    FW.check_c_support(prog, model.graph)  # the real program passes


def test_a_float_model_is_refused_in_one_line(tmp_path):
    nir = next((REPO / "edgebrain" / "examples").glob("*.nir"))
    r = cli(str(nir), "-o", str(tmp_path / "out"), "--target", "rp2040")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "float model without integer parameters" in r.stderr
    assert "--quantize" in r.stderr and not (tmp_path / "out").exists()


def test_a_non_empty_folder_is_kept_unless_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    r = cli("zoo:basicmotions", "-o", str(out), "--target", "rp2040")
    assert r.returncode == 2 and "not empty; pass --force" in r.stderr and r.stderr.count("\n") == 1
    assert os.listdir(out) == ["mine.txt"]
    r = cli("zoo:basicmotions", "-o", str(out), "--target", "rp2040", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == sorted(FW.FILES)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary or old folder left beside it
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("zoo:basicmotions", "-o", str(empty), "--target", "rp2040").returncode == 0  # an empty folder is fine
    (tmp_path / "file").write_text("")
    r = cli("zoo:basicmotions", "-o", str(tmp_path / "file"), "--target", "rp2040", "--force")
    assert r.returncode == 2 and "is not a folder" in r.stderr


def test_text_output_and_json_sizes(tmp_path):
    r = cli("zoo:kws", "-o", str(tmp_path / "a"), "--target", "stm32h743")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exported zoo:kws for stm32h743") and "runtime footprint measured" in r.stdout
    r = cli("zoo:kws", "-o", str(tmp_path / "b"), "--target", "esp32s3", "--json")
    res = json.loads(r.stdout)
    assert res["runtime"]["source"] == "estimate" and "Xtensa" in res["runtime"]["description"]
    assert set(res["sizes"]) == {"blob", "state", "act", "scratch"}
    assert res["edgebrain_version"] and res["format_version"] == B.FORMAT_VERSION
    assert res["classes"] == [str(k) for k in range(10)]


def test_a_target_that_is_not_a_microcontroller_is_refused(tmp_path):
    r = cli("zoo:kws", "-o", str(tmp_path / "out"), "--target", "rpi5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "rpi5 is not a microcontroller" in r.stderr and "stm32f446" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_tiny_target_overflows_flash_only_and_says_the_runtime_is_an_estimate(tmp_path):
    """A profile of the user's own (a .toml path): 64 KiB of flash holds kws's blob but not the
    runtime beside it; the line names flash alone, by how much, and the estimate it assumed."""
    text = (REPO / "devices" / "rp2040.toml").read_text()
    text = text.replace('name = "rp2040"', 'name = "tiny-m0"').replace('aliases = ["pico", "rpi-pico"]', "aliases = []")
    text = text.replace("value = 2097152", "value = 65536")
    prof = tmp_path / "tiny-m0.toml"
    prof.write_text(text)
    out = tmp_path / "out"
    r = cli("zoo:kws", "-o", str(out), "--target", str(prof))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    blob = len(B.pack(Model.load("zoo:kws").program("int")))
    over = blob + 8192 - 65536  # the profile's estimated 8 KiB of runtime code
    assert "zoo:kws does not fit tiny-m0: flash needs" in r.stderr and f"({over} B) too much" in r.stderr
    assert "RAM needs" not in r.stderr and "[runtime estimate]" in r.stderr
    assert not out.exists()


def _folder(path) -> dict:
    return {n: (path / n).read_bytes() for n in sorted(os.listdir(path))}


def _export_proc(out, model, *extra):
    return subprocess.Popen([sys.executable, "-m", "edgebrain", "firmware", "export", model, "-o", str(out),
                             "--target", "stm32h743", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=REPO)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_an_export_killed_at_any_moment_leaves_the_old_folder_or_the_new_one_never_half(tmp_path, sig):
    """Replacing an export (--force) and killing the process at 12 moments spread over its run:
    each time the folder is wholly the old export or wholly the new one. SIGTERM removes the
    temporary folder on the way out; one left by SIGKILL is removed by the next export."""
    import signal
    import time

    old_ref, new_ref = tmp_path / "old_ref", tmp_path / "new_ref"
    assert cli("zoo:kws", "-o", str(old_ref), "--target", "stm32h743").returncode == 0
    assert cli("zoo:har-lif", "-o", str(new_ref), "--target", "stm32h743").returncode == 0
    old, new = _folder(old_ref), _folder(new_ref)
    assert old != new
    t0 = time.perf_counter()
    r = _export_proc(tmp_path / "probe", "zoo:har-lif")
    r.wait(60)
    span = time.perf_counter() - t0  # how long one export takes here, start-up included
    work = tmp_path / "work"
    seen = set()
    for k in range(12):
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(old_ref, work)
        p = _export_proc(work, "zoo:har-lif", "--force")
        time.sleep(span * k / 11)
        p.send_signal(getattr(signal, sig))
        _, err = p.communicate(timeout=60)
        got = _folder(work)
        assert got in (old, new), f"kill after {span * k / 11:.3f} s left a mixed folder: {sorted(got)}"
        seen.add("new" if got == new else "old")
        if sig == "SIGTERM":
            assert b"Traceback" not in err
            assert sorted(os.listdir(tmp_path)) == sorted(["old_ref", "new_ref", "probe", "work"]), \
                f"kill after {span * k / 11:.3f} s left {sorted(os.listdir(tmp_path))}"
    assert "old" in seen  # the earliest kill lands before the swap
    # whatever SIGKILL left beside the folder, the next export removes (its process is gone)
    assert cli("zoo:har-lif", "-o", str(work), "--target", "stm32h743", "--force").returncode == 0
    assert _folder(work) == new
    assert sorted(os.listdir(tmp_path)) == sorted(["old_ref", "new_ref", "probe", "work"])
