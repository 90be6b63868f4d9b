"""MxAdd (hw/mx_add.py) in the Amaranth simulator against quant.spe.add."""

import pytest

from hw.mx_add import MxAdd
from hw_stream import check_unit, measure_latency

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


@pytest.mark.parametrize("renorm", ["lod", "fixed"])
def test_add_random(renorm):
    check_unit(MxAdd(renorm=renorm), 300, seed=21)


def test_add_directed_corners():
    check_unit(MxAdd(), 120, seed=6, directed=True)


def test_add_rbits1():
    check_unit(MxAdd(rbits=1, seed=0x1234567), 200, seed=8)


def test_add_random_bits_from_port():
    check_unit(MxAdd(seed=None, rbits=6), 150, seed=9, port_rand=True)


def test_add_mutant_is_caught():
    """The test hook ``_mutant="align_off_by_one"`` breaks the alignment; the check fails."""
    with pytest.raises(AssertionError, match="mismatches"):
        check_unit(MxAdd(_mutant="align_off_by_one"), 100, seed=21)


def test_add_latency():
    dut = MxAdd()
    assert measure_latency(dut) == dut.latency == len(dut.stages) == 4


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"rbits": 0}, ValueError, "rbits must be in 1..8, not 0"),
    ({"rbits": True}, TypeError, "rbits must be an int, not True"),
    ({"renorm": "LOD"}, ValueError, "renorm must be one of ('lod', 'fixed'), not 'LOD'"),
    ({"seed": 1 << 31}, ValueError, "seed must be a non-zero 31-bit value, not 0x80000000"),
    ({"_mutant": "x"}, ValueError, "_mutant must be one of (None, 'align_off_by_one'), not 'x'"),
])
def test_add_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        MxAdd(**kwargs)
    assert str(info.value) == msg
