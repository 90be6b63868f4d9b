"""Parameterized IEEE-style floating-point adder (any exponent/mantissa width)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal

from hw.export import register_unit
from hw.fpmul import SR_BITS, FloatOpBase, decode_operand, round_pack

__all__ = ["FPAdd"]


class FPAdd(FloatOpBase):
    """Floating-point adder ``o = a + b`` for any small IEEE-style format.

    Bit-exact with :func:`quant.fparith.ref_add`. Classic single-path design: swap so that
    ``|a| >= |b|``, align the smaller significand with a sticky bit, add or subtract, then the
    shared normalize/round/pack stage of :func:`hw.fpmul.round_pack`. The aligned significands
    carry ``max(3, sr_bits + 2)`` bits below the LSB, which keeps both round-to-nearest-even
    and the stochastic-rounding floor exact (the sticky bit sits below every bit that is used).

    Parameters
    ----------
    fmt : FloatFormat or str
        Operand/result format (``"fp16"``, ``"e4m3"``, ``"e5m2"`` or a custom format).
    rounding : {"rne", "sr"}
        Round-to-nearest-even, or stochastic rounding with ``sr_bits`` bits from ``rnd``.
    sr_bits : int, optional
        Random bits per result (``rounding="sr"`` only).
    latency : {0, 1}
        0: combinational; 1: the result is registered in the ``sync`` domain.

    Members
    -------
    a : In(fmt.width)
        First operand encoding.
    b : In(fmt.width)
        Second operand encoding.
    rnd : In(sr_bits)
        Random bits (present with ``rounding="sr"``).
    o : Out(fmt.width)
        Sum encoding, valid ``latency`` cycles after the operands.
    """

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        man = fmt.man_bits
        mag_w = fmt.width - 1

        # Swap so that x has the larger magnitude (encodings order like magnitudes).
        swap = Signal()
        m.d.comb += swap.eq(self.b[:mag_w] > self.a[:mag_w])
        x_raw = Signal(fmt.width)
        y_raw = Signal(fmt.width)
        m.d.comb += [
            x_raw.eq(Mux(swap, self.b, self.a)),
            y_raw.eq(Mux(swap, self.a, self.b)),
        ]
        x = decode_operand(m, fmt, x_raw, "x")
        y = decode_operand(m, fmt, y_raw, "y")

        # Align y to x: guard bits below the LSB, the last one sticky.
        extra = max(3, (self._sr_bits or 0) + 2)
        sig_w = man + 1 + extra
        diff = Signal(fmt.exp_bits)
        m.d.comb += diff.eq(x.exp - y.exp)
        dist = Signal(range(sig_w + 1))
        m.d.comb += dist.eq(Mux(diff > sig_w, sig_w, diff))
        y_ext = Signal(2 * sig_w)
        m.d.comb += y_ext.eq(Cat(Const(0, sig_w + extra), y.sig) >> dist)
        y_al = Signal(sig_w)
        m.d.comb += y_al.eq(y_ext[sig_w:] | y_ext[:sig_w].any())
        x_al = Cat(Const(0, extra), x.sig)

        # Add or subtract magnitudes; one carry bit on top.
        total = Signal(sig_w + 1)
        eff_sub = x.sign ^ y.sign
        m.d.comb += total.eq(Mux(eff_sub, x_al - y_al, x_al + y_al))
        sign = Signal()
        m.d.comb += sign.eq(Mux(total == 0, x.sign & y.sign, x.sign))
        exp_b = Signal(range(2, fmt.exp_max_field + 2))
        m.d.comb += exp_b.eq(x.exp + 1)
        rand = self.rnd if self._rounding == "sr" else None
        finite = round_pack(m, fmt, sign, total, exp_b, rounding=self._rounding, rand=rand,
                            right_shift=False, prefix="s")

        result = Signal(fmt.width)
        nan = x.is_nan | y.is_nan | (x.is_inf & y.is_inf & eff_sub)
        with m.If(nan):
            m.d.comb += result.eq(fmt.nan_bits)
        if fmt.has_inf:
            with m.Elif(x.is_inf):       # |x| >= |y|: an inf operand is always x
                m.d.comb += result.eq(Cat(Const(fmt.inf_bits, mag_w), x.sign))
        with m.Else():
            m.d.comb += result.eq(finite)

        if self.stages:                 # the output register of the stage list
            m.d.sync += self.o.eq(result)
        else:
            m.d.comb += self.o.eq(result)
        return m


for _name in ("fp16", "e4m3", "e5m2"):
    register_unit(f"fpadd_{_name}", lambda f=_name: FPAdd(f))
    register_unit(f"fpadd_{_name}_sr", lambda f=_name: FPAdd(f, rounding="sr", sr_bits=SR_BITS))
