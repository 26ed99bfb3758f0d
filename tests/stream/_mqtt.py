"""A real Mosquitto broker on loopback for tests, and a paho subscriber that collects messages.

* :class:`Broker`: writes a minimal ``mosquitto.conf`` (``listener PORT 127.0.0.1``,
  ``allow_anonymous true``, no persistence) into a temporary folder, starts ``mosquitto -c`` as a
  subprocess, waits until the port accepts connections; ``stop()`` / ``start()`` / ``restart()``
  keep the same port (to test reconnection); the log is in ``broker.log_path``.
* ``mosquitto`` fixture (:func:`mosquitto_fixture`): a started broker, stopped at teardown; skips with the reason when the
  ``mosquitto`` binary is absent (Debian package ``mosquitto``; ``tools/install-test-deps.sh``
  installs it).
* :class:`Subscriber`: a separate paho client subscribed with QoS 1 (re-subscribing after every
  reconnection) that records ``(topic, payload)``, each message's QoS and retain flag, and can
  wait for a number of messages.
* :func:`free_port`: a TCP port on 127.0.0.1 nobody listens on (right now).

Use the fixture in a test module by importing it: ``from tests.stream._mqtt import mosquitto_fixture  # noqa: F401``,
then take a ``mosquitto`` argument.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


def find_mosquitto() -> str | None:
    env = os.environ.get("MOSQUITTO")
    if env and os.access(env, os.X_OK):
        return env
    for p in MOSQUITTO_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("mosquitto")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    def __init__(self, binary: str, port: int | None = None, workdir: str | None = None):
        self.binary = binary
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="edgebrain-mqtt-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

    def require_password(self, username: str, password: str) -> Broker:
        """Before :meth:`start`: refuse anonymous clients and accept only ``username`` with ``password``
        (a password file written by mosquitto_passwd, beside the broker's binary)."""
        pw = self.dir / "passwords"
        tool = Path(self.binary).with_name("mosquitto_passwd")
        tool = str(tool) if tool.exists() else (shutil.which("mosquitto_passwd") or "mosquitto_passwd")
        subprocess.run([tool, "-b", "-c", str(pw), username, password], check=True, capture_output=True, timeout=30)
        pw.chmod(0o600)
        # as root, mosquitto would switch to its own user, who cannot read a file in the tests' private folder
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
                             f"persistence false\n{stay}")
        return self
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Broker:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log()}")
            if port_open(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.log()}")

    def stop(self) -> None:
        """Kill the broker (SIGKILL: its clients see the connection drop, as on a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        deadline = time.monotonic() + 5
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(name="mosquitto")
def mosquitto_fixture(tmp_path):
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto broker binary not found (install the Debian package 'mosquitto'; "
                    "tools/install-test-deps.sh does); set MOSQUITTO=/path/to/mosquitto to use another")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'edgebrain[mqtt]')")
    b = Broker(binary, workdir=str(tmp_path / "mosquitto"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Subscriber:
    """A paho client on its own thread, subscribed to ``topic`` (QoS 1), collecting messages."""

    def __init__(self, port: int, topic: str = "#", host: str = "127.0.0.1", timeout: float = 5.0,
                 username: str | None = None, password: str | None = None):
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.messages: list[tuple[str, bytes]] = []
        self.qos: list[int] = []           # per message, the QoS it was delivered with
        self.retained: list[bool] = []
        self._cond = threading.Condition()
        self.subscribed = threading.Event()
        self.connects = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-subscriber-{os.getpid()}-{id(self):x}",
                        clean_session=True)
        c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        if username is not None:
            c.username_pw_set(username, password)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c
        c.connect(host, port, keepalive=30)
        c.loop_start()
        if not self.subscribed.wait(timeout):
            self.close()
            raise RuntimeError(f"test subscriber could not subscribe on port {port}")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connects += 1
        client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, client, userdata, flags, rc, properties=None):
        self.subscribed.clear()

    def _on_subscribe(self, client, userdata, mid, rcs, properties=None):
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.qos.append(msg.qos)
            self.retained.append(bool(msg.retain))
            self._cond.notify_all()

    def wait_for(self, pred, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self.messages), timeout)

    def wait_count(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda m: len(m) >= n, timeout)

    def json(self) -> list[tuple[str, dict]]:
        with self._cond:
            return [(t, json.loads(p)) for t, p in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
