#!/usr/bin/env bash
# Installs edgebrain with everything its tests need, on a fresh machine (root or a venv).
# The reference frameworks are installed so that none of them drags in a CUDA build of torch:
# torch 2.13.0 CPU first, then the frameworks' own packages without their declared deps.
set -euo pipefail
cd "$(dirname "$0")/.."
# system packages the tests use, root only: a real MQTT broker, socat (pseudo-terminals), make
# (make -C firmware test), qemu-user-static and debootstrap for the emulated arm64 board, qemu-system
# for the emulated microcontrollers, clang and libFuzzer
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  for pair in mosquitto:mosquitto socat:socat make:make qemu-aarch64-static:qemu-user-static debootstrap:debootstrap; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
  done
  # cross compilers for the firmware's footprint tests (tests/firmware/test_cross.py)
  command -v arm-none-eabi-gcc >/dev/null 2>&1 || need+=(gcc-arm-none-eabi)
  [ -e /usr/lib/arm-none-eabi/newlib/libc_nano.a ] || need+=(libnewlib-arm-none-eabi)
  command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || need+=(gcc-riscv64-unknown-elf)
  [ -e /usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs ] || need+=(picolibc-riscv64-unknown-elf)
  # the emulated microcontroller boards (Cortex-M4 mps2-an386, RISC-V virt: tests/firmware/test_qemu_boards.py)
  command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
  command -v qemu-system-riscv32 >/dev/null 2>&1 || need+=(qemu-system-misc)
  # a real SSH server on loopback and rsync, for edgebrain deploy (tests/deploy/)
  command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v rsync >/dev/null 2>&1 || need+=(rsync)
  command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
  # clang 14 with libFuzzer and the sanitizers, for fuzzing the board's frame parser (tests/firmware/test_fuzz.py)
  command -v clang >/dev/null 2>&1 || need+=(clang)
  [ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || need+=(libclang-rt-14-dev)
  if [ "${#need[@]}" -gt 0 ]; then
    echo "install-test-deps: running as root, so installing system packages with apt-get: ${need[*]} (an MQTT broker for the mqtt sink tests, pseudo-terminals for the serial tests, make and cross compilers for the firmware tests, an emulated arm64 board)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
PIP="python -m pip install -q --disable-pip-version-check"
$PIP -e ".[dev,tflite,deploy,onnx,bench]"  # bench: the onnx package, which tests/onnx builds small models with
# tflite-runtime 2.14 beside LiteRT, without its deps: the test that it is refused under NumPy 2 with a clear
# line runs (edgebrain always prefers LiteRT, so its presence changes nothing else)
$PIP --no-deps "tflite-runtime==2.14.0" || echo "install-test-deps: tflite-runtime 2.14 has no wheel here; its test skips" >&2
$PIP "torch==2.13.0"
$PIP snntorch scipy pbr matplotlib tqdm
# norse declares torchvision (a multi-GB CUDA torch); it imports and runs without it.
# neurobench (tests/test_metrics.py only) declares torchaudio, used by its dataset loaders alone: its
# metrics and harness need torch, snntorch, numpy, numba and tqdm, all installed above
$PIP --no-deps norse nirtorch sinabs rockpool "neurobench>=2.3,<3"
python - <<'PY'
import importlib
for m in ("edgebrain", "numba", "nir", "torch", "snntorch", "norse", "sinabs", "rockpool", "hypothesis", "ai_edge_litert.interpreter", "onnxruntime", "onnx",
          "neurobench.benchmarks"):
    importlib.import_module(m)
print("test dependencies importable")
PY
# the emulated arm64 board (tests/test_arm64_qemu.py): a Debian root filesystem with Numba's aarch64
# wheels, built once per machine under ~/.cache/edgebrain/arm64 (root only: debootstrap); without
# it those tests skip and say how to build it. Its SSH-capable variant (an sshd, python3-venv, CA
# certificates, rsync), so that the same board is the emulated Raspberry Pi of tests/deploy/test_arm64_board.py
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null 2>&1 && command -v qemu-aarch64-static >/dev/null 2>&1; then
  EDGEBRAIN_ARM64_EXTRA_PACKAGES=python3,python3-venv,openssh-server,ca-certificates,rsync \
    PYTHON="$(command -v python)" bash tools/arm64/rootfs.sh
fi
# the Python 3.10 board (tests/deploy/test_python310.py): an x86-64 Ubuntu 22.04 root filesystem, JetPack 6's
# userland and Python, with an sshd; built once per machine under ~/.cache/edgebrain/jammy (root only:
# debootstrap; 1-2 minutes here). A failed build does not stop the other installs: its tests then fail
# under EDGEBRAIN_REQUIRE_JAMMY=1 (.ci/run), saying it is not built
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null 2>&1 && [ "$(uname -m)" = x86_64 ]; then
  bash tools/jammy/rootfs.sh || echo "install-test-deps: the Ubuntu 22.04 (Python 3.10) board could not be built; see above" >&2
fi
