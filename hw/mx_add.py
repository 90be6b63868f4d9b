"""MX8 adder over a sub-chunk (:class:`MxAdd`).

Bit-exact with :func:`quant.spe.add`. Four register stages:

1. ``s1``: per group ``Er = max(Ea, Eb)``; every magnitude, extended by 8 zero fraction bits
   (:data:`quant.spe.ADD_FRAC_BITS`), is shifted right (truncating) by
   ``Er - E + mu`` of its own group and pair (distances above 14 give 0).
2. ``s2``: signed addition of the aligned values, then sign and absolute value
   (15 bits; the sum's magnitude is below 2**15).
3. ``s3``: the renormalization shift (``"lod"``: leading-one detection on the OR of the
   group's sums, ``sh = bitlen - 14`` in -14..1; ``"fixed"``: ``sh = 1`` when a sum needs a
   7th integer bit, else 0), raised so that ``Er + sh >= 0``; overflow (``Er + sh > 254``)
   makes a NaN group.
4. ``s4`` = output: rounding (:func:`hw.sround.sround`, shift ``8 + sh`` in -6..9), random
   bits from the internal LFSR or the pipelined ``i_rand``; result ``mu = 0``; zero and NaN
   groups.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring

from quant.constants import (ADD_FRAC_BITS, DEFAULT_SITE_SEEDS, EXP_NAN, GROUP,
                             GROUPS_PER_COLUMN, LANES, MAG_BITS, PAIRS)

from .export import register_unit
from .mx8_layout import mx_subchunk_layout
from .pipeline import Staged
from .sround import MxRoundingUnit, bitlen, or_all, rand_layout

__all__ = ["MxAdd"]

GROUPS = GROUPS_PER_COLUMN
ALIGN_BITS = MAG_BITS + ADD_FRAC_BITS  # 14: an aligned addend
SUM_BITS = ALIGN_BITS + 1  # 15: |a + b| < 2**15
#: Bias of the rounding shift: ``8 + sh`` goes down to -6 (``sh = -14``).
SHIFT_BIAS = ALIGN_BITS - ADD_FRAC_BITS
_MUTANTS = (None, "align_off_by_one")


class MxAdd(Staged, MxRoundingUnit, wiring.Component):
    """Pipelined MX8 adder of two 32-value sub-chunks (two groups each).

    Parameters
    ----------
    rbits : int
        Random bits of stochastic rounding (1..8).
    renorm : {"lod", "fixed"}
        Renormalization policy (:class:`quant.spe.SPEConfig`).
    seed : int or None
        Reset value of the internal PRBS31 generator; ``None``: the random bits come from the
        ``i_rand`` port together with the operands.

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_stoch : In(1)
        Round this operation stochastically (else to nearest).
    i_a, i_b : In(mx_subchunk_layout())
        The addends.
    i_rand : In(ArrayLayout(rbits, 32))
        Random bits of the operation (only when ``seed is None``).
    o_valid : Out(1)
        ``o_y`` holds the result of the operation presented ``latency`` cycles earlier.
    o_y : Out(mx_subchunk_layout())
        The sum.
    """

    #: Register stages (module docstring); :attr:`latency` is their number.
    STAGES = ("s1", "s2", "s3", "s4")

    def __init__(self, *, rbits: int = 8, renorm: str = "lod",
                 seed: int | None = DEFAULT_SITE_SEEDS["add"], _mutant: str | None = None):
        if _mutant not in _MUTANTS:  # test hook: a deliberately broken adder
            raise ValueError(f"_mutant must be one of {_MUTANTS}, not {_mutant!r}")
        self._mutant = _mutant
        self._init_rounding_unit(lanes=LANES, rbits=rbits, renorm=renorm, seed=seed,
                                 b_shape=mx_subchunk_layout())

    @property
    def kind(self) -> str:
        """The golden-model operation this unit computes (:data:`cosim.mx_vectors.KINDS`)."""
        return "add"

    def elaborate(self, platform):
        m = Module()
        rbits = self._rbits
        lanes = rand_layout(LANES, rbits)

        def sig(name, shape=1):
            return Signal(shape, name=name, reset_less=True)

        # ---- stage 1: exponent compare, alignment shifts ----------------------------------
        # s4's valid register is o_valid; unnamed registers, as before (the same Verilog)
        s1_valid, s2_valid, s3_valid = self.stage_valids(named=False)
        s1_stoch = Signal()
        s1_rand = Signal(lanes, reset_less=True)
        s1_emax = [sig(f"s1_emax{g}", 8) for g in range(GROUPS)]
        s1_nan = [sig(f"s1_nan{g}") for g in range(GROUPS)]
        s1_ta = [[sig(f"s1_ta{g}_{i}", ALIGN_BITS) for i in range(GROUP)] for g in range(GROUPS)]
        s1_tb = [[sig(f"s1_tb{g}_{i}", ALIGN_BITS) for i in range(GROUP)] for g in range(GROUPS)]
        s1_sa = [sig(f"s1_sa{g}", GROUP) for g in range(GROUPS)]
        s1_sb = [sig(f"s1_sb{g}", GROUP) for g in range(GROUPS)]
        m.d.sync += [s1_valid.eq(self.i_valid), s1_stoch.eq(self.i_stoch)]
        if self._seed is None:
            m.d.sync += s1_rand.eq(self.i_rand)
        for g in range(GROUPS):
            a, b = self.i_a[g], self.i_b[g]
            emax = Signal(8, name=f"s1_emax_c{g}")
            m.d.comb += emax.eq(Mux(a.exp > b.exp, a.exp, b.exp))
            m.d.sync += [
                s1_emax[g].eq(emax),
                s1_nan[g].eq((a.exp == EXP_NAN) | (b.exp == EXP_NAN)),
            ]
            for x, t_out, s_out, tag in ((a, s1_ta, s1_sa, "a"), (b, s1_tb, s1_sb, "b")):
                diff = Signal(8, name=f"s1_d{tag}{g}")
                m.d.comb += diff.eq(emax - x.exp)
                for i in range(GROUP):
                    dist = Signal(9, name=f"s1_dist{tag}{g}_{i}")
                    extra = (diff != 0) if self._mutant == "align_off_by_one" else 0
                    m.d.comb += dist.eq(diff + x.mu[i // 2] + extra)
                    ext = x.elems[i].mag << ADD_FRAC_BITS
                    m.d.sync += [
                        t_out[g][i].eq(Mux(dist >= ALIGN_BITS, 0, ext >> dist[:4])),
                        s_out[g][i].eq(x.elems[i].sign),
                    ]

        # ---- stage 2: signed addition, sign and magnitude ---------------------------------
        s2_stoch = Signal()
        s2_rand = Signal(lanes, reset_less=True)
        s2_emax = [sig(f"s2_emax{g}", 8) for g in range(GROUPS)]
        s2_nan = [sig(f"s2_nan{g}") for g in range(GROUPS)]
        s2_v = [[sig(f"s2_v{g}_{i}", SUM_BITS) for i in range(GROUP)] for g in range(GROUPS)]
        s2_neg = [sig(f"s2_neg{g}", GROUP) for g in range(GROUPS)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_stoch.eq(s1_stoch), s2_rand.eq(s1_rand)]
        for g in range(GROUPS):
            m.d.sync += [s2_emax[g].eq(s1_emax[g]), s2_nan[g].eq(s1_nan[g])]
            for i in range(GROUP):
                ta, tb = s1_ta[g][i], s1_tb[g][i]
                total = Signal(signed(SUM_BITS + 1), name=f"s2_total{g}_{i}")
                m.d.comb += total.eq(Mux(s1_sa[g][i], -ta, ta) + Mux(s1_sb[g][i], -tb, tb))
                m.d.sync += [
                    s2_v[g][i].eq(Mux(total < 0, -total, total)),
                    s2_neg[g][i].eq(total < 0),
                ]

        # ---- stage 3: renormalization shift, result exponent, overflow ---------------------
        s3_stoch = Signal()
        s3_rand = Signal(lanes, reset_less=True)
        s3_v = [[sig(f"s3_v{g}_{i}", SUM_BITS) for i in range(GROUP)] for g in range(GROUPS)]
        s3_neg = [sig(f"s3_neg{g}", GROUP) for g in range(GROUPS)]
        s3_shift = [sig(f"s3_shift{g}", 4) for g in range(GROUPS)]  # 8 + sh, biased by 6
        s3_exp = [sig(f"s3_exp{g}", 8) for g in range(GROUPS)]
        s3_nan = [sig(f"s3_nan{g}") for g in range(GROUPS)]
        m.d.sync += [s3_valid.eq(s2_valid), s3_stoch.eq(s2_stoch), s3_rand.eq(s2_rand)]
        for g in range(GROUPS):
            ored = or_all(s2_v[g])
            if self._renorm == "fixed":
                sh = ored[ALIGN_BITS]  # a sum needs a 7th integer bit
            else:
                sh = bitlen(m, ored, f"s3_blen{g}") - ALIGN_BITS
            emax = s2_emax[g]
            sh2 = Signal(signed(6), name=f"s3_sh{g}")
            exp = Signal(signed(10), name=f"s3_expw{g}")
            m.d.comb += [
                sh2.eq(Mux(sh < -emax, -emax, sh)),
                exp.eq(emax + sh2),
            ]
            m.d.sync += [
                s3_shift[g].eq(sh2 + ADD_FRAC_BITS + SHIFT_BIAS),
                s3_exp[g].eq(exp[:8]),
                s3_nan[g].eq(s2_nan[g] | (exp > EXP_NAN - 1)),
                s3_neg[g].eq(s2_neg[g]),
            ]
            for i in range(GROUP):
                m.d.sync += s3_v[g][i].eq(s2_v[g][i])

        # ---- stage 4: rounding, zero/NaN groups, output register --------------------------
        self._rounding_stage(m, prefix="s4", valid=s3_valid, stoch=s3_stoch, port_rand=s3_rand,
                             values=s3_v, shifts=s3_shift, exps=s3_exp, nans=s3_nan,
                             negs=s3_neg, bias=SHIFT_BIAS)
        return m


register_unit("mx_add", lambda: MxAdd(seed=DEFAULT_SITE_SEEDS["add"]))
