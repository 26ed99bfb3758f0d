/* eb_host_board.c: the C runtime as a "board" on this machine (edgebrain stream --target
 * host-firmware): the device loop of eb_device.h over a file descriptor, a pseudo-terminal's
 * master end by default (stdin and stdout), like a microcontroller's UART.
 *
 *     eb_host_board [--fd N] [--model-bytes N] [--work-bytes N]
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
