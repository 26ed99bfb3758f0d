"""The instruction row: the executor's program is a table of int64 rows, one per instruction,
and this module names their columns once.

:mod:`edgebrain.program` writes rows by these names (each kernel family's lowering function
passes ``name=value`` pairs), :mod:`edgebrain.kernels.engine` reads them by the constants
below, and a header generator for the C runtime can read :data:`FIELDS`.

Every row starts with the same header (opcode, input offset and length, output offset and
length in the activation buffer); the columns after it depend on the opcode. An ``*_off``
column is an offset into a parameter buffer: ``fpar`` (float32), ``ipar`` (int32) or ``wbuf``
(weights), as said for each below; unused columns are 0.

The constants are plain module-level ints, which Numba compiles as constants. Numba keys its
on-disk cache on engine.py alone; edgebrain's cache (``_numba_cache``) also keys it on every
module that compiles, so a change here recompiles the executor by itself.
"""

#: columns in one row
WIDTH = 32

# opcodes
OP_INPUT = 1
OP_COPY = 2
OP_ADD = 3
OP_DENSE = 4
OP_CONV = 5
OP_POOL = 6
OP_SCALE = 7
OP_THRESHOLD = 8
OP_NEURON = 9
OP_DELAY = 10
OP_OUTPUT = 11
OP_SPARSE = 12

#: the common header
HEADER = ("op", "in_off", "in_n", "out_off", "out_n")
OP, IN_OFF, IN_N, OUT_OFF, OUT_N = range(len(HEADER))

#: opcode -> names of its columns after the header, in order
FIELDS: dict[int, tuple[str, ...]] = {OP_COPY: (), OP_ADD: ()}


def _columns(opcode: int, names: tuple[str, ...]) -> range:
    FIELDS[opcode] = names
    return range(len(HEADER), len(HEADER) + len(names))


# Input: x (the step's input) quantized in int mode: inv_scale_off (fpar), lo, hi
INPUT_INV_SCALE, INPUT_LO, INPUT_HI = _columns(OP_INPUT, ("inv_scale_off", "lo", "hi"))

# Dense: rows (input rows sharing the weights), weights (n_in, n_out) at w_off (fpar | wbuf),
# bias at b_off (-1: none) and per-output requantisation (m, s) (ipar, int mode); int4 (int mode,
# int8 wbuf): the weights are 4-bit, two per byte, each input row ceil(n_out / 2) bytes
# (kernels/compact.py)
(DENSE_ROWS, DENSE_N_IN, DENSE_N_OUT, DENSE_W, DENSE_B, DENSE_RQ_M, DENSE_RQ_S, DENSE_IDENTITY,
 DENSE_WIDE, DENSE_INT4) = _columns(OP_DENSE, ("rows", "n_in", "n_out", "w_off", "b_off", "rq_m_off", "rq_s_off",
                                               "identity", "wide", "int4"))

# Sparse: a dense synapse whose weights are stored as the CSR of (n_in, n_out) (kernels/compact.py):
# nnz values at w_off (fpar | wbuf; int4: ceil(nnz / 2) bytes of two 4-bit values), n_in + 1 row
# pointers of ptr_bytes (2 | 4) bytes and nnz output indices of idx_bytes (1 | 2) bytes, both raw
# little-endian bytes starting at int32 element ptr_off / idx_off of ipar; the rest as Dense
(SPARSE_ROWS, SPARSE_N_IN, SPARSE_N_OUT, SPARSE_W, SPARSE_NNZ, SPARSE_PTR, SPARSE_PTR_BYTES, SPARSE_IDX,
 SPARSE_IDX_BYTES, SPARSE_B, SPARSE_RQ_M, SPARSE_RQ_S, SPARSE_IDENTITY, SPARSE_WIDE, SPARSE_INT4) = _columns(
    OP_SPARSE, ("rows", "n_in", "n_out", "w_off", "nnz", "ptr_off", "ptr_bytes", "idx_off", "idx_bytes", "b_off",
                "rq_m_off", "rq_s_off", "identity", "wide", "int4"))

#: the shape block of a convolution row, handed to the conv kernels as ``dims``
CONV_DIM_NAMES = ("c", "h", "w", "co", "kh", "kw", "sh", "sw", "pt", "pl", "dh", "dw", "groups", "ho", "wo")
# Conv (Conv1d runs with h = 1): dims, weights at w_off laid out (c/groups, kh, kw, co) with the
# kernel columns reversed (conv.scatter_weights; the engine hands the kernels a 4-D view of that
# memory), bias, (m, s)
_conv = _columns(OP_CONV, CONV_DIM_NAMES + ("w_off", "b_off", "rq_m_off", "rq_s_off", "identity", "wide"))
CONV_DIMS, CONV_NDIMS = _conv[0], len(CONV_DIM_NAMES)
CONV_C, CONV_CO, CONV_KH, CONV_KW, CONV_GROUPS = (_conv[CONV_DIM_NAMES.index(k)]
                                                  for k in ("c", "co", "kh", "kw", "groups"))
CONV_W, CONV_B, CONV_RQ_M, CONV_RQ_S, CONV_IDENTITY, CONV_WIDE = _conv[CONV_NDIMS:]

#: the shape block of a pooling row, handed to the pool kernels as ``dims``
POOL_DIM_NAMES = ("c", "h", "w", "kh", "kw", "sh", "sw", "ph", "pw", "ho", "wo")
# Pool: dims, factor_off (fpar, float mode), (m, s) (int mode)
_pool = _columns(OP_POOL, POOL_DIM_NAMES + ("factor_off", "m", "s"))
POOL_DIMS, POOL_NDIMS = _pool[0], len(POOL_DIM_NAMES)
POOL_FACTOR, POOL_M, POOL_S = _pool[POOL_NDIMS:]

# Scale: scale_off holds s (fpar) in float mode, m (ipar) in int mode; shift_off s (ipar, int mode)
SCALE_SCALE, SCALE_SHIFT = _columns(OP_SCALE, ("scale_off", "shift_off"))

# Threshold: th_off (fpar float | ipar int)
(THRESHOLD_TH,) = _columns(OP_THRESHOLD, ("th_off",))

# Neuron: state_off (v, then i for current-based kinds), flags (kernels/neuron.py), per-neuron
# parameters (fpar float | ipar int), their shifts, dq and the state range (int mode)
(NEURON_STATE, NEURON_FLAGS, NEURON_MAX_SPIKES, NEURON_ALPHA, NEURON_G_SYN, NEURON_BETA, NEURON_G_MEM,
 NEURON_BIAS, NEURON_THR, NEURON_V_RESET, NEURON_GSYN_S, NEURON_GMEM_S, NEURON_DQ, NEURON_LO,
 NEURON_HI) = _columns(OP_NEURON, ("state_off", "flags", "max_spikes", "alpha_off", "g_syn_off", "beta_off",
                                   "g_mem_off", "bias_off", "thr_off", "v_reset_off", "gsyn_s_off", "gmem_s_off",
                                   "dq", "lo", "hi"))

# Delay: ring buffer in act at ring_off (ring_len values), per-element delays at steps_off (ipar)
DELAY_RING, DELAY_STEPS, DELAY_RING_LEN = _columns(OP_DELAY, ("ring_off", "steps_off", "ring_len"))

# Output: column in the output row, scale_off (fpar, int mode: dequantization)
OUTPUT_COLUMN, OUTPUT_SCALE = _columns(OP_OUTPUT, ("column", "scale_off"))

assert all(len(HEADER) + len(v) <= WIDTH for v in FIELDS.values())


def row(opcode: int, in_off: int, in_n: int, out_off: int, out_n: int, **fields) -> list[int]:
    """One instruction row as a list of WIDTH ints, ``fields`` named as in :data:`FIELDS`
    (unnamed columns are 0)."""
    names = FIELDS[opcode]
    r = [opcode, in_off, in_n, out_off, out_n] + [0] * (WIDTH - len(HEADER))
    for k, v in fields.items():
        r[len(HEADER) + names.index(k)] = int(v)
    return r
