"""Every pipelined unit's latency, derived from the stages it builds, against the simulator.

``latency`` is ``len(stages)`` (hw/pipeline.py); here it is measured: one ``i_valid`` pulse
in Amaranth's simulator, cycles counted until ``o_valid``.
"""

pytestmark = __import__("pytest").mark.filterwarnings(
    "ignore::amaranth.hdl._ir.UnusedElaboratable")

import pytest

import tests.example_mac  # noqa: F401  (registers the harness's example unit)
from hw.export import UNITS, load_units
from hw_stream import measure_latency

load_units()
# one unit of each pipelined kind (the _sr variants share the structure)
NAMES = ("example_mac", "mx_mul", "mx_mul_scalar", "mx_add", "mx_dot", "spe_mx8",
         "spe_mx8_fused", "spe_fp16", "spe_e4m3", "spe_int8")


@pytest.mark.parametrize("name", NAMES)
def test_latency_is_measured(name):
    dut = UNITS[name]()
    assert isinstance(dut.stages, tuple) and all(isinstance(s, str) for s in dut.stages)
    assert dut.latency == len(dut.stages) > 0
    assert measure_latency(dut) == dut.latency


def test_combinational_float_units_have_no_stage():
    from hw.fpmul import FPMul
    from hw.fpadd import FPAdd
    for unit in (FPMul("fp16"), FPAdd("fp16")):
        assert unit.stages == () and unit.latency == 0
    for unit in (FPMul("fp16", latency=1), FPAdd("fp16", latency=1)):
        assert unit.stages == ("out",) and unit.latency == 1


def test_a_stage_list_that_does_not_match_the_pipeline_fails():
    """The stage list is what ``elaborate`` builds from: a wrong one cannot give a latency
    the hardware does not have."""
    from hw.mx_dot import MxDot

    class Wrong(MxDot):
        STAGES = ("s1", "s2", "s3", "s4")

    with pytest.raises(ValueError, match="unpack"):
        measure_latency(Wrong())


# ---- units started by a command: the fp16 PIM baselines and the HBM-PIM PCU ----------------

def _run(dut, testbench):
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def measure_comp_latency(dut, *, limit: int = 64) -> int:
    """Cycles from an accepted COMP (cycle 0) of an fp16 baseline unit to its ``o_y_valid``,
    measured in the simulator."""
    from hw.pim_fp16_if import PimCmd, comp_addr

    out: dict[str, int] = {}

    async def testbench(ctx):
        assert ctx.get(dut.o_ready), "the unit does not accept a COMP in cycle 0"
        ctx.set(dut.i_cmd, PimCmd.COMP)
        ctx.set(dut.i_addr, comp_addr(3))
        for cycle in range(limit + 1):
            if ctx.get(dut.o_y_valid):
                out["cycles"] = cycle
                return
            await ctx.tick()
            ctx.set(dut.i_cmd, PimCmd.NOP)

    _run(dut, testbench)
    assert "cycles" in out, f"no o_y_valid within {limit} cycles"
    return out["cycles"]


def pcu_program():
    """The program :func:`measure_pcu_latency` runs: ``MOV GRF_A[0] <- BANK``, ``EXIT``."""
    from quant.hbmpim_programs import Instruction, Op, Opd

    return [Instruction(Op.MOV, Opd.GRF_A, 0, Opd.BANK, 0), Instruction(Op.EXIT)]


def measure_pcu_latency(dut, *, limit: int = 16) -> int:
    """Cycles from a column command (cycle 0) executing ``MOV GRF_A[0] <- BANK`` (the PCU
    ``dut`` built with :func:`pcu_program`) to the first REG_READ (one per cycle from cycle 1
    on) that returns the column: when the register file holds the result."""
    from hw.hbmpim_pcu import PcuCmd
    from quant import hbmpim_programs as hp
    from quant.hbmpim_programs import Space

    column = int.from_bytes(bytes(range(1, 33)), "little")
    out: dict[str, int] = {}

    async def testbench(ctx):
        ctx.set(dut.bank[0].rdata, column)
        ctx.set(dut.i_cmd, PcuCmd.REG_WRITE)
        ctx.set(dut.i_addr, hp.reg_addr(Space.CTRL, 0))
        await ctx.tick()
        assert ctx.get(dut.o_running)
        ctx.set(dut.i_cmd, PcuCmd.COLUMN)           # cycle 0
        ctx.set(dut.i_addr, 0)
        await ctx.tick()
        ctx.set(dut.i_cmd, PcuCmd.REG_READ)
        ctx.set(dut.i_addr, hp.reg_addr(Space.GRF_A, 0))
        for cycle in range(1, limit + 1):           # the read of cycle `cycle`, one later
            await ctx.tick()
            assert ctx.get(dut.o_rvalid)
            if ctx.get(dut.o_rdata) == column:
                out["cycles"] = cycle
                return

    _run(dut, testbench)
    assert "cycles" in out, f"the result never reached the GRF within {limit} cycles"
    return out["cycles"]


BASELINES = ("timemux_fp16_naive", "timemux_fp16_perbank", "pipelined_fp16_perbank")


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_latency_is_measured(name):
    dut = UNITS[name]()
    assert dut.latency == len(dut.stages) > 0
    assert measure_comp_latency(dut) == dut.latency


def test_pcu_latency_is_measured():
    from hw.hbmpim_pcu import HbmPimPcu

    dut = HbmPimPcu(banks=1, crf_init=pcu_program())
    assert dut.latency == len(dut.stages) == 1
    assert measure_pcu_latency(dut) == dut.latency


def _unit_classes():
    from hw.hbmpim_pcu import HbmPimPcu
    from hw.pim_pipelined_fp16 import PipelinedFp16
    from hw.pim_timemux_fp16 import TimeMuxFp16

    return {"timemux_fp16": TimeMuxFp16, "pipelined_fp16": PipelinedFp16,
            "hbmpim_pcu": HbmPimPcu}


@pytest.mark.parametrize("name", ["timemux_fp16", "pipelined_fp16", "hbmpim_pcu"])
@pytest.mark.parametrize("change", ["extra", "missing"])
def test_a_baseline_stage_list_that_does_not_match_fails(name, change):
    """Each unit's ``elaborate`` builds from its stage list: one stage too many or too few
    fails there, before any latency is reported."""
    from amaranth.back import rtlil

    base = _unit_classes()[name]
    stages = base.STAGES + ("extra",) if change == "extra" else base.STAGES[:-1]
    wrong = type("Wrong", (base,), {"STAGES": stages})
    with pytest.raises(ValueError, match="stages listed|unpack"):
        rtlil.convert(wrong())
