/* eb_host_board.c: the C runtime as a "board" on this machine (edgebrain stream --target
 * host-firmware): the device loop of eb_device.h over a file descriptor, a pseudo-terminal's
 * master end by default (stdin and stdout), like a microcontroller's UART.
 *
 *     eb_host_board [--fd N] [--model-bytes N] [--work-bytes N]
 *                   [--replay COUNTS --channels C --rate HZ --units U0,U1,... [--per-frame N]]
 *
 * With --replay it plays a board that streams its sensor: after its announcement it sends the
 * int16 little-endian counts of the file COUNTS (C per sample, sample-major) as SENSOR frames of
 * --per-frame samples (default 10), as fast as the link takes them, then answers frames as usual.
 *
 * It announces itself (INFO, boot = 1), then answers frames until the link closes (end of file,
 * or EIO when the other end of the pty is gone). Static memory only, as on a board: the model and
 * work buffers are static arrays of EB_HOST_MODEL_BYTES and EB_HOST_WORK_BYTES (the options can
 * only make them look smaller, to test refusals). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eb_device.h"

#ifndef EB_HOST_MODEL_BYTES
#define EB_HOST_MODEL_BYTES (4u << 20)
#endif
#ifndef EB_HOST_WORK_BYTES
#define EB_HOST_WORK_BYTES (4u << 20)
#endif

static uint64_t model_ram[EB_HOST_MODEL_BYTES / 8];
static uint64_t work_ram[EB_HOST_WORK_BYTES / 8];
static eb_device dev;
static int out_fd = 1;

static void write_all(void *ctx, const uint8_t *p, size_t n) {
    (void)ctx;
    while (n) {
        ssize_t k = write(out_fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            exit(3); /* the link is gone */
        }
        p += k;
        n -= (size_t)k;
    }
}

static const char *option_text(int argc, char **argv, const char *name) {
    int i;
    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

/* the --replay file's counts as SENSOR frames; 0, or 2 on a bad option or file (said on stderr) */
static int replay(const char *path, int argc, char **argv) {
    static int16_t counts[EB_PROTO_MAX_PAYLOAD / 2];
    float units[255], rate;
    const char *u = option_text(argc, argv, "--units"), *r = option_text(argc, argv, "--rate");
    const char *c = option_text(argc, argv, "--channels"), *pf = option_text(argc, argv, "--per-frame");
    unsigned long channels = c ? strtoul(c, NULL, 10) : 0, per_frame = pf ? strtoul(pf, NULL, 10) : 10, k;
    uint32_t index = 0;
    FILE *f;
    if (channels < 1 || channels > 255 || !r || !u || per_frame < 1 ||
        per_frame * channels > sizeof counts / sizeof counts[0]) {
        fprintf(stderr, "eb_host_board: --replay needs --channels 1..255, --rate and --units (one per channel)\n");
        return 2;
    }
    rate = strtof(r, NULL);
    for (k = 0; k < channels; k++) {
        char *end;
        units[k] = strtof(u, &end);
        if (end == u || (k + 1 < channels && *end != ',')) {
            fprintf(stderr, "eb_host_board: --units: expected %lu numbers separated by commas\n", channels);
            return 2;
        }
        u = end + 1;
    }
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "eb_host_board: cannot open %s\n", path);
        return 2;
    }
    for (;;) {
        uint8_t raw[sizeof counts];
        size_t got = fread(raw, 2 * channels, per_frame, f), i;
        if (got == 0) break;
        for (i = 0; i < got * channels; i++) counts[i] = (int16_t)(uint16_t)(raw[2 * i] | (raw[2 * i + 1] << 8));
        if (eb_device_send_sensor(&dev, counts, (uint16_t)got, (uint8_t)channels, index, rate, units) != 0) break;
        index += (uint32_t)got;
    }
    fclose(f);
    return 0;
}

static size_t option(int argc, char **argv, const char *name, size_t dflt) {
    int i;
    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return (size_t)strtoul(argv[i + 1], NULL, 10);
    return dflt;
}

int main(int argc, char **argv) {
    int in_fd = (int)option(argc, argv, "--fd", 0);
    size_t model_bytes = option(argc, argv, "--model-bytes", sizeof model_ram);
    size_t work_bytes = option(argc, argv, "--work-bytes", sizeof work_ram);
    uint8_t buf[512];
    if (in_fd != 0) out_fd = in_fd;
    if (model_bytes > sizeof model_ram) model_bytes = sizeof model_ram;
    if (work_bytes > sizeof work_ram) work_bytes = sizeof work_ram;
    eb_device_init(&dev, model_ram, model_bytes, work_ram, work_bytes, write_all, NULL);
    eb_device_boot(&dev);
    if (option_text(argc, argv, "--replay") && replay(option_text(argc, argv, "--replay"), argc, argv) != 0) return 2;
    for (;;) {
        ssize_t k = read(in_fd, buf, sizeof buf);
        if (k > 0) {
            eb_device_feed(&dev, buf, (size_t)k);
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            return 0; /* end of file, or EIO: the host closed its end */
        }
    }
}
