"""A two-stage pipelined unsigned multiply-accumulate unit.

It exists to prove the export and co-simulation flow (``tests/test_cosim_harness.py``) on a
real pipeline with state; the SPE units follow the same port conventions.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.pipeline import Staged

__all__ = ["ExampleMac"]


class ExampleMac(Staged, wiring.Component):
    """Pipelined ``acc <- (clear ? 0 : acc) + a * b`` modulo ``2**acc_width``.

    Stage 1 registers the product, stage 2 the accumulator; an input accepted on a clock edge
    with ``i_valid`` high shows up ``latency`` edges later with ``o_valid`` high. Inputs are
    ignored while ``i_valid`` is low.

    Parameters
    ----------
    width : int
        Width of the unsigned operands ``a`` and ``b``.
    acc_width : int
        Width of the accumulator; the sum wraps around.

    Members
    -------
    i_valid : In(1)
        An operand pair is present.
    i_a, i_b : In(width)
        Unsigned operands.
    i_clear : In(1)
        Start a new sum with this product (the old accumulator is dropped).
    o_valid : Out(1)
        ``o_acc`` holds the sum that includes a new product.
    o_acc : Out(acc_width)
        The accumulator.
    """

    #: Register stages; :attr:`latency` (cycles from ``i_valid`` to ``o_valid``) is their
    #: number.
    STAGES = ("s1", "s2")

    def __init__(self, *, width: int = 8, acc_width: int = 24):
        if not isinstance(width, int) or width < 1:
            raise TypeError(f"width must be a positive integer, not {width!r}")
        if not isinstance(acc_width, int) or acc_width < 1:
            raise TypeError(f"acc_width must be a positive integer, not {acc_width!r}")
        self._width = width
        self._acc_width = acc_width
        super().__init__({
            "i_valid": In(1),
            "i_a": In(width),
            "i_b": In(width),
            "i_clear": In(1),
            "o_valid": Out(1),
            "o_acc": Out(acc_width),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def acc_width(self) -> int:
        return self._acc_width

    def elaborate(self, platform):
        m = Module()

        s1_valid, = self.stage_valids()   # s2's valid register drives o_valid
        s1_clear = Signal()
        s1_prod = Signal(2 * self.width)
        m.d.sync += s1_valid.eq(self.i_valid)
        with m.If(self.i_valid):
            m.d.sync += [
                s1_clear.eq(self.i_clear),
                s1_prod.eq(self.i_a * self.i_b),
            ]

        s2_valid = Signal()
        s2_acc = Signal(self.acc_width)
        m.d.sync += s2_valid.eq(s1_valid)
        with m.If(s1_valid):
            m.d.sync += s2_acc.eq(Mux(s1_clear, 0, s2_acc) + s1_prod)

        m.d.comb += [
            self.o_valid.eq(s2_valid),
            self.o_acc.eq(s2_acc),
        ]
        return m


register_unit("example_mac", lambda: ExampleMac(width=8, acc_width=24))
