"""MxDot (hw/mx_dot.py) in the Amaranth simulator against quant.spe.dot."""

import pytest

from hw.mx_dot import MxDot, dot_out_layout
from hw_stream import check_unit, measure_latency

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


def test_dot_random():
    check_unit(MxDot(), 300, seed=31)


def test_dot_directed_corners():
    check_unit(MxDot(), 120, seed=7, directed=True)


def test_dot_port_widths():
    dut = MxDot()
    assert measure_latency(dut) == dut.latency == len(dut.stages) == 3
    assert len(dut.o_p.as_value()) == 37 == dot_out_layout().size
