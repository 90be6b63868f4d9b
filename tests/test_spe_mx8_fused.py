"""The fused MX8 SPE slice (``SpeMx8(fused=True)``, hw/mx_fma.py): parameters, ports, latency,
export, and streaming simulation (Amaranth simulator) against the golden model
``quant.spe_slice.reference(..., fused=True)`` = ``quant.spe.fused_mul_add`` (docs/mx8.md
section 8a), round to nearest and stochastic rounding, every output bit compared."""

import numpy as np
import pytest

from cosim.spe_vectors import CLASSES, make_ops
from hw.spe_mx8 import SpeMx8
from hw_stream import check_slice
from quant.rng import DEFAULT_SITE_SEEDS, SPERandom
from quant.spe_slice import reference
from tests.test_spe_mx8 import CUSTOM_SEEDS, operands

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


def state_ops(n: int, seed: int):
    """State-update operations of every class of cosim.spe_vectors (typical, cancelling,
    corner values, wide exponent range, raw bits)."""
    ops = make_ops("mx8", n, np.random.default_rng(seed), classes=CLASSES)
    return ops.s, ops.d, ops.k, ops.v


@pytest.mark.parametrize("rounding,seeds", [("rne", None), ("sr", None), ("sr", CUSTOM_SEEDS)],
                         ids=["rne", "sr", "sr-seeds"])
def test_fused_stream_matches_reference(rounding, seeds):
    """~300 operations with idle gaps: every o_s word and the o_valid timing equal the fused
    golden model; the unfused model disagrees (the bench tells fused from unfused)."""
    dut = SpeMx8(rounding=rounding, seeds=seeds, fused=True)
    ops = [a + b for a, b in zip(operands(150, seed=11), state_ops(150, seed=12))]
    got = check_slice(dut, *ops, seed=4)
    rng = SPERandom.lfsr(seeds) if rounding == "sr" else None
    unfused = reference("mx8", rounding, *ops, rng=rng)
    assert sum(a != b for a, b in zip(got, unfused)) > len(got) // 4
    if rounding == "sr":
        nearest = reference("mx8", "rne", *ops, fused=True)
        assert sum(a != b for a, b in zip(got, nearest)) > len(got) // 2
        # only the adder's generator draws: a stream one operation ahead differs
        rng = SPERandom.lfsr(seeds)
        rng["add"].draw((1, 32), 8)
        shifted = reference("mx8", "sr", *ops, rng=rng, fused=True)
        assert sum(a != b for a, b in zip(got, shifted)) > len(got) // 4


def test_fused_back_to_back():
    """No idle cycles: one operation per cycle."""
    check_slice(SpeMx8(rounding="sr", fused=True), *state_ops(60, seed=21), seed=5,
                idle_prob=0.0)


def test_fused_signature_and_latency():
    dut = SpeMx8(fused=True)
    assert sorted(dut.signature.members) == sorted(SpeMx8().signature.members)
    assert (dut.latency, dut.fused, dut.renorm, dut.rounding) == (5, True, "lod", "rne")
    assert dut._fma.seed is None
    sr = SpeMx8(rounding="sr", fused=True)
    assert sr.seeds == DEFAULT_SITE_SEEDS and sr._fma.seed == DEFAULT_SITE_SEEDS["add"]
    assert SpeMx8().fused is False


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"fused": 1}, TypeError, "fused must be a bool, not 1"),
    ({"fused": True, "renorm": "fixed"}, ValueError,
     "fused=True needs renorm='lod' (the fused adder has no other policy), not 'fixed'"),
])
def test_fused_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        SpeMx8(**kwargs)
    assert str(info.value) == msg


def test_reference_refuses_fused_for_other_formats():
    with pytest.raises(ValueError, match="fused=True is an MX8 datapath option, not one of"):
        reference("fp16", "rne", [0], [0], [0], [0], fused=True)


@pytest.mark.parametrize("name", ["spe_mx8_fused", "spe_mx8_fused_sr"])
def test_fused_registered_export(name):
    from hw.export import UNITS, load_units, to_verilog

    load_units()
    unit = UNITS[name]()
    sr = name.endswith("_sr")
    assert (unit.fused, unit.latency, unit.rounding) == (True, 5, "sr" if sr else "rne")
    text = to_verilog(unit, name)
    assert f"module {name}(" in text
    assert ("prbs_b" in text) == sr
