/* eb_neuron.c: every neuron kind (LI, LIF, CubaLI, CubaLIF, I, IF) in one loop whose equation
 * is chosen by the row's flag bits, exactly the "Neurons" section of docs/fixed-point.md and
 * edgebrain/kernels/neuron.py's neuron_int. (Numba's int32 fast path, flag NARROW, is an
 * optimisation with the same results; it is ignored here.) */
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

int64_t eb_neuron(const int32_t *x, void *v, void *i, int bits, int32_t *out, int64_t n,
                  const eb_neuron_params *p) {
    const int64_t f = p->flags, lo = p->lo, hi = p->hi;
    const int cuba = (f & EB_NF_CUBA) != 0, spiking = (f & EB_NF_SPIKING) != 0;
    const int subtract = (f & EB_NF_SUBTRACT) != 0, delayed = (f & EB_NF_RESET_DELAY) != 0;
    const int lag = (f & EB_NF_CURRENT_LAG) != 0, ge = (f & EB_NF_THRESHOLD_GE) != 0;
    const int multi = (f & EB_NF_MULTISPIKE) != 0, shift = (f & EB_NF_SHIFT_DECAY) != 0;
    const int gsyn_id = (f & EB_NF_GSYN_IDENTITY) != 0, gmem_id = (f & EB_NF_GMEM_IDENTITY) != 0;
    int64_t k, nsat = 0;
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
