/* eb_neuron.c: every neuron kind (LI, LIF, CubaLI, CubaLIF, I, IF) in one loop whose equation
 * is chosen by the row's flag bits, exactly the "Neurons" section of docs/fixed-point.md and
 * edgebrain/kernels/neuron.py's neuron_int; and the two fast paths Numba has for the common kinds:
 * the int64 loop without branches (simple) and, for rows flagged NARROW (the builder proved with
 * kernels/neuron.narrow_ok that no value leaves int32), the same loop in int32 (narrow). The fast
 * paths compute the same values and counts as the general loop. */
#include "eb_fixed.h"
#include "eb_kernels.h"
#include "eb_layout.h"

static int64_t load(const void *a, int bits, int64_t k) {
    return bits == 16 ? ((const int16_t *)a)[k] : ((const int32_t *)a)[k];
}

/* values are in [lo, hi] (a state range) except v_reset, stored truncated as Numba does */
static void store(void *a, int bits, int64_t k, int64_t v) {
    if (bits == 16)
        ((int16_t *)a)[k] = (int16_t)(uint16_t)(uint64_t)v;
    else
        ((int32_t *)a)[k] = eb_wrap32(v);
}

/* decay(z, m) = rsr(z·m, dq), or z − rsr(z, m) for the bit-shift decay */
static int64_t decay(int64_t z, int64_t m, int shift, int64_t dq) {
    return shift ? eb_subw(z, eb_rsr(z, m)) : eb_rsr(eb_mulw(z, m), dq);
}

/* The kinds without a current or multiple spikes (LIF, LI, IF, I: every zoo model), written with
 * selects instead of data-dependent branches: the same operations as eb_neuron's loop below, so
 * the same results and counts (Numba's _simple_int / _simple_int32 do likewise). `bits` is a
 * constant at each call, which drops the state width's test from the loop. */
static inline int64_t simple(const int32_t *x, void *v, const int bits, int32_t *out, int64_t n,
                             const eb_neuron_params *p) {
    const int64_t f = p->flags, lo = p->lo, hi = p->hi, dq = p->dq;
    const int spiking = (f & EB_NF_SPIKING) != 0, subtract = (f & EB_NF_SUBTRACT) != 0;
    const int delayed = spiking && (f & EB_NF_RESET_DELAY) != 0, ge = (f & EB_NF_THRESHOLD_GE) != 0;
    const int shift = (f & EB_NF_SHIFT_DECAY) != 0, gmem_id = (f & EB_NF_GMEM_IDENTITY) != 0;
    int64_t k, nsat = 0;
    for (k = 0; k < n; k++) {
        const int64_t xk = x[k], th = p->thr[k];
        int64_t acc, vs, r, rs;
        int fire, now;
        acc = decay(load(v, bits, k), p->beta[k], shift, dq);
        acc = eb_addw(acc, gmem_id ? xk : eb_mulshift(xk, p->gmem_m[k], p->gmem_s[k]));
        acc = eb_addw(acc, p->bias[k]);
        if (delayed) acc = eb_subw(acc, eb_mulw(out[k], th));
        vs = eb_sat(acc, lo, hi);
        nsat += acc != vs;
        if (!spiking) {
            store(v, bits, k, vs);
            out[k] = eb_wrap32(vs);
            continue;
        }
        fire = ge ? vs >= th : vs > th;
        now = fire && !delayed; /* a reset applied at this step */
        r = eb_subw(vs, th);
        rs = eb_sat(r, lo, hi);
        nsat += now && subtract && r != rs;
        store(v, bits, k, now ? (subtract ? rs : p->v_reset[k]) : vs);
        out[k] = fire;
    }
    return nsat;
}

/* _simple_int32 of kernels/neuron.py, line for line: int16 state, one spike per step, a membrane
 * gain of 1. Twice the vector lanes of int64, and the operations every SIMD unit has for 32 bits.
 * `delayed` (spiking with a delayed reset) is a constant at each call: its select in the loop
 * cost 10 % of a zoo model's step. */
static inline int64_t narrow(const int32_t *x, int16_t *restrict v, int32_t *out, int64_t n,
                             const eb_neuron_params *p, const int shift, const int32_t delayed) {
    const int64_t f = p->flags;
    const int32_t spiking = (f & EB_NF_SPIKING) != 0, subtract = (f & EB_NF_SUBTRACT) != 0;
    const int32_t gei = (f & EB_NF_THRESHOLD_GE) != 0;
    const int32_t lo = (int32_t)p->lo, hi = (int32_t)p->hi, dq = (int32_t)(p->dq & 31);
    const int32_t half = eb_asr32(eb_shl32(1, dq), 1), sub_mask = -subtract;
    const int32_t *restrict beta = p->beta, *restrict bias = p->bias, *restrict thr = p->thr;
    const int32_t *restrict v_reset = p->v_reset;
    uint32_t nsat = 0; /* 32-bit lanes, as Numba's */
    int64_t k;
    for (k = 0; k < n; k++) {
        const int32_t xk = eb_clamp32(x[k], -EB_X_CLAMP, EB_X_CLAMP), vk = v[k], th = thr[k];
        const int32_t prev = out[k], vres = v_reset[k];
        int32_t vdec, acc, vs, fire, now, r, vr;
        if (shift)
            vdec = eb_sub32(vk, eb_asr32(eb_add32(vk, eb_asr32(eb_shl32(1, beta[k]), 1)), beta[k]));
        else
            vdec = eb_asr32(eb_add32(eb_mul32(vk, beta[k]), half), dq);
        acc = eb_add32(eb_add32(vdec, xk), bias[k]);
        if (delayed) acc = eb_sub32(acc, eb_mul32(prev, th)); /* last step's spike, reset now */
        nsat += (uint32_t)((acc < lo) | (acc > hi));
        vs = eb_clamp32(acc, lo, hi);
        fire = (vs > eb_sub32(th, gei)) & spiking;
        now = fire & !delayed; /* a reset applied at this step */
        r = eb_sub32(vs, th);
        nsat += (uint32_t)(now & subtract & ((r < lo) | (r > hi)));
        vr = (eb_clamp32(r, lo, hi) & sub_mask) | (vres & ~sub_mask); /* a select, not a branch */
        v[k] = (int16_t)(now ? vr : vs); /* in [lo, hi], or v_reset truncated as Numba stores it */
        out[k] = spiking ? fire : vs;
    }
    return nsat;
}

int64_t eb_neuron(const int32_t *x, void *v, void *i, int bits, int32_t *out, int64_t n,
                  const eb_neuron_params *p) {
    const int64_t f = p->flags, lo = p->lo, hi = p->hi;
    const int cuba = (f & EB_NF_CUBA) != 0, spiking = (f & EB_NF_SPIKING) != 0;
    const int subtract = (f & EB_NF_SUBTRACT) != 0, delayed = (f & EB_NF_RESET_DELAY) != 0;
    const int lag = (f & EB_NF_CURRENT_LAG) != 0, ge = (f & EB_NF_THRESHOLD_GE) != 0;
    const int multi = (f & EB_NF_MULTISPIKE) != 0, shift = (f & EB_NF_SHIFT_DECAY) != 0;
    const int gsyn_id = (f & EB_NF_GSYN_IDENTITY) != 0, gmem_id = (f & EB_NF_GMEM_IDENTITY) != 0;
    int64_t k, nsat = 0;
    if ((f & EB_NF_NARROW) && bits == 16)
        return spiking && delayed ? narrow(x, (int16_t *)v, out, n, p, shift, 1)
                                  : narrow(x, (int16_t *)v, out, n, p, shift, 0);
    if (!cuba && !multi) return bits == 16 ? simple(x, v, 16, out, n, p) : simple(x, v, 32, out, n, p);
    for (k = 0; k < n; k++) {
        const int64_t xk = x[k];
        int64_t d, acc, vk, th, s = 0;
        int fires;
        if (cuba) {
            const int64_t ik = load(i, bits, k);
            const int64_t drive_in = gsyn_id ? xk : eb_mulshift(xk, p->gsyn_m[k], p->gsyn_s[k]);
            const int64_t i_acc = eb_addw(decay(ik, p->alpha[k], shift, p->dq), drive_in);
            const int64_t i_new = eb_sat(i_acc, lo, hi);
            nsat += i_acc != i_new;
            d = lag ? ik : i_new;
            store(i, bits, k, i_new);
        } else {
            d = xk;
        }
        acc = decay(load(v, bits, k), p->beta[k], shift, p->dq);
        acc = eb_addw(acc, gmem_id ? d : eb_mulshift(d, p->gmem_m[k], p->gmem_s[k]));
        acc = eb_addw(acc, p->bias[k]);
        if (!spiking) {
            vk = eb_sat(acc, lo, hi);
            nsat += acc != vk;
            store(v, bits, k, vk);
            out[k] = eb_wrap32(vk);
            continue;
        }
        th = p->thr[k];
        if (delayed) acc = eb_subw(acc, eb_mulw(out[k], th));  /* last step's spikes, reset now */
        vk = eb_sat(acc, lo, hi);
        nsat += acc != vk;  /* counted after the delayed reset: that is the value clamped */
        fires = ge ? vk >= th : vk > th;
        if (fires) {
            if (multi) {
                s = th != 0 ? eb_floordiv(vk, th) : p->max_spikes;  /* thr >= 1 in the contract */
                if (s < 1) s = 1;
                if (s > p->max_spikes) s = p->max_spikes;
            } else {
                s = 1;
            }
            if (!delayed) {
                if (subtract) {
                    const int64_t r = eb_subw(vk, eb_mulw(s, th));
                    vk = eb_sat(r, lo, hi);
                    nsat += r != vk;  /* only possible with a threshold <= 0 */
                } else {
                    vk = p->v_reset[k];
                }
            }
        }
        store(v, bits, k, vk);
        out[k] = eb_wrap32(s);
    }
    return nsat;
}
