/* fuzz_rx.c: the frame receiver (eb_rx_feed: COBS, length, CRC-16, version) and COBS itself, fed
 * arbitrary bytes.
 *
 * Every status eb_rx_feed returns is checked against a reference written here from
 * docs/protocol.md (a block is the bytes between two zeros: longer than EB_PROTO_MAX_ENCODED →
 * OVERLONG; malformed COBS or a decoded frame longer than EB_PROTO_MAX_RAW → BAD_COBS; shorter than
 * header + CRC or a length field that disagrees → BAD_LENGTH; CRC → BAD_CRC; version →
 * BAD_VERSION). An accepted frame must hold the reference's bytes, be within bounds, and re-encode
 * (eb_proto_encode) to exactly the block it came from plus its delimiter: no two encodings of one
 * frame are accepted. The parser's state stays within bounds after every byte. COBS on the input
 * itself (inputs up to 1 kB) round-trips through exactly sized heap buffers (ASan sees any byte
 * written past them). */
#include "fuzz_common.h"

static uint8_t ref_raw[EB_PROTO_MAX_ENCODED + 1];
static uint16_t crc_table[256];

/* CRC-16/CCITT-FALSE a byte at a time from a table (its own, not eb_proto_crc16's bit loop) */
static uint16_t ref_crc16(const uint8_t *p, size_t n) {
    uint16_t crc = 0xFFFFu;
    if (!crc_table[1]) {
        unsigned b, k;
        for (b = 0; b < 256; b++) {
            uint16_t c = (uint16_t)(b << 8);
            for (k = 0; k < 8; k++) c = (uint16_t)((c & 0x8000u) ? (c << 1) ^ 0x1021u : c << 1);
            crc_table[b] = c;
        }
    }
    while (n--) crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ *p++) & 0xFFu]);
    return crc;
}
static uint8_t reenc[EB_PROTO_MAX_ENCODED + 1];

/* the status of one block (n bytes, no zero among them), decoding into ref_raw */
static eb_rx_status ref_block(const uint8_t *in, size_t n, size_t *raw_len) {
    size_t i = 0, o = 0, len, prev = 0;
    if (n == 0) return EB_RX_EMPTY;
    if (n > EB_PROTO_MAX_ENCODED) return EB_RX_OVERLONG;
    while (i < n) { /* COBS: a code byte c, then c - 1 data bytes, then a zero unless c = 0xFF or at the end */
        const size_t c = in[i];
        if (c == 0 || i + c > n) return EB_RX_BAD_COBS;
        if (c == 1 && i + 1 == n && prev == 0xFF) return EB_RX_BAD_COBS; /* canonical only */
        prev = c;
        memcpy(ref_raw + o, in + i + 1, c - 1);
        o += c - 1;
        i += c;
        if (c != 0xFF && i < n) ref_raw[o++] = 0;
    }
    if (o > EB_PROTO_MAX_RAW) return EB_RX_BAD_COBS;
    if (o < EB_PROTO_HEADER_SIZE + EB_PROTO_CRC_SIZE) return EB_RX_BAD_LENGTH;
    len = (size_t)(ref_raw[EB_PROTO_H_LENGTH] | ref_raw[EB_PROTO_H_LENGTH + 1] << 8);
    if (len + EB_PROTO_HEADER_SIZE + EB_PROTO_CRC_SIZE != o) return EB_RX_BAD_LENGTH;
    if (ref_crc16(ref_raw, o - 2) != (uint16_t)(ref_raw[o - 2] | ref_raw[o - 1] << 8))
        return EB_RX_BAD_CRC;
    if (ref_raw[EB_PROTO_H_VERSION] != EB_PROTO_VERSION) return EB_RX_BAD_VERSION;
    *raw_len = o - EB_PROTO_CRC_SIZE;
    return EB_RX_FRAME;
}

static void check_block(const eb_rx *rx, eb_rx_status got, const uint8_t *block, size_t n) {
    size_t raw_len = 0, m;
    const eb_rx_status want = ref_block(block, n, &raw_len);
    if (got != want) {
        fprintf(stderr, "block of %zu bytes: eb_rx_feed says %d, the reference %d\n", n, (int)got, (int)want);
        FUZZ_CHECK(got == want);
    }
    FUZZ_CHECK(rx->n == 0 && rx->overlong == 0);
    if (got != EB_RX_FRAME) return;
    FUZZ_CHECK(rx->len == raw_len && rx->len >= EB_PROTO_HEADER_SIZE && rx->len <= EB_PROTO_MAX_RAW - EB_PROTO_CRC_SIZE);
    FUZZ_CHECK(memcmp(rx->raw, ref_raw, raw_len) == 0);
    FUZZ_CHECK(rx->raw[EB_PROTO_H_VERSION] == EB_PROTO_VERSION);
    FUZZ_CHECK(eb_rd16(rx->raw + EB_PROTO_H_LENGTH) == rx->len - EB_PROTO_HEADER_SIZE);
    /* the frame re-encodes to the very bytes it came in */
    m = eb_proto_encode(rx->raw[EB_PROTO_H_TYPE], eb_rd16(rx->raw + EB_PROTO_H_SEQ), rx->raw + EB_PROTO_HEADER_SIZE,
                        rx->len - EB_PROTO_HEADER_SIZE, reenc);
    if (m != n + 1 || memcmp(reenc, block, n) != 0 || reenc[n] != 0) {
        fprintf(stderr, "accepted a block of %zu bytes whose frame re-encodes to %zu bytes (+ delimiter)\n", n,
                m ? m - 1 : 0);
        FUZZ_CHECK(!"an accepted frame re-encodes to the bytes it came in");
    }
}

static void cobs_round_trip(const uint8_t *data, size_t size) {
    uint8_t *enc = (uint8_t *)malloc(size + size / 254 + 1), *dec, *dec2;
    size_t n, k;
    long m;
    FUZZ_CHECK(enc != NULL);
    n = eb_cobs_encode(data, size, enc);
    FUZZ_CHECK(n >= 1 && n <= size + size / 254 + 1);
    for (k = 0; k < n; k++) FUZZ_CHECK(enc[k] != 0);
    dec = (uint8_t *)malloc(n);
    FUZZ_CHECK(dec != NULL);
    m = eb_cobs_decode(enc, n, dec);
    FUZZ_CHECK(m == (long)size && memcmp(dec, data, size) == 0);
    /* the raw input as COBS: whatever it decodes to fits the room the contract promises (n bytes) */
    dec2 = (uint8_t *)malloc(size ? size : 1);
    FUZZ_CHECK(dec2 != NULL);
    m = eb_cobs_decode(data, size, dec2);
    FUZZ_CHECK(m >= -1 && m <= (long)size);
    free(dec2);
    free(dec);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static eb_rx rx;
    size_t i, start = 0;
    eb_rx_init(&rx);
    for (i = 0; i <= size; i++) {
        const uint8_t b = i < size ? data[i] : 0; /* a final zero ends the last block */
        const eb_rx_status st = eb_rx_feed(&rx, b);
        FUZZ_CHECK(rx.n <= EB_PROTO_MAX_ENCODED && rx.overlong <= 1);
        if (b != 0) {
            FUZZ_CHECK(st == EB_RX_MORE);
            continue;
        }
        check_block(&rx, st, data + start, i - start);
        start = i + 1;
    }
    if (size <= 1024) cobs_round_trip(data, size); /* long inputs: the same code paths, only slower */
    return 0;
}
