"""The fixture recordings in tests/data (tools/make_fixtures.py, tests/data/README.md): the copies are the
real files (the dataset manifest's SHA-256, and the full datasets' bytes when present), the generated
files are what the script makes from those copies, byte for byte, and the facts the tests compare the
generated files with hold for what an independent decoder reads from them."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from tests.conftest import FIXTURES, REPO, find_full_datasets, fixture_facts

spec = importlib.util.spec_from_file_location("make_fixtures", REPO / "tools" / "make_fixtures.py")
mf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mf)


def test_every_file_is_listed_and_unchanged():
    facts = fixture_facts()
    listed = set(facts["copied"]) | set(facts["cut"]) | set(facts["generated"])
    # (every folder has a README.md naming its files' source and licence: documentation, not data)
    present = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
               if p.is_file() and p.name != "README.md"} - {"fixtures.json"}
    assert present == listed, f"not listed: {sorted(present - listed)}; missing: {sorted(listed - present)}"
    for rel, e in {**facts["copied"], **facts["cut"]}.items():
        data = (FIXTURES / rel).read_bytes()
        assert (len(data), mf.sha256(data)) == (e["bytes"], e["sha256"]), rel
    for rel, e in facts["generated"].items():
        assert mf.sha256((FIXTURES / rel).read_bytes()) == e["sha256"], rel


def test_every_folder_has_a_readme_naming_each_file_its_source_and_licence():
    folders = {p.parent for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md"}
    for d in sorted(folders):
        readme = d / "README.md"
        assert readme.is_file(), f"{d} has recordings and no README.md"
        text = readme.read_text()
        assert "source" in text.lower() and "licen" in text.lower(), f"{readme} names no source or licence"
        unnamed = [p.name for p in d.iterdir() if p.is_file() and p.name != "README.md" and p.name not in text]
        assert not unnamed, f"{readme} does not name {unnamed}"


def test_copies_are_the_real_recordings():
    """Each copy of a zoo dataset file has the size and SHA-256 that edgebrain's download manifest
    records for the original (davis346.aedat4: the SHA-256 the format notes give for aestream's file),
    and where the full datasets are present the copies are their bytes."""
    root, _ = find_full_datasets()
    n = 0
    for rel in mf.copied_files():
        data = (FIXTURES / rel).read_bytes()
        want = mf.manifest_entry(rel)
        if rel == mf.DAVIS:
            assert mf.sha256(data).startswith(mf.DAVIS_SHA256)
            continue
        assert want is not None and (len(data), mf.sha256(data)) == want, rel
        assert root is None or data == (root / rel).read_bytes(), rel
        n += 1
    assert n == len(mf.copied_files()) - 1 > 150
    # the label lists: the original's lines for the samples copied, nothing else
    for name, ids in (("train1K.txt", mf.NMNIST_TRAIN), ("test100.txt", mf.NMNIST_TEST)):
        lines = (FIXTURES / mf.NMNIST / name).read_text().splitlines()
        assert lines[0] == "#sample #class" and [int(ln.split()[0]) for ln in lines[1:]] == ids
        assert all((FIXTURES / mf.NMNIST / f"{i}.bs2").is_file() for i in ids)
        if root is not None:
            full = (root / mf.NMNIST / name).read_text().splitlines()
            assert lines[0] == full[0] and set(lines[1:]) <= set(full[1:])


def test_generated_files_are_reproducible(tmp_path):
    """tools/make_fixtures.py --generate-only, run on a copy of the fixture set, writes the same
    generated files and the same facts (the LZ4-packed AEDAT 4 file byte for byte when the LZ4
    library is the one that wrote it, else packet for packet)."""
    import lz4

    out = tmp_path / "data"
    shutil.copytree(FIXTURES, out)
    for rel in mf.GENERATED:
        (out / rel).unlink()
    mf.main(["--generate-only", "--out", str(out)])
    again = json.loads((out / "fixtures.json").read_text())
    facts = fixture_facts()
    assert again["copied"] == facts["copied"] and again["cut"] == facts["cut"]
    for rel in mf.GENERATED:
        a, b = (FIXTURES / rel).read_bytes(), (out / rel).read_bytes()
        if rel.endswith(".aedat4") and a != b:
            assert lz4.library_version_number() != facts["generated"][rel]["lz4_library"], (
                f"{rel}: generated again with the same LZ4 library, the bytes differ")
            assert _aedat4_content(a) == _aedat4_content(b), f"{rel}: the packets differ"
            continue
        assert a == b, f"{rel}: tools/make_fixtures.py --generate-only does not rebuild it byte for byte"
        assert again["generated"][rel] == facts["generated"][rel], rel


def test_lauscher_reference_is_lauschers_output(tmp_path):
    """reference.npz holds lauscher's spikes for the generated FLAC (70 channels, times within it);
    where lauscher is installed, running it again (seeded) gives the same spikes."""
    f = fixture_facts()["generated"][mf.LAUSCHER_REF]
    a = np.load(FIXTURES / mf.LAUSCHER_REF)["arr_0"]
    duration = fixture_facts()["generated"]["audio/lauscher/spoken_digit.flac"]["samples"] / 48000
    assert a.shape == (2, f["spikes"]) and 0 <= a[0].min() and a[0].max() < duration
    assert set(np.unique(a[1])) <= set(range(f["channels"])) and len(np.unique(a[1])) > f["channels"] // 2
    if importlib.util.find_spec("lauscher") is not None:
        out = tmp_path / "data"
        shutil.copytree(FIXTURES, out)
        mf.make_lauscher_reference(out)
        assert np.array_equal(np.load(out / mf.LAUSCHER_REF)["arr_0"], a)


def _aedat4_content(data: bytes):
    import struct

    import lz4.frame

    n = struct.unpack_from("<I", data, 14)[0]
    pos, out = 18 + n, []
    while pos < len(data):
        sid, size = struct.unpack_from("<ii", data, pos)
        out.append((sid, lz4.frame.decompress(data[pos + 8:pos + 8 + size])))
        pos += 8 + size
    return out[:-1]   # the data table's byte offsets follow the compressed sizes


@pytest.mark.parametrize("rel", sorted(mf.GENERATED))
def test_generated_facts_hold_for_independent_decoders(rel):
    """What the tests compare each generated file with (fixtures.json, taken from the source events)
    is what an independent decoder reads from the file."""
    f = fixture_facts()["generated"][rel]
    path = FIXTURES / rel
    if rel.endswith("evt3_sample.raw"):
        import evt3

        e = evt3.decode_file(str(path))
        got = np.stack([e.x, e.y, e.timestamp, e.polarity], 1).astype(np.int64)
        assert (e.sensor_width, e.sensor_height) == tuple(f["sensor_size"])
    elif rel.endswith(("evt2.raw", ".dat")):
        from expelliarmus import Wizard

        a = Wizard(encoding="EVT2" if rel.endswith(".raw") else "DAT", fpath=str(path)).read()
        got = np.stack([a["x"], a["y"], a["t"], a["p"]], 1).astype(np.int64)
    elif rel.endswith(".aedat4"):
        import aedat

        packets = list(aedat.Decoder(str(path)))
        ev = np.concatenate([p["events"] for p in packets if "events" in p])
        got = np.stack([ev["x"], ev["y"], ev["t"], ev["on"]], 1).astype(np.int64)
        assert sum("imus" in p for p in packets) == f["imu_packets"]
        assert sum("events" in p for p in packets) == f["event_packets"]
    elif rel.endswith(".bin"):
        import tonic.io

        a = tonic.io.read_mnist_file(str(path), dtype=tonic.io.events_struct)
        got = np.stack([a["x"], a["y"], a["t"], a["p"]], 1).astype(np.int64)
        assert (got[:, 0].max(), got[:, 1].max()) == (f["max_x"], f["max_y"])
    else:
        import soundfile as sf

        x, rate = sf.read(str(path), dtype="int16")
        assert (rate, len(x), 1) == (f["rate"], f["samples"], f["channels"])
        wav, r8 = sf.read(str(FIXTURES / mf.FLAC_SOURCE), dtype="int16")
        assert r8 == 8000 and np.array_equal(x[::6], wav)       # every sixth sample is the recording's own
        return
    assert len(got) == f["events"]
    assert [tuple(r) for r in got[:len(f["first_events"])].tolist()] == [tuple(e) for e in f["first_events"]]
    if "last_t" in f:
        assert got[-1, 2] == f["last_t"]
    if "last_t_relative" in f:
        assert got[-1, 2] - got[0, 2] == f["last_t_relative"]
