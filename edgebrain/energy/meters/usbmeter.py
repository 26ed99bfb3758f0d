"""USB power meters between the supply and the board: ``um25c`` (RDTech UM24C/UM25C/UM34C, serial)
and ``fnb58`` (FNIRSI FNB48/FNB48S/FNB58/C1, USB HID).

**UM24C / UM25C / UM34C** (Bluetooth SPP: pair with PIN 1234, ``rfcomm bind 0 <MAC>`` gives
``/dev/rfcomm0``; 9600 baud). The host sends the byte ``0xF0``; the meter answers with a 130-byte
big-endian frame: voltage u16 at offset 2 (/100 V, UM25C /1000), current u16 at 4 (/1000 A, UM25C
/10000), power u32 at 6 (/1000 W), temperature at 10, ..., a marker u16 at 0 and at 128. A frame is
accepted when its length is 130 and its power field agrees with voltage × current (a frame that
does not is garbage: skipped and counted by the sampler). Poll rate ≈ 1-2 Hz.

**FNB48 / FNB48S / FNB58 / C1** (USB HID, VID:PID 0483:003A, 2E3C:0049, 2E3C:5558, 0483:003B). The
host writes 64-byte reports ``AA 81 00…00 8E``, ``AA 82 00…00 96`` and ``AA 83 00…00 9E`` (the
last one repeated as a keep-alive); the device streams 64-byte reports: ``AA``, type (``04`` =
data), four samples of 15 bytes (V u32 LE /1e5, I u32 LE /1e5, D+ u16 LE /1000, D− u16 LE /1000,
one unknown byte, temperature u16 LE /10 °C), one byte, and a CRC-8 (poly 0x39, init 0x42) over
bytes 1-62. 100 samples/s. The transport is injectable (anything with ``write(report)``,
``read(timeout) -> bytes | None`` and ``close()``); the default opens the device's
``/dev/hidraw*`` node, found through ``/sys/class/hidraw/*/device/uevent``.
"""

from __future__ import annotations

import os
import select
import struct
from pathlib import Path

from .base import (Meter, MeterAbsent, MeterDisconnected, MeterGarbage, MeterPermission, MeterTimeout, Sample)

# ------------------------------------------------------------------------------- UM24C / UM25C / UM34C

UM_FRAME = 130
UM_REQUEST = b"\xf0"
#: (volt divisor, amp divisor) per model
UM_SCALE = {"um24c": (100.0, 1000.0), "um25c": (1000.0, 10000.0), "um34c": (100.0, 1000.0)}
#: start markers as reported by sigrok / rdumtool [unverified]: used only to tell the model apart
UM_MARKERS = {0x0963: "um24c", 0x09C9: "um25c", 0x0D4C: "um34c"}
UM_END = 0xFFF1


def decode_um_frame(frame: bytes, model: str = "um25c") -> dict:
    """Decode one 130-byte UM frame to ``{volts, amps, watts, temp_c, model}``; raises
    :class:`MeterGarbage` when the length or the fields are not consistent."""
    if len(frame) != UM_FRAME:
        raise MeterGarbage(f"UM frame of {len(frame)} bytes, expected {UM_FRAME}")
    start = struct.unpack_from(">H", frame, 0)[0]
    model = UM_MARKERS.get(start, model)
    vdiv, adiv = UM_SCALE[model]
    volts = struct.unpack_from(">H", frame, 2)[0] / vdiv
    amps = struct.unpack_from(">H", frame, 4)[0] / adiv
    watts = struct.unpack_from(">I", frame, 6)[0] / 1000.0
    temp_c = struct.unpack_from(">H", frame, 10)[0]
    vi = volts * amps
    if volts > 40.0 or amps > 6.0 or abs(vi - watts) > 0.02 * max(vi, watts) + 0.05:
        raise MeterGarbage(f"UM frame fields disagree ({volts:g} V × {amps:g} A ≠ {watts:g} W; "
                           f"marker {start:#06x}): not a {model.upper()} reading")
    return {"volts": volts, "amps": amps, "watts": watts, "temp_c": temp_c, "model": model}


def encode_um_frame(volts: float, amps: float, model: str = "um25c", temp_c: int = 25) -> bytes:
    """A 130-byte UM frame with these readings (for emulators and tests)."""
    vdiv, adiv = UM_SCALE[model]
    marker = {v: k for k, v in UM_MARKERS.items()}[model]
    f = bytearray(UM_FRAME)
    v, a = int(round(volts * vdiv)), int(round(amps * adiv))
    struct.pack_into(">HHHIHHH", f, 0, marker, v, a, int(round(v / vdiv * a / adiv * 1000)), temp_c,
                     int(temp_c * 9 / 5 + 32), 0)
    struct.pack_into(">H", f, 128, UM_END)
    return bytes(f)


class UmMeter(Meter):
    """RDTech UM24C/UM25C/UM34C over a serial port (``/dev/rfcomm0``, a USB-serial adapter, or any
    pyserial URL)."""

    name = "um25c"
    kind = "power"
    period_s = 0.5
    scope = "USB port (UM meter, wall side of the board)"

    def __init__(self, port: str, model: str = "um25c", baud: int = 9600, **kw):
        super().__init__(**kw)
        model = model.lower()
        if model not in UM_SCALE:
            raise self.error(MeterAbsent, f"unknown UM model {model!r}; expected one of {', '.join(UM_SCALE)}")
        self.model, self.port, self.baud = model, str(port), int(baud)
        self.name = model
        self.resolution_w = 5.0 * (1.0 / UM_SCALE[model][1]) + 1.0 / UM_SCALE[model][0] * 0.5
        self.target = self.port
        self.ser = None
        self.frames = 0

    def _open(self) -> None:
        import serial

        if "://" not in self.port and not os.path.exists(self.port):
            raise self.error(MeterAbsent, f"no such port {self.port} (for a Bluetooth UM meter: pair it with PIN "
                                          "1234, then `sudo rfcomm bind 0 <MAC>` creates /dev/rfcomm0)")
        try:
            self.ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.05, write_timeout=self.timeout)
        except (serial.SerialException, ValueError, OSError) as e:
            msg = str(e)
            if "ermission" in msg:
                raise self.error(MeterPermission, f"cannot open {self.port}: {msg} (add the user to group "
                                                  "`dialout`)") from None
            raise self.error(MeterAbsent, f"cannot open {self.port}: {msg}") from None
        try:
            self.ser.reset_input_buffer()
        except Exception:  # noqa: BLE001 - not all URL handlers support it
            pass

    def _exchange(self) -> bytes:
        import serial

        ser = self.ser
        if ser is None:
            raise self.error(MeterDisconnected, "port closed")
        try:
            if ser.in_waiting:
                ser.reset_input_buffer()      # stale bytes of an earlier (late or broken) frame
            ser.write(UM_REQUEST)
            buf = b""
            t0 = self.clock.now()
            last = t0
            while len(buf) < UM_FRAME:
                t = self.clock.now()
                if not buf and t - t0 > self.timeout:
                    raise self.error(MeterTimeout, f"no answer to the 0xF0 request within {self.timeout:g} s")
                if buf and (t - last > 0.25 or t - t0 > self.timeout):
                    raise self.error(MeterGarbage, f"incomplete frame: {len(buf)} of {UM_FRAME} bytes, then silence")
                chunk = ser.read(UM_FRAME - len(buf))
                if chunk:
                    buf += chunk
                    last = self.clock.now()
            return buf
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            raise self.error(MeterDisconnected, f"serial link lost: {e}") from None

    def _read(self) -> Sample:
        t = self.clock.now()
        frame = self._exchange()
        try:
            d = decode_um_frame(frame, self.model)
        except MeterGarbage as e:
            raise self.error(MeterGarbage, e.detail) from None
        self.frames += 1
        p = d["volts"] * d["amps"]
        return Sample(t=t, power_w=p, rails={"usb": p})

    def _close(self) -> None:
        ser, self.ser = self.ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a port that is gone
                pass


# ------------------------------------------------------------------------------ FNIRSI FNB48 / FNB58

FNB_REPORT = 64
FNB_IDS = {(0x0483, 0x003A): "FNB48", (0x0483, 0x003B): "C1", (0x2E3C, 0x5558): "FNB58", (0x2E3C, 0x0049): "FNB48S"}
FNB_RATE = 100.0


def crc8_fnb(data: bytes) -> int:
    """CRC-8 with polynomial 0x39, initial value 0x42, no reflection, no final xor."""
    c = 0x42
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x39) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def fnb_request(cmd: int) -> bytes:
    """The 64-byte host report ``AA <cmd> 00…00 <crc>``."""
    body = bytes([cmd]) + bytes(61)
    return b"\xaa" + body + bytes([crc8_fnb(body)])


def decode_fnb_report(report: bytes, check_crc: bool = True) -> list[dict]:
    """The four samples of one FNB data report (``[]`` for other report types); raises
    :class:`MeterGarbage` on a wrong length, marker or CRC."""
    if len(report) != FNB_REPORT:
        raise MeterGarbage(f"FNB report of {len(report)} bytes, expected {FNB_REPORT}")
    if report[0] != 0xAA:
        raise MeterGarbage(f"FNB report starts with {report[0]:#04x}, expected 0xaa")
    if report[1] != 0x04:
        return []
    if check_crc and crc8_fnb(report[1:63]) != report[63]:
        raise MeterGarbage(f"FNB report CRC {report[63]:#04x} ≠ {crc8_fnb(report[1:63]):#04x}")
    out = []
    for i in range(4):
        o = 2 + 15 * i
        v, a, dp, dn = struct.unpack_from("<IIHH", report, o)
        temp = struct.unpack_from("<H", report, o + 13)[0]
        out.append({"volts": v / 1e5, "amps": a / 1e5, "dp": dp / 1000, "dn": dn / 1000, "temp_c": temp / 10})
    return out


def encode_fnb_report(samples: list[tuple[float, float]], temp_c: float = 25.0, crc: bool = True) -> bytes:
    """A 64-byte FNB data report holding four (volts, amps) samples (for emulators and tests)."""
    assert len(samples) == 4
    r = bytearray(FNB_REPORT)
    r[0], r[1] = 0xAA, 0x04
    for i, (v, a) in enumerate(samples):
        o = 2 + 15 * i
        struct.pack_into("<IIHHBH", r, o, int(round(v * 1e5)), int(round(a * 1e5)), 0, 0, 1, int(round(temp_c * 10)))
    r[62] = 0x01
    r[63] = crc8_fnb(bytes(r[1:63])) if crc else 0
    return bytes(r)


def find_hidraw(root: str | os.PathLike = "/sys/class/hidraw") -> tuple[str, str]:
    """The ``/dev/hidrawN`` node and model of the first FNIRSI meter found; raises :class:`MeterAbsent`."""
    r = Path(root)
    seen = []
    if r.is_dir():
        for d in sorted(r.iterdir()):
            try:
                uevent = (d / "device" / "uevent").read_text()
            except OSError:
                continue
            for line in uevent.splitlines():
                if line.startswith("HID_ID="):
                    try:
                        _, vid, pid = line.split("=", 1)[1].split(":")
                        key = (int(vid, 16), int(pid, 16))
                    except ValueError:
                        continue
                    seen.append(f"{d.name}={key[0]:04x}:{key[1]:04x}")
                    if key in FNB_IDS:
                        return f"/dev/{d.name}", FNB_IDS[key]
    raise MeterAbsent(f"no FNIRSI FNB48/FNB58/C1 USB meter among the HID devices ({', '.join(seen) or 'none'}; "
                      "expected 0483:003a, 0483:003b, 2e3c:5558 or 2e3c:0049)", where="meter fnb58")


class HidrawTransport:
    """A ``/dev/hidraw*`` node: writes carry a leading report number 0 (unnumbered reports)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def write(self, report: bytes) -> None:
        os.write(self.fd, b"\x00" + report)

    def read(self, timeout: float) -> bytes | None:
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return None
        data = os.read(self.fd, FNB_REPORT)
        if not data:
            raise OSError("device gone")
        return data

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Fnb58Meter(Meter):
    name = "fnb58"
    kind = "power"
    streaming = True
    period_s = 1.0 / FNB_RATE
    resolution_w = 5.0 * 1e-5 + 1e-5 * 1.0
    scope = "USB port (FNIRSI meter, wall side of the board)"

    def __init__(self, transport=None, path: str | None = None, hidraw_root: str = "/sys/class/hidraw",
                 keepalive_s: float = 1.0, check_crc: bool = True, **kw):
        super().__init__(**kw)
        self.transport, self.path, self.hidraw_root = transport, path, hidraw_root
        self.keepalive_s, self.check_crc = keepalive_s, check_crc
        self.model = "FNB58"
        self.pending: list[Sample] = []
        self._next_t = None
        self._last_keepalive = 0.0
        self._own = transport is None
        self.target = path or ("transport" if transport is not None else "hidraw")

    def _open(self) -> None:
        if self.transport is None:
            path, model = (self.path, "FNB58") if self.path else find_hidraw(self.hidraw_root)
            self.target, self.model = path, model
            try:
                self.transport = HidrawTransport(path)
            except FileNotFoundError:
                raise self.error(MeterAbsent, f"no such device {path}") from None
            except PermissionError:
                raise self.error(MeterPermission, f"cannot open {path}: permission denied (add a udev rule "
                                                  "giving the user access to the meter's hidraw node)") from None
        try:
            for cmd in (0x81, 0x82, 0x83):
                self.transport.write(fnb_request(cmd))
        except OSError as e:
            raise self.error(MeterDisconnected, f"cannot start the meter: {e}") from None
        self._last_keepalive = self.clock.now()
        self.pending, self._next_t = [], None

    def _read(self) -> Sample:
        if self.pending:
            return self.pending.pop(0)
        deadline = self.clock.now() + self.timeout
        while True:
            t = self.clock.now()
            if t >= deadline:
                raise self.error(MeterTimeout, f"no report within {self.timeout:g} s")
            try:
                if self.keepalive_s and t - self._last_keepalive >= self.keepalive_s:
                    self.transport.write(fnb_request(0x83))
                    self._last_keepalive = t
                rep = self.transport.read(min(deadline - t, max(self.keepalive_s, 0.05)))
            except OSError as e:
                raise self.error(MeterDisconnected, f"USB link lost: {e}") from None
            if rep is None:
                continue
            arrival = self.clock.now()
            try:
                vals = decode_fnb_report(bytes(rep), self.check_crc)
            except MeterGarbage as e:
                if self._next_t is not None:
                    self._next_t += 4 * self.period_s      # the lost report's samples took their time
                raise self.error(MeterGarbage, e.detail) from None
            if not vals:
                continue
            dt = self.period_s
            base = arrival - 3 * dt
            if self._next_t is not None and abs(base - self._next_t) < 1.5 * dt:
                base = self._next_t        # keep the device's own 10 ms spacing while in step (else resync)
            self._next_t = base + 4 * dt
            self.pending = [Sample(t=base + k * dt, power_w=v["volts"] * v["amps"],
                                   rails={"usb": v["volts"] * v["amps"]}) for k, v in enumerate(vals)]
            return self.pending.pop(0)

    def _close(self) -> None:
        tr = self.transport
        if tr is not None:
            try:
                tr.close()
            except Exception:  # noqa: BLE001
                pass
            if self._own:
                self.transport = None
