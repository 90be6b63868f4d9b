"""The rounding primitive (hw/sround.py) against quant.mx8.round_shifted."""

import itertools
import random

import pytest
import torch
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.sround import round_addend, sround
from quant.mx8 import round_shifted


class _Lane(wiring.Component):
    """One rounding lane: the unit under test."""

    def __init__(self, rbits, bias, vbits=15, sbits=8):
        self.rbits, self.bias = rbits, bias
        super().__init__({"v": In(vbits), "shift": In(sbits), "rand": In(rbits),
                          "stoch": In(1), "mag": Out(6)})

    def elaborate(self, platform):
        m = Module()
        add = round_addend(self.rand, self.stoch, self.rbits)
        m.d.comb += self.mag.eq(sround(self.v, self.shift, add, rbits=self.rbits,
                                       bias=self.bias))
        return m


@pytest.mark.parametrize("rbits, bias", [(8, 0), (8, 6), (3, 0), (1, 6)])
def test_sround_matches_round_shifted(rbits, bias):
    dut = _Lane(rbits, bias)
    rng = random.Random(rbits * 10 + bias)
    cases = []
    for _ in range(1500):
        shift = rng.choice([rng.randrange(0, 24), rng.randrange(0, 256)])
        real = shift - bias
        vmax = min((1 << 15) - 1, (64 << max(real, 0)) + 64)  # results up to ~64 (saturation)
        cases.append((rng.randrange(0, vmax + 1), shift, rng.randrange(1 << rbits),
                      rng.randrange(2)))
    cases += [(v, s, r, st) for v, s, r, st in itertools.product(
        [0, 1, 63, 64, 127, 128, 4095], [0, 1, 2, 7, bias, bias + 1], [0, (1 << rbits) - 1],
        [0, 1])]
    got = []

    async def testbench(ctx):
        for v, s, r, st in cases:
            ctx.set(dut.v, v)
            ctx.set(dut.shift, s)
            ctx.set(dut.rand, r)
            ctx.set(dut.stoch, st)
            got.append(ctx.get(dut.mag))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    for (v, s, r, st), g in zip(cases, got):
        t = lambda x: torch.tensor([x], dtype=torch.int64)  # noqa: E731
        mode = "stochastic" if st else "nearest"
        want = round_shifted(t(v), t(s - bias), mode, rbits, t(r) if st else None).item()
        assert g == want, (v, s, r, st)
