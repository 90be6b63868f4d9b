"""Fused MX8 state update over a sub-chunk (:class:`MxFma`): ``a * b + c * e`` rounded once.

Bit-exact with :func:`quant.spe.fused_mul_add` (docs/mx8.md section 8a): both products enter
the adder at full width, aligned, and the sum is rounded once, as a fused multiply-add does.
``a``, ``b``, ``c`` are sub-chunks (two groups), ``e`` a broadcast MX8 scalar (the state
update's ``S * d + k * v_j``). Five register stages:

1. ``s1``: per value the exact products ``P = ma * mb << (2 - mu_a - mu_b)`` (14 bits) and their
   signs, per group the product exponents ``X = Ea + Eb`` (9 bits), ``X0 = max(X_ab, X_ce)``,
   the two alignment distances ``X0 - X`` and the NaN flag (any of the four operands NaN).
2. ``s2``: alignment, per product ``T = (P << 8) >> (X0 - X)`` (22 bits, truncating; distances
   of 22 or more give 0; :data:`quant.spe.FMA_FRAC_BITS` = 8 fraction bits).
3. ``s3``: signed addition, sign and absolute value (``|S| < 2**23``).
4. ``s4``: leading-one detection on the OR of the group's sums (``top = bitlen``), shift
   ``sh = top - 21``, raised so that ``X0 - 127 + sh >= 0`` (gradual underflow), overflow
   (``> 254``) makes a NaN group; per pair ``mu = 1`` when neither of its sums has a bit at the
   group's leading-one position (both lie below the group's leading binade). A pair with
   ``mu = 1`` is rounded one bit finer: each pair gets its own rounding-shift register,
   ``15 + sh - mu`` (which also keeps each shift register's fan-out to two lanes).
5. ``s5`` = output: the one rounding (:func:`hw.sround.sround`) with random bits from the
   internal LFSR (site ``add``) or the pipelined ``i_rand``; zero and NaN groups.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.constants import BIAS, DEFAULT_SITE_SEEDS, EXP_NAN, FMA_FRAC_BITS, MAG_BITS

from .mx8_layout import mx_scalar_group, mx_scalar_layout, mx_subchunk_layout
from .pipeline import Staged
from .sround import MxRoundingUnit, bitlen, or_all, rand_layout

__all__ = ["MxFma"]

GROUPS = 2
GROUP = 16
PAIRS = GROUP // 2
LANES = GROUPS * GROUP
PROD_BITS = 2 * MAG_BITS + 2  # 14: P = ma * mb << (2 - mu_sum)
ALIGN_BITS = PROD_BITS + FMA_FRAC_BITS  # 22: an aligned product
SUM_BITS = ALIGN_BITS + 1  # 23: |T_ab + T_ce| < 2**23
#: Fraction bits of the sum below a 6-bit magnitude at ``sh = 0``: 15.
FRAC = MAG_BITS + 1 + FMA_FRAC_BITS
#: Bias of the rounding shift: ``15 + sh`` goes down to -6 (``sh = -21``, an all-zero group).
SHIFT_BIAS = MAG_BITS


class MxFma(Staged, MxRoundingUnit, wiring.Component):
    """Pipelined fused multiply-add of MX8 sub-chunks, ``a * b + c * e`` with one rounding.

    Parameters
    ----------
    rbits : int
        Random bits of stochastic rounding (1..8).
    seed : int or None
        Reset value of the internal PRBS31 generator (the rounding site ``add``); ``None``:
        the random bits come from the ``i_rand`` port together with the operands.

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_stoch : In(1)
        Round this operation stochastically (else to nearest).
    i_a, i_b, i_c : In(mx_subchunk_layout())
        The sub-chunk operands (state, decay, key).
    i_e : In(mx_scalar_layout())
        The broadcast scalar (``v_j``).
    i_rand : In(ArrayLayout(rbits, 32))
        Random bits of the operation (only when ``seed is None``).
    o_valid : Out(1)
        ``o_y`` holds the result of the operation presented ``latency`` cycles earlier.
    o_y : Out(mx_subchunk_layout())
        The rounded sum.
    """

    def __init__(self, *, rbits: int = 8, seed: int | None = DEFAULT_SITE_SEEDS["add"]):
        from .lfsr import check_rbits
        from .sround import check_seed_or_none

        self._rbits = check_rbits(rbits)
        self._renorm = "lod"  # the fused datapath has no other policy (docs/mx8.md 8a)
        self._seed = check_seed_or_none(seed)
        sub = mx_subchunk_layout()
        ports = {"i_valid": In(1), "i_stoch": In(1), "i_a": In(sub), "i_b": In(sub),
                 "i_c": In(sub), "i_e": In(mx_scalar_layout()),
                 "o_valid": Out(1), "o_y": Out(sub)}
        if seed is None:
            ports["i_rand"] = In(rand_layout(LANES, rbits))
        super().__init__(ports)

    @property
    def kind(self) -> str:
        """The golden-model operation this unit computes."""
        return "fused_mul_add"

    #: Register stages (module docstring); :attr:`latency` is their number.
    STAGES = ("s1", "s2", "s3", "s4", "s5")

    def _e_group(self):
        """The scalar ``e`` as a group of 16 copies of itself."""
        return mx_scalar_group(self.i_e)

    def elaborate(self, platform):
        m = Module()
        rbits = self._rbits
        lanes = rand_layout(LANES, rbits)

        def sig(name, shape=1):
            return Signal(shape, name=name, reset_less=True)

        def pipe(prefix, prev_valid, prev_stoch, prev_rand):
            valid, stoch = Signal(name=f"{prefix}_valid"), Signal(name=f"{prefix}_stoch")
            rand = Signal(lanes, name=f"{prefix}_rand", reset_less=True)
            m.d.sync += [valid.eq(prev_valid), stoch.eq(prev_stoch)]
            if prev_rand is not None:
                m.d.sync += rand.eq(prev_rand)
            return valid, stoch, rand

        prods = ("ab", "ce")
        # ---- stage 1: exact products, product exponents, alignment distances ---------------
        s1_valid, s1_stoch, s1_rand = pipe("s1", self.i_valid, self.i_stoch,
                                           self.i_rand if self._seed is None else None)
        s1_x0 = [sig(f"s1_x0_{g}", 9) for g in range(GROUPS)]
        s1_nan = [sig(f"s1_nan{g}") for g in range(GROUPS)]
        s1_dist = {p: [sig(f"s1_dist{p}{g}", 9) for g in range(GROUPS)] for p in prods}
        s1_p = {p: [[sig(f"s1_p{p}{g}_{i}", PROD_BITS) for i in range(GROUP)]
                    for g in range(GROUPS)] for p in prods}
        s1_neg = {p: [sig(f"s1_neg{p}{g}", GROUP) for g in range(GROUPS)] for p in prods}
        for g in range(GROUPS):
            ops = {"ab": (self.i_a[g], self.i_b[g]), "ce": (self.i_c[g], self._e_group())}
            x = {}
            for p, (u, w) in ops.items():
                x[p] = Signal(9, name=f"s1_x{p}{g}")
                m.d.comb += x[p].eq(u.exp + w.exp)
                for j in range(PAIRS):
                    mu_sum = Signal(2, name=f"s1_musum{p}{g}_{j}")
                    m.d.comb += mu_sum.eq(u.mu[j] + w.mu[j])
                    for i in (2 * j, 2 * j + 1):
                        eu, ew = u.elems[i], w.elems[i]
                        prod = eu.mag * ew.mag
                        m.d.sync += [
                            s1_p[p][g][i].eq(Mux(mu_sum == 0, prod << 2,
                                                 Mux(mu_sum == 1, prod << 1, prod))),
                            s1_neg[p][g][i].eq(eu.sign ^ ew.sign),
                        ]
            x0 = Signal(9, name=f"s1_x0c{g}")
            m.d.comb += x0.eq(Mux(x["ab"] > x["ce"], x["ab"], x["ce"]))
            exps = (self.i_a[g].exp, self.i_b[g].exp, self.i_c[g].exp, self.i_e.exp)
            m.d.sync += [
                s1_x0[g].eq(x0),
                s1_nan[g].eq(or_all([e == EXP_NAN for e in exps])),
                s1_dist["ab"][g].eq(x0 - x["ab"]),
                s1_dist["ce"][g].eq(x0 - x["ce"]),
            ]

        # ---- stage 2: alignment to X0 with FMA_FRAC_BITS fraction bits ----------------------
        s2_valid, s2_stoch, s2_rand = pipe("s2", s1_valid, s1_stoch, s1_rand)
        s2_x0 = [sig(f"s2_x0_{g}", 9) for g in range(GROUPS)]
        s2_nan = [sig(f"s2_nan{g}") for g in range(GROUPS)]
        s2_t = {p: [[sig(f"s2_t{p}{g}_{i}", ALIGN_BITS) for i in range(GROUP)]
                    for g in range(GROUPS)] for p in prods}
        s2_neg = {p: [sig(f"s2_neg{p}{g}", GROUP) for g in range(GROUPS)] for p in prods}
        for g in range(GROUPS):
            m.d.sync += [s2_x0[g].eq(s1_x0[g]), s2_nan[g].eq(s1_nan[g])]
            for p in prods:
                dist = s1_dist[p][g]
                m.d.sync += s2_neg[p][g].eq(s1_neg[p][g])
                for i in range(GROUP):
                    ext = s1_p[p][g][i] << FMA_FRAC_BITS
                    m.d.sync += s2_t[p][g][i].eq(Mux(dist >= ALIGN_BITS, 0, ext >> dist[:5]))

        # ---- stage 3: signed addition, sign and magnitude ---------------------------------
        s3_valid, s3_stoch, s3_rand = pipe("s3", s2_valid, s2_stoch, s2_rand)
        s3_x0 = [sig(f"s3_x0_{g}", 9) for g in range(GROUPS)]
        s3_nan = [sig(f"s3_nan{g}") for g in range(GROUPS)]
        s3_v = [[sig(f"s3_v{g}_{i}", SUM_BITS) for i in range(GROUP)] for g in range(GROUPS)]
        s3_neg = [sig(f"s3_neg{g}", GROUP) for g in range(GROUPS)]
        for g in range(GROUPS):
            m.d.sync += [s3_x0[g].eq(s2_x0[g]), s3_nan[g].eq(s2_nan[g])]
            for i in range(GROUP):
                t1, t2 = s2_t["ab"][g][i], s2_t["ce"][g][i]
                total = Signal(signed(SUM_BITS + 1), name=f"s3_total{g}_{i}")
                m.d.comb += total.eq(Mux(s2_neg["ab"][g][i], -t1, t1)
                                     + Mux(s2_neg["ce"][g][i], -t2, t2))
                m.d.sync += [
                    s3_v[g][i].eq(Mux(total < 0, -total, total)),
                    s3_neg[g][i].eq(total < 0),
                ]

        # ---- stage 4: leading one, shift, exponent, overflow, micro-exponents --------------
        s4_valid, s4_stoch, s4_rand = pipe("s4", s3_valid, s3_stoch, s3_rand)
        s4_v = [[sig(f"s4_v{g}_{i}", SUM_BITS) for i in range(GROUP)] for g in range(GROUPS)]
        s4_neg = [sig(f"s4_neg{g}", GROUP) for g in range(GROUPS)]
        # 15 + sh - mu per pair, biased by 6
        s4_shift = [[sig(f"s4_shift{g}_{j}", 8) for j in range(PAIRS)] for g in range(GROUPS)]
        s4_exp = [sig(f"s4_exp{g}", 8) for g in range(GROUPS)]
        s4_nan = [sig(f"s4_nan{g}") for g in range(GROUPS)]
        s4_mu = [sig(f"s4_mu{g}", PAIRS) for g in range(GROUPS)]
        for g in range(GROUPS):
            ored = or_all(s3_v[g])
            top = bitlen(m, ored, f"s4_top{g}")
            # one-hot of the group's leading one: bit i set and no bit above it
            lead = Signal(SUM_BITS, name=f"s4_lead{g}")
            m.d.comb += lead.eq(Cat(*(ored[i] & ~ored[i + 1:].any() if i + 1 < SUM_BITS
                                      else ored[i] for i in range(SUM_BITS))))
            e_base = Signal(signed(11), name=f"s4_ebase{g}")
            sh = Signal(signed(9), name=f"s4_shraw{g}")
            sh2 = Signal(signed(9), name=f"s4_sh{g}")
            exp = Signal(signed(11), name=f"s4_expw{g}")
            m.d.comb += [
                e_base.eq(s3_x0[g] - BIAS),
                sh.eq(top - (MAG_BITS + FRAC)),
                sh2.eq(Mux(sh < -e_base, -e_base, sh)),
                exp.eq(e_base + sh2),
            ]
            m.d.sync += [
                s4_exp[g].eq(exp[:8]),
                s4_nan[g].eq(s3_nan[g] | (exp > EXP_NAN - 1)),
                s4_neg[g].eq(s3_neg[g]),
            ]
            for j in range(PAIRS):
                v0, v1 = s3_v[g][2 * j], s3_v[g][2 * j + 1]
                mu = Signal(name=f"s4_mu_c{g}_{j}")
                m.d.comb += mu.eq(lead.any() & ~((v0 | v1) & lead).any())
                m.d.sync += [
                    s4_mu[g][j].eq(mu),
                    s4_shift[g][j].eq(sh2 + FRAC + SHIFT_BIAS - mu),  # mu = 1: one bit finer
                ]
                for i in (2 * j, 2 * j + 1):
                    m.d.sync += s4_v[g][i].eq(s3_v[g][i])

        # ---- stage 5: the one rounding, zero/NaN groups, output register -------------------
        shifts = [[s4_shift[g][i // 2] for i in range(GROUP)] for g in range(GROUPS)]
        self._rounding_stage(m, prefix="s5", valid=s4_valid, stoch=s4_stoch, port_rand=s4_rand,
                             values=s4_v, shifts=shifts, exps=s4_exp, nans=s4_nan,
                             negs=s4_neg, mus=s4_mu, bias=SHIFT_BIAS)
        return m
