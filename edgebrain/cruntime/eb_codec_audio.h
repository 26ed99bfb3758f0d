/* eb_codec_audio.h: the audio front end on the board (docs/protocol.md, "On-board codec", the audio
 * encoder): the C twin of edgebrain/stream/encoders/frontend.py's AudioFrontEnd with
 * filterbank=bandpass (floating point, fixed=false), output=features, log=log1p or none, agc on or off,
 * bit-exact with the Python on int16 audio samples. Per sample x (double: raw count x unit) and band c,
 * in double and in this order (build with -ffp-contract=off), as the Numba kernels do:
 *
 *     y = b0*x + z1;  z1 = b1*x - a1*y + z2;  z2 = b2*x - a2*y     (transposed direct form II)
 *     r = 2*y*y (square) or |y| (abs);  e += leak * (r - e)
 *
 * and every `hop` samples a frame: with agc, the mean of e summed from band 0 up and divided by the
 * band count, m = max(mean, agc_decay * m, agc_floor) (m starts at agc_floor), e' = e / m; then
 * f = eb_log1p(k * e') (log1p) or e'; the model input is (float)((f - mean) * scale).
 * The filter, leak and gain coefficients are computed on the host (no libm here); eb_log1p is the
 * same plain-double log1p as frontend.py's log1p. No heap; RAM: eb_audio_config and eb_audio_state
 * below, sized by EB_AUDIO_MAX_BANDS.
 *
 * With EB_AUDIO_FIXED (frontend.py's fixed=true) the bank runs in integers instead, as
 * frontend.py's _biquad_bank_int: the raw int16 count x, coefficients q = round(c * 2^29) (int32),
 * direct form I with an int64 accumulator,
 *
 *     acc = ((q0*x + q1*x1 + q2*x2) << 8) - q3*y1 - q4*y2;   y = sat32((acc + 2^28) >> 29)
 *     r = min((y*y + 2^21) >> 22, 2^31 - 1) (square) or |y|;  e += ((r - e) * leak_q + 2^29) >> 30
 *
 * and the frame's energies e * 2^-23 (double) go on as above: a few dozen integer operations per band
 * and sample, where the double bank needs soft-float calls on an FPU without doubles (Cortex-M4F). */
#ifndef EB_CODEC_AUDIO_H
#define EB_CODEC_AUDIO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* the most bands (model inputs) the board's front end runs */
#ifndef EB_AUDIO_MAX_BANDS
#define EB_AUDIO_MAX_BANDS 32u
#endif

#define EB_AUDIO_AGC 1u    /* flags: the gain control */
#define EB_AUDIO_SQUARE 2u /* flags: rectify 2*y*y (else |y|) */
#define EB_AUDIO_FIXED 4u  /* flags: the integer bank (coefficients and leak sent as integers) */
#define EB_AUDIO_LOG_NONE 0u
#define EB_AUDIO_LOG_LOG1P 1u

typedef struct {
    uint16_t bands;
    uint8_t flags, log;
    uint32_t hop; /* samples per frame (one model step) */
    double leak, k, agc_decay, agc_floor;
    double b0[EB_AUDIO_MAX_BANDS], b1[EB_AUDIO_MAX_BANDS], b2[EB_AUDIO_MAX_BANDS], a1[EB_AUDIO_MAX_BANDS],
        a2[EB_AUDIO_MAX_BANDS], mean[EB_AUDIO_MAX_BANDS], scale[EB_AUDIO_MAX_BANDS];
    int32_t q[5][EB_AUDIO_MAX_BANDS]; /* EB_AUDIO_FIXED: b0..a2 as integers (value * 2^29) */
    int32_t leak_q;                   /* EB_AUDIO_FIXED: leak * 2^30 */
} eb_audio_config;

typedef struct {
    double z1[EB_AUDIO_MAX_BANDS], z2[EB_AUDIO_MAX_BANDS], e[EB_AUDIO_MAX_BANDS];
    int64_t ei[EB_AUDIO_MAX_BANDS];            /* EB_AUDIO_FIXED: energies (value * 2^23) */
    int32_t y1[EB_AUDIO_MAX_BANDS], y2[EB_AUDIO_MAX_BANDS], x1, x2; /* EB_AUDIO_FIXED: histories */
    double peak;    /* the gain control's m */
    uint32_t count; /* samples since the last frame */
} eb_audio_state;

/* ln(1 + x) in plain IEEE double operations (frontend.py's log1p, operation for operation) */
double eb_log1p(double x);
void eb_audio_reset(eb_audio_state *s, const eb_audio_config *g);
/* one sample: x (double) for the double bank, raw (the int16 count) for the integer one; 1 and the
 * frame's g->bands features in out when it ends a frame, else 0 */
int eb_audio_sample(eb_audio_state *s, const eb_audio_config *g, double x, int16_t raw, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EB_CODEC_AUDIO_H */
