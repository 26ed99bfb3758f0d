"""Boards beyond this machine's own process: microcontrollers emulated by QEMU, and real boards on a
serial port (``edgebrain stream --target qemu-m4 | qemu-rv32 | serial://PORT?baud=N``).

* :func:`build_firmware` compiles a board's firmware (``firmware/boards/``: the device loop of
  ``cruntime/eb_device.h`` with every runtime source, by ``make -C firmware qemu-NAME``) once per
  machine into ``${XDG_CACHE_HOME:-~/.cache}/edgebrain/qemu/<key>/``; the key hashes the compiler's
  version, the build's flags and every source, and the file is renamed into place (atomic).
* :class:`QemuBoard` starts QEMU on it with the board's UART on a TCP socket of this machine: the
  listening socket is made here (port 0: the system picks a free one) and handed to QEMU as an open
  file descriptor, so no other process can take the port between choosing and listening. QEMU runs
  in its own process group, which :meth:`QemuBoard.close` kills (and a finalizer, and on Linux the
  parent's death, if the session is never closed).
* :func:`parse_serial` reads ``serial://PORT?baud=N`` for a real board (no process owned).

This module knows no protocol: :func:`edgebrain.stream.board.board_session` opens the link (pyserial,
``socket://127.0.0.1:PORT`` for QEMU) and speaks to the board. Every wait here is bounded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import weakref
from dataclasses import dataclass
from pathlib import Path

from ..cbuild import SOURCE_DIR
from ..errors import EdgebrainError

#: a checkout's firmware/ (the boards' sources and the Makefile)
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
BUILD_TIMEOUT = 300.0  # seconds: the build of one board (about 5 s here)


class EmulatorError(EdgebrainError):
    """An emulated board could not be built or started (what is missing, and how to install it)."""


@dataclass(frozen=True)
class Emulated:
    """One emulated board: its make target, QEMU machine and the Debian packages it needs."""

    name: str                 # make -C firmware qemu-NAME
    board_dir: str            # firmware/boards/<board_dir>/
    qemu: str                 # the QEMU binary
    machine: tuple            # its -M options
    cc: str                   # the cross compiler (the Makefile's default)
    cc_var: str               # the Makefile variable naming it
    qemu_apt: str
    cc_apt: str
    counter: str              # what STATS' cycles counts on it

    def qemu_cmd(self, elf: Path, fd: int, icount: bool) -> list[str]:
        # nodelay: QEMU sends each UART byte as it comes; without it Nagle holds them ~40 ms
        cmd = [self.qemu, *self.machine, "-kernel", str(elf), "-display", "none", "-monitor", "none",
               "-chardev", f"socket,id=eb0,fd={fd},server=on,wait=on,nodelay=on", "-serial", "chardev:eb0"]
        return cmd + (["-icount", "shift=0"] if icount else [])


BOARDS = {
    "qemu-m4": Emulated("m4", "mps2-an386", "qemu-system-arm", ("-M", "mps2-an386"), "arm-none-eabi-gcc", "ARM_CC",
                        "qemu-system-arm", "gcc-arm-none-eabi libnewlib-arm-none-eabi",
                        "SysTick (25 MHz) as virtual nanoseconds: instructions under -icount shift=0"),
    "qemu-rv32": Emulated("rv32", "riscv-virt", "qemu-system-riscv32", ("-M", "virt", "-bios", "none"),
                          "riscv64-unknown-elf-gcc", "RV_CC", "qemu-system-misc",
                          "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf",
                          "mcycle: instructions under -icount, host time-stamp ticks otherwise"),
}


def _cache_roots() -> list[Path]:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = getattr(os, "getuid", lambda: 0)()
    return [Path(base) / "edgebrain" / "qemu", Path(tempfile.gettempdir()) / f"edgebrain-qemu-{uid}"]


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EmulatorError(f"{' '.join(cmd[:3])} ... did not finish within {timeout:g} s") from None
    except OSError as e:
        raise EmulatorError(f"cannot run {cmd[0]}: {e.strerror or e}") from None


def _sources(board: Emulated) -> list[Path]:
    """What the firmware is built from: the runtime (every .c and .h there is), the shared main, the
    board's own files and the Makefile."""
    files = [p for p in SOURCE_DIR.iterdir() if p.suffix in (".c", ".h")]
    for d in (FIRMWARE_DIR / "boards" / "common", FIRMWARE_DIR / "boards" / board.board_dir):
        files += [p for p in d.iterdir() if p.is_file()]
    return sorted(files) + [FIRMWARE_DIR / "Makefile"]


def build_firmware(target: str) -> Path:
    """The ELF of an emulated board (``qemu-m4``, ``qemu-rv32``), built on first use into the user
    cache (else the temporary folder), keyed by the cross compiler's version, the flags and the
    sources. A missing compiler or make is one :class:`EmulatorError` naming what to install."""
    board = BOARDS[target]
    if not (FIRMWARE_DIR / "boards" / board.board_dir).is_dir():
        raise EmulatorError(f"the {target} firmware's sources are not here ({FIRMWARE_DIR / 'boards'}): --target "
                            f"{target} needs an edgebrain checkout (firmware/boards/)")
    cc = os.environ.get(board.cc_var) or board.cc
    if not shutil.which(cc):
        raise EmulatorError(f"--target {target} needs the cross compiler {cc}, which is not installed "
                            f"(apt-get install {board.cc_apt})")
    if not shutil.which("make"):
        raise EmulatorError(f"--target {target} builds its firmware with make, which is not installed "
                            "(apt-get install make)")
    version = _run([cc, "--version"], 30).stdout.splitlines()[:1]
    flags = _run(["make", "-s", "-C", str(FIRMWARE_DIR), f"{board.cc_var}={cc}", f"qemu-flags-{board.name}"], 60)
    h = hashlib.sha256()
    for part in (*version, flags.stdout):
        h.update(part.encode() + b"\0")
    for p in _sources(board):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for root in _cache_roots():
        elf = root / h.hexdigest()[:20] / f"eb_board_{board.name}.elf"
        if elf.is_file():
            return elf
        try:
            elf.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=elf.parent))
        except OSError:
            continue
        try:
            r = _run(["make", "-s", "-C", str(FIRMWARE_DIR), f"{board.cc_var}={cc}", f"BUILD={tmp}",
                      f"qemu-{board.name}"], BUILD_TIMEOUT)
            if r.returncode != 0:
                first = next((ln for ln in r.stderr.splitlines() if "error" in ln.lower()), r.stderr.strip()[:300])
                raise EmulatorError(f"building the {target} firmware failed: {first}")
            os.replace(tmp / "qemu" / board.name / "eb_board.elf", elf)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return elf
    raise EmulatorError(f"cannot write the {target} firmware anywhere (the user cache and the temporary folder)")


def _parent_death_signal():
    """Linux: a function for the child (between fork and exec) that has the kernel SIGKILL it when the
    process that started it dies, so no QEMU is left waiting forever. Resolved here, in the parent:
    the child only calls it (no dynamic loading after fork)."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    sig = ctypes.c_ulong(int(signal.SIGKILL))  # prctl is variadic: pass a full unsigned long
    return lambda: prctl(1, sig)  # PR_SET_PDEATHSIG


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # QEMU and anything it started
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL cannot end
            pass


class QemuBoard:
    """QEMU running an emulated board's firmware, its UART on ``url`` (``socket://127.0.0.1:PORT``).
    ``link``: set by whoever opens the link (closed with the board). ``icount``: run with
    ``-icount shift=0`` (one instruction = one nanosecond of the guest's clock: the cycle counter
    counts instructions). Closing kills QEMU's process group."""

    def __init__(self, target: str, elf: Path | None = None, icount: bool = False):
        board = BOARDS[target]
        self.target, self.link = target, None
        qemu = shutil.which(board.qemu)
        if not qemu:
            raise EmulatorError(f"--target {target} needs {board.qemu}, which is not installed "
                                f"(apt-get install {board.qemu_apt})")
        elf = elf or build_firmware(target)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._log = tempfile.TemporaryFile()
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            cmd = board.qemu_cmd(elf, listener.fileno(), icount)
            cmd[0] = qemu
            self.proc = subprocess.Popen(cmd, pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log, start_new_session=True,
                                         preexec_fn=_parent_death_signal())
        except OSError as e:
            self._log.close()
            raise EmulatorError(f"cannot start {board.qemu}: {e.strerror or e}") from None
        finally:
            listener.close()  # QEMU holds its own copy
        self._finalizer = weakref.finalize(self, _kill_group, self.proc)
        self.url = f"socket://127.0.0.1:{port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def why(self) -> str:
        """QEMU's first line of complaint (when it exited), else ''."""
        try:
            self._log.seek(0)
            lines = [ln.strip() for ln in self._log.read(4096).decode("utf-8", "replace").splitlines()]
        except (OSError, ValueError):
            return ""
        return next((ln for ln in lines if ln and "waiting for connection" not in ln), "")

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        self._finalizer()  # kills the process group, once (the log stays readable for why())


def parse_serial(target: str) -> tuple[str, int]:
    """``serial://PORT?baud=N`` → (port, baud): a device path (``serial:///dev/ttyACM0``) or any URL
    pyserial opens (``serial://rfc2217://host:4000``); baud 115200 unless given."""
    rest = target[len("serial://"):]
    port, query = rest, ""
    if "?" in rest:  # our ?baud=N; a nested pyserial URL keeps options of its own
        head, tail = rest.rsplit("?", 1)
        if "://" not in head or "baud" in urllib.parse.parse_qs(tail, keep_blank_values=True):
            port, query = head, tail
    opts = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(opts) - {"baud"})
    if unknown:
        raise EdgebrainError(f"--target {target}: unknown option '{unknown[0]}'; expected serial://PORT?baud=N")
    port = urllib.parse.unquote(port)
    if not port:
        raise EdgebrainError(f"--target {target}: no port; expected serial:///dev/ttyACM0?baud=115200")
    baud = opts.get("baud", ["115200"])[-1]
    if not baud.isdigit() or int(baud) <= 0:
        raise EdgebrainError(f"--target {target}: baud '{baud}' is not a positive whole number; expected e.g. "
                             "baud=115200")
    return port, int(baud)
