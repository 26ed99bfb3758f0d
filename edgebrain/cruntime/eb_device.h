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
 * With a codec configuration (CODEC), the board also takes raw int16 sensor samples (SAMPLES),
 * encodes them, runs the model and decodes its outputs itself, answering with the decisions made
 * (DECISIONS): eb_codec.h. A board without a host uses eb_codec.h directly, with the configuration
 * `edgebrain firmware export` writes (MODEL_CODEC_CONFIG in model.h).
 *
 * The work buffer holds the session's state, activations and scratch and one step's input and
 * output (eb_state_bytes + eb_act_bytes + eb_scratch_bytes + 4 (n_in + n_out), each 8-aligned). */
#ifndef EB_DEVICE_H
#define EB_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "eb_codec.h"
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
    uint8_t has_codec;       /* CODEC received for the loaded model: SAMPLES are encoded and decoded here */
    eb_codec codec;          /* the on-board encoder and decoder (eb_codec.h) */
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
/* stream raw sensor samples to the host, unsolicited (SENSOR: what `edgebrain record --source
 * serial://...?format=eb` reads): n samples of `channels` int16 counts, sample-major; `index` is the
 * first sample's number since the sensor started (a gap tells the host samples were lost), `rate_hz`
 * the sample rate and units[c] the physical units per count of channel c. Returns 0, or -1 when the
 * samples do not fit one frame (send fewer per call). */
int eb_device_send_sensor(eb_device *d, const int16_t *counts, uint16_t n, uint8_t channels, uint32_t index,
                          float rate_hz, const float *units);
/* configure the on-board codec for the loaded model (what CODEC does): EB_CODEC_OK or why not */
eb_codec_status eb_device_codec(eb_device *d, const eb_codec_config *cfg, uint32_t *detail);
/* the same with the audio front end's configuration (a: NULL for the other encoders) */
eb_codec_status eb_device_codec_audio(eb_device *d, const eb_codec_config *cfg, const eb_audio_config *a,
                                      uint32_t *detail);

#ifdef __cplusplus
}
#endif

#endif /* EB_DEVICE_H */
