"""The bundle ``deploy`` ships: everything the target needs, each file named in a manifest with its SHA-256.

* ``edgebrain-<version>-py3-none-any.whl``: built from this checkout (``pip wheel --no-deps``, with fixed
  timestamps, so the same source gives the same bytes), kept in the user cache by a hash of the source;
  or the wheel given with ``--wheel``;
* ``model.ebm``: the model (a ``zoo:NAME`` is the zoo's file);
* ``device.toml``: the device profile, when there is one;
* ``requirements.txt``: edgebrain's core dependencies (the wheel's own ``Requires-Dist``, for the
  target's Python) pinned to the versions installed here, plus ``llvmlite`` (Numba's compiler), plus
  what a ``--service``'s sinks import (``paho-mqtt`` for ``mqtt:``); where
  the version installed here does not support the target's Python, the tested pin of
  :data:`FALLBACK_PINS` for that Python instead (NumPy 2.2.6 on Python 3.10);
* ``smoke_input.npy`` and ``expected.json``: the smoke test's input (the first steps of a real
  recording through the model's own encoder, or a seeded input when no recording is given) and
  its hashes computed here (:mod:`.smoke`);
* ``wheels/`` with ``--offline``: every dependency as a binary wheel for the target's platform;
* ``manifest.json``: all of the above and their SHA-256; its own SHA-256 is the release id.

Nothing secret goes in: no local paths (the recording and model are named by file name only), no keys.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from ..errors import InputError
from .smoke import run as smoke_run
from .target import DeployError

#: steps of the recording the smoke test runs (a few seconds of sensor time for the IMU models)
SMOKE_STEPS = 400
#: a fixed timestamp for every file of the wheel (SOURCE_DATE_EPOCH: 1980-01-01, the zip format's first day)
_EPOCH = "315532800"
_SOURCE_GLOBS = ("edgebrain/**/*", "devices/*.toml", "pyproject.toml", "setup.py", "README.md")
#: pinned besides the wheel's own requirements: Numba's compiler, which must match Numba's version
_EXTRA_PINS = ("llvmlite",)
#: Tested pins for a target whose Python a version installed here does not support, per (major, minor):
#: {name: (version, why)}. Only those names change; everything else stays at this machine's version.
#: Each set is deployed in CI to a real interpreter of that Python (tests/deploy/test_python310.py: an
#: Ubuntu 22.04 x86-64 userland, JetPack 6's, online and --offline), smoke test bit-identical.
FALLBACK_PINS = {
    (3, 10): {
        "numpy": ("2.2.6", "the last NumPy with Python 3.10 wheels (2.3 needs 3.11); numba 0.68 takes numpy<2.6"),
        "tomli": ("2.3.0", "tomllib for Python 3.10 (edgebrain needs it there only, so it is not installed on 3.11+)"),
    },
}


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebrain" / "deploy"


def source_root() -> Path | None:
    """The checkout edgebrain runs from (a ``pyproject.toml`` naming edgebrain beside the package), or None."""
    root = Path(__file__).resolve().parents[2]
    pp = root / "pyproject.toml"
    try:
        if pp.is_file() and 'name = "edgebrain"' in pp.read_text(encoding="utf-8"):
            return root
    except OSError:
        pass
    return None


def _source_files(root: Path) -> list[Path]:
    out = set()
    for pat in _SOURCE_GLOBS:
        for p in root.glob(pat):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".so", ".o"):
                out.add(p)
    return sorted(out)


def build_wheel(say=None) -> Path:
    """The edgebrain wheel of this checkout, from the user cache when the source has not changed."""
    root = source_root()
    if root is None:
        raise DeployError("edgebrain is not running from a source checkout, so there is no wheel to build: "
                          "pass the wheel you installed with --wheel FILE")
    files = _source_files(root)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    out = cache_root() / "wheels" / h.hexdigest()[:20]
    found = sorted(out.glob("edgebrain-*.whl")) if out.is_dir() else []
    if found:
        return found[0]
    if say:
        say("building the edgebrain wheel (pip wheel --no-deps)")
    with tempfile.TemporaryDirectory(prefix="edgebrain-wheel-") as tmp:
        src = Path(tmp) / "src"
        for p in files:  # a copy: the build's own folders (build/, *.egg-info) stay out of the checkout
            dst = src / p.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        dist = Path(tmp) / "dist"
        env = {**os.environ, "SOURCE_DATE_EPOCH": _EPOCH}
        # setuptools here: build with it (fast, offline); else pip fetches the build backend itself
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(dist), str(src)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        except subprocess.TimeoutExpired:
            raise DeployError("building the edgebrain wheel took over 600 s") from None
        wheels = sorted(dist.glob("edgebrain-*.whl"))
        if res.returncode != 0 or not wheels:
            last = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
            raise DeployError("could not build the edgebrain wheel: " + (last[-1] if last else "pip wheel failed"))
        out.mkdir(parents=True, exist_ok=True)
        tmp_whl = out / (wheels[0].name + ".part")
        shutil.copyfile(wheels[0], tmp_whl)
        os.replace(tmp_whl, out / wheels[0].name)
    return out / wheels[0].name


def _wheel_requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            raise InputError("not a wheel (no .dist-info/METADATA)", file=str(wheel))
        text = z.read(meta).decode("utf-8", "replace")
    return [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")]


def _packaging():
    try:
        from packaging.requirements import Requirement
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.requirements import Requirement  # type: ignore
        from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore
    return Requirement, SpecifierSet


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(wheel: Path, target_python: str, fallbacks=None) -> list[str]:
    """``name==version`` for each core requirement of ``wheel`` that applies to ``target_python``
    (X.Y.Z), at the version installed here, or at :data:`FALLBACK_PINS`' version for that Python when
    the one here does not support it (or is not installed here). Refused, with one line, when neither
    works. ``fallbacks``, a dict, receives ``{name: version}`` of the fallback pins used."""
    Requirement, SpecifierSet = _packaging()
    mm = tuple(int(p) for p in target_python.split(".")[:2])
    table = {_norm(k): v for k, v in FALLBACK_PINS.get(mm, {}).items()}
    env = {"python_version": f"{mm[0]}.{mm[1]}", "python_full_version": target_python, "extra": ""}
    names, pins, used, installed = [], {}, {}, {}
    for spec in _wheel_requires(wheel):
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        names.append((_norm(req.name), req))
    names += [(n, Requirement(n)) for n in _EXTRA_PINS if n not in {a for a, _ in names}]
    for name, req in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            dist = None
        needs = dist.metadata.get("Requires-Python") if dist is not None else None
        if dist is not None and (not needs or target_python in SpecifierSet(needs)):
            pins[name] = dist.version
            installed[name] = dist
        elif name in table:
            version, _ = table[name]
            if not req.specifier.contains(version, prereleases=True):
                raise DeployError(f"the tested {name} {version} for Python {env['python_version']} does not meet "
                                  f"edgebrain's {req}; update FALLBACK_PINS in edgebrain/deploy/bundle.py")
            pins[name] = used[name] = version
        elif dist is None:
            pins[name] = None  # not used here and no tested pin: the range, unpinned
        else:
            raise DeployError(f"{name} {dist.version}, the version tested here, needs Python {needs}; the target has "
                              f"Python {target_python}, for which no other {name} is tested (use a newer Python "
                              "there, e.g. --remote-python python3.11)")
    # the fallbacks must suit the other pins (numba's numpy range, say)
    for name, dist in installed.items():
        for spec in dist.requires or ():
            r = Requirement(spec)
            if _norm(r.name) in used and (r.marker is None or r.marker.evaluate(env)) \
                    and not r.specifier.contains(used[_norm(r.name)], prereleases=True):
                raise DeployError(f"{dist.metadata['Name']} {dist.version} needs {r}, but the tested pin for Python "
                                  f"{env['python_version']} is {_norm(r.name)} {used[_norm(r.name)]}; update "
                                  "FALLBACK_PINS in edgebrain/deploy/bundle.py")
    if fallbacks is not None:
        fallbacks.update(used)
    return sorted(f"{n}=={v}" if v else str(req) for (n, req), v in ((nr, pins[nr[0]]) for nr in names))


def smoke_input(model, recording: str | None):
    """(x, description): the first :data:`SMOKE_STEPS` steps of ``recording`` through the model's encoder,
    or a seeded input of the model's shape when there is no recording."""
    import numpy as np

    shape = tuple(model.input_shape)
    if recording is None:
        x = np.random.default_rng(0).normal(0.0, 1.0, (SMOKE_STEPS,) + shape).astype(np.float32)
        return x, "seeded input (no --recording given)"
    from ..stream.pipeline import encode_file

    cfg = model.graph.meta.get("stream") or {}
    if not cfg.get("encoder"):
        raise InputError("the model names no encoder for streaming, so a recording cannot be fed to it; "
                         "deploy without --recording (a seeded input is used)", file=recording)
    x, _, _ = encode_file(recording, cfg["encoder"], rate=cfg.get("rate"), input_shape=shape)
    if x.shape[0] == 0:
        raise InputError("the recording gave no model steps", file=recording)
    n = min(len(x), SMOKE_STEPS)
    return np.ascontiguousarray(x[:n], np.float32), f"{Path(recording).name}, first {n} steps"


def download_wheels(requirements: Path, out: Path, python: str, arch: str, libc: str) -> None:
    """``pip download`` of every dependency as a binary wheel for the target's platform and Python."""
    major, minor = python.split(".")[:2]
    plats = []
    m = re.match(r"glibc-(\d+)\.(\d+)", libc or "")
    top = int(m.group(2)) if m and m.group(1) == "2" else 17
    for k in range(top, 16, -1):
        plats += ["--platform", f"manylinux_2_{k}_{arch}"]
    plats += ["--platform", f"manylinux2014_{arch}", "--platform", f"linux_{arch}"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
           *plats, "--python-version", f"{major}.{minor}", "--implementation", "cp",
           "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none", "-d", str(out), "-r", str(requirements)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        raise DeployError("pip download of the dependency wheels took over 1200 s") from None
    if res.returncode != 0:
        last = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
        raise DeployError(f"--offline: no wheels for {arch}, Python {major}.{minor}: "
                          + (last[-1] if last else "pip download failed"))


def build(model, model_name: str, work: Path, *, python: str, arch: str, libc: str = "", device=None,
          recording: str | None = None, offline: bool = False, wheel: str | None = None, extra_requirements=(),
          say=None) -> dict:
    """Write the bundle into the empty folder ``work``; its manifest (a dict) with ``id`` and ``env``.
    ``extra_requirements`` (``name==version``: what a service's sinks import, e.g. paho-mqtt) join the
    pinned requirements, so the venv has them and ``--offline`` ships their wheels."""
    import numpy as np

    whl = Path(wheel) if wheel else build_wheel(say)
    if not whl.is_file() or not whl.name.startswith("edgebrain-") or whl.suffix != ".whl":
        raise InputError("expected an edgebrain-*.whl file", file=str(whl))
    shutil.copyfile(whl, work / whl.name)
    if model.path is None or not str(model.path).endswith(".ebm"):
        raise InputError("deploy ships .ebm models: convert it first (edgebrain convert MODEL -o MODEL.ebm "
                         "--quantize int8)", file=model_name)
    shutil.copyfile(model.path, work / "model.ebm")
    if device is not None:
        shutil.copyfile(device.path, work / "device.toml")
    fallbacks: dict = {}
    reqs = pinned_requirements(whl, python, fallbacks)
    if fallbacks and say:
        say(f"Python {python} on the target: the tested pins for it, "
            + ", ".join(f"{n}=={v}" for n, v in sorted(fallbacks.items())))
    have = {re.split(r"[=<>!~ ;\[]", r, maxsplit=1)[0].lower() for r in reqs}
    reqs = sorted(reqs + [r for r in extra_requirements if re.split(r"[=<>!~ ;\[]", r, maxsplit=1)[0].lower()
                          not in have])
    (work / "requirements.txt").write_text("".join(r + "\n" for r in reqs))
    x, described = smoke_input(model, recording)
    np.save(work / "smoke_input.npy", x, allow_pickle=False)
    expected = smoke_run(str(work / "model.ebm"), str(work / "smoke_input.npy"))
    for k in ("seconds", "compiles"):  # this machine's, not part of what the target must reproduce
        expected.pop(k, None)
    (work / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    if offline:
        if say:
            say(f"downloading the dependency wheels for {arch}, Python {python} (pip download)")
        download_wheels(work / "requirements.txt", work / "wheels", python, arch, libc)
    files = {str(p.relative_to(work)): sha256_file(p) for p in sorted(work.rglob("*")) if p.is_file()}
    py_mm = ".".join(python.split(".")[:2])
    env = hashlib.sha256(f"{files[whl.name]}|{files['requirements.txt']}|{py_mm}|{arch}".encode()).hexdigest()[:16]
    manifest = {"format": 1, "wheel": whl.name, "model": {"name": Path(model_name).name, "file": "model.ebm",
                                                            "sha256": files["model.ebm"]},
                "device": device.name if device is not None else None, "python": py_mm, "arch": arch,
                "offline": bool(offline), "smoke_input": described, "expected": expected,
                "requirements": reqs, "env": env, "files": files}
    if fallbacks:  # only then: the manifest (so the release id) of a 3.11+ target is as before
        manifest["fallback_pins"] = dict(sorted(fallbacks.items()))
    raw = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    (work / "manifest.json").write_bytes(raw)
    ident = hashlib.sha256(raw).hexdigest()[:16]
    total = sum((work / f).stat().st_size for f in files) + len(raw)
    return {**manifest, "id": ident, "bytes": total, "n_files": len(files) + 1}
