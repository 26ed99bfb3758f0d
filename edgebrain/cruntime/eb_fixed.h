/* eb_fixed.h: the integer primitives of docs/fixed-point.md, in one place.
 *
 * Every intermediate value is int64 and exact within the contract's ranges. Where a value
 * outside the contract (a hand-made blob) could overflow, the arithmetic wraps through
 * uint64 as Numba's int64 does, and shifts are clamped to 63: never undefined behaviour.
 * Requires an arithmetic >> on negative values (GCC and Clang; the contract says so). */
#ifndef EB_FIXED_H
#define EB_FIXED_H

#include <stdint.h>

#define EB_INT32_MIN (-2147483647 - 1)
#define EB_INT32_MAX 2147483647
/* the NARROW neuron path clamps its input to +-2^30 (kernels/neuron.py X_CLAMP): beyond, the membrane saturates alike */
#define EB_X_CLAMP ((int32_t)0x40000000)

/* a + b, a - b, a * b with int64 wrap-around (Numba's semantics; exact inside the contract) */
static inline int64_t eb_addw(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t eb_subw(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t eb_mulw(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

static inline int64_t eb_sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline int32_t eb_sat32(int64_t v) { return (int32_t)eb_sat(v, EB_INT32_MIN, EB_INT32_MAX); }

/* int64 -> int32 by truncation: what a store into Numba's int32 accumulator does */
static inline int32_t eb_wrap32(int64_t v) {
    uint32_t u = (uint32_t)(uint64_t)v;
    return u <= 0x7FFFFFFFu ? (int32_t)u : (int32_t)(u - 0x80000000u) + EB_INT32_MIN;
}

/* 32-bit operations wrapping as Numba's int32 ones (kernels/fixed.py add32, mul32, ...), for the
 * paths the builder proved exact in int32 (a row's wide flag 0, the neuron flag NARROW). The shift
 * count is taken modulo 32: never undefined, and a proven row never shifts by 32 or more. */
static inline int32_t eb_i32(uint32_t u) { return eb_wrap32((int64_t)u); }
static inline int32_t eb_add32(int32_t a, int32_t b) { return eb_i32((uint32_t)a + (uint32_t)b); }
static inline int32_t eb_sub32(int32_t a, int32_t b) { return eb_i32((uint32_t)a - (uint32_t)b); }
static inline int32_t eb_mul32(int32_t a, int32_t b) { return eb_i32((uint32_t)a * (uint32_t)b); }
static inline int32_t eb_shl32(int32_t a, int32_t s) { return eb_i32((uint32_t)a << (s & 31)); }
static inline int32_t eb_asr32(int32_t a, int32_t s) { return a >> (s & 31); }
static inline int32_t eb_clamp32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* rsr(p, s): round(p / 2^s), ties toward +inf; p itself when s <= 0 */
static inline int64_t eb_rsr(int64_t p, int64_t s) {
    if (s <= 0) return p;
    if (s > 63) s = 63;
    return eb_addw(p, (int64_t)((uint64_t)1 << (s - 1))) >> s;
}

/* mulshift(x, m, s) = rsr(x·m, s) */
static inline int64_t eb_mulshift(int64_t x, int64_t m, int64_t s) { return eb_rsr(eb_mulw(x, m), s); }

/* floor(a / b) (b != 0) */
static inline int64_t eb_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* sat32(rsr(a·m, s)) exactly for any int64 a (a wide accumulator) and int32 m, where a·m may
 * not fit in int64: the product is formed as h·2^32 + l (0 <= l < 2^32) and the rounding shift
 * applied to the pair (kernels/fixed.py mulshift_sat32, the same steps). */
static inline int32_t eb_mulshift_sat32(int64_t a, int64_t m, int64_t s) {
    const int64_t mask = 0xFFFFFFFF;
    int64_t pl, h, l;
    if (s > 63) s = 63;
    if (a >= -2147483647LL - 1 && a <= 2147483648LL) return eb_sat32(eb_rsr(a * m, s));
    pl = (a & mask) * m;
    h = (a >> 32) * m + (pl >> 32);
    l = pl & mask;
    if (s >= 33) return eb_sat32((h + ((int64_t)1 << (s - 33))) >> (s - 32));
    if (s <= 0) {
        s = 0;
    } else {
        l += (int64_t)1 << (s - 1);
        h += l >> 32;
        l &= mask;
    }
    if (h >= 2147483648LL) return EB_INT32_MAX;
    if (h < -2147483648LL) return EB_INT32_MIN;
    return eb_sat32((int64_t)((uint64_t)h << (32 - s)) + (l >> s));
}

/* requantise an accumulator: sat32(a), or sat32(rsr(a·m, s)) */
static inline int32_t eb_requant(int64_t a, int64_t m, int64_t s, int identity) {
    return identity ? eb_sat32(a) : eb_mulshift_sat32(a, m, s);
}

/* the same for |a| <= 2^32 (a narrow accumulator, with or without its bias) and an int32 m, where
 * a·m and the rounding term fit in int64 (Numba's narrow _rq): no test of a's size */
static inline int32_t eb_requant_narrow(int64_t a, int64_t m, int64_t s, int identity) {
    return identity ? eb_sat32(a) : eb_sat32(eb_rsr(eb_mulw(a, m), s));
}

#endif /* EB_FIXED_H */
