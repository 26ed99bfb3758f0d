/* fuzz_device.c: the board's whole message loop (eb_device_feed) with small static model and work
 * buffers, the way a board runs it, fed
 *
 *   byte 0 even: the rest as it comes off the wire (garbage, damaged and partial frames);
 *   byte 0 odd:  records "type u8 · flags u8 · length u16 LE · payload", each sent as a correctly
 *                framed, CRC'd frame, so that mutations reach the message handlers, the blob loader
 *                (eb_model_load) and the STEPS/STEP_PART paths. Flags: 1 repeats the previous
 *                sequence number (a duplicate request), 2 skips one (a gap); on LOAD_BEGIN, 4 gives
 *                the blob sent by the LOAD_CHUNKs up to the next LOAD_END a valid CRC-32 (in the blob
 *                and in LOAD_BEGIN) so that a mutated blob gets past its checksum to the row checks,
 *                and then to steps.
 *
 * Invariants: every write of the board is exactly one intact frame of a board message type; the
 * board's counters match what it was sent (each frame counted once: received, or a CRC or frame
 * error); a model it accepted lies within its buffers. A model that loads but would take more than
 * FUZZ_MAX_STEP_COST per step is not sent its LOAD_END (it is checked by eb_model_load here
 * instead), to keep executions fast. */
#include "eb_device.h"
#include "fuzz_common.h"

#define MODEL_BYTES 16384u
#define WORK_BYTES 8192u

static uint64_t model_ram[MODEL_BYTES / 8];
static uint64_t work_ram[WORK_BYTES / 8];
static eb_device dev;
static eb_rx out_rx;
static uint8_t frame[EB_PROTO_MAX_ENCODED + 1];
static uint8_t recs[1 << 16];
static uint8_t blob_tmp[MODEL_BYTES];
static uint32_t writes;
static uint64_t clock_now;

static void sink(void *ctx, const uint8_t *p, size_t n) {
    size_t i;
    (void)ctx;
    FUZZ_CHECK(n >= 2 && n <= EB_PROTO_MAX_ENCODED + 1);
    for (i = 0; i < n; i++) {
        const eb_rx_status st = eb_rx_feed(&out_rx, p[i]);
        FUZZ_CHECK(i + 1 < n ? st == EB_RX_MORE : st == EB_RX_FRAME);
    }
    FUZZ_CHECK(out_rx.raw[EB_PROTO_H_TYPE] & 0x80u); /* a board message */
    writes++;
}

static uint64_t cycles(void *ctx) {
    (void)ctx;
    return clock_now += 17;
}

/* the frames a wire of n bytes holds, counted the way the board counts them: every block of
 * bytes ended by a zero, unless empty (an overlong one once) */
static uint32_t frames_in(const uint8_t *p, size_t n) {
    uint32_t k = 0;
    size_t i, run = 0;
    for (i = 0; i < n; i++) {
        if (p[i]) {
            run++;
        } else {
            k += run > 0;
            run = 0;
        }
    }
    return k;
}

/* wire: the bytes fed (NULL: records, counted by run_records) */
static void check_counters(const uint8_t *wire, size_t n) {
    if (wire) FUZZ_CHECK(dev.frames_rx + dev.crc_errors + dev.frame_errors == frames_in(wire, n));
    FUZZ_CHECK(dev.frames_tx + dev.duplicates == writes);
    FUZZ_CHECK(dev.model_got <= dev.model_total && dev.model_total <= MODEL_BYTES);
    if (dev.loaded) {
        FUZZ_CHECK((const uint8_t *)dev.x >= (const uint8_t *)work_ram &&
                   (const uint8_t *)(dev.y + dev.model.n_out) <= (const uint8_t *)work_ram + WORK_BYTES);
    }
}

static void reset(void) {
    eb_device_init(&dev, model_ram, sizeof model_ram, work_ram, sizeof work_ram, sink, NULL);
    eb_device_set_cycles(&dev, cycles);
    eb_rx_init(&out_rx);
    writes = 0;
    eb_device_boot(&dev);
    FUZZ_CHECK(writes == 1);
}

/* give the blob sent by the LOAD_CHUNK records after the LOAD_BEGIN at recs[at] a valid CRC-32 */
static void fix_load(size_t at, size_t end) {
    uint8_t *begin = recs + at + 4;
    uint32_t total = fz_rd32(begin + EB_LOAD_BEGIN_TOTAL), crc;
    size_t i = at + 4 + (size_t)(recs[at + 2] | recs[at + 3] << 8);
    if (total > MODEL_BYTES || total < EB_HEADER_SIZE) return;
    memset(blob_tmp, 0, total);
    while (i + 4 <= end) { /* copy the chunks */
        const uint8_t type = recs[i];
        size_t len = (size_t)(recs[i + 2] | recs[i + 3] << 8);
        if (len > end - i - 4) len = end - i - 4;
        if (type == EB_MSG_LOAD_END || type == EB_MSG_LOAD_BEGIN) break;
        if (type == EB_MSG_LOAD_CHUNK && len >= 4) {
            const uint32_t off = fz_rd32(recs + i + 4);
            size_t k;
            for (k = 0; k < len - 4 && off + k < total; k++) blob_tmp[off + k] = recs[i + 8 + k];
        }
        i += 4 + len;
    }
    crc = fz_blob_crc(blob_tmp, total);
    fz_wr32(begin + EB_LOAD_BEGIN_CRC32, crc);
    i = at + 4 + (size_t)(recs[at + 2] | recs[at + 3] << 8);
    while (i + 4 <= end) { /* write it into the chunks that carry the blob's crc32 field */
        const uint8_t type = recs[i];
        size_t len = (size_t)(recs[i + 2] | recs[i + 3] << 8);
        if (len > end - i - 4) len = end - i - 4;
        if (type == EB_MSG_LOAD_END || type == EB_MSG_LOAD_BEGIN) break;
        if (type == EB_MSG_LOAD_CHUNK && len >= 4) {
            const uint32_t off = fz_rd32(recs + i + 4);
            size_t k;
            for (k = 0; k < len - 4; k++) {
                const uint64_t pos = (uint64_t)off + k;
                if (pos >= EB_H_CRC32 && pos < EB_H_CRC32 + 4)
                    recs[i + 8 + k] = (uint8_t)(crc >> (8 * (pos - EB_H_CRC32)));
            }
        }
        i += 4 + len;
    }
}

/* LOAD_END would load a model too slow to step here: leave it out */
static int too_slow(void) {
    eb_model m;
    if (!dev.loading || dev.model_got != dev.model_total) return 0;
    if (eb_model_load(&m, model_ram, dev.model_total, NULL) != EB_OK) return 0;
    return fz_step_cost(&m) > FUZZ_MAX_STEP_COST;
}

static void run_records(const uint8_t *data, size_t size) {
    size_t i = 0;
    uint16_t seq = 1;
    uint64_t sent = 0, rx_before;
    if (size > sizeof recs) size = sizeof recs;
    memcpy(recs, data, size);
    while (i + 4 <= size) { /* first pass: the CRC fix-ups */
        const size_t len = (size_t)(recs[i + 2] | recs[i + 3] << 8);
        if (recs[i] == EB_MSG_LOAD_BEGIN && (recs[i + 1] & 4) && len >= EB_LOAD_BEGIN_SIZE && len <= size - i - 4)
            fix_load(i, size);
        i += 4 + (len < size - i - 4 ? len : size - i - 4);
    }
    i = 0;
    while (i + 4 <= size) {
        const uint8_t type = recs[i], flags = recs[i + 1];
        size_t len = (size_t)(recs[i + 2] | recs[i + 3] << 8), n;
        if (len > size - i - 4) len = size - i - 4;
        if (len > EB_PROTO_MAX_PAYLOAD) len = EB_PROTO_MAX_PAYLOAD;
        if (flags & 1) seq = (uint16_t)(seq - 1);
        if (flags & 2) seq = (uint16_t)(seq + 1);
        if (!(type == EB_MSG_LOAD_END && too_slow())) {
            n = eb_proto_encode(type, seq, recs + i + 4, len, frame);
            FUZZ_CHECK(n >= 2);
            rx_before = dev.frames_rx;
            eb_device_feed(&dev, frame, n);
            FUZZ_CHECK(dev.frames_rx == rx_before + 1); /* an intact frame is always taken */
            sent++;
        }
        seq = (uint16_t)(seq + 1);
        i += 4 + len;
    }
    FUZZ_CHECK(dev.frames_rx == sent && dev.crc_errors == 0 && dev.frame_errors == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    reset();
    if (data[0] & 1) {
        run_records(data + 1, size - 1);
        check_counters(NULL, 0);
    } else {
        /* the wire in pieces of 1 to 64 bytes (byte 0's upper bits), as a UART delivers it */
        const size_t piece = (size_t)(data[0] >> 2) + 1;
        size_t at;
        for (at = 1; at < size; at += piece) eb_device_feed(&dev, data + at, size - at < piece ? size - at : piece);
        check_counters(data + 1, size - 1);
    }
    return 0;
}
