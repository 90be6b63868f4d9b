"""The fp16 baseline PIM units (hw/pim_timemux_fp16.py, hw/pim_pipelined_fp16.py) with their
bank models (hw/pim_fp16_sim.py) in Amaranth's simulator, and their golden model
(quant/fp16_pim.py).

The same controller, monitor and scoreboard as the co-simulation (cosim/pim_fp16_bench.py)
run here through an Amaranth async testbench.
"""

pytestmark = __import__("pytest").mark.filterwarnings(
    "ignore::amaranth.hdl._ir.UnusedElaboratable")

import random

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from cosim.pim_fp16_bench import PimFp16Bench, Sample, random_fp16
from hw.pim_fp16_if import PimCmd
from hw.pim_fp16_sim import PimFp16Sim
from hw.pim_pipelined_fp16 import PipelinedFp16
from hw.pim_timemux_fp16 import TimeMuxFp16
from quant.fp16_pim import LANES, dot_tree_fp16, subchunk_update_fp16


class AmaranthIo:
    """The bench's simulator interface over an Amaranth async testbench context."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    async def cycle(self, cmd, addr, data, act, rows, read_rows) -> Sample:
        ctx, d = self.ctx, self.dut
        nb = d.unit.banks
        ctx.set(d.i_cmd, PimCmd(cmd))
        ctx.set(d.i_addr, addr)
        ctx.set(d.i_data, data)
        ctx.set(d.i_act, act)
        if rows is not None:
            for b, name in zip(range(nb), "ab"):
                ctx.set(getattr(d, f"i_row_{name}").as_value(), rows[b])
        g = ctx.get
        s = Sample(g(d.o_ready), g(d.o_busy), g(d.o_y_valid), g(d.o_y), g(d.o_y_bank),
                   g(d.o_y_col), g(d.o_trace_rd), g(d.o_trace_wr), g(d.o_trace_wr_col),
                   g(d.o_collision))
        if read_rows:
            s.rows = tuple(g(getattr(d, f"o_row_{n}").as_value()) for n in "ab"[:nb])
        await ctx.tick()
        return s


def run_bench(unit, *, vectors=64, seed=1, gap_prob=0.2, mutant=None):
    dut = PimFp16Sim(unit)
    out = {}

    async def testbench(ctx):
        bench = PimFp16Bench(AmaranthIo(ctx, dut), unit=unit, rng=random.Random(seed),
                             vectors=vectors, gap_prob=gap_prob, mutant=mutant)
        out["result"] = await bench.run()
        out["bench"] = bench

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out["result"], out["bench"]


# --- golden model ---------------------------------------------------------------------------

def _f16(bits):
    return torch.from_numpy(np.asarray(bits, dtype=np.int64).astype(np.uint16).view(np.int16)
                            ).view(torch.float16)


def test_golden_update_is_torch_float16():
    gen = np.random.default_rng(3)
    s, d, k, q = (random_fp16(gen, (200, LANES)) for _ in range(4))
    v = random_fp16(gen, (200,))
    new, y = subchunk_update_fp16(s, d, k, v, q)
    want = _f16(d) * _f16(s) + _f16(k) * _f16(v)[:, None]        # fp16 op by op
    want_bits = want.view(torch.int16).numpy().astype(np.int64) & 0xFFFF
    nan = torch.isnan(want).numpy()
    assert np.array_equal(new[~nan], want_bits[~nan])
    assert np.all(new[nan] == 0x7E00)
    assert new.shape == (200, LANES) and y.shape == (200,)


def test_golden_dot_tree_order():
    # 1 + 2**-11 + ... : the tree rounds (1 + 2**-11) to 1 before the small terms meet
    one, tiny = 0x3C00, 0x1000                   # 1.0, 2**-11
    q = np.full(LANES, 0x3C00)
    s = np.array([one, tiny] + [tiny] * 14)
    y = int(dot_tree_fp16(s, q))
    p = _f16(s) * _f16(q)
    t = p
    while t.numel() > 1:
        t = t[0::2] + t[1::2]
    assert y == int(t.view(torch.int16).item()) & 0xFFFF
    seq = p[0]
    for x in p[1:]:
        seq = seq + x
    assert y != int(seq.view(torch.int16).item()) & 0xFFFF   # the order matters here
    with pytest.raises(ValueError, match="power of two"):
        dot_tree_fp16(np.zeros(3), np.zeros(3))


# --- units ------------------------------------------------------------------------------------

def test_unit_properties():
    assert TimeMuxFp16(banks=2).cycles_per_subchunk == 8
    assert TimeMuxFp16(banks=1).cycles_per_subchunk == 8
    assert TimeMuxFp16().latency == 8
    p = PipelinedFp16()
    assert p.cycles_per_subchunk == 2 and p.read_to_write % 2 == 1 and p.latency == 8
    assert p.banks == 1 and TimeMuxFp16().banks == 2
    with pytest.raises(ValueError, match="banks must be 1 or 2"):
        TimeMuxFp16(banks=3)
    with pytest.raises(TypeError, match="banks must be an int"):
        TimeMuxFp16(banks="2")


@pytest.mark.parametrize("unit", [lambda: TimeMuxFp16(banks=2), lambda: TimeMuxFp16(banks=1),
                                  lambda: PipelinedFp16()],
                         ids=["timemux_fp16_naive", "timemux_fp16_perbank", "pipelined_fp16_perbank"])
def test_bench_bit_exact_and_timing(unit):
    u = unit()
    res, bench = run_bench(u, vectors=64, seed=7)
    assert res["mismatches"] == 0, bench.mismatches[:3]
    assert res["vectors"] == res["expected"] == bench.rounds * 32 * u.banks
    assert bench.rounds == max(2, 64 // (32 * u.banks))
    assert res["collisions"] == 0
    t = res["timing"]
    assert t["cycles_per_subchunk"] == u.cycles_per_subchunk
    assert t["pipeline_depth"] == u.latency
    assert t["comps_per_row_pair"] == 32 * u.banks
    assert t["utilization"] == round(1 / u.cycles_per_subchunk, 4)


def test_pipelined_without_alternation_collides():
    res, bench = run_bench(PipelinedFp16(_no_alternate=True), vectors=32, seed=2)
    assert res["collisions"] > 0 and res["mismatches"] > 0


@pytest.mark.parametrize("mutant", ["sequential_dot", "no_outer"])
def test_mutants_fail(mutant):
    res, _ = run_bench(TimeMuxFp16(banks=1), vectors=32, seed=5, mutant=mutant)
    assert res["mismatches"] > 0


def test_fp16_command_layouts_match_the_encoders():
    """The units read ``i_addr`` through hw.pim_fp16_if.addr_layout; the encoders build it with
    the same layout, at the documented bit positions (module docstring)."""
    from amaranth.lib import data

    from hw.pim_fp16_if import PimReg, addr_layout, comp_addr, reg_addr

    for reg in PimReg:
        for bank in (0, 1):
            word = reg_addr(reg, bank)
            assert word == int(reg) << 1 | bank
            view = data.Const(addr_layout, word)
            assert (view.reg.reg, view.reg.bank) == (int(reg), bank)
    for col in (0, 17, 31):
        assert comp_addr(col, 1) == col << 1 | 1
        assert data.Const(addr_layout, comp_addr(col, 1)).comp.col == col
    with pytest.raises(ValueError, match="col must be in 0..31, not 32"):
        comp_addr(32)
    with pytest.raises(ValueError, match="bank must be in 0..1, not 2"):
        reg_addr(PimReg.D, 2)
    with pytest.raises(ValueError, match="reg must be in 0..4, not 5"):
        reg_addr(5)
