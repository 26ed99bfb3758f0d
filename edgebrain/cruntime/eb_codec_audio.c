/* eb_codec_audio.c: the on-board audio front end of eb_codec_audio.h. */
#include <string.h>

#include "eb_codec_audio.h"

#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define SQRT2 1.4142135623730951
#define SQRT1_2 0.7071067811865476

double eb_log1p(double x) {
    double u, c, f, s, z, p, r, dk;
    int32_t k = 0;
    if (!(x > -1.0)) {
        if (x == -1.0) return -1.0 / (x + 1.0); /* -1 / +0: -inf, without <math.h> */
        return (x - x) / (x - x);                      /* NaN */
    }
    if (x == 0.0 || x > 1.7976931348623157e308) return x;
    u = 1.0 + x;
    if (u == 1.0) return x;
    c = (x - (u - 1.0)) / u;
    f = u;
    while (f >= SQRT2) {
        f *= 0.5;
        k++;
    }
    while (f < SQRT1_2) {
        f *= 2.0;
        k--;
    }
    s = (f - 1.0) / (f + 1.0);
    z = s * s;
    p = 1.0 / 21.0;
    p = p * z + 1.0 / 19.0;
    p = p * z + 1.0 / 17.0;
    p = p * z + 1.0 / 15.0;
    p = p * z + 1.0 / 13.0;
    p = p * z + 1.0 / 11.0;
    p = p * z + 1.0 / 9.0;
    p = p * z + 1.0 / 7.0;
    p = p * z + 1.0 / 5.0;
    p = p * z + 1.0 / 3.0;
    p = p * z + 1.0;
    r = 2.0 * s * p;
    dk = (double)k;
    return dk * LN2_HI + (r + (c + dk * LN2_LO));
}

void eb_audio_reset(eb_audio_state *s, const eb_audio_config *g) {
    memset(s, 0, sizeof *s);
    s->peak = g->agc_floor;
}

/* frontend.py's _biquad_bank_int for one sample (int64 throughout; products and sums wrap as Numba's
 * do, computed unsigned; >> on negative int64 is arithmetic with the compilers the runtime supports) */
static void bank_int(eb_audio_state *s, const eb_audio_config *g, int16_t raw, int square) {
    const int64_t x0 = raw, x1 = s->x1, x2 = s->x2;
    const int64_t half_c = (int64_t)1 << 28, half_l = (int64_t)1 << 29;
    uint32_t c;
    for (c = 0; c < g->bands; c++) {
        const int64_t y1 = s->y1[c], y2 = s->y2[c];
        const uint64_t ff = (uint64_t)g->q[0][c] * (uint64_t)x0 + (uint64_t)g->q[1][c] * (uint64_t)x1 +
                            (uint64_t)g->q[2][c] * (uint64_t)x2;
        const uint64_t acc = ff * 256u - (uint64_t)g->q[3][c] * (uint64_t)y1 - (uint64_t)g->q[4][c] * (uint64_t)y2;
        int64_t y = (int64_t)(acc + (uint64_t)half_c) >> 29, r;
        if (y > INT32_MAX) y = INT32_MAX;
        else if (y < INT32_MIN) y = INT32_MIN;
        s->y2[c] = s->y1[c];
        s->y1[c] = (int32_t)y;
        if (square) {
            r = (y * y + ((int64_t)1 << 21)) >> 22;
            if (r > INT32_MAX) r = INT32_MAX;
        } else {
            r = y < 0 ? -y : y;
        }
        s->ei[c] += (int64_t)((uint64_t)(r - s->ei[c]) * (uint64_t)(int64_t)g->leak_q + (uint64_t)half_l) >> 30;
    }
    s->x2 = (int32_t)x1;
    s->x1 = (int32_t)x0;
}

int eb_audio_sample(eb_audio_state *s, const eb_audio_config *g, double x, int16_t raw, float *out) {
    const uint32_t n = g->bands;
    const int square = (g->flags & EB_AUDIO_SQUARE) != 0;
    uint32_t c;
    if (g->flags & EB_AUDIO_FIXED) {
        bank_int(s, g, raw, square);
        if (++s->count < g->hop) return 0;
        for (c = 0; c < n; c++) s->e[c] = (double)s->ei[c] * (1.0 / 8388608.0); /* e * 2^-23, exact */
    }
    for (c = 0; c < n && !(g->flags & EB_AUDIO_FIXED); c++) {
        const double y = g->b0[c] * x + s->z1[c];
        const double r = square ? 2.0 * y * y : (y < 0.0 ? -y : y);
        s->z1[c] = g->b1[c] * x - g->a1[c] * y + s->z2[c];
        s->z2[c] = g->b2[c] * x - g->a2[c] * y;
        s->e[c] += g->leak * (r - s->e[c]);
    }
    if (!(g->flags & EB_AUDIO_FIXED) && ++s->count < g->hop) return 0;
    s->count = 0;
    {
        double m = 1.0;
        if (g->flags & EB_AUDIO_AGC) {
            double sum = 0.0, dm;
            for (c = 0; c < n; c++) sum += s->e[c];
            m = sum / (double)n;
            dm = g->agc_decay * s->peak;
            if (dm > m) m = dm;
            if (g->agc_floor > m) m = g->agc_floor;
            s->peak = m;
        }
        for (c = 0; c < n; c++) {
            double f = (g->flags & EB_AUDIO_AGC) ? s->e[c] / m : s->e[c];
            if (g->log == EB_AUDIO_LOG_LOG1P) f = eb_log1p(g->k * f);
            out[c] = (float)((f - g->mean[c]) * g->scale[c]);
        }
    }
    return 1;
}
