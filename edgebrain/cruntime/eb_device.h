/* eb_device.h: the board's side of the link (docs/protocol.md): a loop that answers HELLO, loads
 * a blob sent over the link into a RAM buffer (checked by eb_model_load: no reflash), runs steps
 * on encoded inputs and returns outputs, statistics and errors. No heap: the caller gives the
 * buffers, and the eb_device itself can be static.
 *
 *     static eb_device dev;  static uint64_t model_ram[N], work_ram[M];
 *     eb_device_init(&dev, model_ram, sizeof model_ram, work_ram, sizeof work_ram, uart_write, ctx);
 *     eb_device_boot(&dev);                       // announces itself: INFO with boot = 1
 *     on bytes from the UART: eb_device_feed(&dev, bytes, n);
 *
 * The work buffer holds the session's state, activations and scratch and one step's input and
 * output (eb_state_bytes + eb_act_bytes + eb_scratch_bytes + 4 (n_in + n_out), each 8-aligned). */
#ifndef EB_DEVICE_H
#define EB_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "eb_proto.h"
#include "eb_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* writes n bytes to the link (blocking until they are out) */
typedef void (*eb_write_fn)(void *ctx, const uint8_t *p, size_t n);
/* a free-running cycle counter (DWT CYCCNT, mcycle), or NULL when the target has none */
typedef uint64_t (*eb_cycles_fn)(void *ctx);

typedef struct {
    eb_rx rx;
    uint8_t payload[EB_PROTO_MAX_PAYLOAD];
    uint8_t tx[EB_PROTO_MAX_ENCODED + 1];
    size_t tx_len;           /* the last frame sent (resent for a duplicate request) */
    eb_write_fn write;
    eb_cycles_fn cycles;
    void *ctx;
    uint8_t *model_buf;      /* 8-byte aligned */
    uint32_t model_cap, model_total, model_got, model_crc;
    uint8_t *work_buf;       /* 8-byte aligned */
    uint32_t work_cap;
    float *x, *y;            /* one step's input and output, inside work_buf */
    eb_model model;
    eb_session sess;
    uint8_t loaded, loading;
    uint16_t tx_seq;
    int32_t last_rx_seq;     /* -1 before the first frame */
    uint8_t last_rx_type;
    /* statistics (STATS) */
    uint64_t steps, saturations, cycles_total;
    uint32_t frames_rx, frames_tx, crc_errors, frame_errors, seq_gaps, duplicates, errors;
} eb_device;

void eb_device_init(eb_device *d, void *model_buf, size_t model_cap, void *work_buf, size_t work_cap,
                    eb_write_fn write, void *ctx);
void eb_device_set_cycles(eb_device *d, eb_cycles_fn cycles);
/* announce a (re)start: an unsolicited INFO with boot = 1 and sequence number 0 */
void eb_device_boot(eb_device *d);
/* bytes from the link: every complete frame is answered before this returns */
void eb_device_feed(eb_device *d, const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* EB_DEVICE_H */
