"""Fixtures of the event-reader and binner tests (real sample files, derived formats, damage cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebrain.stream.sources.events import write_events_npy

from tests.stream.sources.events._helpers import (FORMATS, NMNIST, _data_start, absolute, aedat4_events, decode,
                                                  need_file, nmnist_events, write_aedat2_davis, write_aedat31,
                                                  write_aedat_dvs128, write_evt21)


@pytest.fixture(scope="module")
def fmt(datasets) -> Path:
    return need_file(datasets, FORMATS)


@pytest.fixture(scope="module")
def derived(fmt, tmp_path_factory):
    """Fixture files derived from real events, and the events they hold."""
    d = tmp_path_factory.mktemp("derived")
    out = {}
    davis = aedat4_events(fmt / "davis346.aedat4")[:40000]
    out["davis"] = davis
    out["aedat2_t0"] = 2 ** 32 - 60_000  # the u32 time wraps 60 ms into the recording
    out["aedat2"] = write_aedat2_davis(d / "davis346.aedat", davis, (346, 260), out["aedat2_t0"])
    # the same with real IMU samples (7 words each) and APS reads from a real frame merged in
    import aedat

    imu_words, aps_words = [], []
    t_first = int(davis["t"][0])
    for pk in aedat.Decoder(str(fmt / "davis346.aedat4")):
        if "imus" in pk:
            for s in pk["imus"][:40]:
                vals = [s["accelerometer_x"], s["accelerometer_y"], s["accelerometer_z"], s["temperature"],
                        s["gyroscope_x"], s["gyroscope_y"], s["gyroscope_z"]]
                for k, v in enumerate(vals):
                    imu_words.append((int(s["t"]) - t_first, 1 << 31 | k << 28 | (int(v * 1000) & 0xFFFF) << 12 | 3 << 10))
        if "frame" in pk and not aps_words:
            px = pk["frame"]["pixels"]
            for i in range(300):
                yy, xx = divmod(i, 346)
                aps_words.append((int(pk["frame"]["t"]) - t_first,
                                  1 << 31 | (259 - yy) << 22 | xx << 12 | 1 << 10 | int(px[yy, xx]) * 4))
    imu_words = [w for w in imu_words if 0 <= w[0] <= int(davis["t"][-1]) - t_first]
    aps_words = [w for w in aps_words if 0 <= w[0] <= int(davis["t"][-1]) - t_first]
    out["n_imu"], out["n_aps"] = len(imu_words), len(aps_words)
    out["aedat2_imu"] = write_aedat2_davis(d / "davis346_imu.aedat", davis, (346, 260), out["aedat2_t0"],
                                           imu_words + aps_words)
    nm = nmnist_events(fmt / "sample_nmnist.bin")
    out["nmnist"] = nm
    out["dvs128"] = write_aedat_dvs128(d / "dvs128.aedat", nm)
    out["dvs128_tonic"] = write_aedat_dvs128(d / "dvs128_tonic.aedat", nm, order="tonic")
    out["aedat1"] = write_aedat_dvs128(d / "dvs128_v1.aedat", nm, version="1.0")
    out["aedat31_tonic"] = write_aedat31(d / "davis346_tonic.aedat", davis, t0=0)
    out["aedat31_t0"] = 2 ** 31 - 16_001  # the 31-bit time overflows inside the recording
    small = davis[:20000]
    out["aedat31_src"] = small
    out["aedat31"] = write_aedat31(d / "davis346_31.aedat", small, t0=out["aedat31_t0"], per_packet=2000,
                                   extras=True)
    from expelliarmus import Wizard

    e2 = Wizard(encoding="EVT2", fpath=str(fmt / "evt2.raw")).read()[:200000]
    out["evt2_src"] = e2
    out["evt21"] = write_evt21(d / "evt21.raw", e2)
    out["evt21_legacy"] = write_evt21(d / "evt21_legacy.raw", e2, legacy=True)
    out["evt21_bare"] = write_evt21(d / "evt21_bare.raw", e2, legacy=True, header=False)
    return out


@pytest.fixture(scope="module")
def cases(fmt, datasets, derived, tmp_path_factory):
    d = tmp_path_factory.mktemp("cases")
    paths = {
        "aedat4": fmt / "davis346.aedat4",
        "evt3": fmt / "evt3_sample.raw",
        "evt2": fmt / "evt2.raw",
        "dat": fmt / "sample_ncars.dat",
        "nmnist": fmt / "sample_nmnist.bin",
        "bs2": need_file(datasets, NMNIST + "/60001.bs2"),
        "aedat2": derived["aedat2"],
        "aedat3": derived["aedat31_tonic"],
        "evt21": derived["evt21"],
    }
    ev, _ = decode(fmt / "sample_nmnist.bin")
    write_events_npy(d / "nmnist.npy", [ev])
    paths["npy"] = d / "nmnist.npy"
    out = {}
    for k, p in paths.items():
        ev, src = decode(p)
        out[k] = dict(path=Path(p), events=ev, abs=absolute(ev, src), start=_data_start(src), size=Path(p).stat().st_size,
                      sensor=src.info.sensor_size)
    out["dir"] = d
    return out


@pytest.fixture(scope="module")
def nm_events(fmt):
    return decode(fmt / "sample_nmnist.bin")
