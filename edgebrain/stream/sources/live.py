"""Live line sources: ``serial://``, ``tcp://`` and ``udp://`` in the Edge Impulse data-forwarder convention.

    serial:///dev/ttyUSB0?baud=115200        a serial port (or a pseudo-terminal path), via pyserial
    tcp://192.168.1.20:5000                  connect to a device that serves lines
    tcp://:5000                              listen on port 5000 for one device (another after a drop)
    udp://:5000                              datagrams on port 5000, each holding one or more lines

With ``format=`` in the URL (or ``--format``) the same links carry binary streams instead: raw PCM or
a streamed WAV (``format=pcm|wav``), Prophesee EVT words (``format=evt3|evt2|evt21|raw``) or AEDAT 4
packets (``format=aedat4``); see :mod:`edgebrain.stream.sources.livebin`, which reuses the link reading and
reconnection below (:class:`_LinkReader`).

The device prints one sample per line, numbers separated by commas, tabs or spaces, no header
(Edge Impulse ``data-forwarder``). The channel count is fixed by the first lines that agree
(or ``channels=``); the rate is given (``rate=100``) or measured from the arrival times of the
first ``detect_lines`` lines like the data forwarder does, and snapped to a common sensor rate
when within 3 % (``info.extra["rate_detected"]``, ``["rate_measured"]``). Opening a source waits
for those first lines, so that its ``info`` is complete when the stream starts.

Sample times are stream time, sample index / rate; each chunk carries the wall-clock time it
arrived (``now()``). Chunks hold what has arrived, at most ``chunk_ms`` (10 ms) of samples, so
that latency stays low.

Damage is counted in ``stats`` and logged, and the stream resynchronises at the next newline:
garbage and non-UTF-8 bytes, lines with the wrong number of fields, over-long lines (the line
buffer is bounded by ``max_line``), NaN/inf or out-of-range values (``valid=lo|hi``; the line is
skipped, or with ``repair=hold`` the channel's last valid value is used). A link that drops (end
of stream, serial error, TCP reset, or no data for ``timeout`` seconds) is reopened with
exponential backoff (``backoff`` doubling to ``backoff_max``) up to ``reconnect`` attempts or
``give_up`` seconds, and the stream goes on ("reconnected after N s"); when it cannot be
reopened the stream ends cleanly. UDP has no link: it ends after ``timeout`` seconds without a
datagram. Every wait is bounded; ``close()`` may be called from another thread to stop a stream.
"""

from __future__ import annotations

import math
import re
import socket
import time
import urllib.parse
from typing import Iterator

import numpy as np

from ...errors import InputError
from ..base import Samples, Source, SourceInfo, _value, log, now

#: sensor output data rates a measured rate is snapped to (within 3 %)
COMMON_RATES = (1, 2, 5, 10, 12.5, 16, 20, 25, 26, 30, 32, 40, 50, 52, 60, 62.5, 64, 100, 104, 125, 128, 200, 208,
                250, 256, 400, 416, 500, 512, 800, 833, 1000, 1600, 1666, 2000, 3200, 3333, 4000, 6667, 8000)
_SEP = re.compile(rb"[,\t ]+")


class _Dropped(Exception):
    """The link is gone (end of stream, reset, device error)."""


# ---------------------------------------------------------------------- links


class _Link:
    kind = "link"
    datagram = False        # each read holds whole lines (UDP)
    reconnectable = True

    def open(self, wait: float) -> None:
        """(Re)open the link, taking about ``wait`` seconds at most; raises OSError on failure."""
        raise NotImplementedError

    def read(self, timeout: float) -> bytes | None:
        """Bytes that arrived within ``timeout`` seconds (None: nothing); raises _Dropped."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _SerialLink(_Link):
    kind = "serial"

    def __init__(self, port: str, baud: int, poll: float):
        self.port, self.baud, self.poll = port, int(baud), poll
        self.ser = None

    def open(self, wait: float) -> None:
        import serial

        try:
            self.ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=self.poll)
        except (serial.SerialException, ValueError) as e:
            raise OSError(str(e)) from None

    def read(self, timeout: float) -> bytes | None:
        import serial

        ser = self.ser
        if ser is None:
            raise _Dropped("port closed")
        try:
            n = ser.in_waiting
            data = ser.read(n if n else 1)
            if data and not n:
                m = ser.in_waiting
                if m:
                    data += ser.read(m)
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            raise _Dropped(f"serial error: {e}") from None
        return data or None

    def close(self) -> None:
        ser, self.ser = self.ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a port that is gone
                pass


class _TcpClient(_Link):
    kind = "tcp"

    def __init__(self, host: str, port: int, poll: float):
        self.host, self.port, self.poll = host, port, poll
        self.sock = None

    def open(self, wait: float) -> None:
        s = socket.create_connection((self.host, self.port), timeout=max(0.5, min(wait, 5.0)))
        s.settimeout(self.poll)
        self.sock = s

    def read(self, timeout: float) -> bytes | None:
        s = self.sock
        if s is None:
            raise _Dropped("socket closed")
        try:
            data = s.recv(1 << 16)
        except socket.timeout:
            return None
        except OSError as e:
            raise _Dropped(f"{type(e).__name__}: {e}") from None
        if not data:
            raise _Dropped("connection closed by the peer")
        return data

    def close(self) -> None:
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


class _TcpServer(_TcpClient):
    """Listens on a port and takes one client at a time (the next one after a drop)."""

    def __init__(self, host: str, port: int, poll: float):
        super().__init__(host, port, poll)
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ls.bind((host or "0.0.0.0", port))
        except OSError as e:
            ls.close()
            raise InputError(f"tcp://{host}:{port}: cannot listen ({e.strerror or e})") from None
        ls.listen(1)
        self.listener = ls
        self.port = ls.getsockname()[1]
        self.peer = None

    def open(self, wait: float) -> None:
        if self.listener is None:
            raise OSError("not listening")
        self.listener.settimeout(max(0.01, wait))
        try:
            s, self.peer = self.listener.accept()
        except socket.timeout:
            raise OSError(f"no client connected within {wait:.2f} s") from None
        s.settimeout(self.poll)
        self.sock = s

    def shutdown(self) -> None:
        self.close()
        ls, self.listener = self.listener, None
        if ls is not None:
            ls.close()


class _UdpLink(_Link):
    kind = "udp"
    datagram = True
    reconnectable = False

    def __init__(self, host: str, port: int, poll: float):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError as e:
            s.close()
            raise InputError(f"udp://{host}:{port}: cannot bind ({e.strerror or e})") from None
        s.settimeout(poll)
        self.sock = s
        self.port = s.getsockname()[1]

    def open(self, wait: float) -> None:
        if self.sock is None:
            raise OSError("socket closed")

    def read(self, timeout: float) -> bytes | None:
        s = self.sock
        if s is None:
            raise _Dropped("socket closed")
        try:
            data, _ = s.recvfrom(1 << 16)
        except socket.timeout:
            return None
        except OSError as e:
            raise _Dropped(str(e)) from None
        return data or None

    def close(self) -> None:
        s, self.sock = self.sock, None
        if s is not None:
            s.close()


# ---------------------------------------------------------------------- reading a link across drops


class _LinkReader:
    """Bytes from a link as they arrive, across drops: the link is reopened with exponential backoff
    (``backoff`` doubling to ``backoff_max``) up to ``reconnect`` attempts or ``give_up`` seconds,
    and the stream ends cleanly when it cannot be. Shared by the line sources and the binary ones
    (:mod:`edgebrain.stream.sources.livebin`). ``on_drop()`` is called when the link drops (before the
    reconnection attempts: the consumer discards its partial record), ``on_reconnect()`` after a
    successful reopening (a device may send its header again). ``close()`` may be called from
    another thread."""

    def __init__(self, link: _Link, url: str, stats, *, timeout=5.0, reconnect=10, backoff=0.1, backoff_max=2.0,
                 give_up=None, poll=0.02, on_drop=None, on_reconnect=None):
        self.link, self.url, self.stats = link, url, stats
        self.timeout, self.reconnect = float(timeout), int(reconnect)
        self.backoff, self.backoff_max = float(backoff), float(backoff_max)
        self.give_up = None if give_up is None else float(give_up)
        self.poll = float(poll)
        if not self.timeout > 0 or not self.poll > 0:
            raise InputError(f"{url}: timeout and poll must be > 0")
        self.on_drop, self.on_reconnect = on_drop, on_reconnect
        self.closed = False
        self._dry = 0                    # drops in a row without data in between
        self._last_data = now()

    def connect_first(self, connect_timeout: float) -> None:
        if isinstance(self.link, _TcpServer):
            try:
                self.link.open(connect_timeout)
            except OSError as e:
                raise InputError(f"{self.url}: {e}") from None
            return
        delay, last = self.backoff, None
        for attempt in range(max(1, self.reconnect + 1)):
            try:
                self.link.open(delay)
                return
            except OSError as e:
                last = e
            if attempt < self.reconnect:
                self.sleep(delay)
                delay = min(2 * delay, self.backoff_max)
        raise InputError(f"{self.url}: cannot open ({last})")

    def sleep(self, seconds: float) -> None:
        end = now() + seconds
        while not self.closed:
            d = end - now()
            if d <= 0:
                return
            time.sleep(min(d, 0.05))

    def recover(self, reason: str) -> bool:
        """After a drop: reopen with backoff. True when the link is back."""
        if self.on_drop is not None:
            self.on_drop()
        self.link.close()
        if self.closed:
            return False
        if not self.link.reconnectable or self.reconnect <= 0:
            self.stats.note("link", self.url, f"link ended ({reason}); not reconnecting", 0)
            return False
        self._dry += 1
        if self._dry > self.reconnect:
            self.stats.note("link", self.url, f"link dropped ({reason}) {self._dry} times in a row without "
                                              "delivering data; stream ends", 0)
            return False
        self.stats.note("link", self.url, f"link dropped ({reason}); reconnecting", 0)
        t0 = now()
        delay, last, attempt = self.backoff, None, 0
        server = isinstance(self.link, _TcpServer)
        while attempt < self.reconnect and not self.closed:
            if self.give_up is not None and now() - t0 >= self.give_up:
                break
            attempt += 1
            if not server:
                self.sleep(delay)
                if self.closed:
                    break
            try:
                self.link.open(delay)
            except OSError as e:
                last = e
                delay = min(2 * delay, self.backoff_max)
                continue
            dt = now() - t0
            self.stats.note("reconnect", self.url, f"reconnected after {dt:.2f} s ({attempt} attempt"
                                                   f"{'s' if attempt > 1 else ''})")
            self._last_data = now()
            if self.on_reconnect is not None:
                self.on_reconnect()
            return True
        if not self.closed:
            self.stats.note("link", self.url, f"gave up after {attempt} reconnection attempts in "
                                              f"{now() - t0:.1f} s ({last}); stream ends", 0)
        return False

    def reads(self, idle: bool = False) -> Iterator[tuple[float, bytes]]:
        """(arrival, bytes) as they come (one datagram per item on UDP), across drops and reconnections;
        with ``idle``, also (now, b"") after every ``poll`` seconds without data (so that a caller can
        keep its own deadlines)."""
        self._last_data = now()
        while not self.closed:
            try:
                data = self.link.read(self.poll)
            except _Dropped as e:
                if self.closed or not self.recover(str(e)):
                    return
                continue
            t = now()
            if data is None:
                if t - self._last_data > self.timeout:
                    if not self.link.reconnectable:
                        self.stats.note("link", self.url, f"no data for {self.timeout:g} s; stream ends", 0)
                        return
                    if not self.recover(f"no data for {self.timeout:g} s"):
                        return
                if idle:
                    yield t, b""
                continue
            self._last_data = t
            self._dry = 0
            yield t, data

    def close(self) -> None:
        self.closed = True
        link = self.link
        if link is not None:
            (link.shutdown if isinstance(link, _TcpServer) else link.close)()


# ---------------------------------------------------------------------- the source


def _snap(rate: float) -> float:
    best = min(COMMON_RATES, key=lambda r: abs(math.log(rate / r)))
    if abs(rate / best - 1) <= 0.03:
        return float(best)
    return float(f"{rate:.3g}")


class LineSource(Source):
    """Samples from a live line link (see the module). Options: rate, channels, names, labels_col,
    timeout, reconnect, backoff, backoff_max, give_up, connect_timeout, detect_lines, detect_seconds,
    max_line, chunk_ms, valid, repair."""

    live = True

    def __init__(self, link: _Link, url: str, *, rate=None, channels=None, names=None, labels_col=None,
                 timeout=5.0, reconnect=10, backoff=0.1, backoff_max=2.0, give_up=None, connect_timeout=30.0,
                 detect_lines=50, detect_seconds=5.0, max_line=4096, chunk_ms=10.0, valid=None, repair="skip",
                 poll=0.02):
        super().__init__()
        self.link, self.url = link, url
        if isinstance(names, str):
            names = [x for x in re.split(r"[,|]", names) if x]
        self.names = list(names) if names else None
        self.C = int(channels) if channels is not None else (len(self.names) if self.names else None)
        if self.names and self.C != len(self.names):
            raise InputError(f"{url}: {len(self.names)} names for channels={self.C}")
        self.labels_col = None if labels_col is None else int(labels_col)
        self.timeout = float(timeout)
        self.detect_lines, self.detect_seconds = int(detect_lines), float(detect_seconds)
        self.max_line, self.poll = int(max_line), float(poll)
        if repair not in ("skip", "hold"):
            raise InputError(f"{url}: repair='{repair}'; expected skip or hold (a live stream does not wait to "
                             "interpolate)")
        self.repair = repair
        self.lo, self.hi = -np.inf, np.inf
        if valid is not None:
            try:
                self.lo, self.hi = float(valid[0]), float(valid[1])
            except (TypeError, IndexError, ValueError):
                raise InputError(f"{url}: valid={valid!r}; expected lo|hi") from None
        self.link_reader = _LinkReader(link, url, self.stats, timeout=timeout, reconnect=reconnect, backoff=backoff,
                                       backoff_max=backoff_max, give_up=give_up, poll=poll, on_drop=self._dropped)
        self._buf = b""
        self._discarding = False
        self._n = 0                      # samples emitted (stream time = n / rate)
        self._last = None                # last valid value per channel (repair=hold)
        self._pending: list = []         # (arrival, line) read while opening
        self._extra = {"link": link.kind, "protocol": "edge-impulse data-forwarder lines"}
        try:
            self.link_reader.connect_first(float(connect_timeout))
            self._reader = self._reads()
            rate, detected, measured = self._prime(None if rate is None else float(rate))
        except BaseException:
            self.close()
            raise
        self.rate = rate
        self.per_chunk = max(1, int(rate * float(chunk_ms) / 1000.0))
        self._extra["rate_detected"] = detected
        if measured is not None:
            self._extra["rate_measured"] = round(measured, 3)
        if hasattr(link, "port") and isinstance(link.port, int):
            self._extra["port"] = link.port
        self.info = SourceInfo(format="lines", kind="samples", path=url, rate=rate, channels=self.C,
                               channel_names=self.names or [f"ch{j}" for j in range(self.C)], extra=self._extra)
        log.info("%s: %d channels at %g Hz%s", url, self.C, rate,
                 f" (detected: measured {measured:.2f} Hz)" if detected else "")

    # -------------------------------------------------------------- connection
    def _where(self) -> str:
        return self.url

    def _dropped(self) -> None:
        if self._buf or self._discarding:
            self.stats.note("repaired", self.url, "partial line discarded when the link dropped")
            self._buf, self._discarding = b"", False

    def _reads(self) -> Iterator[tuple[float, list]]:
        """(arrival, complete lines) as they come, across drops and reconnections."""
        for t, data in self.link_reader.reads():
            lines = self._split(data)
            if lines:
                yield t, lines

    def _split(self, data: bytes) -> list:
        if self.link.datagram:
            parts = data.split(b"\n")
        else:
            parts = (self._buf + data).split(b"\n")
            tail = parts.pop()
            if self._discarding:
                if not parts:
                    return []
                parts.pop(0)
                self._discarding = False
            if len(tail) > self.max_line:
                self.stats.note("repaired", self.url, f"line longer than {self.max_line} bytes; discarded up to the "
                                                      "next newline")
                tail, self._discarding = b"", True
            self._buf = tail
        out = []
        for p in parts:
            if len(p) > self.max_line:
                self.stats.note("repaired", self.url, f"line longer than {self.max_line} bytes; discarded")
                continue
            p = p.strip()
            if p:
                out.append(p)
        return out

    # -------------------------------------------------------------- the first lines
    def _fields(self, line: bytes):
        f = _SEP.split(line)
        return [x for x in f if x]

    def _prime(self, rate):
        """Read the first lines: fix the channel count and measure the rate if not given."""
        need_rate = rate is None
        reads = []              # (arrival, number of lines) for rate detection
        run_len, run_count = 0, None
        t_start = now()
        for t, lines in self._reader:
            self._pending.append((t, lines))
            reads.append((t, len(lines)))
            if self.C is None:
                for ln in lines:
                    f = self._fields(ln)
                    if self.labels_col is not None and len(f) > 0:
                        try:
                            f.pop(self.labels_col)
                        except IndexError:
                            continue
                    try:
                        [float(x) for x in f]
                    except ValueError:
                        run_len = 0
                        continue
                    if f and len(f) == run_count:
                        run_len += 1
                    else:
                        run_count, run_len = len(f), 1
                    if run_len >= 3:
                        self.C = run_count
                        break
            if self.C is not None and not need_rate:
                return rate, False, None
            n_lines = sum(n for _, n in reads)
            span = reads[-1][0] - reads[0][0]
            if self.C is not None and len(reads) >= 3 and span > 0 and (
                    n_lines >= self.detect_lines or now() - t_start >= self.detect_seconds):
                measured = (n_lines - reads[0][1]) / span
                return _snap(measured), True, measured
            if now() - t_start > max(self.detect_seconds, self.timeout) * 4:
                break
        got = sum(n for _, n in reads)
        if not got:
            raise InputError(f"{self.url}: no data received (waited {now() - t_start:.1f} s)")
        if self.C is None:
            raise InputError(f"{self.url}: cannot tell the number of channels: no three consecutive lines of "
                             f"numbers agree among the first {got} lines; pass channels=")
        raise InputError(f"{self.url}: cannot detect the sample rate from {got} lines arriving in {len(reads)} "
                         "bursts; pass rate=")

    # -------------------------------------------------------------- streaming
    def _parse(self, lines: list):
        """Values (n, C) float32 and labels of the valid lines, counting the others."""
        C, lc = self.C, self.labels_col
        rows, labels = [], []
        for ln in lines:
            if ln.startswith(b"ERR") or ln.startswith(b"<ERR"):
                self.stats.note("repaired", self.url, f"device reported an error: {ln[:60].decode('utf-8', 'replace')}")
                continue
            f = self._fields(ln)
            lab = None
            if lc is not None:
                try:
                    lab = f.pop(lc).decode("utf-8", "replace")
                except IndexError:
                    pass
            if len(f) != C:
                self.stats.note("repaired", self.url, f"line with {len(f)} fields, expected {C}: "
                                                      f"{ln[:40].decode('utf-8', 'replace')!r}; skipped")
                continue
            try:
                v = [float(x) for x in f]
            except ValueError:
                self.stats.note("repaired", self.url, f"unparsable line {ln[:40].decode('utf-8', 'replace')!r}; "
                                                      "skipped")
                continue
            a = np.array(v)
            bad = ~np.isfinite(a) | (a < self.lo) | (a > self.hi)
            if bad.any():
                if self.repair == "hold" and self._last is not None:
                    a[bad] = self._last[bad]
                    self.stats.note("repaired", self.url, "NaN/inf or out-of-range value; held at the last valid value")
                else:
                    self.stats.note("repaired", self.url, "NaN/inf or out-of-range value; line skipped")
                    continue
            self._last = a
            rows.append(a)
            labels.append(lab)
        if not rows:
            return None, None
        return np.array(rows, np.float32), (np.array(labels, dtype=object) if lc is not None else None)

    def chunks(self) -> Iterator[Samples]:
        def batches():
            while self._pending:
                yield self._pending.pop(0)
            yield from self._reader

        try:
            for arrival, lines in batches():
                vals, labels = self._parse(lines)
                if vals is None:
                    continue
                for a in range(0, len(vals), self.per_chunk):
                    v = vals[a:a + self.per_chunk]
                    t = (self._n + np.arange(len(v))) / self.rate
                    self._n += len(v)
                    yield Samples(t, v, None if labels is None else labels[a:a + self.per_chunk], arrival)
        finally:
            self.close()

    def close(self) -> None:
        reader = getattr(self, "link_reader", None)
        if reader is not None:
            reader.close()


# ---------------------------------------------------------------------- URL openers

_OPTIONS = ("rate", "channels", "names", "labels_col", "timeout", "reconnect", "backoff", "backoff_max", "give_up",
            "connect_timeout", "detect_lines", "detect_seconds", "max_line", "chunk_ms", "valid", "repair", "poll")
LINE_FORMATS = (None, "", "lines", "ei")


def _options(u: urllib.parse.SplitResult, format, options: dict, extra: tuple) -> tuple[str | None, dict]:
    """(format, options) from the URL query and the caller's options (which win). ``format`` (or
    ``?format=``) selects a binary stream (:mod:`.livebin`); without it the link carries lines."""
    opts = {k: _value(v) for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True)}
    opts.update(options)
    q = opts.pop("format", None)
    fmt = format or q
    fmt = None if fmt in LINE_FORMATS else str(fmt).lower()
    if fmt is not None:
        from .livebin import FORMATS as BINARY

        if fmt not in BINARY:
            raise InputError(f"{u.scheme}://: format '{fmt}' is not a live stream format; expected lines (the "
                             f"default) or one of {', '.join(BINARY)}")
        return fmt, opts
    if isinstance(opts.get("valid"), str) and "," in opts["valid"]:
        opts["valid"] = [_value(x) for x in opts["valid"].split(",")]
    unknown = [k for k in opts if k not in _OPTIONS + extra]
    if unknown:
        raise InputError(f"{u.scheme}://: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"expected {', '.join(_OPTIONS + extra)} (or format= for a binary stream)")
    return None, opts


def _url(u) -> str:
    return f"{u.scheme}://{u.netloc}{u.path}" + (f"?{u.query}" if u.query else "")


def _port(u) -> int:
    try:
        p = u.port
    except ValueError:
        p = None
    if p is None:
        raise InputError(f"{_url(u)}: no port; expected {u.scheme}://host:port or {u.scheme}://:port")
    return p


def _make(link: _Link, url: str, fmt: str | None, opts: dict) -> Source:
    try:
        if fmt is not None:
            from .livebin import open_binary

            return open_binary(link, url, fmt, opts)
        return LineSource(link, url, **opts)
    except BaseException:
        (link.shutdown if isinstance(link, _TcpServer) else link.close)()
        raise


def open_serial(u: urllib.parse.SplitResult, format=None, **options) -> Source:
    fmt, opts = _options(u, format, options, ("baud",))
    port = urllib.parse.unquote(u.netloc + u.path)
    if not port:
        raise InputError(f"{_url(u)}: no port; expected serial:///dev/ttyUSB0?baud=115200")
    link = _SerialLink(port, int(opts.pop("baud", 115200)), float(opts.get("poll", 0.02)))
    return _make(link, _url(u), fmt, opts)


def open_tcp(u: urllib.parse.SplitResult, format=None, **options) -> Source:
    fmt, opts = _options(u, format, options, ())
    port, host = _port(u), u.hostname or ""
    poll = float(opts.get("poll", 0.02))
    link = _TcpServer(host, port, poll) if not host else _TcpClient(host, port, poll)
    return _make(link, _url(u), fmt, opts)


def open_udp(u: urllib.parse.SplitResult, format=None, **options) -> Source:
    fmt, opts = _options(u, format, options, ())
    link = _UdpLink(u.hostname or "", _port(u), float(opts.get("poll", 0.02)))
    return _make(link, _url(u), fmt, opts)


SCHEMES = {"serial": open_serial, "tcp": open_tcp, "udp": open_udp}
