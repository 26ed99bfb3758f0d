/* eb_proto.c: CRC-16/CCITT-FALSE, COBS and the frame parser of eb_proto.h. */
#include <string.h>

#include "eb_proto.h"

uint16_t eb_proto_crc16(uint16_t crc, const uint8_t *p, size_t n) {
    while (n--) {
        int k;
        crc = (uint16_t)(crc ^ (uint16_t)(*p++ << 8));
        for (k = 0; k < 8; k++) crc = (uint16_t)((crc & 0x8000u) ? ((unsigned)crc << 1) ^ 0x1021u : (unsigned)crc << 1);
    }
    return crc;
}

size_t eb_cobs_encode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    for (i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF && i + 1 < n) { /* a new block only if bytes follow (canonical COBS) */
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

/* decode into out, writing at most cap bytes: -1 when malformed or when the frame would not fit
 * (a receiver's buffer holds EB_PROTO_MAX_RAW decoded bytes, fewer than the EB_PROTO_MAX_ENCODED
 * encoded ones it accepts: an encoding with many zeros decodes to up to n - 1 bytes). Canonical
 * COBS only: an empty last block after a full one (0xFF) decodes to nothing, so accepting it would
 * let one inserted byte pass undetected; eb_cobs_encode never writes it. */
static long cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    uint8_t last = 0;
    while (i < n) {
        const uint8_t code = in[i];
        size_t k;
        if (code == 0 || i + code > n || o + code - 1u > cap) return -1;
        if (code == 1 && i + 1 == n && last == 0xFF) return -1;
        last = code;
        for (k = 1; k < code; k++) {
            if (in[i + k] == 0) return -1;
            out[o++] = in[i + k];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap) return -1;
            out[o++] = 0;
        }
    }
    return (long)o;
}

long eb_cobs_decode(const uint8_t *in, size_t n, uint8_t *out) { return cobs_decode(in, n, out, n); }

uint16_t eb_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
uint32_t eb_rd32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
void eb_wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
void eb_wr32(uint8_t *p, uint32_t v) {
    eb_wr16(p, (uint16_t)v);
    eb_wr16(p + 2, (uint16_t)(v >> 16));
}
void eb_wr64(uint8_t *p, uint64_t v) {
    eb_wr32(p, (uint32_t)v);
    eb_wr32(p + 4, (uint32_t)(v >> 32));
}

size_t eb_rx_sizeof(void) { return sizeof(eb_rx); }

const uint8_t *eb_rx_frame(const eb_rx *rx, uint32_t *len) {
    if (len) *len = rx->len;
    return rx->raw;
}

void eb_rx_init(eb_rx *rx) {
    rx->n = 0;
    rx->len = 0;
    rx->overlong = 0;
}

static eb_rx_status rx_end(eb_rx *rx) {
    long m;
    uint32_t len;
    if (rx->overlong) {
        rx->overlong = 0;
        rx->n = 0;
        return EB_RX_OVERLONG;
    }
    if (rx->n == 0) return EB_RX_EMPTY;
    m = cobs_decode(rx->enc, rx->n, rx->raw, EB_PROTO_MAX_RAW);
    rx->n = 0;
    if (m < 0 || m > (long)EB_PROTO_MAX_RAW) return EB_RX_BAD_COBS;
    if (m < (long)(EB_PROTO_HEADER_SIZE + EB_PROTO_CRC_SIZE)) return EB_RX_BAD_LENGTH;
    len = (uint32_t)m;
    if (eb_rd16(rx->raw + EB_PROTO_H_LENGTH) + EB_PROTO_HEADER_SIZE + EB_PROTO_CRC_SIZE != len)
        return EB_RX_BAD_LENGTH;
    if (eb_proto_crc16(0xFFFFu, rx->raw, len - EB_PROTO_CRC_SIZE) != eb_rd16(rx->raw + len - EB_PROTO_CRC_SIZE))
        return EB_RX_BAD_CRC;
    if (rx->raw[EB_PROTO_H_VERSION] != EB_PROTO_VERSION) return EB_RX_BAD_VERSION;
    rx->len = len - EB_PROTO_CRC_SIZE;
    return EB_RX_FRAME;
}

eb_rx_status eb_rx_feed(eb_rx *rx, uint8_t byte) {
    if (byte == 0) return rx_end(rx);
    if (rx->overlong) return EB_RX_MORE;
    if (rx->n >= EB_PROTO_MAX_ENCODED) {
        rx->overlong = 1;
        rx->n = 0;
        return EB_RX_MORE;
    }
    rx->enc[rx->n++] = byte;
    return EB_RX_MORE;
}

size_t eb_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out) {
    /* the raw frame is assembled at the end of out, then COBS-encoded to its start: the encoding
     * never overtakes its input (it writes at most one byte ahead of each 254 read) */
    uint8_t *raw;
    uint16_t crc;
    size_t n;
    if (len > EB_PROTO_MAX_PAYLOAD) return 0;
    n = EB_PROTO_HEADER_SIZE + len + EB_PROTO_CRC_SIZE;
    raw = out + (EB_PROTO_MAX_ENCODED + 1) - n;
    if (payload && len) memmove(raw + EB_PROTO_HEADER_SIZE, payload, len);
    raw[EB_PROTO_H_VERSION] = (uint8_t)EB_PROTO_VERSION;
    raw[EB_PROTO_H_TYPE] = type;
    eb_wr16(raw + EB_PROTO_H_SEQ, seq);
    eb_wr16(raw + EB_PROTO_H_LENGTH, (uint16_t)len);
    crc = eb_proto_crc16(0xFFFFu, raw, n - EB_PROTO_CRC_SIZE);
    eb_wr16(raw + n - EB_PROTO_CRC_SIZE, crc);
    n = eb_cobs_encode(raw, n, out);
    out[n] = 0;
    return n + 1;
}
