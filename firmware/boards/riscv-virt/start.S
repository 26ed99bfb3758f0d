/* start.S: reset entry of the virt machine with -bios none (QEMU jumps to 0x80000000 in machine
 * mode): one hart, a stack, .bss zeroed (.data is loaded in RAM where it runs), then main. */
    .section .text.start
    .globl _start
_start:
    .option push
    .option arch, +zicsr
    csrw mie, zero
    .option pop
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __stack_top
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 1b
2:  call main
3:  wfi
    j 3b
