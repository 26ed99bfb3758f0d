/* eb_codec.c: the on-board encoders and count decoder of eb_codec.h. */
#include <string.h>

#include "eb_codec.h"
#include "eb_proto.h"

static int is_finite(double v) { return v - v == 0.0; } /* NaN and ±inf give NaN */

/* whether v is an integer of int32's range (NaN and ±inf are not) */
static int is_i32(double v) { return v >= -2147483648.0 && v <= 2147483647.0 && (double)(int32_t)v == v; }
static int32_t to_i32(double v) { return is_i32(v) ? (int32_t)v : 0; }

size_t eb_codec_sizeof(void) { return sizeof(eb_codec); }
size_t eb_codec_config_sizeof(void) { return sizeof(eb_codec_config); }
size_t eb_audio_config_sizeof(void) { return sizeof(eb_audio_config); }

static double rd_f64(const uint8_t *p) {
    uint64_t u = (uint64_t)eb_rd32le(p) | ((uint64_t)eb_rd32le(p + 4) << 32);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

eb_codec_status eb_codec_parse(eb_codec_config *cfg, const uint8_t *p, uint32_t len, uint32_t *detail) {
    uint32_t k, dummy;
    if (!detail) detail = &dummy;
    *detail = len;
    memset(cfg, 0, sizeof *cfg);
    if (len < EB_CODEC_SIZE) return EB_CODEC_BAD_LENGTH;
    cfg->channels = eb_rd16(p + EB_CODEC_CHANNELS);
    if (cfg->channels > EB_CODEC_MAX_CHANNELS) {
        *detail = EB_CODEC_MAX_CHANNELS;
        return EB_CODEC_LIMIT;
    }
    cfg->encoder = p[EB_CODEC_ENCODER];
    if (cfg->encoder == EB_CODEC_ENC_AUDIO) {
        const uint32_t at = EB_CODEC_SIZE + (uint32_t)cfg->channels * EB_CODEC_CHANNEL_SIZE;
        uint32_t bands;
        if (len < at + EB_AUDIO_SIZE) return EB_CODEC_BAD_LENGTH;
        bands = eb_rd16(p + at + EB_AUDIO_BANDS);
        if (bands > EB_AUDIO_MAX_BANDS) {
            *detail = EB_AUDIO_MAX_BANDS;
            return EB_CODEC_LIMIT;
        }
        if (len != at + EB_AUDIO_SIZE + bands * EB_AUDIO_BAND_SIZE) return EB_CODEC_BAD_LENGTH;
    } else if (len != EB_CODEC_SIZE + (uint32_t)cfg->channels * EB_CODEC_CHANNEL_SIZE) {
        return EB_CODEC_BAD_LENGTH;
    }
    cfg->layout = p[EB_CODEC_LAYOUT];
    cfg->init = p[EB_CODEC_INIT];
    cfg->flags = p[EB_CODEC_FLAGS];
    cfg->decoder = p[EB_CODEC_DECODER];
    cfg->classes = eb_rd16(p + EB_CODEC_CLASSES);
    cfg->max_spikes = eb_rd32le(p + EB_CODEC_MAX_SPIKES);
    cfg->window = eb_rd32le(p + EB_CODEC_WINDOW);
    cfg->hop = eb_rd32le(p + EB_CODEC_HOP);
    cfg->min_spikes = eb_rd32le(p + EB_CODEC_MIN_SPIKES);
    cfg->hold = eb_rd32le(p + EB_CODEC_HOLD);
    cfg->alpha = rd_f64(p + EB_CODEC_ALPHA);
    cfg->min_confidence = rd_f64(p + EB_CODEC_MIN_CONFIDENCE);
    cfg->hysteresis = rd_f64(p + EB_CODEC_HYSTERESIS);
    for (k = 0; k < cfg->channels; k++) {
        const uint8_t *c = p + EB_CODEC_SIZE + (size_t)k * EB_CODEC_CHANNEL_SIZE;
        cfg->unit[k] = rd_f64(c);
        cfg->offset[k] = rd_f64(c + 8);
        cfg->scale[k] = rd_f64(c + 16);
        cfg->threshold[k] = rd_f64(c + 24);
    }
    *detail = 0;
    return EB_CODEC_OK;
}

eb_codec_status eb_codec_parse_audio(eb_audio_config *a, const uint8_t *p, uint32_t len) {
    uint32_t k, at;
    memset(a, 0, sizeof *a);
    if (len < EB_CODEC_SIZE || p[EB_CODEC_ENCODER] != EB_CODEC_ENC_AUDIO) return EB_CODEC_INVALID;
    at = EB_CODEC_SIZE + (uint32_t)eb_rd16(p + EB_CODEC_CHANNELS) * EB_CODEC_CHANNEL_SIZE;
    if (len < at + EB_AUDIO_SIZE) return EB_CODEC_BAD_LENGTH;
    a->bands = eb_rd16(p + at + EB_AUDIO_BANDS);
    if (a->bands > EB_AUDIO_MAX_BANDS) return EB_CODEC_LIMIT;
    if (len != at + EB_AUDIO_SIZE + (uint32_t)a->bands * EB_AUDIO_BAND_SIZE) return EB_CODEC_BAD_LENGTH;
    a->flags = p[at + EB_AUDIO_FLAGS];
    a->log = p[at + EB_AUDIO_LOG];
    a->hop = eb_rd32le(p + at + EB_AUDIO_HOP);
    a->leak = rd_f64(p + at + EB_AUDIO_LEAK);
    a->k = rd_f64(p + at + EB_AUDIO_K);
    a->agc_decay = rd_f64(p + at + EB_AUDIO_AGC_DECAY);
    a->agc_floor = rd_f64(p + at + EB_AUDIO_AGC_FLOOR);
    for (k = 0; k < a->bands; k++) {
        const uint8_t *b = p + at + EB_AUDIO_SIZE + (size_t)k * EB_AUDIO_BAND_SIZE;
        a->b0[k] = rd_f64(b);
        a->b1[k] = rd_f64(b + 8);
        a->b2[k] = rd_f64(b + 16);
        a->a1[k] = rd_f64(b + 24);
        a->a2[k] = rd_f64(b + 32);
        a->mean[k] = rd_f64(b + 40);
        a->scale[k] = rd_f64(b + 48);
    }
    if (a->flags & EB_AUDIO_FIXED) { /* integers sent as f64: eb_codec_check_audio refuses any that are not */
        for (k = 0; k < a->bands; k++) {
            a->q[0][k] = to_i32(a->b0[k]);
            a->q[1][k] = to_i32(a->b1[k]);
            a->q[2][k] = to_i32(a->b2[k]);
            a->q[3][k] = to_i32(a->a1[k]);
            a->q[4][k] = to_i32(a->a2[k]);
        }
        a->leak_q = to_i32(a->leak);
    }
    return EB_CODEC_OK;
}

uint32_t eb_codec_n_inputs(const eb_codec_config *cfg) {
    return cfg->layout == EB_CODEC_LAYOUT_SPLIT ? 2u * cfg->channels : cfg->channels;
}

eb_codec_status eb_codec_check(const eb_codec_config *cfg, uint32_t n_in, uint32_t n_out, uint32_t *detail) {
    return eb_codec_check_audio(cfg, NULL, n_in, n_out, detail);
}

eb_codec_status eb_codec_check_audio(const eb_codec_config *cfg, const eb_audio_config *a, uint32_t n_in,
                                     uint32_t n_out, uint32_t *detail) {
    uint32_t k, dummy, n_inputs = eb_codec_n_inputs(cfg);
    if (!detail) detail = &dummy;
    *detail = 0;
    if (cfg->channels > EB_CODEC_MAX_CHANNELS) {
        *detail = EB_CODEC_MAX_CHANNELS;
        return EB_CODEC_LIMIT;
    }
    if (cfg->classes > EB_CODEC_MAX_CLASSES) {
        *detail = EB_CODEC_MAX_CLASSES;
        return EB_CODEC_LIMIT;
    }
    if (cfg->hop < cfg->window && (uint64_t)cfg->window * cfg->classes > EB_CODEC_MAX_RING) {
        *detail = EB_CODEC_MAX_RING;
        return EB_CODEC_LIMIT;
    }
    if (cfg->encoder == EB_CODEC_ENC_AUDIO) {
        if (!a) return EB_CODEC_INVALID;
        n_inputs = a->bands;
        if (a->bands > EB_AUDIO_MAX_BANDS) {
            *detail = EB_AUDIO_MAX_BANDS;
            return EB_CODEC_LIMIT;
        }
        if (cfg->channels != 1 || cfg->layout != EB_CODEC_LAYOUT_SIGNED || a->bands == 0 || a->hop == 0 ||
            a->log > EB_AUDIO_LOG_LOG1P || (a->flags & ~(EB_AUDIO_AGC | EB_AUDIO_SQUARE | EB_AUDIO_FIXED)) ||
            ((a->flags & EB_AUDIO_FIXED) ? !(is_i32(a->leak) && a->leak > 0.0 && a->leak <= 1073741824.0)
                                         : !(a->leak > 0.0 && a->leak <= 1.0)) ||
            !is_finite(a->k) || !(a->agc_decay >= 0.0 && a->agc_decay < 1.0) ||
            ((a->flags & EB_AUDIO_AGC) && !(a->agc_floor > 0.0 && is_finite(a->agc_floor))))
            return EB_CODEC_INVALID;
        for (k = 0; k < a->bands; k++)
            if (!is_finite(a->b0[k]) || !is_finite(a->b1[k]) || !is_finite(a->b2[k]) || !is_finite(a->a1[k]) ||
                !is_finite(a->a2[k]) || !is_finite(a->mean[k]) || !is_finite(a->scale[k]) ||
                ((a->flags & EB_AUDIO_FIXED) && !(is_i32(a->b0[k]) && is_i32(a->b1[k]) && is_i32(a->b2[k]) &&
                                                  is_i32(a->a1[k]) && is_i32(a->a2[k])))) {
                *detail = k;
                return EB_CODEC_INVALID;
            }
    } else if (cfg->encoder < EB_CODEC_ENC_DIRECT || cfg->encoder > EB_CODEC_ENC_SIGMA_DELTA) {
        return EB_CODEC_INVALID;
    }
    if (cfg->decoder != EB_CODEC_DEC_COUNT || cfg->layout > EB_CODEC_LAYOUT_SPLIT ||
        (cfg->layout == EB_CODEC_LAYOUT_SPLIT && cfg->encoder == EB_CODEC_ENC_DIRECT) ||
        cfg->init > EB_CODEC_INIT_ZERO || cfg->channels == 0 || cfg->classes == 0 || cfg->window == 0 ||
        cfg->hop == 0 || !(cfg->alpha > 0.0 && cfg->alpha <= 1.0) ||
        !(cfg->min_confidence >= 0.0 && cfg->min_confidence <= 1.0) ||
        ((cfg->flags & EB_CODEC_HAS_HYSTERESIS) && !(cfg->hysteresis >= 0.0 && is_finite(cfg->hysteresis))) ||
        ((cfg->flags & EB_CODEC_HAS_HOLD) && cfg->hold == 0))
        return EB_CODEC_INVALID;
    for (k = 0; k < cfg->channels; k++) {
        if (!is_finite(cfg->unit[k]) || !is_finite(cfg->offset[k]) || !is_finite(cfg->scale[k])) {
            *detail = k;
            return EB_CODEC_INVALID;
        }
        if (cfg->encoder != EB_CODEC_ENC_DIRECT && cfg->encoder != EB_CODEC_ENC_AUDIO &&
            !(cfg->threshold[k] > 0.0 && is_finite(cfg->threshold[k]))) {
            *detail = k;
            return EB_CODEC_INVALID;
        }
    }
    if (n_inputs != n_in) {
        *detail = n_inputs;
        return EB_CODEC_MISMATCH;
    }
    if (cfg->classes != n_out) {
        *detail = cfg->classes;
        return EB_CODEC_MISMATCH;
    }
    return EB_CODEC_OK;
}

void eb_codec_reset(eb_codec *c) {
    memset(c->state, 0, sizeof c->state);
    memset(c->ema, 0, sizeof c->ema);
    memset(c->sums, 0, sizeof c->sums);
    c->started = c->has_ema = 0;
    c->total = c->next = c->covered = 0;
    c->held = c->challenger = -1;
    c->streak = 0;
    eb_audio_reset(&c->audio, &c->audio_cfg);
}

void eb_codec_init_audio(eb_codec *c, const eb_codec_config *cfg, const eb_audio_config *a) {
    c->cfg = *cfg;
    if (!a) memset(&c->audio_cfg, 0, sizeof c->audio_cfg);
    else if (a != &c->audio_cfg) c->audio_cfg = *a;
    eb_codec_reset(c);
}

void eb_codec_init(eb_codec *c, const eb_codec_config *cfg) { eb_codec_init_audio(c, cfg, NULL); }

/* k whole thresholds in v (floor toward zero's side as the Python kernels: signed, capped) */
static int64_t crossings(double v, double thr, uint32_t cap) {
    int64_t k = 0;
    double q;
    if (v >= thr) {
        q = v / thr;
        k = q >= 9.2e18 ? INT64_MAX : (int64_t)q; /* q >= 1: truncation is floor */
    } else if (v <= -thr) {
        q = -v / thr;
        k = q >= 9.2e18 ? -INT64_MAX : -(int64_t)q;
    }
    if (cap > 0) {
        if (k > (int64_t)cap) k = (int64_t)cap;
        else if (k < -(int64_t)cap) k = -(int64_t)cap;
    }
    return k;
}

void eb_codec_encode(eb_codec *c, const int16_t *raw, float *x) {
    const eb_codec_config *g = &c->cfg;
    const uint32_t C = g->channels;
    uint32_t k;
    for (k = 0; k < C; k++) {
        double v = (double)raw[k] * g->unit[k];
        double s = (v - g->offset[k]) * g->scale[k];
        int64_t n;
        if (g->encoder == EB_CODEC_ENC_DIRECT) {
            x[k] = (float)s;
            continue;
        }
        if (g->encoder == EB_CODEC_ENC_DELTA) {
            if (!c->started) c->state[k] = g->init == EB_CODEC_INIT_FIRST ? s : 0.0;
            n = crossings(s - c->state[k], g->threshold[k], g->max_spikes);
            c->state[k] += (double)n * g->threshold[k];
        } else {
            double a = c->state[k] + s;
            n = crossings(a, g->threshold[k], g->max_spikes);
            c->state[k] = a - (double)n * g->threshold[k];
        }
        if (g->layout == EB_CODEC_LAYOUT_SPLIT) {
            x[k] = n > 0 ? (float)n : 0.0f;
            x[C + k] = n < 0 ? (float)-n : 0.0f;
        } else {
            x[k] = (float)n;
        }
    }
    c->started = 1;
}

int eb_codec_push(eb_codec *c, const int16_t *raw, float *x) {
    const eb_codec_config *g = &c->cfg;
    if (g->encoder == EB_CODEC_ENC_AUDIO)
        return eb_audio_sample(&c->audio, &c->audio_cfg, ((double)raw[0] * g->unit[0] - g->offset[0]) * g->scale[0],
                               raw[0], x);
    eb_codec_encode(c, raw, x);
    return 1;
}

uint32_t eb_codec_max_steps(const eb_codec *c, uint32_t n) {
    return c->cfg.encoder == EB_CODEC_ENC_AUDIO ? n / c->audio_cfg.hop + 1u : n;
}

/* the decision on the window of steps [first, first + len): buffered in the ring (sliding windows), or
 * summed as they came in c->sums (hop >= window: windows that do not overlap need no ring; the same
 * additions in the same order) */
static void decide(eb_codec *c, uint32_t first, uint32_t len, eb_decision *d) {
    const eb_codec_config *g = &c->cfg;
    const uint32_t n = g->classes;
    double S[EB_CODEC_MAX_CLASSES], p[EB_CODEC_MAX_CLASSES], tot = 0.0, raw_total = 0.0, conf;
    uint32_t i, t;
    int decided;
    for (i = 0; i < n; i++) {
        double s = 0.0;
        if (g->hop >= g->window) {
            s = c->sums[i];
            c->sums[i] = 0.0;
        } else {
            for (t = first; t < first + len; t++) s += (double)c->ring[(t % g->window) * n + i];
        }
        raw_total += s;
        S[i] = c->has_ema ? g->alpha * s + (1.0 - g->alpha) * c->ema[i] : s;
        c->ema[i] = S[i];
    }
    c->has_ema = 1;
    for (i = 0; i < n; i++) tot += S[i];
    for (i = 0; i < n; i++) p[i] = tot <= 0.0 ? 0.0 : S[i] / tot;
    if (tot > 0.0 && raw_total >= (double)g->min_spikes) { /* evidence: the hysteresis step */
        int32_t w = 0, held = c->held;
        int sw;
        for (i = 1; i < n; i++)
            if (p[i] > p[w]) w = (int32_t)i;
        if (held < 0 || w == held) {
            c->held = w;
            c->challenger = -1;
            c->streak = 0;
        } else {
            if (c->challenger == w) {
                c->streak++;
            } else {
                c->challenger = w;
                c->streak = 1;
            }
            if (!(g->flags & (EB_CODEC_HAS_HYSTERESIS | EB_CODEC_HAS_HOLD)))
                sw = 1;
            else
                sw = ((g->flags & EB_CODEC_HAS_HYSTERESIS) && p[w] - p[held] > g->hysteresis) ||
                     ((g->flags & EB_CODEC_HAS_HOLD) && c->streak >= g->hold);
            if (sw) {
                c->held = w;
                c->challenger = -1;
                c->streak = 0;
            }
        }
        conf = p[c->held];
        decided = conf >= g->min_confidence;
    } else {
        c->challenger = -1;
        c->streak = 0;
        conf = c->held >= 0 ? p[c->held] : 0.0;
        decided = 0;
    }
    d->first = first;
    d->last = first + len - 1u;
    d->index = decided ? c->held : -1;
    d->confidence = conf;
}

int eb_codec_decode(eb_codec *c, const float *y, eb_decision *d) {
    const eb_codec_config *g = &c->cfg;
    const uint32_t start = c->next;
    uint32_t i;
    if (g->hop >= g->window) {
        if (c->total >= start) /* a step of the window [start, start + window); between windows: none */
            for (i = 0; i < g->classes; i++) c->sums[i] += (double)y[i];
    } else {
        memcpy(c->ring + (size_t)(c->total % g->window) * g->classes, y, (size_t)g->classes * sizeof *y);
    }
    c->total++;
    if (c->total < g->window || start > c->total - g->window) return 0;
    decide(c, start, g->window, d);
    c->next = start + g->hop;
    c->covered = start + g->window;
    return 1;
}

int eb_codec_flush(eb_codec *c, eb_decision *d) {
    const uint32_t start = c->next;
    if (c->total == 0 || c->total <= c->covered || start >= c->total) return 0;
    decide(c, start, c->total - start, d);
    c->covered = c->next = c->total;
    return 1;
}
