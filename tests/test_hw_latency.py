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
