/* eb_codec.h: sensor to decision on the board (docs/protocol.md, "On-board codec"): the C twins of
 * the Python sample encoders (edgebrain/stream/encoders/basic.py: direct, delta, sigma_delta) and
 * of the count decoder with smoothing and hysteresis (edgebrain/stream/decoders.py), bit-exact with
 * them on integer sensor samples.
 *
 *     static eb_codec codec;
 *     if (eb_codec_check(&cfg, model.n_in, model.n_out, &detail) == EB_CODEC_OK) eb_codec_init(&codec, &cfg);
 *     per sample:  eb_codec_encode(&codec, raw_int16, x);  eb_step(&sess, x, y);
 *                  if (eb_codec_decode(&codec, y, &d)) use d (window [d.first, d.last], d.index, d.confidence)
 *     at the end:  if (eb_codec_flush(&codec, &d)) use d
 *
 * A raw sample is one int16 count per channel, in the encoder's channel order; its value is
 * count * unit (physical units per count, double), then x = (value - offset) * scale, all in
 * double and in this order (build with -ffp-contract=off), as the Python does in float64:
 *   direct       the model input is (float)x;
 *   delta        a reference per channel (the first sample's x, or 0) follows x in whole thresholds:
 *                k = floor((x - ref) / threshold) (signed, capped at max_spikes when max_spikes > 0),
 *                ref += k * threshold; the input is k;
 *   sigma_delta  an integrator a = acc + x emits k whole thresholds (signed, capped), acc = a - k * threshold.
 * Layout signed: one input per channel; split: the channels' max(k, 0), then their max(-k, 0).
 *
 * The count decoder sums each class's outputs over windows of `window` steps every `hop` steps
 * (double sums: exact for spike counts, which is what a count decoder reads), smooths them
 * (S = alpha * s + (1 - alpha) * S_prev), takes each class's share of the smoothed total (summed
 * from class 0 up) as its confidence, and keeps a held class that changes only past `hysteresis`
 * or after `hold` windows (both optional), as decoders.py's CountDecoder does. No heap, no libm.
 *
 * The audio encoder (firmware 0.3.0) takes one raw channel, audio samples, and runs the audio front end of
 * eb_codec_audio.h on value = (count * unit - offset) * scale: one model step every `hop` samples, so
 * eb_codec_push (not eb_codec_encode) feeds it; the decoder is the same. Its configuration is an
 * eb_audio_config of its own (eb_codec_parse_audio, eb_codec_check_audio, eb_codec_init_audio):
 *
 *     eb_codec_parse(&cfg, p, len, &detail);  eb_codec_parse_audio(&codec.audio_cfg, p, len);
 *     if (eb_codec_check_audio(&cfg, &codec.audio_cfg, n_in, n_out, &detail) == EB_CODEC_OK)
 *         eb_codec_init_audio(&codec, &cfg, &codec.audio_cfg);
 *     per sample:  if (eb_codec_push(&codec, &raw, x)) { eb_step(&sess, x, y); eb_codec_decode(...); } */
#ifndef EB_CODEC_H
#define EB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "eb_codec_audio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the board's limits (a configuration beyond them is refused: EB_CODEC_LIMIT) */
#ifndef EB_CODEC_MAX_CHANNELS
#define EB_CODEC_MAX_CHANNELS 16u
#endif
#ifndef EB_CODEC_MAX_CLASSES
#define EB_CODEC_MAX_CLASSES 32u
#endif
/* window x classes float32 values kept for sliding windows (hop < window; others keep running sums) */
#ifndef EB_CODEC_MAX_RING
#define EB_CODEC_MAX_RING 1024u
#endif

#define EB_CODEC_ENC_DIRECT 1u
#define EB_CODEC_ENC_DELTA 2u
#define EB_CODEC_ENC_SIGMA_DELTA 3u
#define EB_CODEC_ENC_AUDIO 4u /* the audio front end (eb_codec_audio.h): one raw channel */
#define EB_CODEC_DEC_COUNT 1u
#define EB_CODEC_LAYOUT_SIGNED 0u
#define EB_CODEC_LAYOUT_SPLIT 1u
#define EB_CODEC_INIT_FIRST 0u /* delta: the reference starts at the first sample */
#define EB_CODEC_INIT_ZERO 1u
#define EB_CODEC_HAS_HYSTERESIS 1u /* flags */
#define EB_CODEC_HAS_HOLD 2u

typedef struct {
    uint8_t encoder, layout, init, flags;
    uint8_t decoder;
    uint16_t channels, classes;
    uint32_t max_spikes; /* 0: no cap */
    uint32_t window, hop, min_spikes, hold;
    double alpha, min_confidence, hysteresis;
    double unit[EB_CODEC_MAX_CHANNELS], offset[EB_CODEC_MAX_CHANNELS], scale[EB_CODEC_MAX_CHANNELS],
        threshold[EB_CODEC_MAX_CHANNELS];
} eb_codec_config; /* (the audio front end's part is an eb_audio_config of its own: exported MODEL_CODEC_CONFIG
                      initializers of this struct stay valid) */

/* a decision on the window of steps [first, last] (stream indices since the last reset) */
typedef struct {
    uint32_t first, last;
    int32_t index;      /* the class decided, -1: no decision */
    double confidence;
} eb_decision;

typedef struct {
    eb_codec_config cfg;
    double state[EB_CODEC_MAX_CHANNELS]; /* delta: references; sigma_delta: integrators */
    uint8_t started, has_ema;
    float ring[EB_CODEC_MAX_RING];       /* the last `window` steps' outputs (sliding windows: hop < window) */
    double sums[EB_CODEC_MAX_CLASSES];   /* hop >= window: the current window's sums so far */
    uint32_t total, next, covered;       /* steps seen; start of the next window; end of the last decided */
    double ema[EB_CODEC_MAX_CLASSES];
    int32_t held, challenger;
    uint32_t streak;
    eb_audio_config audio_cfg; /* encoder audio only */
    eb_audio_state audio;
} eb_codec;

typedef enum {
    EB_CODEC_OK = 0,
    EB_CODEC_INVALID = 1, /* an unknown encoder or decoder, a zero window or hop, alpha not in (0, 1],
                             a threshold not > 0, a non-finite number */
    EB_CODEC_MISMATCH = 2, /* the encoder's inputs or the classes are not the model's n_in / n_out */
    EB_CODEC_LIMIT = 3,    /* too many channels or classes, window x classes above EB_CODEC_MAX_RING (sliding
                              windows), or
                              more audio bands than EB_AUDIO_MAX_BANDS */
    EB_CODEC_BAD_LENGTH = 4 /* a CODEC payload whose length is not its fixed part and channels x 32 bytes
                               (audio: and the audio part and bands x 56 bytes) */
} eb_codec_status;

/* a CODEC message's payload (docs/protocol.md; little-endian, float64 IEEE 754) into *cfg: EB_CODEC_OK,
 * EB_CODEC_LIMIT (more channels than EB_CODEC_MAX_CHANNELS: *detail) or EB_CODEC_BAD_LENGTH. Not checked
 * against a model: eb_codec_check does that. */
eb_codec_status eb_codec_parse(eb_codec_config *cfg, const uint8_t *p, uint32_t len, uint32_t *detail);
/* whether cfg can run on this board with a model of n_in inputs and n_out outputs; *detail: for
 * EB_CODEC_LIMIT the board's limit that was exceeded, else the number found wrong. The audio encoder
 * needs eb_codec_check_audio (here it is EB_CODEC_INVALID). */
eb_codec_status eb_codec_check(const eb_codec_config *cfg, uint32_t n_in, uint32_t n_out, uint32_t *detail);
/* a CODEC payload's audio part (encoder audio, accepted by eb_codec_parse) into *a */
eb_codec_status eb_codec_parse_audio(eb_audio_config *a, const uint8_t *p, uint32_t len);
/* eb_codec_check with the audio front end's configuration (a: NULL for the other encoders) */
eb_codec_status eb_codec_check_audio(const eb_codec_config *cfg, const eb_audio_config *a, uint32_t n_in,
                                     uint32_t n_out, uint32_t *detail);
/* the model inputs per step: channels (signed) or 2 x channels (split) (audio: the bands) */
uint32_t eb_codec_n_inputs(const eb_codec_config *cfg);
void eb_codec_init(eb_codec *c, const eb_codec_config *cfg); /* a checked cfg; starts from reset */
/* a checked cfg and audio front end (a may be &c->audio_cfg itself, or NULL for the other encoders) */
void eb_codec_init_audio(eb_codec *c, const eb_codec_config *cfg, const eb_audio_config *a);
void eb_codec_reset(eb_codec *c);                            /* keep the configuration */
/* one raw sample (cfg.channels int16 counts) into one model input step (eb_codec_n_inputs floats);
 * not for the audio encoder */
void eb_codec_encode(eb_codec *c, const int16_t *raw, float *x);
/* one raw sample: 1 when it completes a model input step (in x), else 0 (the audio encoder between
 * frame ends); every encoder */
int eb_codec_push(eb_codec *c, const int16_t *raw, float *x);
/* the most model steps n raw samples can complete (n, or for audio n / hop + 1) */
uint32_t eb_codec_max_steps(const eb_codec *c, uint32_t n);
/* one step's model outputs (cfg.classes floats): 1 and *d when a window ended with it, else 0 */
int eb_codec_decode(eb_codec *c, const float *y, eb_decision *d);
/* the end of a stream: 1 and *d for the partial window holding steps no decision covered, else 0 */
int eb_codec_flush(eb_codec *c, eb_decision *d);
/* for bindings that allocate them (ctypes) */
size_t eb_codec_sizeof(void);
size_t eb_codec_config_sizeof(void);
size_t eb_audio_config_sizeof(void);

#ifdef __cplusplus
}
#endif

#endif /* EB_CODEC_H */
