/* eb_device.c: the board's message loop of eb_device.h. */
#include <string.h>

#include "eb_device.h"

static size_t up8(size_t n) { return (n + 7u) & ~(size_t)7u; }

static void send(eb_device *d, uint8_t type, size_t len) {
    d->tx_len = eb_proto_encode(type, d->tx_seq++, d->payload, len, d->tx);
    d->frames_tx++;
    if (d->write) d->write(d->ctx, d->tx, d->tx_len);
}

static void send_error(eb_device *d, uint32_t code, uint8_t about, uint32_t detail) {
    memset(d->payload, 0, EB_ERROR_SIZE);
    eb_wr16(d->payload + EB_ERROR_CODE, (uint16_t)code);
    d->payload[EB_ERROR_ABOUT] = about;
    eb_wr32(d->payload + EB_ERROR_DETAIL, detail);
    d->errors++;
    send(d, EB_MSG_ERROR, EB_ERROR_SIZE);
}

static void send_ack(eb_device *d, uint8_t about, uint32_t value) {
    memset(d->payload, 0, EB_ACK_SIZE);
    d->payload[EB_ACK_ACKED] = about;
    eb_wr32(d->payload + EB_ACK_VALUE, value);
    send(d, EB_MSG_ACK, EB_ACK_SIZE);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

int eb_device_send_sensor(eb_device *d, const int16_t *counts, uint16_t n, uint8_t channels, uint32_t index,
                          float rate_hz, const float *units) {
    uint8_t *p = d->payload;
    size_t k, total = (size_t)n * channels;
    size_t len = EB_SENSOR_SIZE + 4u * channels + 2u * total;
    if (channels == 0 || len > EB_PROTO_MAX_PAYLOAD) return -1;
    memset(p, 0, EB_SENSOR_SIZE);
    p[EB_SENSOR_CHANNELS] = channels;
    eb_wr16(p + EB_SENSOR_N, n);
    eb_wr32(p + EB_SENSOR_INDEX, index);
    eb_wr32(p + EB_SENSOR_RATE, f32_bits(rate_hz));
    p += EB_SENSOR_SIZE;
    for (k = 0; k < channels; k++, p += 4) eb_wr32(p, f32_bits(units[k]));
    for (k = 0; k < total; k++, p += 2) eb_wr16(p, (uint16_t)counts[k]);
    send(d, EB_MSG_SENSOR, len);
    return 0;
}

static void send_info(eb_device *d, uint8_t boot) {
    uint8_t *p = d->payload;
    const char *v = EB_EDGEBRAIN_VERSION;
    memset(p, 0, EB_INFO_SIZE);
    p[EB_INFO_PROTO] = (uint8_t)EB_PROTO_VERSION;
    p[EB_INFO_BOOT] = boot;
    p[EB_INFO_LOADED] = d->loaded;
    p[EB_INFO_HAS_CYCLES] = d->cycles != NULL;
    eb_wr16(p + EB_INFO_MAX_PAYLOAD, (uint16_t)EB_PROTO_MAX_PAYLOAD);
    eb_wr32(p + EB_INFO_FW_VERSION, EB_PROTO_FIRMWARE_VERSION);
    eb_wr32(p + EB_INFO_BLOB_FORMAT, EB_FORMAT_VERSION);
    eb_wr32(p + EB_INFO_MODEL_BUF, d->model_cap);
    eb_wr32(p + EB_INFO_WORK_BUF, d->work_cap);
    memcpy(p + EB_INFO_EDGEBRAIN_VERSION, v, strlen(v) < 16 ? strlen(v) : 16);
    if (d->loaded) {
        uint32_t k, ndim = eb_rd32le(d->model_buf + EB_H_INPUT_NDIM);
        eb_wr32(p + EB_INFO_MODEL_HASH, eb_rd32le(d->model_buf + EB_H_CRC32));
        eb_wr32(p + EB_INFO_MODEL_BYTES, d->model_total);
        eb_wr32(p + EB_INFO_N_IN, d->model.n_in);
        eb_wr32(p + EB_INFO_N_OUT, d->model.n_out);
        eb_wr32(p + EB_INFO_INPUT_NDIM, ndim);
        for (k = 0; k < ndim && k < 4; k++)
            eb_wr32(p + EB_INFO_SHAPE0 + 4 * k, eb_rd32le(d->model_buf + EB_H_INPUT_SHAPE + 4 * k));
    }
    send(d, EB_MSG_INFO, EB_INFO_SIZE);
}

void eb_device_init(eb_device *d, void *model_buf, size_t model_cap, void *work_buf, size_t work_cap,
                    eb_write_fn write, void *ctx) {
    memset(d, 0, sizeof *d);
    eb_rx_init(&d->rx);
    d->model_buf = (uint8_t *)model_buf;
    d->model_cap = (uint32_t)(model_cap > 0xFFFFFFFFu ? 0xFFFFFFFFu : model_cap);
    d->work_buf = (uint8_t *)work_buf;
    d->work_cap = (uint32_t)(work_cap > 0xFFFFFFFFu ? 0xFFFFFFFFu : work_cap);
    d->write = write;
    d->ctx = ctx;
    d->last_rx_seq = -1;
}

void eb_device_set_cycles(eb_device *d, eb_cycles_fn cycles) { d->cycles = cycles; }

void eb_device_boot(eb_device *d) {
    d->tx_seq = 0;
    send_info(d, 1);
}

/* LOAD_END: check the blob, bind the work buffer */
static void finish_load(eb_device *d, uint8_t about) {
    eb_error err;
    eb_status st;
    size_t sb, ab, cb, need;
    uint8_t *w = d->work_buf;
    d->loading = 0;
    if (d->model_got != d->model_total) {
        send_error(d, EB_PERR_LOAD_ORDER, about, d->model_got);
        return;
    }
    if (eb_rd32le(d->model_buf + EB_H_CRC32) != d->model_crc && d->model_total >= EB_HEADER_SIZE) {
        send_error(d, EB_PERR_BAD_CRC, about, 0);
        return;
    }
    st = eb_model_load(&d->model, d->model_buf, d->model_total, &err);
    if (st != EB_OK) {
        send_error(d, (uint32_t)st, about, err.row >= 0 ? (uint32_t)err.row : err.offset);
        return;
    }
    sb = up8(eb_state_bytes(&d->model));
    ab = up8(eb_act_bytes(&d->model));
    cb = up8(eb_scratch_bytes(&d->model));
    need = sb + ab + cb + up8(4u * d->model.n_in) + up8(4u * d->model.n_out);
    if (need > d->work_cap || !w) {
        send_error(d, EB_PERR_TOO_LARGE, about, (uint32_t)need);
        return;
    }
    st = eb_session_init(&d->sess, &d->model, w, sb, (int32_t *)(void *)(w + sb), ab,
                         (int64_t *)(void *)(w + sb + ab), cb);
    if (st != EB_OK) {
        send_error(d, (uint32_t)st, about, 0);
        return;
    }
    d->x = (float *)(void *)(w + sb + ab + cb);
    d->y = (float *)(void *)(w + sb + ab + cb + up8(4u * d->model.n_in));
    d->loaded = 1;
    send_info(d, 0);
}

/* one step of the session on d->x into d->y, counting steps, cycles and saturations (*sat) */
static eb_status step_once(eb_device *d, uint32_t *sat) {
    int64_t s0 = 0, s1 = 0;
    uint64_t before = 0;
    uint32_t r;
    eb_status st;
    for (r = 0; r < d->model.n_rows; r++) s0 += d->sess.sat[r];
    if (d->cycles) before = d->cycles(d->ctx);
    st = eb_step(&d->sess, d->x, d->y);
    if (d->cycles) d->cycles_total += d->cycles(d->ctx) - before;
    if (st != EB_OK) return st;
    for (r = 0; r < d->model.n_rows; r++) s1 += d->sess.sat[r];
    *sat += (uint32_t)(s1 - s0);
    d->steps++;
    return EB_OK;
}

/* STEPS (p: its payload) or, with p NULL, STEP_STAGED: one step on the input staged by STEP_PART */
static void run_steps(eb_device *d, const uint8_t *p, uint32_t len, uint8_t about) {
    const uint32_t n = p ? eb_rd16(p + EB_STEPS_N) : 1u, n_in = d->model.n_in, n_out = d->model.n_out;
    uint32_t t, sat = 0;
    uint8_t *o = d->payload + EB_OUTPUTS_SIZE;
    const uint32_t clock = (uint32_t)d->sess.clock;
    if (!d->loaded) {
        send_error(d, EB_PERR_NO_MODEL, about, 0);
        return;
    }
    if ((p && (uint64_t)len != EB_STEPS_SIZE + (uint64_t)n * n_in * 4u) ||
        EB_OUTPUTS_SIZE + (uint64_t)n * n_out * 4u > EB_PROTO_MAX_PAYLOAD) {
        send_error(d, EB_PERR_BAD_LENGTH, about, n);
        return;
    }
    for (t = 0; t < n; t++) {
        eb_status st;
        if (p) memcpy(d->x, p + EB_STEPS_SIZE + (size_t)t * n_in * 4u, (size_t)n_in * 4u);
        st = step_once(d, &sat);
        if (st != EB_OK) {
            send_error(d, (uint32_t)st, about, t);
            return;
        }
        memcpy(o + (size_t)t * n_out * 4u, d->y, (size_t)n_out * 4u);
    }
    d->saturations += sat;
    eb_wr16(d->payload + EB_OUTPUTS_N, (uint16_t)n);
    eb_wr16(d->payload + EB_OUTPUTS_RESERVED, 0);
    eb_wr32(d->payload + EB_OUTPUTS_CLOCK, clock);
    eb_wr32(d->payload + EB_OUTPUTS_SATURATIONS, sat);
    send(d, EB_MSG_OUTPUTS, EB_OUTPUTS_SIZE + (size_t)n * n_out * 4u);
}

static void send_stats(eb_device *d) {
    uint8_t *p = d->payload;
    memset(p, 0, EB_STATS_SIZE);
    eb_wr64(p + EB_STATS_STEPS, d->steps);
    eb_wr64(p + EB_STATS_SATURATIONS, d->saturations);
    eb_wr64(p + EB_STATS_CYCLES, d->cycles_total);
    eb_wr32(p + EB_STATS_FRAMES_RX, d->frames_rx);
    eb_wr32(p + EB_STATS_FRAMES_TX, d->frames_tx + 1u); /* counting this one */
    eb_wr32(p + EB_STATS_CRC_ERRORS, d->crc_errors);
    eb_wr32(p + EB_STATS_FRAME_ERRORS, d->frame_errors);
    eb_wr32(p + EB_STATS_SEQ_GAPS, d->seq_gaps);
    eb_wr32(p + EB_STATS_DUPLICATES, d->duplicates);
    eb_wr32(p + EB_STATS_ERRORS, d->errors);
    send(d, EB_MSG_STATS, EB_STATS_SIZE);
}

eb_codec_status eb_device_codec(eb_device *d, const eb_codec_config *cfg, uint32_t *detail) {
    return eb_device_codec_audio(d, cfg, NULL, detail);
}

eb_codec_status eb_device_codec_audio(eb_device *d, const eb_codec_config *cfg, const eb_audio_config *a,
                                      uint32_t *detail) {
    eb_codec_status st;
    d->has_codec = 0;
    if (!d->loaded) return EB_CODEC_MISMATCH;
    st = eb_codec_check_audio(cfg, a, d->model.n_in, d->model.n_out, detail);
    if (st != EB_CODEC_OK) return st;
    eb_codec_init_audio(&d->codec, cfg, a);
    d->has_codec = 1;
    return EB_CODEC_OK;
}

/* CODEC: the on-board encoder and decoder for the loaded model */
static void set_codec(eb_device *d, const uint8_t *p, uint32_t len, uint8_t about) {
    static eb_codec_config cfg; /* static: no large stack frame on a board */
    uint32_t detail = 0;
    eb_codec_status st;
    if (!d->loaded) {
        send_error(d, EB_PERR_NO_MODEL, about, 0);
        return;
    }
    d->has_codec = 0;
    st = eb_codec_parse(&cfg, p, len, &detail);
    if (st == EB_CODEC_OK && cfg.encoder == EB_CODEC_ENC_AUDIO) { /* parsed in place: no second copy */
        st = eb_codec_parse_audio(&d->codec.audio_cfg, p, len);
        if (st == EB_CODEC_OK) st = eb_device_codec_audio(d, &cfg, &d->codec.audio_cfg, &detail);
    } else if (st == EB_CODEC_OK) {
        st = eb_device_codec(d, &cfg, &detail);
    }
    if (st == EB_CODEC_BAD_LENGTH) send_error(d, EB_PERR_BAD_LENGTH, about, len);
    else if (st == EB_CODEC_LIMIT) send_error(d, EB_PERR_CODEC_LIMIT, about, detail);
    else if (st != EB_CODEC_OK) send_error(d, EB_PERR_BAD_CODEC, about, detail);
    else send_ack(d, about, d->model.n_in);
}

static void put_decision(uint8_t *o, const eb_decision *e) {
    uint64_t u;
    memcpy(&u, &e->confidence, sizeof u);
    eb_wr32(o, e->first);
    eb_wr32(o + 4, e->last);
    eb_wr32(o + 8, (uint32_t)e->index);
    eb_wr32(o + 12, 0);
    eb_wr64(o + 16, u);
}

/* SAMPLES: raw sensor samples through encoder, model and decoder; DECISIONS back */
static void run_samples(eb_device *d, const uint8_t *p, uint32_t len, uint8_t about) {
    const uint32_t cap = (EB_PROTO_MAX_PAYLOAD - EB_DECISIONS_SIZE) / EB_DECISION_SIZE;
    const uint32_t clock = (uint32_t)d->sess.clock;
    uint32_t n, C, t, k, nd = 0, sat = 0;
    int16_t raw[EB_CODEC_MAX_CHANNELS];
    eb_decision e;
    if (!d->loaded) {
        send_error(d, EB_PERR_NO_MODEL, about, 0);
        return;
    }
    if (!d->has_codec) {
        send_error(d, EB_PERR_NO_CODEC, about, 0);
        return;
    }
    if (len < EB_SAMPLES_SIZE) {
        send_error(d, EB_PERR_BAD_LENGTH, about, len);
        return;
    }
    n = eb_rd16(p + EB_SAMPLES_N);
    C = d->codec.cfg.channels;
    if ((uint64_t)len != EB_SAMPLES_SIZE + (uint64_t)n * C * 2u ||
        eb_codec_max_steps(&d->codec, n) / d->codec.cfg.hop + 2u > cap) {
        send_error(d, EB_PERR_BAD_LENGTH, about, n);
        return;
    }
    for (t = 0; t < n; t++) {
        const uint8_t *s = p + EB_SAMPLES_SIZE + (size_t)t * C * 2u;
        eb_status st;
        for (k = 0; k < C; k++) raw[k] = (int16_t)eb_rd16(s + 2u * k);
        if (!eb_codec_push(&d->codec, raw, d->x)) continue; /* audio: not the end of a frame */
        st = step_once(d, &sat);
        if (st != EB_OK) {
            d->saturations += sat;
            send_error(d, (uint32_t)st, about, t);
            return;
        }
        if (eb_codec_decode(&d->codec, d->y, &e))
            put_decision(d->payload + EB_DECISIONS_SIZE + (size_t)nd++ * EB_DECISION_SIZE, &e);
    }
    if ((eb_rd16(p + EB_SAMPLES_FLAGS) & EB_PROTO_SAMPLES_FLUSH) && eb_codec_flush(&d->codec, &e))
        put_decision(d->payload + EB_DECISIONS_SIZE + (size_t)nd++ * EB_DECISION_SIZE, &e);
    d->saturations += sat;
    eb_wr16(d->payload + EB_DECISIONS_N, (uint16_t)nd);
    eb_wr16(d->payload + EB_DECISIONS_RESERVED, 0);
    eb_wr32(d->payload + EB_DECISIONS_CLOCK, clock);
    eb_wr32(d->payload + EB_DECISIONS_SATURATIONS, sat);
    send(d, EB_MSG_DECISIONS, EB_DECISIONS_SIZE + (size_t)nd * EB_DECISION_SIZE);
}

static void handle(eb_device *d) {
    const uint8_t *raw = d->rx.raw, *p = raw + EB_PROTO_HEADER_SIZE;
    const uint8_t type = raw[EB_PROTO_H_TYPE];
    const uint16_t seq = eb_rd16(raw + EB_PROTO_H_SEQ);
    const uint32_t len = d->rx.len - EB_PROTO_HEADER_SIZE;
    d->frames_rx++;
    if (d->last_rx_seq >= 0 && seq == (uint16_t)d->last_rx_seq && type == d->last_rx_type && d->tx_len) {
        /* the host did not hear our answer and asked again: the same answer, not the work twice */
        d->duplicates++;
        if (d->write) d->write(d->ctx, d->tx, d->tx_len);
        return;
    }
    if (d->last_rx_seq >= 0 && seq != (uint16_t)(d->last_rx_seq + 1) && type != EB_MSG_HELLO) d->seq_gaps++;
    d->last_rx_seq = seq;
    d->last_rx_type = type;
    switch (type) {
    case EB_MSG_HELLO: send_info(d, 0); break;
    case EB_MSG_PING:
        if (len > EB_PROTO_MAX_PING) {
            send_error(d, EB_PERR_BAD_LENGTH, type, len);
            break;
        }
        memmove(d->payload, p, len);
        send(d, EB_MSG_PONG, len);
        break;
    case EB_MSG_LOAD_BEGIN: {
        uint32_t total;
        if (len != EB_LOAD_BEGIN_SIZE) {
            send_error(d, EB_PERR_BAD_LENGTH, type, len);
            break;
        }
        total = eb_rd32le(p + EB_LOAD_BEGIN_TOTAL);
        d->loaded = 0;
        d->loading = 0;
        d->has_codec = 0;
        if (total > d->model_cap || !d->model_buf) {
            send_error(d, EB_PERR_TOO_LARGE, type, d->model_cap);
            break;
        }
        d->model_total = total;
        d->model_crc = eb_rd32le(p + EB_LOAD_BEGIN_CRC32);
        d->model_got = 0;
        d->loading = 1;
        send_ack(d, type, total);
        break;
    }
    case EB_MSG_LOAD_CHUNK: {
        uint32_t off, n;
        if (len < EB_LOAD_CHUNK_SIZE) {
            send_error(d, EB_PERR_BAD_LENGTH, type, len);
            break;
        }
        off = eb_rd32le(p + EB_LOAD_CHUNK_OFFSET);
        n = len - EB_LOAD_CHUNK_SIZE;
        if (!d->loading || off != d->model_got || n > d->model_total - d->model_got) {
            send_error(d, EB_PERR_LOAD_ORDER, type, d->model_got);
            break;
        }
        memcpy(d->model_buf + off, p + EB_LOAD_CHUNK_SIZE, n);
        d->model_got += n;
        send_ack(d, type, d->model_got);
        break;
    }
    case EB_MSG_LOAD_END:
        if (!d->loading) send_error(d, EB_PERR_LOAD_ORDER, type, 0);
        else finish_load(d, type);
        break;
    case EB_MSG_STEPS:
        if (len < EB_STEPS_SIZE) send_error(d, EB_PERR_BAD_LENGTH, type, len);
        else run_steps(d, p, len, type);
        break;
    case EB_MSG_STEP_PART: {
        uint32_t off, k;
        if (!d->loaded) {
            send_error(d, EB_PERR_NO_MODEL, type, 0);
            break;
        }
        off = len >= EB_STEP_PART_SIZE ? eb_rd32le(p + EB_STEP_PART_OFFSET) : 0xFFFFFFFFu;
        k = (len - EB_STEP_PART_SIZE) / 4u;
        if (len < EB_STEP_PART_SIZE || (len - EB_STEP_PART_SIZE) % 4u || off > d->model.n_in ||
            k > d->model.n_in - off) {
            send_error(d, EB_PERR_BAD_LENGTH, type, len);
            break;
        }
        memcpy((uint8_t *)d->x + (size_t)off * 4u, p + EB_STEP_PART_SIZE, (size_t)k * 4u);
        send_ack(d, type, off + k);
        break;
    }
    case EB_MSG_STEP_STAGED:
        if (len) send_error(d, EB_PERR_BAD_LENGTH, type, len);
        else run_steps(d, NULL, 0, type);
        break;
    case EB_MSG_CODEC: set_codec(d, p, len, type); break;
    case EB_MSG_SAMPLES: run_samples(d, p, len, type); break;
    case EB_MSG_STATS_REQ: send_stats(d); break;
    case EB_MSG_RESET:
        if (!d->loaded) {
            send_error(d, EB_PERR_NO_MODEL, type, 0);
            break;
        }
        eb_session_reset(&d->sess);
        if (d->has_codec) eb_codec_reset(&d->codec);
        send_ack(d, type, 0);
        break;
    default: send_error(d, EB_PERR_BAD_TYPE, type, type); break;
    }
}

void eb_device_feed(eb_device *d, const uint8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        switch (eb_rx_feed(&d->rx, p[i])) {
        case EB_RX_FRAME: handle(d); break;
        case EB_RX_BAD_CRC: d->crc_errors++; break;
        case EB_RX_BAD_COBS:
        case EB_RX_BAD_LENGTH:
        case EB_RX_BAD_VERSION:
        case EB_RX_OVERLONG: d->frame_errors++; break;
        default: break;
        }
    }
}
