"""A running instance of a model: buffers, state, and the step / run calls.

    sess = model.session(precision="float")   # or "int"
    y = sess.step(x)          # one timestep; x has the input shape (or (B, *shape))
    ys = sess.run(xs)         # many timesteps in one compiled call; xs is time-major
    sess.spikes("lif1"), sess.v("lif1")  # any node's output and membrane
    snap = sess.snapshot(); sess.restore(snap); sess.reset()

The returned arrays of ``step`` are views into the session's buffers, overwritten by the
next call; copy them to keep them.
"""

from __future__ import annotations

import numpy as np

from .arrays import time_major
from .errors import InputError
from .kernels import engine as E
from .progress import bar as progress_bar
from .program import Program, aligned_empty


_F32 = np.dtype(np.float32)


def _entry_point(dispatcher, args):
    """The compiled wrapper of ``dispatcher`` for exactly the Numba types of ``args``, or None
    when that specialisation is not compiled (yet) in this process."""
    try:
        from numba import typeof

        cres = dispatcher.overloads.get(tuple(typeof(v) for v in args))
        return None if cres is None else cres.entry_point
    except Exception:  # noqa: BLE001 - an optimisation only: fall back to the dispatcher
        return None


class Session:
    def __init__(self, program: Program, batch: int = 1):
        if int(batch) < 1:
            raise InputError(f"batch={batch}; expected >= 1")
        self.program = p = program
        self.batch = int(batch)
        self.precision = p.precision
        # the executor compiled for this program's op families only (a first run compiles less)
        self._exec = E.executor(E.features(p.prog, integer=p.precision != "float"))
        self._n_in = int(np.prod(p.input_shape)) if p.input_shape else 1
        self.state = aligned_empty((self.batch, p.state_size), p.state_dtype)
        self.act = aligned_empty((self.batch, p.act_size), p.act_dtype)
        # the clock, saturation counters, index list and accumulator rows are views of one
        # int64 scratch buffer, so that a batch-1 step passes them as one argument
        n_sat = max(len(p.instr_node), 1)
        size, head = E.scratch_layout(n_sat, p.idx_size, p.acc_size)
        self._scr = scr = aligned_empty((size,), np.int64)
        scr[1:E.SCR_HEADER] = head
        sat_off, _, idx_off, _, a64_off, a32_off, _ = head
        self.clock = scr[0:1]
        self.saturations = scr[sat_off:sat_off + n_sat]
        self._idx = scr[idx_off:idx_off + p.idx_size]
        self._acc64 = scr[a64_off:a64_off + p.acc_size]
        self._acc32 = scr[a32_off:].view(np.int32)[:p.acc_size]
        self._out = aligned_empty((self.batch, max(p.n_out, 1)), np.float32)
        self._xbuf = aligned_empty((self.batch, self._n_in), np.float32)
        self._no_rec = np.zeros((0, 4), np.int64)
        self._no_recbuf = np.zeros((1, 1, 1), np.float64)
        # views returned by step(); fixed because the buffers never move
        (name0, (col0, n0, shape0)), *_ = p.outputs.items()
        self._single_out = len(p.outputs) == 1
        self._out_views = {n: self._out[:, c:c + k].reshape((self.batch,) + tuple(s)) for n, (c, k, s) in p.outputs.items()}
        self._out1 = {n: v[0] for n, v in self._out_views.items()}
        self._unbatched_shape = tuple(p.input_shape)
        self._batched_shape = (self.batch,) + tuple(p.input_shape)
        self._call = self._bind_step()
        self.step = self._fast_step()

    # ------------------------------------------------------------------ stepping
    def _prep_x(self, x) -> tuple[np.ndarray, bool]:
        x = _as_array(x)
        if x.shape == self._unbatched_shape and self.batch == 1:
            batched = False
        elif x.shape == self._batched_shape:
            batched = True
        else:
            raise InputError(f"input has shape {x.shape}; expected "
                             + (f"{self._unbatched_shape} or " if self.batch == 1 else "")
                             + f"{self._batched_shape} (batch {self.batch})")
        if x.dtype != np.float32:
            x = _to_f32(x)
        return x.reshape(self.batch, self._n_in), batched

    def _bind_step(self):
        """The compiled one-step call with every argument but x bound (the buffers never move:
        reset and restore write into them); x is (B, n_in) float32, C-contiguous. Batch 1
        goes to the batch-1 entry point (the one the fast ``step`` uses, so that only one is
        compiled). Default arguments make the bound values fast locals."""
        p, ex = self.program, self._exec
        if self.batch == 1:
            n = self._n_in
            if self.precision == "float":
                def call(x2, k=ex.step1_f32, a=p.prog, b=p.fpar, c=p.ipar, d=self.state, e=self.act, s=self._scr,
                         o=self._out[0]):
                    return k(a, b, c, d, e, s, x2.reshape(n), o)
            else:
                def call(x2, k=ex.step1_int, a=p.prog, b=p.fpar, c=p.ipar, w=p.wbuf, d=self.state, e=self.act,
                         s=self._scr, o=self._out[0]):
                    return k(a, b, c, w, d, e, s, x2.reshape(n), o)
        elif self.precision == "float":
            def call(x2, k=ex.step_f32, a=p.prog, b=p.fpar, c=p.ipar, d=self.state, e=self.act, f=self._idx,
                     g=self.clock, o=self._out):
                return k(a, b, c, d, e, f, g, x2, o)
        else:
            def call(x2, k=ex.step_int, a=p.prog, b=p.fpar, c=p.ipar, w=p.wbuf, d=self.state, e=self.act,
                     a32=self._acc32, a64=self._acc64, f=self._idx, g=self.clock, o=self._out,
                     sc=self.saturations):
                return k(a, b, c, w, d, e, a32, a64, f, g, x2, o, sc)
        return call

    def _fast_step(self):
        """This session's ``step``, installed on the instance: a C-contiguous, aligned, writable
        float32 input of the session's own shape (the usual case in a loop) costs a few checks
        and one compiled call with every other argument bound here; anything else takes
        :meth:`Session.step`. At one or two µs per step of a small model, Python's attribute
        look-ups, reshapes and Numba's type dispatch would otherwise be a good part of it.

        With batch 1 the call goes to the batch-1 entry point, and, once Numba has compiled
        it (at the first step, or before, by another session), straight to its compiled
        wrapper: the checks above pin the argument types to exactly those of that
        compilation, so Numba's own type dispatch (about 0.2 µs) can be skipped."""
        slow, F32, nd = Session.step.__get__(self), _F32, np.ndarray
        views = self._out1 if self.batch == 1 else self._out_views
        ret = next(iter(views.values())) if self._single_out else views
        if self.batch > 1:
            call, shape, x2_shape = self._call, self._batched_shape, (self.batch, self._n_in)

            def step(x):
                if type(x) is nd and x.dtype is F32 and x.shape == shape and x.flags.carray \
                        and call(x.reshape(x2_shape)):
                    return ret
                return slow(x)

            step.__doc__ = Session.step.__doc__
            return step

        # batch 1: the lean entry points (x and out one-dimensional, scratch in one array)
        shape, n_in, p, o = self._unbatched_shape, (self._n_in,), self.program, self._out[0]
        a, b, c, w, st, ac, sc = p.prog, p.fpar, p.ipar, p.wbuf, self.state, self.act, self._scr
        flat = len(shape) != 1
        is_float, ex = self.precision == "float", self._exec
        disp = ex.step1_f32 if is_float else ex.step1_int
        sample = ((a, b, c, st, ac, sc) if is_float else (a, b, c, w, st, ac, sc)) + (np.zeros(n_in, np.float32), o)
        k = _entry_point(disp, sample)
        bound = k is not None  # else: through the dispatcher until it has compiled the kernel
        k = k or disp

        def bind():
            nonlocal k, bound
            bound = True
            k = _entry_point(disp, sample) or disp

        if is_float:
            def step(x):
                if type(x) is nd and x.dtype is F32 and x.shape == shape and x.flags.carray \
                        and k(a, b, c, st, ac, sc, x.reshape(n_in) if flat else x, o):
                    if not bound:
                        bind()
                    return ret
                return slow(x)
        else:
            def step(x):
                if type(x) is nd and x.dtype is F32 and x.shape == shape and x.flags.carray \
                        and k(a, b, c, w, st, ac, sc, x.reshape(n_in) if flat else x, o):
                    if not bound:
                        bind()
                    return ret
                return slow(x)
        step.__doc__ = Session.step.__doc__
        return step

    def step(self, x):
        """Advance one timestep. Returns the output (a dict when the model has several)."""
        x2, batched = self._prep_x(x)
        # C-contiguous, aligned and writable, as the compiled kernels expect (a read-only or
        # strided array would make Numba compile another specialisation)
        if not self._call(np.require(x2, requirements="CAW")):
            raise InputError(f"input at step {int(self.clock[0])} contains NaN or infinite values (or values "
                             "beyond float32's range); expected finite numbers; the step was not taken")
        views = self._out_views if batched else self._out1
        return next(iter(views.values())) if self._single_out else views

    def run(self, xs, record: list[str] | tuple = (), progress: bool = False, chunk: int = 0):
        """Run a time-major sequence xs of shape (T, *input) or (T, B, *input).

        Returns ``(outputs, records)``: outputs has shape (T, [B,] *output) (a dict for several
        outputs); records maps ``spikes/NODE`` and ``v/NODE`` (and ``i/NODE`` for current-based
        neurons) to arrays over time, for the nodes named in ``record``.
        """
        p = self.program
        xs = _as_array(xs)
        batched = time_major(xs, self._unbatched_shape, batch=self.batch, what="input sequence") is not None
        xs = np.ascontiguousarray(_to_f32(xs))
        if not np.isfinite(xs).all():
            bad = np.argwhere(~np.isfinite(xs))[0]
            raise InputError(f"input contains NaN or infinite values (first at index {tuple(int(i) for i in bad)}; "
                             "values beyond float32's range count as infinite); expected finite numbers")
        T = xs.shape[0]
        xs3 = xs.reshape(T, self.batch, self._n_in)
        rec, cols = self._record_spec(record)
        width = max(sum(c[2] for c in cols), 1)
        out = np.zeros((T, self.batch, max(p.n_out, 1)), np.float32)
        recbuf = np.zeros((T, self.batch, width), np.float64) if len(rec) else self._no_recbuf
        step = chunk or (T if not progress else max(1, min(T, 2000)))
        bar = progress_bar(T, enabled=progress)
        t, ex = 0, self._exec
        while t < T:
            s = slice(t, min(T, t + step))
            rb = recbuf[s] if len(rec) else self._no_recbuf
            if self.precision == "float":
                ex.run_f32(p.prog, p.fpar, p.ipar, self.state, self.act, self._idx, self.clock, xs3[s], out[s],
                           rec, rb)
            else:
                ex.run_int(p.prog, p.fpar, p.ipar, p.wbuf, self.state, self.act, self._acc32, self._acc64, self._idx,
                           self.clock, xs3[s], out[s], rec, rb, self.saturations)
            t = s.stop
            if bar:
                bar.update(s.stop - s.start)
        if bar:
            bar.close()
        outs = {n: out[:, :, c:c + k].reshape((T, self.batch) + tuple(sh)) for n, (c, k, sh) in p.outputs.items()}
        if not batched:
            outs = {n: v[:, 0] for n, v in outs.items()}
        records = {}
        for key, kind, n, col, shape in cols:
            a = recbuf[:, :, col:col + n].reshape((T, self.batch) + tuple(shape))
            a = self._dequant_record(key, kind, a)
            records[key] = a if batched else a[:, 0]
        return (next(iter(outs.values())) if self._single_out else outs), records

    def _record_spec(self, names):
        p = self.program
        rows, cols, col = [], [], 0
        for name in names:
            if name not in p.out_regions:
                raise InputError(f"cannot record '{name}': no such node (nodes: {', '.join(p.out_regions)})")
            reg = p.out_regions[name]
            if name in p.state_regions:
                v, i = p.state_regions[name]
                key = "spikes" if reg is not None and self._is_spiking(name) else "out"
                rows.append((0, reg.off, reg.n, col))
                cols.append((f"{key}/{name}", "act", reg.n, col, reg.shape))
                col += reg.n
                rows.append((1, v.off, v.n, col))
                cols.append((f"v/{name}", "v", v.n, col, v.shape))
                col += v.n
                if i is not None:
                    rows.append((1, i.off, i.n, col))
                    cols.append((f"i/{name}", "i", i.n, col, i.shape))
                    col += i.n
            else:
                rows.append((0, reg.off, reg.n, col))
                cols.append((f"out/{name}", "act", reg.n, col, reg.shape))
                col += reg.n
        return (np.array(rows, np.int64).reshape(-1, 4) if rows else self._no_rec), cols

    def _is_spiking(self, name):
        return name in self.program.spiking

    def _dequant_record(self, key, kind, a):
        if self.precision == "float":
            return a.astype(np.float32)
        name = key.split("/", 1)[1]
        p = self.program
        if kind == "v":
            return a * p.state_scales[name][0]
        if kind == "i":
            return a * (p.state_scales[name][1] or 1.0)
        return a * p.scales.get(name, 1.0)

    # ------------------------------------------------------------------ state access
    def reset(self) -> None:
        """Back to the initial state (all zeros), as after creating the session."""
        self.state[...] = 0
        self.act[...] = 0
        self.clock[0] = 0
        self.saturations[...] = 0

    def snapshot(self) -> dict:
        return {"state": self.state.copy(), "act": self.act.copy(), "clock": self.clock.copy()}

    def restore(self, snap: dict) -> None:
        for k in ("state", "act", "clock"):
            if snap[k].shape != getattr(self, k).shape:
                raise InputError(f"snapshot field '{k}' has shape {snap[k].shape}; this session needs "
                                 f"{getattr(self, k).shape}")
            getattr(self, k)[...] = snap[k]

    def output_of(self, name: str) -> np.ndarray:
        """A node's current output (spikes for spiking neurons), shape (B, *shape)."""
        reg = self.program.out_regions.get(name)
        if reg is None:
            raise InputError(f"no node named '{name}'")
        a = self.act[:, reg.off:reg.off + reg.n].reshape((self.batch,) + tuple(reg.shape))
        if self.precision == "int":
            return a * self.program.scales.get(name, 1.0)
        return a

    spikes = output_of

    @property
    def spiking_nodes(self) -> list[str]:
        """Names of the nodes whose output is spikes (spiking neurons, Threshold), in execution order."""
        p = self.program
        return list(dict.fromkeys(n for n in p.instr_node if n in p.spiking))

    @property
    def output_size(self) -> int:
        """Values per batch element and step of all outputs together (in the graph's output order)."""
        return int(self.program.n_out)

    def output_buffer(self, name: str) -> np.ndarray:
        """Node ``name``'s output as stored, shape (B, n): a live view that every step rewrites in
        place (no copy, no dequantization: integers in int mode, so spike counts for spiking
        nodes in both precisions). For monitors that read a node after each ``step``."""
        reg = self.program.out_regions.get(name)
        if reg is None:
            raise InputError(f"no node named '{name}'")
        return self.act[:, reg.off:reg.off + reg.n]

    def v(self, name: str) -> np.ndarray:
        """Membrane potential of a neuron node (dequantized in int mode), shape (B, *shape)."""
        if name not in self.program.state_regions:
            raise InputError(f"'{name}' is not a neuron node")
        r = self.program.state_regions[name][0]
        a = self.state[:, r.off:r.off + r.n].reshape((self.batch,) + tuple(r.shape))
        if self.precision == "int":
            return a * self.program.state_scales[name][0]
        return a

    def i(self, name: str) -> np.ndarray:
        """Synaptic current of a current-based neuron node, shape (B, *shape)."""
        if name not in self.program.state_regions or self.program.state_regions[name][1] is None:
            raise InputError(f"'{name}' is not a current-based neuron node")
        r = self.program.state_regions[name][1]
        a = self.state[:, r.off:r.off + r.n].reshape((self.batch,) + tuple(r.shape))
        if self.precision == "int":
            return a * self.program.state_scales[name][1]
        return a

    def raw_state(self, name: str) -> dict:
        """Integer (or float) state of a neuron node exactly as stored: {'v': ..., 'i': ...}."""
        if name not in self.program.state_regions:
            raise InputError(f"'{name}' is not a neuron node")
        out = {}
        for key, r in zip(("v", "i"), self.program.state_regions[name]):
            if r is not None:
                out[key] = self.state[:, r.off:r.off + r.n].reshape((self.batch,) + tuple(r.shape)).copy()
        return out


def _as_array(x) -> np.ndarray:
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged nested lists and the like
        raise InputError(f"input cannot be read as an array ({e}); expected a numeric array") from None


def _to_f32(x: np.ndarray) -> np.ndarray:
    """float32 version of a numeric array; values beyond float32's range become inf (then rejected)."""
    if x.dtype.kind not in "fiub":
        raise InputError(f"input has dtype {x.dtype}; expected a numeric array (float32)")
    if x.dtype == np.float32:
        return x
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32)

