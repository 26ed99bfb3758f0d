"""Device profiles: one TOML file per device (``devices/*.toml``), validated on load.

A plain library: the schema and its validation (:mod:`.schema`), finding and loading profiles
(:mod:`.catalog`) and the running machine's facts for the ``host`` profile (:mod:`.host`). What
uses a profile lives elsewhere: the analytical energy model in :mod:`edgebrain.energy.estimate`,
``edgebrain devices fit`` in :mod:`edgebrain.apps.fit`. The schema is documented in
``docs/devices.md``.
"""

from .catalog import (PROFILES_PACKAGE, checkout_dir, load, load_all, load_file, names, packaged_dir, resolve,
                      search_dirs, user_dir, validate)
from .host import detect_host, fill_host
from .schema import (AUTO_FIELDS, ENERGY_FIELDS, ENERGY_OPS, FPUS, KINDS, METERS, PROVENANCE_SECTIONS, RUNTIMES,
                     SCHEMA_VERSION, SENSOR_FIELDS, WEIGHTS_IN, Device, check_profile, fmt_bytes, python_summary)

__all__ = ["AUTO_FIELDS", "Device", "ENERGY_FIELDS", "ENERGY_OPS", "FPUS", "KINDS", "METERS", "PROFILES_PACKAGE",
           "PROVENANCE_SECTIONS", "RUNTIMES", "SCHEMA_VERSION", "SENSOR_FIELDS", "WEIGHTS_IN", "check_profile",
           "checkout_dir", "detect_host", "fill_host", "fmt_bytes", "load", "load_all", "load_file", "names",
           "packaged_dir", "python_summary", "resolve", "search_dirs", "user_dir", "validate"]
