/* eb_board_main.c: the main loop every emulated board shares: the device loop of eb_device.h fed
 * from a polled UART, with static buffers (no heap). */
#include "eb_board.h"
#include "eb_device.h"

static uint64_t model_ram[EB_BOARD_MODEL_BYTES / 8];
static uint64_t work_ram[EB_BOARD_WORK_BYTES / 8];
static eb_device dev;

int main(void) {
    uint8_t buf[64];
    board_init();
    eb_device_init(&dev, model_ram, sizeof model_ram, work_ram, sizeof work_ram, board_write, NULL);
    eb_device_set_cycles(&dev, board_cycles);
    eb_device_boot(&dev);
    for (;;) {
        size_t n = 0;
        int c;
        /* gather what is waiting (the UART holds a byte or a small FIFO), then hand it over */
        while (n < sizeof buf && (c = board_getc()) >= 0) buf[n++] = (uint8_t)c;
        if (n) eb_device_feed(&dev, buf, n);
    }
}
