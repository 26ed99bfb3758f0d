"""Issue 12, item 3: a command that compiles kernels says so on stderr, and a warm run says nothing.

* The real command line in fresh processes with an empty ``NUMBA_CACHE_DIR``: ``run`` compiles the
  executor (one start line, one end line on stderr, JSON on stdout untouched); the same command again
  loads everything from the cache and prints no note; ``inspect`` compiles nothing and says nothing.
* :func:`edgebrain.jit.watch_compiles` on Numba's own events: one started/ended pair per outermost
  compile (a callee compiled for its caller is part of it), none for a function already compiled.
* :class:`edgebrain.progress.CompileNotice` with an injected clock and a timer fired by hand: the
  lines for logs and for a terminal, bursts, an interrupted compile, a closed stderr.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import numpy as np

from edgebrain import jit, ops
from edgebrain.graph import Graph
from edgebrain.model import Model
from edgebrain.progress import COMPILING, CompileNotice
from tests.conftest import REPO

END = re.compile(r"^note: compiled (\d+) kernels? in (\d+\.\d) s(: .+)?$")


def _cli(args, cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "edgebrain", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def test_first_run_says_it_compiles_and_a_warm_run_is_silent(tmp_path):
    g = Graph.sequential(ops.Input(shape=(5,)), ops.Affine(weight=np.eye(3, 5), bias=np.zeros(3)),
                         ops.LIF(beta=0.9, threshold=0.5), ops.Output())
    model = tmp_path / "tiny.ebm"
    Model(g).save(model)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((30, 5)).astype(np.float32))
    cache = tmp_path / "numba-cache"
    cache.mkdir()

    p = _cli(["inspect", model, "--json"], cache)  # compiles nothing: says nothing
    assert p.returncode == 0 and p.stderr == "", p.stderr
    json.loads(p.stdout)

    args = ["run", model, "-i", x, "-o", tmp_path / "out.npz", "--json"]
    first = _cli(args, cache)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0] == COMPILING and len(lines) == 2, first.stderr  # no spinner in a log: two plain lines
    m = END.match(lines[1])
    assert m and int(m.group(1)) >= 1, lines[1]
    assert "run_f32 [core]" in m.group(3), lines[1]  # what was compiled: the float executor, without convolutions
    summary = json.loads(first.stdout)  # stdout is the JSON alone
    assert list(cache.rglob("*.nbc"))
    out1 = np.load(tmp_path / "out.npz")["output"]

    again = _cli(args, cache)
    assert again.returncode == 0 and again.stderr == "", again.stderr  # loaded from the cache: silent
    timing = {"seconds", "us_per_step"}
    assert {k: v for k, v in json.loads(again.stdout).items() if k not in timing} == \
        {k: v for k, v in summary.items() if k not in timing}
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["output"], out1)


class Recorder:
    def __init__(self):
        self.calls = []

    def started(self):
        self.calls.append("started")

    def ended(self):
        self.calls.append("ended")


def test_watch_compiles_counts_only_the_outermost_compile():
    @jit.njit
    def callee(a):
        return a * 3

    @jit.njit
    def caller(a):
        return callee(a) + 1

    rec = Recorder()
    jit.watch_compiles(rec)
    try:
        assert caller(4) == 13  # compiles caller, and callee inside it
        assert rec.calls == ["started", "ended"]
        assert caller(5) == 16  # compiled already
        assert rec.calls == ["started", "ended"]
        assert caller(2.5) == 8.5  # a new signature is a new compile
        assert rec.calls == ["started", "ended"] * 2
    finally:
        jit.unwatch_compiles(rec)
    assert caller(np.int8(1)) == 4  # unwatched: not told
    assert rec.calls == ["started", "ended"] * 2


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Timers:
    """Timers that fire only when the test says so."""

    def __init__(self):
        self.armed = []

    def __call__(self, seconds, fn):
        t = _Timer(seconds, fn)
        self.armed.append(t)
        return t

    def fire_last(self):
        self.armed[-1].fire()


class _Timer:
    def __init__(self, seconds, fn):
        self.seconds, self.fn, self.cancelled = seconds, fn, False

    def cancel(self):
        self.cancelled = True

    def fire(self):
        if not self.cancelled:
            self.fn()


def _notice(tty):
    out, clock, timers = io.StringIO(), Clock(), Timers()
    return CompileNotice(out, clock=clock, timer=timers, tty=tty), out, clock, timers


def _compile(n, clock, seconds):
    n.started()
    clock.t += seconds
    n.ended()


def test_notice_in_a_log_is_one_start_and_one_end_line_per_burst():
    n, out, clock, timers = _notice(tty=False)
    _compile(n, clock, 2.0)
    clock.t += 0.1  # the next compile comes before the quiet period ends: the same burst
    _compile(n, clock, 1.5)
    assert out.getvalue() == COMPILING + "\n"
    assert timers.armed[0].cancelled and timers.armed[-1].seconds == n.quiet_s
    timers.fire_last()
    assert out.getvalue() == COMPILING + "\nnote: compiled 2 kernels in 3.5 s\n"  # compiling time, not the gap
    _compile(n, clock, 0.5)  # later: a burst of its own
    n.close()
    assert out.getvalue().splitlines()[2:] == [COMPILING, "note: compiled 1 kernel in 0.5 s"]
    n.close()  # nothing more to say
    assert len(out.getvalue().splitlines()) == 4


def test_notice_on_a_terminal_is_one_line_rewritten_in_place():
    n, out, clock, timers = _notice(tty=True)
    _compile(n, clock, 2.0)
    assert out.getvalue() == f"\r{COMPILING}\x1b[K\r\x1b[K"  # shown while compiling, erased after
    _compile(n, clock, 1.0)
    assert out.getvalue().endswith(f"\r{COMPILING} 1 done, 2.0 s\x1b[K\r\x1b[K")
    timers.fire_last()
    assert out.getvalue().endswith("\r\x1b[Knote: compiled 2 kernels in 3.0 s\n")
    assert out.getvalue().count("\n") == 1


def test_notice_timer_during_a_compile_and_an_interrupted_compile():
    n, out, clock, timers = _notice(tty=False)
    _compile(n, clock, 1.0)
    first = timers.armed[-1]
    n.started()  # a compile starts just as the quiet timer fires: the burst goes on
    first.cancelled = False
    first.fire()
    assert out.getvalue() == COMPILING + "\n"
    clock.t += 4.0
    n.close()  # e.g. Ctrl-C in the middle of the second compile: what finished is reported
    assert out.getvalue() == COMPILING + "\nnote: compiled 1 kernel in 1.0 s\n"
    n.ended()  # Numba's end event after the close: ignored
    assert out.getvalue().count("\n") == 2


def test_notice_with_stderr_closed_does_not_stop_the_compile():
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    n = CompileNotice(Closed(), clock=Clock(), timer=Timers(), tty=False)
    n.started()
    n.ended()
    n.close()


def test_notice_under_a_rich_progress_bar_is_whole_lines():
    """A rich progress bar replaces stderr with its proxy, which prints whole lines above the bar:
    no carriage returns or escape codes for it to garble."""
    from rich.console import Console
    from rich.file_proxy import FileProxy

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    proxy = FileProxy(Console(file=screen, force_terminal=True), Terminal())
    assert proxy.isatty()
    clock, timers = Clock(), Timers()
    n = CompileNotice(proxy, clock=clock, timer=timers)
    _compile(n, clock, 1.5)
    n.close()
    assert screen.getvalue() == COMPILING + "\nnote: compiled 1 kernel in 1.5 s\n"


def test_the_end_line_names_what_was_compiled():
    n, out, clock, _ = _notice(tty=False)
    n.started()
    n.compiling("step1_int [core]")
    clock.t += 2.0
    n.ended()
    n.started()
    n.compiling("count_window")
    clock.t += 0.5
    n.ended()
    n.flush()
    assert out.getvalue() == COMPILING + "\nnote: compiled 2 kernels in 2.5 s: step1_int [core], count_window\n"
