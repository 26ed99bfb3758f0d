/* eb_conv.c: Conv1d / Conv2d (edgebrain/kernels/conv.py's conv2d_int) and sum / average
 * pooling (kernels/pool.py's pool2d_int). PyTorch semantics: zero padding, stride, dilation,
 * groups; Conv1d runs with h = 1. Buffers are flat and channel-first. */
#include "eb_fixed.h"
#include "eb_kernels.h"

/* acc[0:n] += v · w[0:n], w int8 or int16 (a spike, v = 1, adds the weights) */
static void axpy(int64_t *acc, const void *w, int wbits, int64_t w0, int64_t n, int64_t v) {
    int64_t t;
    if (wbits == 8) {
        const int8_t *ws = (const int8_t *)w + w0;
        if (v == 1)
            for (t = 0; t < n; t++) acc[t] = eb_addw(acc[t], ws[t]);
        else
            for (t = 0; t < n; t++) acc[t] = eb_addw(acc[t], v * ws[t]);
    } else {
        const int16_t *ws = (const int16_t *)w + w0;
        if (v == 1)
            for (t = 0; t < n; t++) acc[t] = eb_addw(acc[t], ws[t]);
        else
            for (t = 0; t < n; t++) acc[t] = eb_addw(acc[t], v * ws[t]);
    }
}

/* acc (ho, wo, co: channel-last) += the contributions of every nonzero input, scattered as
 * the Numba kernel does (an exact sum: any order of terms gives the same integers). The
 * weights' layout is (C/groups, kh, kw, co) with the kernel columns reversed:
 * w[co, ci, ky, kx] is at ((ci·kh + ky)·kw + kw-1-kx)·co_total + co. */
static void scatter(const int32_t *x, const void *w, int wbits, int64_t *acc, const int64_t *d) {
    const int64_t C = d[0], H = d[1], W = d[2], Co = d[3], kh = d[4], kw = d[5], sh = d[6], sw = d[7];
    const int64_t pt = d[8], pl = d[9], dh = d[10], dw = d[11], groups = d[12], Ho = d[13], Wo = d[14];
    const int64_t cin_g = C / groups, cout_g = Co / groups;
    const int unit = sh == 1 && sw == 1 && dh == 1 && dw == 1; /* stride 1, no dilation: runs */
    int64_t c, iy, ix, ky, kx;
    for (c = 0; c < C; c++) {
        const int64_t g = c / cin_g, ci = c - g * cin_g, co0 = g * cout_g;
        for (iy = 0; iy < H; iy++) {
            for (ix = 0; ix < W; ix++) {
                const int64_t v = x[(c * H + iy) * W + ix];
                if (v == 0) continue;
                if (unit) {
                    /* output row oy = iy + pt - ky must lie in [0, Ho); reversed kernel column j
                     * (kx = kw-1-j) reaches output column ix + pl - kw + 1 + j, in [0, Wo): the
                     * columns j0..j1 of a kernel row are one run of outputs and one of weights */
                    const int64_t ky0 = iy + pt - Ho + 1 > 0 ? iy + pt - Ho + 1 : 0;
                    const int64_t ky1 = iy + pt + 1 < kh ? iy + pt + 1 : kh;
                    const int64_t j0 = kw - 1 - ix - pl > 0 ? kw - 1 - ix - pl : 0;
                    const int64_t j1 = Wo + kw - 1 - ix - pl < kw ? Wo + kw - 1 - ix - pl : kw;
                    int64_t j;
                    for (ky = ky0; ky < ky1 && j0 < j1; ky++) {
                        const int64_t a0 = ((iy + pt - ky) * Wo + ix + pl - kw + 1 + j0) * Co + co0;
                        const int64_t w0 = ((ci * kh + ky) * kw + j0) * Co + co0;
                        if (groups == 1)
                            axpy(acc + a0, w, wbits, w0, (j1 - j0) * Co, v);
                        else
                            for (j = 0; j < j1 - j0; j++) axpy(acc + a0 + j * Co, w, wbits, w0 + j * Co, cout_g, v);
                    }
                    continue;
                }
                for (ky = 0; ky < kh; ky++) {
                    const int64_t ty = iy + pt - ky * dh;
                    int64_t oy;
                    if (ty < 0 || ty % sh) continue;
                    oy = ty / sh;
                    if (oy >= Ho) continue;
                    for (kx = 0; kx < kw; kx++) {
                        const int64_t tx = ix + pl - kx * dw;
                        int64_t ox, a0, w0;
                        if (tx < 0 || tx % sw) continue;
                        ox = tx / sw;
                        if (ox >= Wo) continue;
                        a0 = (oy * Wo + ox) * Co + co0;
                        w0 = ((ci * kh + ky) * kw + kw - 1 - kx) * Co + co0;
                        axpy(acc + a0, w, wbits, w0, cout_g, v);
                    }
                }
            }
        }
    }
}

void eb_conv(const int32_t *x, const void *w, int wbits, const int32_t *b, const int32_t *m, const int32_t *s,
             int32_t *y, int64_t *acc, const int64_t *dims, int identity, int wide) {
    const int64_t Co = dims[3], hw = dims[13] * dims[14];
    int64_t k, co;
    for (k = 0; k < hw * Co; k++) acc[k] = 0;
    scatter(x, w, wbits, acc, dims);
    for (co = 0; co < Co; co++) {
        for (k = 0; k < hw; k++) {
            /* as Numba: the bias joins after the sum (int32 accumulator when the row is narrow) */
            int64_t a = wide ? acc[k * Co + co] : eb_wrap32(acc[k * Co + co]);
            y[co * hw + k] = eb_requant(a + b[co], m[co], s[co], identity);
        }
    }
}

/* y = sat32(rsr(Σ_window x · m, s)); padding contributes zeros */
void eb_pool(const int32_t *x, int32_t *y, const int64_t *d, int64_t m, int64_t s) {
    const int64_t C = d[0], H = d[1], W = d[2], kh = d[3], kw = d[4], sh = d[5], sw = d[6];
    const int64_t ph = d[7], pw = d[8], Ho = d[9], Wo = d[10];
    const int identity = m == 1 && s == 0;
    int64_t c, oy, ox, ky, kx;
    for (c = 0; c < C; c++) {
        for (oy = 0; oy < Ho; oy++) {
            for (ox = 0; ox < Wo; ox++) {
                int64_t a = 0;
                for (ky = 0; ky < kh; ky++) {
                    const int64_t iy = oy * sh - ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (kx = 0; kx < kw; kx++) {
                        const int64_t ix = ox * sw - pw + kx;
                        if (ix >= 0 && ix < W) a += x[(c * H + iy) * W + ix];
                    }
                }
                y[(c * Ho + oy) * Wo + ox] = identity ? eb_sat32(a) : eb_mulshift_sat32(a, m, s);
            }
        }
    }
}
