"""Finding and loading device profiles: one TOML file per device.

Profiles are looked up, by file stem, ``name`` or alias, in: the directories of
``$EDGEBRAIN_DEVICES`` (``os.pathsep``-separated), else the user's folder (:func:`user_dir`,
``~/.config/edgebrain/devices``), ``<checkout>/devices`` when running from a
source checkout, then the profiles installed with the package (``edgebrain.device_profiles``, which
the build makes from that same ``devices/`` folder: there is one copy). A path to a ``.toml`` file
is loaded as is. Loading validates (:mod:`.schema`); the ``host`` profile's ``"auto"`` fields are
first read from the running machine (:mod:`.host`).
"""

from __future__ import annotations

import importlib.util
import os
import re
try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib
from pathlib import Path

from ..errors import FormatError, InputError
from .host import fill_host
from .schema import Device, check_profile

#: the package the build makes of ``devices/`` (pyproject.toml / setup.py)
PROFILES_PACKAGE = "edgebrain.device_profiles"


def user_dir() -> Path:
    """The user's own profiles (``edgebrain bench --write-profile`` writes there): the first folder of
    ``$EDGEBRAIN_DEVICES`` when set, else ``$XDG_CONFIG_HOME/edgebrain/devices`` (``~/.config/...``)."""
    env = [d for d in os.environ.get("EDGEBRAIN_DEVICES", "").split(os.pathsep) if d]
    if env:
        return Path(env[0]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgebrain" / "devices"


def search_dirs() -> list[tuple[str, Path]]:
    """(label, directory) pairs searched for profiles, first match wins."""
    out = []
    for d in filter(None, os.environ.get("EDGEBRAIN_DEVICES", "").split(os.pathsep)):
        out.append(("$EDGEBRAIN_DEVICES", Path(d).expanduser()))
    if not out:
        out.append(("user", user_dir()))
    repo = checkout_dir()
    if repo is not None:
        out.append(("checkout", repo))
    installed = packaged_dir()
    # an editable install maps the package onto the checkout's own folder: list it once
    if installed is not None and (repo is None or installed.resolve() != repo.resolve()):
        out.append(("installed", installed))
    return out


def checkout_dir() -> Path | None:
    """``<repo>/devices`` when edgebrain runs from a source checkout (never a stray site-packages folder)."""
    root = Path(__file__).resolve().parents[2]
    pp = root / "pyproject.toml"
    d = root / "devices"
    try:
        if d.is_dir() and pp.is_file() and 'name = "edgebrain"' in pp.read_text(encoding="utf-8"):
            return d
    except OSError:
        pass
    return None


def packaged_dir() -> Path | None:
    """The folder of the profiles installed with the package, or None (a source tree never installed)."""
    try:
        spec = importlib.util.find_spec(PROFILES_PACKAGE)
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", "", s.lower())


def _profiles() -> dict[str, Path]:
    """Profile files by file stem, first directory wins."""
    found: dict[str, Path] = {}
    for _, d in search_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return found


def names() -> list[str]:
    return sorted(_profiles())


def resolve(name_or_path: str) -> Path:
    """The profile file for a device name, alias or path."""
    s = os.fspath(name_or_path)
    if s.endswith(".toml") or os.sep in s or (os.altsep and os.altsep in s):
        p = Path(s).expanduser()
        if not p.is_file():
            raise InputError("device profile file not found; expected a .toml profile (see docs/devices.md)", file=s)
        return p
    profiles = _profiles()
    key = _norm(s)
    for stem, p in profiles.items():
        if _norm(stem) == key:
            return p
    for stem, p in profiles.items():  # names and aliases (read cheaply, without validation)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        al = [raw.get("name", "")] + [a for a in raw.get("aliases", []) if isinstance(a, str)]
        if any(isinstance(a, str) and _norm(a) == key for a in al):
            return p
    raise InputError(f"no device profile '{s}'; available: {', '.join(profiles) or 'none found'} "
                     "(or give a path to your own .toml profile)")


def load(name_or_path) -> Device:
    """Load and validate a profile by name, alias or path."""
    return load_file(resolve(name_or_path))


def load_all() -> list[Device]:
    return [load_file(p) for p in _profiles().values()]


def load_file(path) -> Device:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("device profile file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"cannot read the device profile ({e})", file=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FormatError(f"not valid TOML ({e})", file=str(path)) from None
    return validate(raw, str(path))


def validate(raw: dict, path: str = "<profile>") -> Device:
    """Check a parsed profile (a dict, as read from TOML) and return its :class:`Device`; a host
    profile's ``"auto"`` fields are read from the running machine first. Errors name the file and the
    field (``section.field``) and say what was expected."""
    raw = dict(raw)
    if raw.get("kind") == "host":
        raw = fill_host(raw)
    return check_profile(raw, path)
