"""MX8 32-element dot-product unit (:class:`MxDot`).

Bit-exact with :func:`quant.spe.dot`; the result is the exact-format partial
:class:`quant.spe.DotOut` (``y = Y * 2**(X - 274)``, nothing rounded except the floor of the
lower group's alignment). Three register stages:

1. ``s1``: per value the 6x6-bit product scaled by the pair micro-exponents,
   ``ma*mb << (2 - mu_a - mu_b)`` (14 bits) and its sign; per group ``Xg = Ea + Eb`` and the
   NaN flag.
2. ``s2``: per group the signed sum ``A_g`` of its 16 terms (19 bits).
3. ``s3`` = output: ``X`` = the larger ``Xg`` of the groups with ``A_g != 0`` (0 if none);
   ``Y = sum((A_g << 8) >> (X - Xg))`` with arithmetic (floor) shifts; a NaN operand group
   gives ``X = 0x1FF, Y = 0``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from quant.constants import (DOT_GUARD_BITS, DOT_X_NAN, DOT_Y_BITS, EXP_NAN, GROUP,
                             GROUPS_PER_COLUMN, MAG_BITS)

from .export import register_unit
from .mx8_layout import mx_subchunk_layout
from .pipeline import Staged

__all__ = ["MxDot", "dot_out_layout"]

GROUPS = GROUPS_PER_COLUMN
TERM_BITS = 2 * MAG_BITS + 2  # 14: (ma*mb) << 2 at most
ACC_BITS = TERM_BITS + 4 + 1  # 19: signed sum of 16 terms
X_BITS = 9
#: Arithmetic right shifts of the 27-bit ``A_g << 8`` saturate (to 0 or -1) from here on.
MAX_DIST = ACC_BITS + DOT_GUARD_BITS


def dot_out_layout() -> data.StructLayout:
    """The 37-bit result word of :meth:`quant.spe.DotOut.words`: ``y`` (signed ``Y``, bits
    0-27) and ``x`` (bits 28-36)."""
    return data.StructLayout({"y": signed(DOT_Y_BITS), "x": unsigned(X_BITS)})


class MxDot(Staged, wiring.Component):
    """Pipelined 32-element MX8 dot product (one sub-chunk with one sub-chunk).

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_a, i_b : In(mx_subchunk_layout())
        The operands (the updated state sub-chunk and ``q``).
    o_valid : Out(1)
        ``o_p`` holds the result of the operation presented ``latency`` cycles earlier.
    o_p : Out(dot_out_layout())
        The partial ``(Y, X)``.
    """

    #: Register stages (module docstring); :attr:`latency` is their number.
    STAGES = ("s1", "s2", "s3")

    def __init__(self):
        sub = mx_subchunk_layout()
        super().__init__({
            "i_valid": In(1),
            "i_a": In(sub),
            "i_b": In(sub),
            "o_valid": Out(1),
            "o_p": Out(dot_out_layout()),
        })

    @property
    def kind(self) -> str:
        """The golden-model operation this unit computes (:data:`cosim.mx_vectors.KINDS`)."""
        return "dot"

    def elaborate(self, platform):
        m = Module()

        def sig(name, shape=1):
            return Signal(shape, name=name, reset_less=True)

        # ---- stage 1: scaled integer products, exponent sums ------------------------------
        s1_valid, s2_valid = self.stage_valids()   # s3's valid register is o_valid
        s1_term = [[sig(f"s1_term{g}_{i}", TERM_BITS) for i in range(GROUP)]
                   for g in range(GROUPS)]
        s1_neg = [sig(f"s1_neg{g}", GROUP) for g in range(GROUPS)]
        s1_x = [sig(f"s1_x{g}", X_BITS) for g in range(GROUPS)]
        s1_nan = [sig(f"s1_nan{g}") for g in range(GROUPS)]
        m.d.sync += s1_valid.eq(self.i_valid)
        for g in range(GROUPS):
            a, b = self.i_a[g], self.i_b[g]
            m.d.sync += [
                s1_x[g].eq(a.exp + b.exp),
                s1_nan[g].eq((a.exp == EXP_NAN) | (b.exp == EXP_NAN)),
            ]
            for i in range(GROUP):
                j = i // 2
                p = a.elems[i].mag * b.elems[i].mag
                scaled = Mux(a.mu[j] & b.mu[j], p, Mux(a.mu[j] | b.mu[j], p << 1, p << 2))
                m.d.sync += [
                    s1_term[g][i].eq(scaled),
                    s1_neg[g][i].eq(a.elems[i].sign ^ b.elems[i].sign),
                ]

        # ---- stage 2: per-group signed sums -------------------------------------------------
        s2_acc = [sig(f"s2_acc{g}", signed(ACC_BITS)) for g in range(GROUPS)]
        s2_x = [sig(f"s2_x{g}", X_BITS) for g in range(GROUPS)]
        s2_nan = Signal(reset_less=True)
        m.d.sync += [s2_valid.eq(s1_valid), s2_nan.eq(s1_nan[0] | s1_nan[1])]
        for g in range(GROUPS):
            terms = [Mux(s1_neg[g][i], -s1_term[g][i], s1_term[g][i]) for i in range(GROUP)]
            m.d.sync += [s2_acc[g].eq(_tree_sum(terms)), s2_x[g].eq(s1_x[g])]

        # ---- stage 3: alignment of the lower group, final sum, output ---------------------
        nz = [Signal(name=f"s3_nz{g}") for g in range(GROUPS)]
        x = Signal(X_BITS, name="s3_x")
        for g in range(GROUPS):
            m.d.comb += nz[g].eq(s2_acc[g] != 0)
        m.d.comb += x.eq(Mux(nz[0] & nz[1], Mux(s2_x[0] > s2_x[1], s2_x[0], s2_x[1]),
                             Mux(nz[0], s2_x[0], Mux(nz[1], s2_x[1], 0))))
        parts = []
        for g in range(GROUPS):
            dist = Signal(range(MAX_DIST + 1), name=f"s3_dist{g}")
            diff = Signal(signed(X_BITS + 1), name=f"s3_diff{g}")
            m.d.comb += [
                diff.eq(x - s2_x[g]),
                # Groups with A_g = 0 contribute 0 whatever the shift (Xg may exceed X there).
                dist.eq(Mux(diff < 0, 0, Mux(diff > MAX_DIST, MAX_DIST, diff))),
            ]
            wide = Signal(signed(ACC_BITS + DOT_GUARD_BITS), name=f"s3_wide{g}")
            m.d.comb += wide.eq(s2_acc[g] << DOT_GUARD_BITS)
            parts.append(wide >> dist)  # arithmetic: floor
        m.d.sync += [
            self.o_valid.eq(s2_valid),
            self.o_p.y.eq(Mux(s2_nan, 0, parts[0] + parts[1])),
            self.o_p.x.eq(Mux(s2_nan, DOT_X_NAN, x)),
        ]
        return m


def _tree_sum(values):
    """Balanced adder tree."""
    while len(values) > 1:
        nxt = [values[k] + values[k + 1] for k in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


register_unit("mx_dot", lambda: MxDot())
