"""The SPU (hw/spu.py) with two bank models (hw/spu_sim.py) in Amaranth's simulator.

The same controller, monitor and scoreboard as the co-simulation (cosim/spu_bench.py) run here
through an Amaranth testbench; every expectation comes from quant.spe (cosim/spu_model.py).
"""

pytestmark = __import__("pytest").mark.filterwarnings(
    "ignore::amaranth.hdl._ir.UnusedElaboratable")

import random

import pytest
from amaranth.sim import Simulator

from cosim.spu_bench import Sample, SpuBench
from cosim.spu_model import make_workload
from hw.mx_add import MxAdd
from hw.mx_dot import MxDot
from hw.mx_fma import MxFma
from hw.mx_mul import MxMul
from hw.spu import Cmd, Mode, Reg, Spu, comp_addr, mode_word, reg_addr, result_addr
from hw.spu_sim import SpuSim


class AmaranthSpuIo:
    """The bench's simulator interface over an Amaranth async testbench context."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    async def cycle(self, cmd, addr, data, act, rows, read_rows) -> Sample:
        ctx, d = self.ctx, self.dut
        ctx.set(d.i_cmd, Cmd(cmd))
        ctx.set(d.i_addr, addr)
        ctx.set(d.i_data, data)
        ctx.set(d.i_act, act)
        if rows is not None:
            ctx.set(d.i_row_a.as_value(), rows[0])
            ctx.set(d.i_row_b.as_value(), rows[1])
        g = ctx.get
        s = Sample(g(d.o_comp_ready), g(d.o_busy), g(d.o_err), g(d.o_rvalid), g(d.o_rdata),
                   g(d.o_trace_rd), g(d.o_trace_rd_col), g(d.o_trace_wr), g(d.o_trace_wr_col),
                   g(d.o_trace_wdata), g(d.o_collision))
        if read_rows:
            s.rows = (g(d.o_row_a.as_value()), g(d.o_row_b.as_value()))
        await ctx.tick()
        return s


def run_bench(mode, *, L=2, H=1, C=1, stochastic=None, seed=1, gap_prob=0.2, mutant=None,
              **spu_kwargs):
    dut = SpuSim(**spu_kwargs)
    work = make_workload(mode, L=L, H=H, C=C, seed=seed, stochastic=stochastic)
    out = {}

    async def testbench(ctx):
        bench = SpuBench(AmaranthSpuIo(ctx, dut), work, rng=random.Random(seed), spu=dut.spu,
                         gap_prob=gap_prob, mutant=mutant)
        out["result"] = await bench.run()
        out["bench"] = bench

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out["result"], out["bench"]


# --- timing properties ---------------------------------------------------------------------

def test_timing_properties_follow_the_units():
    spu = Spu()
    m, a, d = MxMul().latency, MxAdd().latency, MxDot().latency
    assert spu.read_to_write % 2 == 1
    assert spu.read_to_write == 1 + m + a + spu.writeback_stage
    # attend: two partials per bank cover the 4-stage adder at one COMP per cycle; the fold
    # (bank A, then B) enters when the last COMP's sum leaves the adder.
    assert spu.attend_partials == 2 and spu.fold_iterations == 2
    assert spu.latency == {"state_update": 1 + m + a + d + 1, "score": 1 + d + 1,
                           "attend": 1 + m + a + 1 + 1 + a}
    assert spu.iteration_interval == {"state_update": 1, "score": 1, "attend": 1}
    assert spu.comps_per_row_pair == 64
    assert spu.stages == spu.mode_stages["state_update"]
    even = Spu(_even_distance=True)
    assert even.read_to_write % 2 == 0


def test_fused_timing_follows_the_stage_list():
    """Spu(fused=True): the state update through the fused unit; the write-back register is
    there when the stages to the new sub-chunk are even in number, so the distance is odd."""
    spu, base = Spu(fused=True), Spu()
    x, d = MxFma().latency, MxDot().latency
    assert spu.fused and not base.fused
    assert spu.update_stages == ("F", *(f"X.{s}" for s in MxFma().stages))
    assert spu.writeback_stage == 1 - len(spu.update_stages) % 2
    assert spu.read_to_write == len(spu.update_stages) + spu.writeback_stage == 1 + x + 1
    assert spu.read_to_write % 2 == 1
    # attend through the fused unit: 3 partials per bank cover its 5 stages at one COMP per
    # cycle; fold step 2 of a bank waits for step 1's sum (5 iterations later)
    assert spu.attend_partials == 3 and spu.fold_iterations == (3 - 2) * x + 2
    assert spu.latency == {"state_update": 1 + x + d + 1, "score": base.latency["score"],
                           "attend": 1 + x + 1 + spu.fold_iterations - 1 + x}
    assert spu.iteration_interval == base.iteration_interval
    xs = tuple(f"X.{s}" for s in MxFma().stages)
    assert spu.mode_stages["attend"] == ("F", *xs, "R", *(f"fold{k}" for k in range(
        spu.fold_iterations - 1)), *(f"fold.{s}" for s in xs))
    assert Spu(fused=True, _even_distance=True).read_to_write % 2 == 0


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"rbits": 0}, ValueError, "rbits must be in 1..8, not 0"),
    ({"renorm": "x"}, ValueError, "renorm must be one of ('lod', 'fixed'), not 'x'"),
    ({"seeds": {"add": 1}}, ValueError, "seeds must name exactly the sites"),
    ({"seeds": {"mul_decay": 0, "mul_outer": 1, "add": 2}}, ValueError,
     "seed must be a non-zero 31-bit value, not 0x0"),
    ({"_even_distance": 1}, TypeError, "_even_distance must be a bool, not 1"),
    ({"fused": 1}, TypeError, "fused must be a bool, not 1"),
    ({"fused": True, "renorm": "fixed"}, ValueError, "fused=True needs renorm='lod'"),
])
def test_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        Spu(**kwargs)
    assert str(info.value).startswith(msg)


# --- full row pairs against the golden model --------------------------------------------------

def test_state_update_nearest_and_stochastic():
    """Two chunk groups on each bank pair, one pair rounding to nearest and one stochastic;
    bit-exact write-backs, partials and final states (also quant.spe.state_update)."""
    res, bench = run_bench("state_update", L=4, H=1, C=1, stochastic=[False, True], seed=2)
    assert bench.mismatches == []
    assert res["vectors"] == 128 and res["collisions"] == 0
    t = res["timing"]
    spu = Spu()
    assert t["writeback_delay"] == spu.read_to_write
    assert t["pipeline_depth"] == spu.latency["state_update"]
    assert t["spu_cycles_per_comp"] == 1 and t["comps_per_row_pair"] == 64
    assert t["utilization"] == 1.0


def test_state_update_two_chunks_heavy_gaps():
    """Several chunks per group (operands reused, v per chunk) and idle cycles between most
    COMPs: nothing lost, duplicated or corrupted."""
    res, bench = run_bench("state_update", L=1, H=2, C=2, stochastic=[True], seed=3,
                           gap_prob=0.6)
    assert bench.mismatches == []
    assert res["vectors"] == 128


def test_score():
    res, bench = run_bench("score", L=2, H=1, C=1, stochastic=[False], seed=4)
    assert bench.mismatches == []
    assert res["timing"]["pipeline_depth"] == Spu().latency["score"]
    assert res["timing"]["utilization"] == 1.0


def test_attend_two_rows_stochastic():
    res, bench = run_bench("attend", L=2, H=1, C=2, stochastic=[True], seed=5)
    assert bench.mismatches == []
    t = res["timing"]
    assert t["spu_cycles_per_comp"] == 1 and t["utilization"] == 1.0
    assert t["pipeline_depth"] == Spu().latency["attend"]


@pytest.mark.parametrize("stochastic, seed", [([True], 5), ([False], 6)])
def test_fused_attend_two_rows(stochastic, seed):
    """Attend through the fused unit (3 partials per bank, the fold through the same unit):
    bit-exact against SpuModel and quant.spe.attention_attend(SPEConfig(fused=True)), one
    COMP per cycle, the pipeline depth of the stage list."""
    res, bench = run_bench("attend", L=2, H=1, C=2, stochastic=stochastic, seed=seed,
                           fused=True)
    assert bench.mismatches == []
    t = res["timing"]
    assert t["spu_cycles_per_comp"] == 1 and t["utilization"] == 1.0
    assert t["pipeline_depth"] == Spu(fused=True).latency["attend"] == 18


def test_fused_attend_unfused_mutant_is_caught():
    """An unfused expectation of the fused SPU's attend is refused (the check can fail)."""
    _, bench = run_bench("attend", L=2, H=1, C=1, stochastic=[False], seed=8, gap_prob=0.0,
                         mutant="unfused", fused=True)
    assert bench.mismatches


def test_even_distance_collides():
    """The dedicated check of the interleaving schedule: with an even read-to-write distance
    the write-back hits the bank being read; the bank model and the monitor must catch it."""
    res, bench = run_bench("state_update", L=2, H=1, C=1, stochastic=[False], seed=6,
                           _even_distance=True)
    assert res["collisions"] > 0
    assert any("collision" in m for m in bench.mismatches)
    assert res["timing"]["writeback_delay"] % 2 == 0


def test_fused_even_distance_collides():
    """The same check on the fused SPU: the invariant holds by construction there too."""
    res, bench = run_bench("state_update", L=2, H=1, C=1, stochastic=[False], seed=6,
                           fused=True, _even_distance=True)
    assert res["collisions"] > 0
    assert any("collision" in m for m in bench.mismatches)
    assert res["timing"]["writeback_delay"] == Spu(fused=True, _even_distance=True
                                                   ).read_to_write


def test_reference_mutants_are_caught():
    for mutant in SpuBench.MUTANTS:
        # `unfused`: a fused SPU's mutant
        _, bench = run_bench("state_update", L=2, H=1, C=1, stochastic=[True], seed=7,
                             gap_prob=0.0, mutant=mutant, fused=mutant == "unfused")
        assert bench.mismatches, mutant


# --- protocol: readiness and hazards -----------------------------------------------------------

def _protocol(script):
    """Run ``script(ctx, dut, cmd)`` on an SPU alone (banks read as zero)."""
    dut = Spu()

    async def testbench(ctx):
        async def cmd(kind, addr=0, data=0):
            ctx.set(dut.i_cmd, kind)
            ctx.set(dut.i_addr, addr)
            ctx.set(dut.i_data, data)
            ready = ctx.get(dut.o_comp_ready)
            await ctx.tick()
            ctx.set(dut.i_cmd, Cmd.NOP)
            return ready
        await script(ctx, dut, cmd)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_comp_ready_and_drain():
    def script_for(mode):
        async def script(ctx, dut, cmd):
            await cmd(Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), mode_word(mode, False))
            assert await cmd(Cmd.COMP, comp_addr(False))
            assert await cmd(Cmd.COMP, comp_addr(True))    # back to back in every mode
            # Draining: no COMP accepted until the pipeline is empty, and it drains alone.
            n = 0
            while ctx.get(dut.o_busy):
                assert not ctx.get(dut.o_comp_ready)
                await ctx.tick()
                n += 1
                assert n < 32
            assert ctx.get(dut.o_comp_ready) and not ctx.get(dut.o_err)
        return script
    for mode in ("state_update", "score", "attend"):
        _protocol(script_for(mode))


def test_illegal_register_writes_flag_o_err():
    async def q_in_flight(ctx, dut, cmd):
        await cmd(Cmd.COMP, comp_addr(False))            # bank A in flight, pipeline held
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.K, 1), 5)  # bank B's operand: legal
        assert not ctx.get(dut.o_err)
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.Q, 0), 5)  # q of A before its dot product
        assert ctx.get(dut.o_err)

    async def v_before_use(ctx, dut, cmd):
        await cmd(Cmd.COMP, comp_addr(False))
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.V, 0), 1)  # A's op waits in F: too early
        assert ctx.get(dut.o_err)

    async def v_after_last_comp(ctx, dut, cmd):
        await cmd(Cmd.COMP, comp_addr(False))
        await cmd(Cmd.COMP, comp_addr(True))             # B; the pipeline drains from here
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.V, 1), 1)  # read this cycle by B's op: legal
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.D, 0), 1)
        assert not ctx.get(dut.o_err)
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), mode_word("score", True))
        assert ctx.get(dut.o_err)                        # MODE while busy

    async def bad_mode(ctx, dut, cmd):
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), 3)
        assert ctx.get(dut.o_err)

    async def clear_during_fold(ctx, dut, cmd):
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), mode_word("attend", False))
        await cmd(Cmd.COMP, comp_addr(True))             # one COMP, then the fold
        for _ in range(Spu().latency["attend"] - 2):
            await cmd(Cmd.NOP)
        assert ctx.get(dut.o_busy)                       # the fold is still running
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.ACC_CLEAR, 1), 0)
        assert ctx.get(dut.o_err)

    async def partial_regs_in_attend(ctx, dut, cmd):
        # attend keeps its partials in the d and k registers: writing them is illegal there
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), mode_word("attend", False))
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.V, 0), 1)
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.Q, 1), 1)
        assert not ctx.get(dut.o_err)
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.K, 1), 1)
        assert ctx.get(dut.o_err)

    async def acc_clear_outside_attend(ctx, dut, cmd):
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), mode_word("state_update", False))
        await cmd(Cmd.REG_WRITE, reg_addr(Reg.ACC_CLEAR, 0), 0)
        assert ctx.get(dut.o_err)

    for script in (q_in_flight, v_before_use, v_after_last_comp, bad_mode, clear_during_fold,
                   partial_regs_in_attend, acc_clear_outside_attend):
        _protocol(script)


def test_result_read_index_map():
    assert result_addr(0, 0) == 0 and result_addr(1, 31) == 63 and result_addr(1, 0) == 32
    assert mode_word("attend", True) == int(Mode.ATTEND) | 4
    assert reg_addr(Reg.V, 1) == 7


def test_unfused_mutant_needs_a_fused_spu():
    work = make_workload("state_update", L=2, H=1, C=1, seed=1)
    with pytest.raises(ValueError, match="mutant 'unfused' needs a fused SPU"):
        SpuBench(None, work, rng=random.Random(1), spu=Spu(), mutant="unfused")
