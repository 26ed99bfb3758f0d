/* board.c: QEMU's RISC-V virt machine (qemu-system-riscv32 -M virt -bios none), rv32imac in
 * machine mode: the NS16550A UART at 0x10000000 polled, mcycle as the cycle counter.
 *
 * The counter: QEMU's mcycle is the instruction count under -icount, and the host's time-stamp
 * counter otherwise (so only -icount runs count anything of the guest). */
#include <stdint.h>

#include "eb_board.h"

#define UART ((volatile uint8_t *)0x10000000u)
#define RBR 0 /* receive buffer (read) */
#define THR 0 /* transmit holding (write) */
#define IER 1
#define FCR 2
#define LCR 3
#define LSR 5
#define LSR_DR 0x01u   /* data ready */
#define LSR_THRE 0x20u /* transmit holding register empty */

void board_init(void) {
    UART[IER] = 0;    /* polled */
    UART[LCR] = 0x03; /* 8N1 (QEMU ignores the divisor: no baud rate to set) */
    UART[FCR] = 0x07; /* FIFOs on and cleared */
}

int board_getc(void) {
    if (!(UART[LSR] & LSR_DR)) return -1;
    return (int)UART[RBR];
}

void board_write(void *ctx, const uint8_t *p, size_t n) {
    (void)ctx;
    while (n--) {
        while (!(UART[LSR] & LSR_THRE)) {
        }
        UART[THR] = *p++;
    }
}

uint64_t board_cycles(void *ctx) {
    uint32_t hi, lo, hi2;
    (void)ctx;
    do { /* the high word again: a carry between the two reads (zicsr: the multilib is rv32imac) */
        __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcycleh\n\tcsrr %1, mcycle\n\t"
                         "csrr %2, mcycleh\n\t.option pop"
                         : "=r"(hi), "=r"(lo), "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}
