"""MxMul (hw/mx_mul.py) in the Amaranth simulator against quant.spe.mul / mul_scalar."""

pytestmark = __import__("pytest").mark.filterwarnings(
    "ignore::amaranth.hdl._ir.UnusedElaboratable")

import pytest
from hw.mx_mul import MxMul
from hw_stream import check_unit, measure_latency
from quant.rng import DEFAULT_SITE_SEEDS


@pytest.mark.parametrize("renorm", ["lod", "fixed"])
@pytest.mark.parametrize("scalar", [False, True], ids=["elementwise", "scalar"])
def test_mul_random(renorm, scalar):
    check_unit(MxMul(scalar=scalar, renorm=renorm), 300, seed=11 + scalar)


@pytest.mark.parametrize("scalar", [False, True], ids=["elementwise", "scalar"])
def test_mul_directed_corners(scalar):
    check_unit(MxMul(scalar=scalar), 120, seed=5, directed=True)


def test_mul_rbits3_other_seed():
    check_unit(MxMul(rbits=3, seed=DEFAULT_SITE_SEEDS["mul_outer"]), 200, seed=3)


def test_mul_random_bits_from_port():
    check_unit(MxMul(seed=None), 150, seed=4, port_rand=True)


def test_mul_latency_and_ports():
    dut = MxMul(scalar=True)
    assert measure_latency(dut) == dut.latency == len(dut.stages) == 3
    assert len(dut.i_b.as_value()) == 16 and len(dut.i_a.as_value()) == 256
    assert not hasattr(dut, "i_rand")
    assert len(MxMul(seed=None, rbits=5).i_rand.as_value()) == 32 * 5


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"rbits": 9}, ValueError, "rbits must be in 1..8, not 9"),
    ({"rbits": "8"}, TypeError, "rbits must be an int, not '8'"),
    ({"renorm": "round"}, ValueError, "renorm must be one of ('lod', 'fixed'), not 'round'"),
    ({"renorm": 1}, TypeError, "renorm must be a str, not 1"),
    ({"seed": 0}, ValueError, "seed must be a non-zero 31-bit value, not 0x0"),
    ({"seed": 1.5}, TypeError, "seed must be an int, not 1.5"),
    ({"scalar": 1}, TypeError, "scalar must be a bool, not 1"),
])
def test_mul_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        MxMul(**kwargs)
    assert str(info.value) == msg
