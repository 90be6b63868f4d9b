/* The draws of quant.rng.TorchBits, compiled: the outputs of PyTorch's CPU generator
 * (32-bit MT19937, at::mt19937 of ATen/core/MT19937RNGEngine.h), the low bits of each.
 *
 * The generator's state is the byte tensor torch.Generator.get_state() returns; this code
 * reads and advances the fields it needs in place (quant/native.py checks the layout
 * against torch's own draws before using it, and hands the state back with set_state):
 *   bytes 0-7   the initial seed (uint64, untouched)
 *   bytes 8-11  left (int32): outputs left before the next twist, plus one
 *   bytes 16-23 next (uint64): index of the next state word to temper
 *   bytes 24-   the 624 state words, one uint64 each (values < 2**32)
 * One output per element, in order: out[i] = temper(word) & mask.
 */
#include <stdint.h>
#include <string.h>

#define MT_N 624
#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

static inline uint32_t mt_twist(uint32_t u, uint32_t v)
{
    return (((u & MT_UPPER) | (v & MT_LOWER)) >> 1) ^ ((v & 1u) ? MT_MATRIX_A : 0u);
}

static void mt_next_state(uint32_t *s)
{
    int i = 0;
    for (; i < MT_N - MT_M; i++)
        s[i] = s[i + MT_M] ^ mt_twist(s[i], s[i + 1]);
    for (; i < MT_N - 1; i++)
        s[i] = s[i + MT_M - MT_N] ^ mt_twist(s[i], s[i + 1]);
    s[MT_N - 1] = s[MT_M - 1] ^ mt_twist(s[MT_N - 1], s[0]);
}

static inline uint32_t mt_temper(uint32_t y)
{
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

void mt19937_draw(uint8_t *blob, int32_t *out, int64_t n, uint32_t mask)
{
    int32_t left;
    uint64_t next64, w[MT_N];
    uint32_t s[MT_N];
    memcpy(&left, blob + 8, sizeof left);
    memcpy(&next64, blob + 16, sizeof next64);
    memcpy(w, blob + 24, sizeof w);
    for (int i = 0; i < MT_N; i++)
        s[i] = (uint32_t)w[i];
    int64_t next = (int64_t)next64, i = 0;
    while (i < n) {
        /* the outputs before the next twist: the call that takes left to 0 twists first */
        int64_t k = (int64_t)left - 1;
        if (k > n - i)
            k = n - i;
        if (k < 0)
            k = 0;
        for (int64_t j = 0; j < k; j++)
            out[i + j] = (int32_t)(mt_temper(s[next + j]) & mask);
        i += k;
        next += k;
        left -= (int32_t)k;
        if (i < n) {
            mt_next_state(s);
            left = MT_N + 1;
            next = 0;
        }
    }
    for (int j = 0; j < MT_N; j++)
        w[j] = s[j];
    next64 = (uint64_t)next;
    memcpy(blob + 8, &left, sizeof left);
    memcpy(blob + 16, &next64, sizeof next64);
    memcpy(blob + 24, w, sizeof w);
}
