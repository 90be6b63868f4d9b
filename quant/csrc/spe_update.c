/* The SPE state update, one pass per group: the compiled form of quant.spe's fast paths.
 *
 * Bit-identical to quant.spe._state_update_fast / _fused_update_fast with _dot_of_groups (and
 * so to the composition mul / mul_scalar / add / fused_mul_add / dot of quant/spe.py, the
 * specification; docs/mx8.md): tests/test_spe_arith.py checks it against the composition on
 * random and corner fields, tests/test_spe_native.py against the eager form. The format's
 * constants are not written here: quant/native.py passes them from quant/constants.py as -D
 * flags (GROUP, PAIRS, BIAS, MAG_BITS, MAG_MAX, EXP_NAN, ADD_FRAC_BITS, FMA_FRAC_BITS, LANES,
 * DOT_GUARD_BITS, DOT_X_NAN).
 *
 * Layouts (int32, C-contiguous): S (L, ds, G, .), d/k/q (L, G, .), v (L, ds/GROUP, .) as an
 * MX8 tensor, the random bits of a site in the order the source drew them,
 * (L, G / 2, ds, LANES) (quant.spe.hardware_order_rand before its transpose), or NULL for
 * round-to-nearest. Outputs: the new state's exponents (L, ds, G), micro-exponents
 * (L, ds, G, PAIRS) (all 0 in the unfused update), signs and magnitudes
 * (L, ds, G, GROUP), the exact per-group dot-product sums A_g with q (L, ds, G), and the
 * partials dot(S'_j, q) per sub-chunk, Y (int64) and X (L, ds, G / GPC).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if GROUP != 16 || PAIRS != 8
#error "the kernel's vectors hold one group of 16 values (8 pairs)"
#endif

#define GPC (LANES / GROUP) /* groups per sub-chunk */

/* One group as a vector (GCC/Clang vector extensions: AVX-512, AVX2 or SSE as the CPU has). */
typedef int32_t v16 __attribute__((vector_size(64)));
typedef uint32_t u16 __attribute__((vector_size(64)));

#ifdef __clang__
#define SHUF(x, ...) __builtin_shufflevector(x, x, __VA_ARGS__)
#else
#define SHUF(x, ...) __builtin_shuffle(x, (v16){__VA_ARGS__})
#endif

static inline v16 ld(const int32_t *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void st(int32_t *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline v16 bc(int32_t x) { return (v16){0} + x; }
/* a per-pair field (8 values) repeated to its 16 elements */
static inline v16 pairs(const int32_t *p)
{
    return (v16){p[0], p[0], p[1], p[1], p[2], p[2], p[3], p[3],
                 p[4], p[4], p[5], p[5], p[6], p[6], p[7], p[7]};
}
static inline v16 vmin(v16 a, v16 b) { return b ^ ((a ^ b) & (a < b)); }
static inline v16 vmax(v16 a, v16 b) { return b ^ ((a ^ b) & (a > b)); }
static inline int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t imin(int32_t a, int32_t b) { return a < b ? a : b; }
#define SWAP_PAIRS(x) SHUF(x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)
static inline int32_t hmax(v16 x)
{
    x = vmax(x, SHUF(x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    x = vmax(x, SHUF(x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    x = vmax(x, SHUF(x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
    x = vmax(x, SWAP_PAIRS(x));
    return x[0];
}
static inline int32_t hsum(v16 x)
{
    x += SHUF(x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    x += SHUF(x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    x += SHUF(x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    x += SWAP_PAIRS(x);
    return x[0];
}
static inline int32_t bitlen(int32_t v) { return v ? 32 - __builtin_clz((uint32_t)v) : 0; }

/* round_shifted (quant.mx8) of one group of non-negative values with a group-level shift:
 * truncate to r fraction bits, add the random integers (1 for nearest), drop the fraction,
 * saturate. */
static inline v16 round_group(v16 v, int32_t shift, int32_t r, const int32_t *rand)
{
    int32_t u = imin(imax(shift - r, -31), 31);
    u16 t = ((u16)v << (u < 0 ? -u : 0)) >> (u > 0 ? u : 0);
    t += rand ? (u16)ld(rand) : (u16)bc(1);
    return vmin((v16)(t >> r), bc(MAG_MAX));
}

/* NaN (an operand NaN, or the exponent overflowed) and zero groups: the result exponent,
 * magnitudes cleared in a NaN group; *clear = 1 for either. ``sure``: the group's largest
 * value (before rounding) ``vmax`` was normalized to the top bit, so it rounds to >= 32 and
 * ``vmax != 0`` decides zero without looking at the rounded magnitudes. */
static inline int32_t finish(v16 *m, int32_t exp, int nan, int sure, int32_t vmax, int *clear)
{
    if (nan || exp > EXP_NAN - 1) {
        *m = bc(0);
        *clear = 1;
        return EXP_NAN;
    }
    int any = sure ? vmax != 0 : hmax(*m) != 0;
    *clear = !any;
    return any ? exp : 0;
}

/* Multiplier back end on the exact products p (one fraction bit): normalize (renorm policy),
 * round in place; returns the result exponent. */
static inline int32_t product_round(v16 *p, int32_t e_base, int nan, int fixed, int32_t r,
                                    const int32_t *rand)
{
    int32_t pmax = 0, sh = MAG_BITS;
    if (!fixed) {
        pmax = hmax(*p);
        sh = imax(bitlen(pmax) - (MAG_BITS + 1), 0);
    }
    /* the leading one lands in bit 5 or 6 of the result */
    const int sure = !fixed && sh > 0 && sh >= -e_base;
    sh = imax(sh, -e_base);
    *p = round_group(*p, sh + 1, r, rand);
    int clear;
    return finish(p, e_base + sh, nan, sure, pmax, &clear);
}

/* dot(S'_j, q) per sub-chunk from the exact group sums A_g (quant.spe._dot_of_groups,
 * docs/mx8.md section 7): the groups aligned (floor) to the largest exponent X_g = E_g + E_q
 * of those with A_g != 0, summed with DOT_GUARD_BITS more fraction bits; a NaN group gives
 * Y = 0, X = DOT_X_NAN. One state row: G groups, G / GPC sub-chunks. */
static void dot_row(const int32_t *acc, const int32_t *exp, const int32_t *q_exp, int64_t G,
                    int64_t *y, int32_t *x)
{
    for (int64_t c = 0; c < G / GPC; c++) {
        int nan = 0;
        int32_t xm = 0;
        for (int64_t g = c * GPC; g < (c + 1) * GPC; g++) {
            nan |= exp[g] == EXP_NAN || q_exp[g] == EXP_NAN;
            if (acc[g] != 0)
                xm = imax(xm, exp[g] + q_exp[g]);
        }
        int64_t sum = 0;
        for (int64_t g = c * GPC; g < (c + 1) * GPC; g++) {
            const int32_t dist = imin(imax(xm - (exp[g] + q_exp[g]), 0), 31);
            sum += (int64_t)acc[g] * (1 << DOT_GUARD_BITS) >> dist; /* floor */
        }
        y[c] = nan ? 0 : sum;
        x[c] = nan ? DOT_X_NAN : xm;
    }
}

#define ARGS_IN                                                                              \
    int64_t L, int64_t ds, int64_t G, int32_t rbits, const int32_t *s_exp,                   \
        const int32_t *s_mu, const int32_t *s_sign, const int32_t *s_mag,                    \
        const int32_t *d_exp, const int32_t *d_mu, const int32_t *d_sign,                    \
        const int32_t *d_mag, const int32_t *k_exp, const int32_t *k_mu,                     \
        const int32_t *k_sign, const int32_t *k_mag, const int32_t *v_exp,                   \
        const int32_t *v_mu, const int32_t *v_sign, const int32_t *v_mag,                    \
        const int32_t *q_exp, const int32_t *q_mu, const int32_t *q_sign,                     \
        const int32_t *q_mag

/* Index of lane 0 of group g of state row j in a site's random bits. */
static inline size_t rand_at(int64_t l, int64_t j, int64_t g, int64_t ds, int64_t G)
{
    return (((size_t)l * (G / GPC) + g / GPC) * ds + j) * LANES + (g % GPC) * GROUP;
}

/* S' = add(mul(S, d), mul_scalar(k, v_j)); A_g = the exact group sums of S' * q. */
void spe_update_unfused(ARGS_IN, int32_t fixed, const int32_t *r_decay,
                        const int32_t *r_outer, const int32_t *r_add, int32_t *o_exp,
                        int32_t *o_mu, int32_t *o_sign, int32_t *o_mag, int32_t *acc,
                        int64_t *y, int32_t *x)
{
    const int32_t r = r_add ? rbits : 1;
    const int32_t ebias = BIAS + MAG_BITS - 1;
    const int32_t lim = MAG_BITS + ADD_FRAC_BITS + 1;
    for (int64_t l = 0; l < L; l++) {
        for (int64_t j = 0; j < ds; j++) {
            const size_t vg = (size_t)l * (ds / GROUP) + j / GROUP;
            const int32_t vexp = v_exp[vg], vmu = v_mu[vg * PAIRS + (j % GROUP) / 2];
            const int32_t vsign = v_sign[l * ds + j], vmag = v_mag[l * ds + j];
            for (int64_t g = 0; g < G; g++) {
                const size_t sg = ((size_t)l * ds + j) * G + g, dg = (size_t)l * G + g;
                const size_t ri = rand_at(l, j, g, ds, G);
                const v16 smu = pairs(s_mu + sg * PAIRS), dmu = pairs(d_mu + dg * PAIRS);
                const v16 kmu = pairs(k_mu + dg * PAIRS), vmu_ = bc(vmu);
                v16 p1 = (ld(s_mag + sg * GROUP) * (ld(d_mag + dg * GROUP) << 1)) >> (smu & dmu);
                v16 p2 = ((ld(k_mag + dg * GROUP) << 1) * vmag) >> (kmu & vmu_);
                const int32_t sexp = s_exp[sg], dexp = d_exp[dg], kexp = k_exp[dg];
                const int32_t e1 = product_round(&p1, sexp + dexp - ebias,
                                                 sexp == EXP_NAN || dexp == EXP_NAN, fixed, r,
                                                 r_decay ? r_decay + ri : NULL);
                const int32_t e2 = product_round(&p2, kexp + vexp - ebias,
                                                 kexp == EXP_NAN || vexp == EXP_NAN, fixed, r,
                                                 r_outer ? r_outer + ri : NULL);
                const int32_t emax = imax(e1, e2);
                const v16 a = (p1 << ADD_FRAC_BITS) >> vmin(bc(emax - e1) + (smu | dmu), bc(lim));
                const v16 b = (p2 << ADD_FRAC_BITS) >> vmin(bc(emax - e2) + (kmu | vmu_), bc(lim));
                const v16 na = -(ld(s_sign + sg * GROUP) ^ ld(d_sign + dg * GROUP));
                const v16 nb = -(ld(k_sign + dg * GROUP) ^ vsign);
                const v16 tot = ((a ^ na) - na) + ((b ^ nb) - nb);
                const v16 tneg = tot >> 31; /* -1 where the sum is negative */
                v16 m = (tot ^ tneg) - tneg;
                const int32_t vmax = hmax(m);
                int32_t sh = fixed ? imin(vmax >> (MAG_BITS + ADD_FRAC_BITS), 1)
                                   : bitlen(vmax) - (MAG_BITS + ADD_FRAC_BITS);
                const int sure = !fixed && sh >= -emax;
                sh = imax(sh, -emax);
                m = round_group(m, sh + ADD_FRAC_BITS, r, r_add ? r_add + ri : NULL);
                int clear;
                o_exp[sg] = finish(&m, emax + sh, e1 == EXP_NAN || e2 == EXP_NAN, sure, vmax,
                                   &clear);
                const v16 neg = tneg & (m != 0); /* -1: negative and non-zero */
                const v16 qs = -ld(q_sign + dg * GROUP);
                const v16 qsh = 2 - pairs(q_mu + dg * PAIRS);
                const v16 qf = ((ld(q_mag + dg * GROUP) << qsh) ^ qs) - qs;
                memset(o_mu + sg * PAIRS, 0, PAIRS * sizeof *o_mu); /* the adder's mu = 0 */
                st(o_mag + sg * GROUP, m);
                st(o_sign + sg * GROUP, -neg);
                const v16 t = (((m ^ neg) - neg) * qf);
                acc[sg] = hsum(t);
            }
            dot_row(acc + ((size_t)l * ds + j) * G, o_exp + ((size_t)l * ds + j) * G,
                    q_exp + (size_t)l * G, G, y + ((size_t)l * ds + j) * (G / GPC),
                    x + ((size_t)l * ds + j) * (G / GPC));
        }
    }
}

/* S' = fused_mul_add(d, S, k, v_j) (one rounding, site add); A_g as above. */
void spe_update_fused(ARGS_IN, const int32_t *r_add, int32_t *o_exp, int32_t *o_mu,
                      int32_t *o_sign, int32_t *o_mag, int32_t *acc, int64_t *y, int32_t *x)
{
    const int32_t r = r_add ? rbits : 1;
    const int32_t frac = MAG_BITS + 1 + FMA_FRAC_BITS;
    const int32_t lim = 2 * MAG_BITS + 2 + FMA_FRAC_BITS;
    for (int64_t l = 0; l < L; l++) {
        for (int64_t j = 0; j < ds; j++) {
            const size_t vg = (size_t)l * (ds / GROUP) + j / GROUP;
            const int32_t vexp = v_exp[vg], vmu = v_mu[vg * PAIRS + (j % GROUP) / 2];
            const int32_t vsign = v_sign[l * ds + j], vmag = v_mag[l * ds + j];
            for (int64_t g = 0; g < G; g++) {
                const size_t sg = ((size_t)l * ds + j) * G + g, dg = (size_t)l * G + g;
                const int32_t sexp = s_exp[sg], dexp = d_exp[dg], kexp = k_exp[dg];
                const int32_t x1 = sexp + dexp, x2 = kexp + vexp, x0 = imax(x1, x2);
                const int nan = sexp == EXP_NAN || dexp == EXP_NAN || kexp == EXP_NAN
                                || vexp == EXP_NAN;
                const v16 smu = pairs(s_mu + sg * PAIRS), dmu = pairs(d_mu + dg * PAIRS);
                const v16 kmu = pairs(k_mu + dg * PAIRS);
                /* the exact products, P << FMA_FRAC_BITS, aligned to X0 (truncating) */
                const v16 p1 = ((ld(s_mag + sg * GROUP) * ld(d_mag + dg * GROUP))
                                << (2 - smu - dmu + FMA_FRAC_BITS)) >> imin(x0 - x1, lim);
                const v16 p2 = ((ld(k_mag + dg * GROUP) * vmag) << (2 - kmu - vmu + FMA_FRAC_BITS))
                               >> imin(x0 - x2, lim);
                const v16 na = -(ld(s_sign + sg * GROUP) ^ ld(d_sign + dg * GROUP));
                const v16 nb = -(ld(k_sign + dg * GROUP) ^ vsign);
                const v16 tot = ((p1 ^ na) - na) + ((p2 ^ nb) - nb);
                const v16 tneg = tot >> 31;
                v16 m = (tot ^ tneg) - tneg;
                const int32_t mmax = hmax(m), top = bitlen(mmax);
                /* mu = 1 for a pair below the group's leading binade: one bit finer */
                const v16 pm = vmax(m, SWAP_PAIRS(m));
                v16 mu = -(pm < bc(top ? 1 << (top - 1) : 0));
                m <<= mu;
                const int32_t e_base = x0 - BIAS;
                const int sure = top - (MAG_BITS + frac) >= -e_base;
                const int32_t sh = imax(top - (MAG_BITS + frac), -e_base);
                m = round_group(m, sh + frac, r, r_add ? r_add + rand_at(l, j, g, ds, G) : NULL);
                int clear;
                o_exp[sg] = finish(&m, e_base + sh, nan, sure, mmax, &clear);
                if (clear)
                    mu = bc(0);
                for (int p = 0; p < PAIRS; p++)
                    o_mu[sg * PAIRS + p] = mu[2 * p];
                const v16 neg = tneg & (m != 0);
                const v16 qs = -ld(q_sign + dg * GROUP);
                const v16 qv = (ld(q_mag + dg * GROUP) ^ qs) - qs;
                st(o_mag + sg * GROUP, m);
                st(o_sign + sg * GROUP, -neg);
                /* dot terms: m * q << (2 - mu - mu_q), exact */
                const v16 qsh = 2 - mu - pairs(q_mu + dg * PAIRS);
                const v16 t = ((m ^ neg) - neg) * qv * (bc(1) << qsh);
                acc[sg] = hsum(t);
            }
            dot_row(acc + ((size_t)l * ds + j) * G, o_exp + ((size_t)l * ds + j) * G,
                    q_exp + (size_t)l * G, G, y + ((size_t)l * ds + j) * (G / GPC),
                    x + ((size_t)l * ds + j) * (G / GPC));
        }
    }
}
