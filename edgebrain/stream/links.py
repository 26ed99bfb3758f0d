"""Byte links to live devices, and reading them across drops: the transport layer of live streams.

    SerialLink      a serial port (pyserial), or a pseudo-terminal
    TcpClient       a TCP connection to a device that serves the data
    TcpServer       a listening port; one device at a time (the next one after a drop)
    UdpLink         datagrams on a bound port

A :class:`Link` only moves bytes: it knows nothing of what they carry. :class:`LinkReader` yields
the bytes as they arrive and reopens a link that drops (end of stream, serial error, TCP reset, or
no data for ``timeout`` seconds) with exponential backoff, counting drops and reconnections in the
source's ``stats``; every wait is bounded, and ``close()`` may come from another thread. Time (the
timeouts, the backoff, the arrival times) is read from a :class:`Clock`, real by default. The live
sources stand on this layer: the line protocol (:mod:`edgebrain.stream.sources.livelines`) and the
binary streams (:mod:`edgebrain.stream.sources.livebin`), opened by URL in
:mod:`edgebrain.stream.sources.live`.
"""

from __future__ import annotations

import socket
import threading
from typing import Iterator

from ..errors import InputError
from .base import now


# ---------------------------------------------------------------------- time


class Clock:
    """The time live links run on: :func:`~edgebrain.stream.base.now` and waits that ``close()`` ends.

    This one is real time. Tests pass one with the same methods that simulates or records time, so
    that timeouts and backoff come out the same however loaded the machine is."""

    def now(self) -> float:
        return now()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait until ``event`` is set (True) or ``seconds`` have passed (False)."""
        return event.wait(max(0.0, seconds))


CLOCK = Clock()     # the default clock of every LinkReader


# ---------------------------------------------------------------------- links


class Dropped(Exception):
    """The link is gone (end of stream, reset, device error): raised by :meth:`Link.read`."""


class Link:
    """A byte link to a device. ``kind`` names it (``info.extra["link"]``); ``datagram``: each read
    is one whole datagram (UDP), so a record may not straddle reads; ``reconnectable``: a drop can
    be followed by :meth:`open` again. Links that listen or bind have an int ``port`` (the one they
    got, when asked for port 0)."""

    kind = "link"
    datagram = False        # each read is one whole datagram (UDP)
    reconnectable = True

    def open(self, wait: float) -> None:
        """(Re)open the link, taking about ``wait`` seconds at most; raises OSError on failure."""
        raise NotImplementedError

    def read(self, timeout: float) -> bytes | None:
        """Bytes that arrived within ``timeout`` seconds (None: nothing); raises Dropped."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (it may be opened again)."""

    def shutdown(self) -> None:
        """Close for good (a server also stops listening)."""
        self.close()


class SerialLink(Link):
    """A serial port, or anything pyserial opens by URL (a pseudo-terminal path, ``loop://``, ...)."""

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
            raise Dropped("port closed")
        try:
            n = ser.in_waiting
            data = ser.read(n if n else 1)
            if data and not n:
                m = ser.in_waiting
                if m:
                    data += ser.read(m)
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            raise Dropped(f"serial error: {e}") from None
        return data or None

    def close(self) -> None:
        ser, self.ser = self.ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a port that is gone
                pass


class TcpClient(Link):
    """A TCP connection to a device that serves the data."""

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
            raise Dropped("socket closed")
        try:
            data = s.recv(1 << 16)
        except socket.timeout:
            return None
        except OSError as e:
            raise Dropped(f"{type(e).__name__}: {e}") from None
        if not data:
            raise Dropped("connection closed by the peer")
        return data

    def close(self) -> None:
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


class TcpServer(TcpClient):
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


class UdpLink(Link):
    """Datagrams to a bound port (no connection: nothing to reopen)."""

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
            raise Dropped("socket closed")
        try:
            data, _ = s.recvfrom(1 << 16)
        except socket.timeout:
            return None
        except OSError as e:
            raise Dropped(str(e)) from None
        return data or None

    def close(self) -> None:
        s, self.sock = self.sock, None
        if s is not None:
            s.close()


# ---------------------------------------------------------------------- reading a link across drops


class LinkReader:
    """Bytes from a link as they arrive, across drops: the link is reopened with exponential backoff
    (``backoff`` doubling to ``backoff_max``) up to ``reconnect`` attempts or ``give_up`` seconds,
    and the stream ends cleanly when it cannot be; drops and reconnections are noted in ``stats``
    (a source's :class:`~edgebrain.stream.base.RepairStats`). ``on_drop()`` is called when the link drops
    (before the reconnection attempts: the consumer discards its partial record), ``on_reconnect()``
    after a successful reopening (a device may send its header again). ``close()`` may be called
    from another thread. ``clock``: a :class:`Clock` (default :data:`CLOCK`)."""

    def __init__(self, link: Link, url: str, stats, *, timeout=5.0, reconnect=10, backoff=0.1, backoff_max=2.0,
                 give_up=None, poll=0.02, on_drop=None, on_reconnect=None, clock=None):
        self.link, self.url, self.stats = link, url, stats
        self.clock = CLOCK if clock is None else clock
        self._stop = threading.Event()
        self.timeout, self.reconnect = float(timeout), int(reconnect)
        self.backoff, self.backoff_max = float(backoff), float(backoff_max)
        self.give_up = None if give_up is None else float(give_up)
        self.poll = float(poll)
        if not self.timeout > 0 or not self.poll > 0:
            raise InputError(f"{url}: timeout and poll must be > 0")
        self.on_drop, self.on_reconnect = on_drop, on_reconnect
        self.closed = False
        self._dry = 0                    # drops in a row without data in between
        self._last_data = self.clock.now()

    def connect_first(self, connect_timeout: float) -> None:
        if isinstance(self.link, TcpServer):
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
        if not self.closed:
            self.clock.wait(self._stop, seconds)

    def recover(self, reason: str) -> bool:
        """After a drop: reopen with backoff. True when the link is back."""
        on_drop = self.on_drop  # read once: close() from another thread clears it
        if on_drop is not None:
            on_drop()
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
        t0 = self.clock.now()
        delay, last, attempt = self.backoff, None, 0
        server = isinstance(self.link, TcpServer)
        while attempt < self.reconnect and not self.closed:
            if self.give_up is not None and self.clock.now() - t0 >= self.give_up:
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
            dt = self.clock.now() - t0
            self.stats.note("reconnect", self.url, f"reconnected after {dt:.2f} s ({attempt} attempt"
                                                   f"{'s' if attempt > 1 else ''})")
            self._last_data = self.clock.now()
            on_reconnect = self.on_reconnect
            if on_reconnect is not None:
                on_reconnect()
            return True
        if not self.closed:
            self.stats.note("link", self.url, f"gave up after {attempt} reconnection attempts in "
                                              f"{self.clock.now() - t0:.1f} s ({last}); stream ends", 0)
        return False

    def reads(self, idle: bool = False) -> Iterator[tuple[float, bytes]]:
        """(arrival, bytes) as they come (one datagram per item on UDP), across drops and reconnections;
        with ``idle``, also (now, b"") after every ``poll`` seconds without data (so that a caller can
        keep its own deadlines)."""
        self._last_data = self.clock.now()
        while not self.closed:
            try:
                data = self.link.read(self.poll)
            except Dropped as e:
                if self.closed or not self.recover(str(e)):
                    return
                continue
            t = self.clock.now()
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
        self._stop.set()
        # the callbacks are the source's bound methods: a source -> reader -> source cycle that
        # only the garbage collector would free, with whatever buffers the source still holds
        self.on_drop = self.on_reconnect = None
        link = self.link
        if link is not None:
            link.shutdown()
