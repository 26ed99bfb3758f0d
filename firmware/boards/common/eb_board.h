/* eb_board.h: what an emulated board gives the shared main loop (eb_board_main.c): a UART polled
 * both ways and a free-running 64-bit counter for STATS' cycles. */
#ifndef EB_BOARD_H
#define EB_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* the RAM the link's model load and the session use: every zoo model fits (nmnist: a 577 KB blob,
 * 266 KB of buffers) */
#define EB_BOARD_MODEL_BYTES (1024u * 1024u)
#define EB_BOARD_WORK_BYTES (1024u * 1024u)

void board_init(void);
/* one received byte (0..255), or -1 when none is waiting */
int board_getc(void);
void board_write(void *ctx, const uint8_t *p, size_t n);
/* the counter STATS reports as cycles (see each board's board.c for what it counts) */
uint64_t board_cycles(void *ctx);

#endif
