"""The host's side of the board link (docs/protocol.md): a model run on a board, step by step.

    sess = board_session(model)                 # --target host-firmware: the C runtime in its own
    y = sess.step(x)                            # process on a pseudo-terminal, fed over the link
    ys, _ = sess.run(xs)
    sess.link_stats(); sess.close()

:class:`HostBoard` builds ``firmware/host/eb_host_board.c`` with the C runtime (the system
compiler, into the user cache, as :mod:`edgebrain.cbuild` builds the shared library), starts it
on the master end of a pseudo-terminal (``os.openpty``) and opens the slave end with pyserial,
as one would open a real board's ``/dev/ttyACM0``. :class:`BoardSession` speaks the protocol of
:mod:`edgebrain.proto` over any :class:`SerialLink`: HELLO, the model's blob in acknowledged
chunks, STEPS frames of several encoded input steps, OUTPUTS back. It computes what the Numba
integer session computes, bit for bit (the board runs the same C runtime as ``--backend c``).

Every read has a deadline. A corrupted or partial frame is dropped at the next zero byte and
counted (:class:`~edgebrain.proto.Deframer`); a request whose answer does not come in
``timeout`` seconds is sent again with the same sequence number (the board answers a repeated
request with its previous answer instead of running it twice), at most ``retries`` times, then
:class:`BoardError`. A board that announces itself again (INFO with ``boot`` set) has reset and
lost its model and state: :class:`BoardReset`, saying so. A board process that dies is a
:class:`BoardError` at the next read, never a hang.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .. import blob as B
from .. import proto as P
from ..cbuild import SOURCE_DIR, compiler, cpu_id, sources
from ..errors import EdgebrainError, InputError
from ..version import __version__
from .links import CLOCK, Clock

log = logging.getLogger("edgebrain.stream.board")

#: the targets ``edgebrain stream --target`` knows (serial://: a real board; qemu-*: stream/emulated.py)
TARGETS = ("host", "host-firmware", "qemu-m4", "qemu-rv32", "serial://PORT?baud=N")
#: the host board's main program (a checkout's firmware/host/)
BOARD_SOURCE = Path(__file__).resolve().parents[2] / "firmware" / "host" / "eb_host_board.c"
BOARD_FLAGS = ("-std=c99", "-O2", "-ffp-contract=off")


class BoardError(EdgebrainError):
    """The board did not answer as the protocol says (timeout, gone, an ERROR reply, another
    firmware or model): one line saying what happened."""


class BoardReset(BoardError):
    """The board announced itself again mid-stream: it restarted and lost its model and state."""


# ---------------------------------------------------------------------- the host board program


def build_board() -> Path:
    """The host board program (firmware/host/eb_host_board.c with the C runtime), compiled on first
    use into ``${XDG_CACHE_HOME:-~/.cache}/edgebrain/board/<key>/`` (key: compiler, flags, CPU and
    sources; written to a temporary name and renamed: atomic)."""
    if not BOARD_SOURCE.is_file():
        raise BoardError(f"the host board program's source is not here ({BOARD_SOURCE}): --target host-firmware "
                         "needs an edgebrain checkout (firmware/host/)")
    cmd = compiler()
    srcs = [*[p for p in sources() if p.suffix == ".c"], BOARD_SOURCE]
    h = hashlib.sha256()
    for part in (*cmd, *BOARD_FLAGS, cpu_id()):
        h.update(part.encode() + b"\0")
    for p in [*sources(), BOARD_SOURCE]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = getattr(os, "getuid", lambda: 0)()
    for root in (Path(base) / "edgebrain" / "board", Path(tempfile.gettempdir()) / f"edgebrain-board-{uid}"):
        exe = root / h.hexdigest()[:20] / "eb_host_board"
        if exe.is_file():
            return exe
        try:
            exe.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        tmp = exe.with_name(f".{exe.name}.{os.getpid()}.tmp")
        args = [*cmd, *BOARD_FLAGS, "-I", str(SOURCE_DIR), "-o", str(tmp), *map(str, srcs)]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:300])
            raise BoardError(f"building the host board program failed: {first}")
        os.replace(tmp, exe)
        return exe
    raise BoardError("cannot write the host board program anywhere (the user cache and the temporary folder)")


class SerialLink:
    """Bytes to and from a board through pyserial (a pty's slave path, a serial port or any URL
    pyserial opens). ``read`` waits at most ``timeout`` seconds; a link that fails is BoardError."""

    def __init__(self, url: str, baud: int = 115200):
        import serial

        # a device path is locked (flock) so that a second edgebrain, or a tool of the user's, using
        # the same port is refused instead of stealing half the board's bytes
        extra = {} if "://" in url else {"exclusive": True}
        try:
            self.ser = serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=5.0, **extra)
        except (serial.SerialException, ValueError, OSError) as e:
            busy = "exclusively lock" in str(e)
            raise BoardError(f"cannot open the board's link {url}: " + ("it is in use by another program (close "
                             "it, or stop ModemManager or a serial monitor)" if busy else str(e))) from None
        self.url = url

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as e:
            raise BoardError(f"the board's link {self.url} failed while writing: {e}") from None

    def read(self, timeout: float) -> bytes:
        import serial

        try:
            self.ser.timeout = max(0.001, timeout)
            first = self.ser.read(1)
            return first + (self.ser.read(self.ser.in_waiting) if first and self.ser.in_waiting else b"")
        except (serial.SerialException, OSError, TypeError) as e:
            raise BoardError(f"the board's link {self.url} is gone ({e})") from None

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # pragma: no cover - closing a link that already failed
            pass


class HostBoard:
    """The host board program running on the master end of a new pseudo-terminal; ``path`` is the
    slave end (what a board's serial port would be). ``args``: its options (``--model-bytes N``)."""

    def __init__(self, args=(), exe: Path | None = None):
        import tty

        exe = exe or build_board()
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # no echo, no line editing: bytes pass unchanged both ways
            self.path = os.ttyname(slave)
            self.link = SerialLink(self.path)  # first: opening a port flushes what it holds (the board's hello)
            try:
                self.proc = subprocess.Popen([str(exe), *map(str, args)], stdin=master, stdout=master,
                                             stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
            except OSError as e:
                self.link.close()
                raise BoardError(f"cannot start the host board program {exe}: {e.strerror or e}") from None
        finally:
            os.close(master)
            os.close(slave)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Close the link (the board reads the end of it and exits), then make sure it has exited."""
        self.link.close()
        try:
            self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2.0)
            except subprocess.TimeoutExpired:  # pragma: no cover - a board that ignores SIGTERM
                self.proc.kill()
                self.proc.wait(2.0)


# ---------------------------------------------------------------------- the session


class BoardSession:
    """A model run on a board over ``link`` (:class:`SerialLink`-like: ``write``, ``read(timeout)``).
    ``data``: the model's blob (:func:`edgebrain.blob.pack`), loaded over the link unless the board
    already holds the same one (same hash and size). ``board``: a :class:`HostBoard` owned (closed
    with the session). ``timeout`` seconds per try, ``retries`` more tries; ``on_reset``: "error"
    (:class:`BoardReset`) or "resume" (load the model again, go on from the initial state, warn);
    ``clock``: the time deadlines are read from. The session offers what the stream pipeline uses
    of a session."""

    batch = 1
    precision = "int"

    def __init__(self, data: bytes, link, *, board: HostBoard | None = None, timeout: float = 2.0,
                 retries: int = 2, wait_boot: bool = True, on_reset: str = "error", clock: Clock = CLOCK):
        if on_reset not in ("error", "resume"):
            raise ValueError(f"on_reset={on_reset!r}; expected 'error' or 'resume'")
        self.link, self.board, self.timeout, self.retries = link, board, float(timeout), int(retries)
        self.on_reset, self.resets = on_reset, 0
        self.time = clock  # the deadlines' time (stream.links.Clock)
        self.program = bl = B.unpack(bytes(data))
        self.blob, self.input_shape = bytes(data), tuple(bl.input_shape)
        h = bl.header
        self._n_in, self._n_out = int(h["n_in"]), int(h["n_out"])
        self.deframer = P.Deframer()
        self.seq = 0                  # our next sequence number
        self.rx_seq = None            # the board's last sequence number seen
        self.seq_gaps = self.duplicates = self.resends = self.timeouts = self.stale = 0
        self.saturations = np.zeros(1, np.int64)
        self.clock = 0
        self._pending: list = []
        self.info = None
        try:
            if wait_boot:
                self._wait_boot()
            self.info = self.hello()
            if not (self.info["loaded"] and self.info["model_hash"] == h["crc32"]
                    and self.info["model_bytes"] == len(self.blob)):
                self.info = self.load(self.blob)
            self.reset()
        except BaseException:
            self.close()
            raise
        self.spiking_nodes: list[str] = []
        self._views = {n: (c, k, tuple(s)) for n, (c, k, s, _) in bl.outputs.items()}

    # -------------------------------------------------------------- frames

    def _send(self, name: str, payload: bytes, seq: int) -> None:
        self.link.write(P.encode_frame(P.MSG[name], seq, payload))

    def _frames(self, deadline: float):
        """Frames as they arrive until ``deadline`` (monotonic seconds)."""
        while True:
            if self._pending:
                yield self._pending.pop(0)
                continue
            left = deadline - self.time.now()
            if left <= 0:
                return
            data = self.link.read(min(left, 0.1))
            if data:
                self._pending.extend(self.deframer.feed(data))
            elif self.board is not None and not self.board.alive():
                raise BoardError(f"the board process exited (code {self.board.proc.returncode}) at step {self.clock}")

    def _accept(self, f: P.Frame) -> bool:
        """Sequence bookkeeping of a board frame: False for a duplicate (already seen)."""
        if f.type == P.MSG["INFO"] and P.unpack("INFO", f.payload)["boot"]:
            self.rx_seq = f.seq  # the board numbers its frames from 0 again
            if self.info is not None:
                raise BoardReset(f"the board reset at step {self.clock} (it announced itself again): its model and "
                                 "state are lost; start the stream again")
            return True
        if self.rx_seq is not None:
            if f.seq == self.rx_seq:
                self.duplicates += 1
                return False
            gap = (f.seq - self.rx_seq - 1) & 0xFFFF
            if gap:
                self.seq_gaps += 1
        self.rx_seq = f.seq
        return True

    def _wait_boot(self) -> None:
        deadline = self.time.now() + self.timeout
        for f in self._frames(deadline):
            if self._accept(f) and f.type == P.MSG["INFO"]:
                return
        # no announcement (a board started earlier): HELLO asks

    def request(self, name: str, payload: bytes = b"", reply: str = "ACK") -> dict:
        """Send ``name`` and return the fields of the ``reply`` (an ERROR reply is BoardError). No
        answer within ``timeout``: sent again with the same sequence number, ``retries`` times."""
        try:
            return self._request(name, payload, reply)
        except BoardReset:
            raise
        except BoardError as e:
            if self.board is not None and not self.board.alive():  # say why the link failed
                raise BoardError(f"the board process exited (code {self.board.proc.returncode}) at step "
                                 f"{self.clock}, during {name}") from None
            raise e from None

    def _request(self, name: str, payload: bytes, reply: str) -> dict:
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        for attempt in range(self.retries + 1):
            if attempt:
                self.resends += 1
            self._send(name, payload, seq)
            for f in self._frames(self.time.now() + self.timeout):
                if not self._accept(f):
                    continue
                if f.type == P.MSG["ERROR"]:
                    e = P.unpack("ERROR", f.payload)
                    if e["about"] != P.MSG[name] & 0xFF:  # the answer to an earlier request: stale
                        self.stale += 1
                        continue
                    raise BoardError(f"the board refused {name}: {P.error_text(e['code'])} (detail {e['detail']})")
                if f.type == P.MSG[reply]:
                    r = P.unpack(reply, f.payload)
                    if reply == "ACK" and r["acked"] != P.MSG[name]:
                        self.stale += 1
                        continue
                    return r
                self.stale += 1  # an answer of another type: to an earlier request
            self.timeouts += 1
        raise BoardError(f"the board did not answer {name} within {self.timeout:g} s ({self.retries + 1} tries)"
                         + (f"; {self.deframer.dropped} corrupted frames dropped ({self.deframer.last_error})"
                            if self.deframer.dropped else ""))

    # -------------------------------------------------------------- messages

    def hello(self) -> dict:
        """The board's INFO, checked: protocol, firmware and blob format versions."""
        info = self.request("HELLO", reply="INFO")
        if info["proto"] != P.VERSION or info["blob_format"] != B.FORMAT_VERSION:
            raise BoardError(f"the board speaks protocol {info['proto']} with blob format {info['blob_format']}; "
                             f"this edgebrain needs protocol {P.VERSION}, blob format {B.FORMAT_VERSION}: "
                             "update the board's firmware")
        theirs = info["edgebrain_version"].rstrip(b"\0").decode("ascii", "replace")
        if theirs != __version__:
            raise BoardError(f"the board runs the C runtime of edgebrain {theirs}; this is edgebrain {__version__}, "
                             "whose blobs it would refuse: update the board's firmware")
        return info

    def load(self, data: bytes) -> dict:
        """Send a blob in chunks (each acknowledged) and have the board check and load it."""
        if self.info is not None and len(data) > self.info["model_buf"]:
            raise BoardError(f"the model's blob is {len(data)} bytes; the board's model buffer holds "
                             f"{self.info['model_buf']}")
        crc = B.unpack(data).header["crc32"]
        self.request("LOAD_BEGIN", P.pack("LOAD_BEGIN", total=len(data), crc32=crc))
        step = P.MAX_PAYLOAD - P.STRUCTS["LOAD_CHUNK"].size
        for off in range(0, len(data), step):
            ack = self.request("LOAD_CHUNK", P.pack("LOAD_CHUNK", data[off:off + step], offset=off))
            if ack["value"] != off + len(data[off:off + step]):
                raise BoardError(f"the board acknowledged {ack['value']} bytes of the model; expected "
                                 f"{off + len(data[off:off + step])}")
        info = self.request("LOAD_END", reply="INFO")
        if not info["loaded"] or info["model_hash"] != crc or info["n_in"] != self._n_in or info["n_out"] != self._n_out:
            raise BoardError("the board loaded another model than the one sent (hash or sizes differ)")
        return info

    def reset(self) -> None:
        """Back to the initial state (the board's session reset; the saturation count stays)."""
        self.request("RESET")
        self.clock = 0

    def ping(self, data: bytes = b"ping") -> bytes:
        return self.request("PING", data, reply="PONG")["tail"]

    def board_stats(self) -> dict:
        """The board's STATS (steps, saturations, cycles, frames, CRC errors...)."""
        s = self.request("STATS_REQ", reply="STATS")
        s.pop("tail", None)
        s.pop("reserved", None)
        return s

    def link_stats(self) -> dict:
        """The host's counters: frames delivered, dropped (CRC, framing, overlong), sequence gaps,
        duplicates, resends, timeouts, stale answers (to an earlier request, skipped) and resets."""
        d = self.deframer
        return {"frames": d.frames, "crc_errors": d.crc_errors, "frame_errors": d.frame_errors,
                "overlong": d.overlong, "seq_gaps": self.seq_gaps, "duplicates": self.duplicates,
                "resends": self.resends, "timeouts": self.timeouts, "stale": self.stale, "resets": self.resets}

    def link_summary(self) -> dict:
        """What the stream summary reports of a board: its firmware and model, the host's link
        counters and the board's statistics (asked for now; {"error": ...} if it does not answer)."""
        out = {"port": getattr(self.link, "url", None), "firmware": _version(self.info["fw_version"]),
               "model_hash": f"{self.info['model_hash']:08x}", "link": self.link_stats()}
        try:
            out["board"] = self.board_stats()
        except BoardError as e:
            out["board"] = {"error": str(e)}
        return out

    @property
    def _staged(self) -> bool:
        """Whether one step's input is larger than a STEPS frame (then sent in STEP_PART frames)."""
        return 4 * self._n_in > P.MAX_PAYLOAD - P.STRUCTS["STEPS"].size

    @property
    def steps_per_frame(self) -> int:
        """Steps sent per STEPS frame (1 for a staged step)."""
        if 4 * self._n_out > P.MAX_PAYLOAD - P.STRUCTS["OUTPUTS"].size:
            raise InputError(f"one step's outputs ({self._n_out} values) do not fit a frame of {P.MAX_PAYLOAD} bytes")
        if self._staged:
            return 1
        return min((P.MAX_PAYLOAD - P.STRUCTS["STEPS"].size) // max(1, 4 * self._n_in),
                   (P.MAX_PAYLOAD - P.STRUCTS["OUTPUTS"].size) // max(1, 4 * self._n_out), 0xFFFF)

    def _steps(self, x2: np.ndarray) -> np.ndarray:
        """Run the rows of x2 (T, n_in float32) in as few frames as fit; (T, n_out) float32. A step
        too large for one frame is staged in parts (STEP_PART), then run (STEP_STAGED)."""
        T, out = len(x2), np.empty((len(x2), self._n_out), np.float32)
        per = self.steps_per_frame
        for a in range(0, T, per):
            part = x2[a:a + per]
            try:
                r = self._frame(part)
            except BoardReset as e:
                if self.on_reset != "resume":
                    raise
                self._resume(e)
                r = self._frame(part)  # a second reset in a row is an error
            if r["n"] != len(part) or len(r["tail"]) != 4 * len(part) * self._n_out:
                raise BoardError(f"the board returned {r['n']} steps of outputs for {len(part)}")
            out[a:a + len(part)] = np.frombuffer(r["tail"], "<f4").reshape(len(part), self._n_out)
            self.saturations[0] += r["saturations"]
            self.clock += len(part)
        return out

    def _frame(self, part: np.ndarray) -> dict:
        """One STEPS frame (or a staged step: its STEP_PARTs, then STEP_STAGED); the OUTPUTS fields."""
        if self._staged:
            values = (P.MAX_PAYLOAD - P.STRUCTS["STEP_PART"].size) // 4
            for off in range(0, self._n_in, values):
                self.request("STEP_PART", P.pack("STEP_PART", part[0, off:off + values].astype("<f4").tobytes(),
                                                 offset=off))
            return self.request("STEP_STAGED", reply="OUTPUTS")
        return self.request("STEPS", P.pack("STEPS", part.astype("<f4").tobytes(), n=len(part)), reply="OUTPUTS")

    def _resume(self, e: BoardReset) -> None:
        """After a board reset: load the model again and go on from the initial state, saying so."""
        self.resets += 1
        log.warning("%s; loaded the model again and resumed from the initial state (the model's state before "
                    "the reset is lost)", str(e).split(":")[0])
        self.info = None  # the board's announcement is expected now, not a reset
        self.info = self.hello()
        if not (self.info["loaded"] and self.info["model_hash"] == self.program.header["crc32"]):
            self.info = self.load(self.blob)
        self.request("RESET")

    def _outputs(self, out: np.ndarray, lead: tuple):
        outs = {n: out[:, c:c + k].reshape(lead + s) for n, (c, k, s) in self._views.items()}
        return next(iter(outs.values())) if len(outs) == 1 else outs

    def step(self, x):
        """One timestep on the board; returns the output (a dict for several)."""
        x = np.asarray(x)
        if x.shape != self.input_shape:
            raise InputError(f"input has shape {x.shape}; expected {self.input_shape}")
        outs = self._outputs(self._steps(_finite_f32(x).reshape(1, -1)), (1,))
        return {n: v[0] for n, v in outs.items()} if isinstance(outs, dict) else outs[0]

    def run(self, xs, record=()):
        """A time-major sequence (T, *input) on the board: ``(outputs, {})`` (a board records no nodes)."""
        if record:
            raise InputError("a board session records no nodes (the board returns the model's outputs only)")
        xs = np.asarray(xs)
        if xs.shape[1:] != self.input_shape:
            raise InputError(f"input sequence has shape {xs.shape}; expected (T, {', '.join(map(str, self.input_shape))})")
        T = xs.shape[0]
        return self._outputs(self._steps(_finite_f32(xs).reshape(T, -1)), (T,)), {}

    # -------------------------------------------------------------- what the stream pipeline asks

    @property
    def output_size(self) -> int:
        return self._n_out

    def output_buffer(self, name: str):
        raise InputError(f"a board session has no view of node '{name}' (the board returns the outputs only)")

    def snapshot(self) -> dict:
        return {"clock": self.clock}

    def restore(self, snap: dict) -> None:
        """Back to a :meth:`snapshot`: only the initial state (clock 0) can be restored on a board."""
        if int(snap["clock"]) != 0:
            raise BoardError("a board's state cannot be restored, only reset to the initial state")
        self.reset()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
        else:
            self.link.close()


def _version(v: int) -> str:
    return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def _finite_f32(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise InputError(f"input has dtype {x.dtype}; expected a numeric array (float32)")
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InputError("input contains NaN or infinite values (values beyond float32's range count as infinite); "
                         "expected finite numbers")
    return x


def board_session(model, target: str = "host-firmware", timeout: float = 2.0, board_args=(),
                  on_reset: str = "resume") -> BoardSession:
    """A :class:`BoardSession` running ``model``'s integer program on ``target``: ``host-firmware``
    (the host board program on a new pseudo-terminal), ``qemu-m4`` or ``qemu-rv32`` (an emulated
    board, :mod:`edgebrain.stream.emulated`), or ``serial://PORT?baud=N`` (a real board running the
    device loop; nothing is started). The model must be quantized. ``on_reset``: "resume" (a board
    that restarts gets the model again and the stream goes on from the initial state, with a
    warning) or "error" (:class:`BoardReset`)."""
    from ..csession import model_blob
    from . import emulated as E

    serial = isinstance(target, str) and target.startswith("serial://")
    if target != "host-firmware" and target not in E.BOARDS and not serial:
        raise InputError(f"unknown target '{target}'; expected one of: {', '.join(TARGETS)}")
    if not model.quant:
        raise InputError("a board runs integer programs only, and this model has no fixed-point parameters: quantize "
                         "it (edgebrain convert --quantize int8)", file=getattr(model, "path", None))
    if serial:
        port, baud = E.parse_serial(target)  # checked before the model is lowered
        data, _, _ = model_blob(model)
        return BoardSession(data, SerialLink(port, baud), timeout=timeout, on_reset=on_reset)
    if target == "host-firmware":
        data, _, _ = model_blob(model)
        board = HostBoard(board_args)
        return BoardSession(data, board.link, board=board, timeout=timeout, on_reset=on_reset)
    try:  # first: a missing QEMU or cross compiler is said before the model is lowered
        qemu = E.QemuBoard(target)
    except E.EmulatorError as e:
        raise BoardError(e.detail) from None
    try:
        data, _, _ = model_blob(model)
        qemu.link = SerialLink(qemu.url)
        return BoardSession(data, qemu.link, board=qemu, timeout=timeout, on_reset=on_reset)
    except BoardError as e:
        why = "" if qemu.alive() else qemu.why()
        qemu.close()
        raise BoardError(f"{e}" + (f" ({why})" if why else "")) from None
    except BaseException:
        qemu.close()
        raise
