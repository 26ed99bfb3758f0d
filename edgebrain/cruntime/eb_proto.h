/* eb_proto.h: the board link's framing (docs/protocol.md): CRC-16/CCITT-FALSE, COBS, and a
 * byte-at-a-time frame parser with bounded buffers and no heap.
 *
 *     static eb_rx rx;  eb_rx_init(&rx);
 *     for each byte b:  if (eb_rx_feed(&rx, b) == EB_RX_FRAME) use rx.raw (header, payload), rx.len
 *     n = eb_proto_encode(type, seq, payload, len, out);   // out: EB_PROTO_MAX_ENCODED + 1 bytes
 *
 * The constants (header layout, message types, sizes) are in eb_proto_layout.h, generated from
 * edgebrain/proto.py. */
#ifndef EB_PROTO_H
#define EB_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "eb_proto_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* what eb_rx_feed saw */
typedef enum {
    EB_RX_MORE = 0,       /* byte taken, no frame ended */
    EB_RX_FRAME = 1,      /* an intact frame: rx->raw holds header ‖ payload (rx->len bytes, CRC removed) */
    EB_RX_EMPTY = 2,      /* a zero byte with nothing before it (idle line): ignored */
    EB_RX_BAD_COBS = 3,   /* dropped: malformed COBS */
    EB_RX_BAD_LENGTH = 4, /* dropped: too short, or the length field disagrees with the frame */
    EB_RX_BAD_CRC = 5,    /* dropped: CRC mismatch */
    EB_RX_BAD_VERSION = 6,/* dropped: another protocol version */
    EB_RX_OVERLONG = 7    /* dropped: no zero within EB_PROTO_MAX_ENCODED bytes (reported at the next zero) */
} eb_rx_status;

typedef struct {
    uint8_t enc[EB_PROTO_MAX_ENCODED]; /* the COBS bytes since the last zero */
    uint8_t raw[EB_PROTO_MAX_RAW];     /* the decoded frame */
    uint32_t n;                        /* bytes in enc */
    uint32_t len;                      /* decoded length without the CRC (EB_RX_FRAME) */
    uint8_t overlong;                  /* skipping to the next zero */
} eb_rx;

uint16_t eb_proto_crc16(uint16_t crc, const uint8_t *p, size_t n);
/* COBS: encode n bytes into out (room for n + n / 254 + 1), returning its length (no delimiter) */
size_t eb_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);
/* decode n COBS bytes into out (room for n); returns the decoded length, or -1 when malformed */
long eb_cobs_decode(const uint8_t *in, size_t n, uint8_t *out);

void eb_rx_init(eb_rx *rx);
eb_rx_status eb_rx_feed(eb_rx *rx, uint8_t byte);

/* one frame (COBS and the zero delimiter) into out (EB_PROTO_MAX_ENCODED + 1 bytes); 0 when len is
 * above EB_PROTO_MAX_PAYLOAD */
size_t eb_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out);

/* for bindings that allocate an eb_rx (ctypes) and read its frame: the decoded frame (header and
 * payload) and its length */
size_t eb_rx_sizeof(void);
const uint8_t *eb_rx_frame(const eb_rx *rx, uint32_t *len);

/* little-endian field access */
uint16_t eb_rd16(const uint8_t *p);
uint32_t eb_rd32le(const uint8_t *p);
void eb_wr16(uint8_t *p, uint16_t v);
void eb_wr32(uint8_t *p, uint32_t v);
void eb_wr64(uint8_t *p, uint64_t v);

#ifdef __cplusplus
}
#endif

#endif /* EB_PROTO_H */
