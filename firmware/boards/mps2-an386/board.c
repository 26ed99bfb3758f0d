/* board.c: the Arm MPS2 AN386 (Cortex-M4F) as QEMU models it (qemu-system-arm -M mps2-an386):
 * vector table and reset handler, CMSDK APB UART0 polled, SysTick as the cycle counter.
 *
 * The counter: SysTick runs on the 25 MHz system clock, a 24-bit down-counter whose wraps an
 * interrupt counts; board_cycles returns it in nanoseconds of QEMU's virtual clock (ticks x 40).
 * Under -icount shift=0 one guest instruction advances that clock by exactly 1 ns, so the value
 * is the number of instructions executed (to within one tick, 40 instructions, per reading);
 * without -icount it follows the host's clock and counts nothing useful. */
#include <stdint.h>

#include "eb_board.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00u)
#define UART_STATE REG(UART0 + 0x04u)
#define UART_CTRL REG(UART0 + 0x08u)
#define UART_BAUDDIV REG(UART0 + 0x10u)
#define STATE_TXFULL 1u
#define STATE_RXFULL 2u
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SCB_ICSR REG(0xE000ED04u)
#define SCB_CPACR REG(0xE000ED88u)
#define SYSCLK_HZ 25000000u
#define NS_PER_TICK (1000000000u / SYSCLK_HZ)

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
int main(void);

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

static void hang(void) {
    for (;;) {
    }
}

void Reset_Handler(void) {
    uint32_t *s = &__data_load, *d = &__data_start;
    /* the M4F build uses hard float: grant CP10 and CP11 before any FP instruction */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    while (d < &__data_end) *d++ = *s++;
    for (d = &__bss_start; d < &__bss_end;) *d++ = 0;
    main();
    hang();
}

/* the vector table: the initial stack pointer, then the handlers (reset first, SysTick 15th) */
struct vector_table {
    uint32_t *sp;
    void (*handler[15])(void);
};
__attribute__((section(".isr_vector"), used)) static const struct vector_table vectors = {
    &__stack_top,
    {Reset_Handler, hang, hang, hang, hang, hang, 0, 0, 0, 0, hang, hang, 0, hang, SysTick_Handler},
};

void board_init(void) {
    UART_BAUDDIV = SYSCLK_HZ / 115200u; /* QEMU drops bytes when BAUDDIV < 16 */
    UART_CTRL = 3u;                     /* TX and RX enabled, no interrupts: polled */
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
}

int board_getc(void) {
    if (!(UART_STATE & STATE_RXFULL)) return -1;
    return (int)(UART_DATA & 0xFFu);
}

void board_write(void *ctx, const uint8_t *p, size_t n) {
    (void)ctx;
    while (n--) {
        while (UART_STATE & STATE_TXFULL) {
        }
        UART_DATA = *p++;
    }
}

uint64_t board_cycles(void *ctx) {
    uint32_t hi, val;
    (void)ctx;
    for (;;) {
        hi = systick_wraps;
        val = SYST_CVR;
        if (hi != systick_wraps) continue;
        /* wrapped between the reads but its interrupt not taken yet: count that wrap */
        if ((SCB_ICSR & (1u << 26)) && val > 0x800000u) hi++;
        break;
    }
    return ((uint64_t)hi * 0x1000000u + (0xFFFFFFu - val)) * NS_PER_TICK;
}
