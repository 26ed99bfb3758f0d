"""edgebrain.arrays: the time-major parser's shapes and messages, and the safe .npy loader, against
hand-written expectations (the CLI-level cases are in tests/test_bad_input.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.arrays import load_array, time_major
from edgebrain.errors import InputError


@pytest.mark.parametrize("shape, batch", [
    ((5, 3), None),          # (T, *input): one sequence
    ((5, 1, 3), 1),          # (T, B, *input), B = 1
    ((5, 4, 3), 4),
    ((0, 3), None),          # an empty sequence is still a sequence
    ((5, 0, 3), 0),          # an empty batch is reported as B = 0, not taken for unbatched
])
def test_time_major_any_batch(shape, batch):
    assert time_major(np.zeros(shape), (3,)) == batch


def test_time_major_multidimensional_input():
    assert time_major(np.zeros((7, 2, 8, 8)), (2, 8, 8)) is None
    assert time_major(np.zeros((7, 5, 2, 8, 8)), (2, 8, 8)) == 5


@pytest.mark.parametrize("shape", [(5,), (5, 4), (5, 2, 4), (3,), ()])
def test_time_major_wrong_shape_message(shape):
    with pytest.raises(InputError) as e:
        time_major(np.zeros(shape), (3,), file="x.npy")
    assert str(e.value) == (f"x.npy: array has shape {shape}; expected (T, *(3,)) or (T, B, *(3,)) "
                            "(time-major)")


def test_time_major_fixed_batch_like_a_session():
    assert time_major(np.zeros((5, 3)), (3,), batch=1) is None
    assert time_major(np.zeros((5, 1, 3)), (3,), batch=1) == 1
    assert time_major(np.zeros((5, 2, 3)), (3,), batch=2) == 2
    with pytest.raises(InputError, match=r"^input sequence has shape \(5, 3\); expected \(T, \*\(3,\)\) or "
                                         r"\(T, 2, \*\(3,\)\) \(time-major\)$"):
        time_major(np.zeros((5, 3)), (3,), batch=2, what="input sequence")  # unbatched needs batch 1
    with pytest.raises(InputError, match=r"\(5, 4, 3\)"):
        time_major(np.zeros((5, 4, 3)), (3,), batch=2)


def test_time_major_note_can_be_dropped():
    with pytest.raises(InputError) as e:
        time_major(np.zeros((5, 4)), [3], what="calibration data", note="")
    assert str(e.value) == "calibration data has shape (5, 4); expected (T, *(3,)) or (T, B, *(3,))"


def test_load_array_npy_npz_and_refusals(tmp_path):
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "one.npz", x=a)
    np.savez(tmp_path / "two.npz", x=a, y=a)
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    np.save(tmp_path / "o.npy", np.array([1, None], dtype=object), allow_pickle=True)
    assert np.array_equal(load_array(str(tmp_path / "a.npy"), "input"), a)
    assert np.array_equal(load_array(str(tmp_path / "one.npz"), "input"), a)
    cases = {"two.npz": "found arrays ['x', 'y']", "s.npy": "expected numbers", "o.npy": "pickle",
             "missing.npy": "input file not found"}
    for name, msg in cases.items():
        with pytest.raises(InputError) as e:
            load_array(str(tmp_path / name), "input")
        assert msg in str(e.value) and str(e.value).startswith(str(tmp_path / name))
    blob = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "long.npy").write_bytes(blob + b"xx")
    with pytest.raises(InputError, match="2 unexpected bytes after the array data"):
        load_array(str(tmp_path / "long.npy"), "input")
    (tmp_path / "short.npy").write_bytes(blob[:-2])
    with pytest.raises(InputError, match=r"shape \(3, 4\) \(24 bytes .*22 bytes of data \(truncated\?\)"):
        load_array(str(tmp_path / "short.npy"), "input")
