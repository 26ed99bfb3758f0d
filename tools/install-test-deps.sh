#!/usr/bin/env bash
# Installs edgebrain with everything its tests need, on a fresh machine (root or a venv).
# The reference frameworks are installed so that none of them drags in a CUDA build of torch:
# torch 2.13.0 CPU first, then the frameworks' own packages without their declared deps.
set -euo pipefail
cd "$(dirname "$0")/.."
# system packages the tests use: a real MQTT broker and socat (pseudo-terminals); root only
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! command -v mosquitto >/dev/null 2>&1 || ! command -v socat >/dev/null 2>&1; then
    echo "install-test-deps: running as root, so installing system packages with apt-get: mosquitto (a real MQTT broker for the mqtt sink tests) and socat (pseudo-terminals for the serial tests)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto socat >/dev/null
  fi
fi
PIP="python -m pip install -q --disable-pip-version-check"
$PIP -e ".[dev]"
$PIP "torch==2.13.0"
$PIP snntorch scipy pbr matplotlib tqdm
# norse declares torchvision (a multi-GB CUDA torch); it imports and runs without it.
# neurobench (tests/test_metrics.py only) declares torchaudio, used by its dataset loaders alone: its
# metrics and harness need torch, snntorch, numpy, numba and tqdm, all installed above
$PIP --no-deps norse nirtorch sinabs rockpool "neurobench>=2.3,<3"
python - <<'PY'
import importlib
for m in ("edgebrain", "numba", "nir", "torch", "snntorch", "norse", "sinabs", "rockpool", "hypothesis",
          "neurobench.benchmarks"):
    importlib.import_module(m)
print("test dependencies importable")
PY
