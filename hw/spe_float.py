"""State-update datapath slice of an SPE built from the float units (baseline formats).

``s_out[i] = d[i] * s_in[i] + k[i] * v`` for 32 lanes, with one :class:`~hw.fpmul.FPMul`
for the decay, one for the outer-product term (``v`` broadcast to every lane) and one
:class:`~hw.fpadd.FPAdd` per lane: stages 2 and 3 of the SPU pipeline (DESIGN.md section 3),
for fp16 / fp8 state instead of MX8. Both stages are registered, so :attr:`latency` is 2.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.fpadd import FPAdd
from hw.fpmul import SR_BITS, FPMul, check_params
from quant.fparith import FloatFormat

__all__ = ["SpeFloat"]


class SpeFloat(wiring.Component):
    """``lanes`` x (decay multiply, outer-product multiply, add) in one float format.

    Parameters
    ----------
    fmt : FloatFormat or str
        State/operand format (``"fp16"``, ``"e4m3"``, ``"e5m2"`` ...).
    lanes : int
        Number of lanes (32: one sub-chunk of 32 values; in fp16 that is two DRAM columns).
    rounding : {"rne", "sr"}
        Rounding of every multiplier and adder.
    sr_bits : int, optional
        Random bits per unit and lane (``rounding="sr"``).

    Members
    -------
    s_in : In(ArrayLayout(width, lanes))
        State sub-chunk.
    d : In(ArrayLayout(width, lanes))
        Decay (a per-lane gate; a scalar decay is the same value in every lane).
    k : In(ArrayLayout(width, lanes))
        Key sub-chunk.
    v : In(width)
        The broadcast element of ``v``.
    rnd : In(ArrayLayout(3 * sr_bits, lanes))
        Random bits for the two multipliers and the adder of each lane (``rounding="sr"``).
    s_out : Out(ArrayLayout(width, lanes))
        Updated state, :attr:`latency` cycles after the inputs.
    """

    def __init__(self, fmt, *, lanes=32, rounding="rne", sr_bits=None):
        self._fmt, self._sr_bits = check_params(fmt, rounding, sr_bits, 1)
        if not isinstance(lanes, int) or isinstance(lanes, bool):
            raise TypeError(f"lanes must be an int, not {lanes!r}")
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self._lanes = lanes
        self._rounding = rounding
        vec = data.ArrayLayout(unsigned(self._fmt.width), lanes)
        ports = {"s_in": In(vec), "d": In(vec), "k": In(vec), "v": In(self._fmt.width),
                 "s_out": Out(vec)}
        if rounding == "sr":
            ports["rnd"] = In(data.ArrayLayout(unsigned(3 * sr_bits), lanes))
        super().__init__(ports)

    @property
    def fmt(self) -> FloatFormat:
        """State format."""
        return self._fmt

    @property
    def lanes(self) -> int:
        """Number of lanes."""
        return self._lanes

    @property
    def latency(self) -> int:
        """Cycles from inputs to ``s_out`` (multiply stage + add stage)."""
        return 2

    def elaborate(self, platform):
        m = Module()
        kw = {"rounding": self._rounding, "sr_bits": self._sr_bits, "latency": 1}
        r = self._sr_bits
        for i in range(self._lanes):
            decay = m.submodules[f"decay{i}"] = FPMul(self._fmt, **kw)
            outer = m.submodules[f"outer{i}"] = FPMul(self._fmt, **kw)
            add = m.submodules[f"add{i}"] = FPAdd(self._fmt, **kw)
            m.d.comb += [
                decay.a.eq(self.d[i]), decay.b.eq(self.s_in[i]),
                outer.a.eq(self.k[i]), outer.b.eq(self.v),
                add.a.eq(decay.o), add.b.eq(outer.o),
                self.s_out[i].eq(add.o),
            ]
            if self._rounding == "sr":
                m.d.comb += [
                    decay.rnd.eq(self.rnd[i][:r]),
                    outer.rnd.eq(self.rnd[i][r:2 * r]),
                    # the adder sees its random bits one cycle later, with its operands
                    add.rnd.eq(self.rnd[i][2 * r:]),
                ]
        return m


for _name in ("fp16", "e4m3", "e5m2"):
    register_unit(f"spe_{_name}", lambda f=_name: SpeFloat(f))
    register_unit(f"spe_{_name}_sr", lambda f=_name: SpeFloat(f, rounding="sr", sr_bits=SR_BITS))
