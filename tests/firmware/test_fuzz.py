"""The board link's C code fuzzed with libFuzzer under AddressSanitizer and UndefinedBehaviorSanitizer
(firmware/fuzz, ``make -C firmware/fuzz run``): the frame receiver (eb_rx) checked against a
reference decoder, the whole device loop (eb_device_feed) on raw wire bytes and on well-framed
message records that reach the blob loader and the step paths, and the blob loader (eb_model_load)
with every model it accepts stepped. The seed corpora are written at build time from real frames
and a real model blob. Each past finding is replayed from firmware/fuzz/regressions/ first.

At least 1,000,000 executions in all, zero findings. Skipped, saying why, when clang's libFuzzer
is missing, unless EDGEBRAIN_REQUIRE_FUZZ=1 (then a missing fuzzer fails). EDGEBRAIN_FUZZ_RUNS
scales the run (the executions of the receiver harness; the others run a fixed share of it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

FUZZ = REPO / "firmware" / "fuzz"
HARNESSES = ("rx", "device", "blob")
MIN_TOTAL = 1_000_000


def _need(what: str) -> None:
    if os.environ.get("EDGEBRAIN_REQUIRE_FUZZ") == "1":
        pytest.fail(f"EDGEBRAIN_REQUIRE_FUZZ=1 but {what}")
    pytest.skip(what)


@pytest.fixture(scope="module")
def fuzz_build(tmp_path_factory):
    """A build directory where clang's libFuzzer is known to link (checked on a trivial target)."""
    clang = os.environ.get("CLANG", "clang")
    if shutil.which(clang) is None:
        _need(f"{clang} not found (Debian: apt-get install clang; tools/install-test-deps.sh installs it)")
    if shutil.which("make") is None:
        _need("make not found")
    d = tmp_path_factory.mktemp("fuzz")
    probe = d / "probe.c"
    probe.write_text("#include <stdint.h>\n#include <stddef.h>\n"
                     "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
    r = subprocess.run([clang, "-fsanitize=fuzzer,address,undefined", "-o", str(d / "probe"), str(probe)],
                       capture_output=True, text=True, timeout=120, check=False)
    if r.returncode:
        _need(f"{clang} cannot build a libFuzzer target with ASan/UBSan (libclang-rt / libFuzzer missing): "
              f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return clang, d


def make(target: str, build, clang: str, timeout: float, **vars_) -> subprocess.CompletedProcess:
    args = ["make", "-C", str(FUZZ), target, f"BUILD={build}", f"CLANG={clang}", f"PYTHON={sys.executable}",
            *(f"{k}={v}" for k, v in vars_.items())]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def test_past_findings_are_replayed_and_pass(fuzz_build):
    clang, d = fuzz_build
    r = make("regress", d / "build", clang, 600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    for h in ("rx", "blob"):
        n = len(list((FUZZ / "regressions" / h).iterdir()))
        assert n >= 1 and f"regressions {h}: {n} replayed, 0 crashes" in r.stdout


def test_a_million_executions_without_a_finding(fuzz_build):
    clang, d = fuzz_build
    runs = int(os.environ.get("EDGEBRAIN_FUZZ_RUNS", "1000000"))
    build = d / "build"
    # the device loop and the loader are slower (a whole model load per input): a share of the runs
    r = make("run", build, clang, 900, RUNS=runs, DEVICE_RUNS=max(runs // 100, 1000), BLOB_RUNS=max(runs // 20, 1000),
             MAX_TIME=400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    counts = {}
    for h in HARNESSES:
        log = (build / f"fuzz_{h}.log").read_text(errors="replace")
        n = re.findall(r"^stat::number_of_executed_units: *(\d+)", log, re.MULTILINE)
        assert n, f"{h}: no execution count in its log"
        counts[h] = int(n[-1])
        assert f"fuzz {h}: {counts[h]} executions, 0 crashes" in out
        assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log and "deadly signal" not in log
        assert not list((build / "crashes").glob(f"{h}-*"))
    total = sum(counts.values())
    assert f"fuzz total: {total} executions, 0 crashes" in out
    print(f"fuzz executions: {counts}, total {total}")
    if runs >= MIN_TOTAL:
        assert counts["rx"] >= MIN_TOTAL and total >= MIN_TOTAL, counts
