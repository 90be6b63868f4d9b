"""MX8 multiplier over a sub-chunk (:class:`MxMul`), element-wise or times a broadcast scalar.

Bit-exact with :func:`quant.spe.mul` / :func:`quant.spe.mul_scalar`. Three register stages:

1. ``s1``: per group ``Ea + Eb`` and the NaN flag; per pair ``mu_a + mu_b`` (result
   ``mu = min(sum, 1)``; a sum of 2 halves the pair's products); per value the 6x6-bit
   product and ``sa ^ sb``. Products are kept in half units, ``p = ma*mb << (1 - [sum==2])``
   (13 bits, exact).
2. ``s2``: the renormalization shift ``sh`` (``"lod"``: leading-one detection on the OR of the
   group's products, ``sh = max(bitlen - 7, 0)``; ``"fixed"``: ``sh = 6``), raised so that the
   result exponent ``Ea + Eb - 132 + sh`` is not negative (gradual underflow); the NaN flag
   gains the overflow (result exponent above 254).
3. ``s3`` = output: the rounding (:func:`hw.sround.sround`, shift ``1 + sh``) with random bits
   from the internal LFSR or the pipelined ``i_rand``; zero-group and NaN-group clearing.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from quant.constants import (BIAS, DEFAULT_SITE_SEEDS, EXP_NAN, GROUP, GROUPS_PER_COLUMN, LANES,
                             MAG_BITS, PAIRS)

from .export import register_unit
from .mx8_layout import mx_scalar_group, mx_scalar_layout, mx_subchunk_layout
from .pipeline import Staged
from .sround import MxRoundingUnit, bitlen, or_all, rand_layout

__all__ = ["MxMul"]

GROUPS = GROUPS_PER_COLUMN
PROD_BITS = 2 * MAG_BITS + 1  # half units: 13 bits


class MxMul(Staged, MxRoundingUnit, wiring.Component):
    """Pipelined MX8 multiplier of one 32-value sub-chunk (two groups).

    Parameters
    ----------
    scalar : bool
        ``False``: element-wise product of two sub-chunks (``quant.spe.mul``).
        ``True``: the sub-chunk times a broadcast MX8 scalar on ``i_b``
        (``quant.spe.mul_scalar``; the scalar enters as a group of 16 copies with its own
        exponent and micro-exponent).
    rbits : int
        Random bits of stochastic rounding (1..8).
    renorm : {"lod", "fixed"}
        Renormalization policy (:class:`quant.spe.SPEConfig`).
    seed : int or None
        Reset value of the internal PRBS31 generator; ``None``: no generator, the random bits
        come from the ``i_rand`` port together with the operands.

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_stoch : In(1)
        Round this operation stochastically (else to nearest). Only valid stochastic
        operations consume random bits.
    i_a : In(mx_subchunk_layout())
        The sub-chunk operand.
    i_b : In(mx_subchunk_layout()) or In(mx_scalar_layout())
        The second operand (a scalar when ``scalar``).
    i_rand : In(ArrayLayout(rbits, 32))
        Random bits of the operation, lane ``i`` for value ``i`` (only when ``seed is None``).
    o_valid : Out(1)
        ``o_y`` holds the result of the operation presented ``latency`` cycles earlier.
    o_y : Out(mx_subchunk_layout())
        The product.
    """

    #: Register stages (module docstring); :attr:`latency` is their number.
    STAGES = ("s1", "s2", "s3")

    def __init__(self, *, scalar: bool = False, rbits: int = 8, renorm: str = "lod",
                 seed: int | None = DEFAULT_SITE_SEEDS["mul_decay"]):
        if not isinstance(scalar, bool):
            raise TypeError(f"scalar must be a bool, not {scalar!r}")
        self._scalar = scalar
        self._init_rounding_unit(lanes=LANES, rbits=rbits, renorm=renorm, seed=seed,
                                 b_shape=mx_scalar_layout() if scalar else mx_subchunk_layout())

    @property
    def scalar(self) -> bool:
        return self._scalar

    @property
    def kind(self) -> str:
        """The golden-model operation this unit computes (:data:`cosim.mx_vectors.KINDS`)."""
        return "mul_scalar" if self._scalar else "mul"

    def _b_group(self, g: int):
        """Operand ``b`` as group ``g`` (the scalar expanded to a group when ``scalar``)."""
        if not self._scalar:
            return self.i_b[g]
        return mx_scalar_group(self.i_b)

    def elaborate(self, platform):
        m = Module()
        rbits = self._rbits
        lanes = rand_layout(LANES, rbits)

        # ---- stage 1: exponent sum, micro-exponent sum, integer products -----------------
        s1_valid, s2_valid = self.stage_valids()   # s3's valid register is o_valid
        s1_stoch = Signal()
        s1_rand = Signal(lanes, reset_less=True)
        s1_esum = [Signal(9, name=f"s1_esum{g}", reset_less=True) for g in range(GROUPS)]
        s1_nan = [Signal(name=f"s1_nan{g}", reset_less=True) for g in range(GROUPS)]
        s1_mu = [Signal(PAIRS, name=f"s1_mu{g}", reset_less=True) for g in range(GROUPS)]
        s1_prod = [[Signal(PROD_BITS, name=f"s1_prod{g}_{i}", reset_less=True)
                    for i in range(GROUP)] for g in range(GROUPS)]
        s1_neg = [Signal(GROUP, name=f"s1_neg{g}", reset_less=True) for g in range(GROUPS)]
        m.d.sync += [s1_valid.eq(self.i_valid), s1_stoch.eq(self.i_stoch)]
        if self._seed is None:
            m.d.sync += s1_rand.eq(self.i_rand)
        for g in range(GROUPS):
            a, b = self.i_a[g], self._b_group(g)
            m.d.sync += [
                s1_esum[g].eq(a.exp + b.exp),
                s1_nan[g].eq((a.exp == EXP_NAN) | (b.exp == EXP_NAN)),
            ]
            for j in range(PAIRS):
                both = a.mu[j] & b.mu[j]
                m.d.sync += s1_mu[g][j].eq(a.mu[j] | b.mu[j])
                for i in (2 * j, 2 * j + 1):
                    ea, eb = a.elems[i], b.elems[i]
                    p = ea.mag * eb.mag
                    m.d.sync += [
                        s1_prod[g][i].eq(Mux(both, p, p << 1)),
                        s1_neg[g][i].eq(ea.sign ^ eb.sign),
                    ]

        # ---- stage 2: renormalization shift, result exponent, overflow ---------------------
        s2_stoch = Signal()
        s2_rand = Signal(lanes, reset_less=True)
        s2_prod = [[Signal(PROD_BITS, name=f"s2_prod{g}_{i}", reset_less=True)
                    for i in range(GROUP)] for g in range(GROUPS)]
        s2_neg = [Signal(GROUP, name=f"s2_neg{g}", reset_less=True) for g in range(GROUPS)]
        s2_mu = [Signal(PAIRS, name=f"s2_mu{g}", reset_less=True) for g in range(GROUPS)]
        s2_shift = [Signal(8, name=f"s2_shift{g}", reset_less=True) for g in range(GROUPS)]
        s2_exp = [Signal(8, name=f"s2_exp{g}", reset_less=True) for g in range(GROUPS)]
        s2_nan = [Signal(name=f"s2_nan{g}", reset_less=True) for g in range(GROUPS)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_stoch.eq(s1_stoch), s2_rand.eq(s1_rand)]
        e_off = BIAS + MAG_BITS - 1  # 132: Ea + Eb - e_off is the exponent of a 6-bit result
        for g in range(GROUPS):
            if self._renorm == "fixed":
                sh = Const(MAG_BITS, 4)
            else:
                ored = or_all(s1_prod[g])
                blen = bitlen(m, ored, f"s2_blen{g}")
                sh = Mux(blen > MAG_BITS + 1, blen - (MAG_BITS + 1), 0)
            need = Signal(signed(11), name=f"s2_need{g}")  # shift that makes the exponent 0
            sh2 = Signal(range(e_off + 1), name=f"s2_sh{g}")
            exp = Signal(signed(11), name=f"s2_expw{g}")
            m.d.comb += [
                need.eq(e_off - s1_esum[g]),
                sh2.eq(Mux(need > sh, need, sh)),
                exp.eq(s1_esum[g] - e_off + sh2),
            ]
            m.d.sync += [
                s2_shift[g].eq(sh2 + 1),
                s2_exp[g].eq(exp[:8]),
                s2_nan[g].eq(s1_nan[g] | (exp > EXP_NAN - 1)),
                s2_mu[g].eq(s1_mu[g]),
                s2_neg[g].eq(s1_neg[g]),
            ]
            for i in range(GROUP):
                m.d.sync += s2_prod[g][i].eq(s1_prod[g][i])

        # ---- stage 3: rounding, zero/NaN groups, output register --------------------------
        self._rounding_stage(m, prefix="s3", valid=s2_valid, stoch=s2_stoch, port_rand=s2_rand,
                             values=s2_prod, shifts=s2_shift, exps=s2_exp, nans=s2_nan,
                             negs=s2_neg, mus=s2_mu)
        return m


register_unit("mx_mul", lambda: MxMul(scalar=False, seed=DEFAULT_SITE_SEEDS["mul_decay"]))
register_unit("mx_mul_scalar",
              lambda: MxMul(scalar=True, seed=DEFAULT_SITE_SEEDS["mul_outer"]))
