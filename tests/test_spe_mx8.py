"""SpeMx8 (hw/spe_mx8.py), the MX8 SPE datapath slice: parameters, ports, latency, Verilog
export, and streaming simulation against quant.spe_slice.reference (rne and sr)."""

import pytest
import torch
from amaranth.lib.wiring import In, Out

from cosim.mx_vectors import make_batch
from hw.mx_add import MxAdd
from hw.mx_mul import MxMul
from hw.spe_mx8 import SpeMx8
from hw_stream import check_slice
from quant.mx8 import scalar_to_words, to_words
from quant.rng import DEFAULT_SITE_SEEDS, SITES, SPERandom
from quant.spe_slice import reference, slice_ports

# Components built only to inspect their signature are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")

CUSTOM_SEEDS = {"mul_decay": 0x0BADF00D, "mul_outer": 0x13579BDF, "add": 0x2468ACE0}


def operands(n: int, seed: int):
    """Port words of ``n`` operations: the MX operand classes of cosim.mx_vectors (s, d from
    multiplier batches, k and the scalar v from broadcast-multiplier batches), the last
    quarter uniformly random words (any field values)."""
    gen = torch.Generator().manual_seed(seed)
    m = make_batch("mul", n, gen)
    o = make_batch("mul_scalar", n, gen)
    s, d, k = to_words(m.a, 2), to_words(m.b, 2), to_words(o.a, 2)
    v = scalar_to_words(o.b)
    r = n - n // 4
    for words, bits in ((s, 256), (d, 256), (k, 256), (v, 16)):
        words[r:] = [int.from_bytes(torch.randint(0, 256, (bits // 8,), generator=gen,
                                                  dtype=torch.uint8).numpy().tobytes(),
                                    "little") for _ in range(n - r)]
    return s, d, k, v


@pytest.mark.parametrize("rounding,seeds", [("rne", None), ("sr", None), ("sr", CUSTOM_SEEDS)],
                         ids=["rne", "sr", "sr-seeds"])
def test_stream_matches_reference(rounding, seeds):
    """~250 operations with idle gaps (random junk on the inputs while i_valid is low):
    every o_s word and the o_valid timing equal the golden model."""
    dut = SpeMx8(rounding=rounding, seeds=seeds)
    n = 250
    ops = operands(n, seed=7 + len(rounding))
    got = check_slice(dut, *ops, seed=3)
    if rounding == "sr":
        # The check sees the draw order: each site's stream one operation ahead differs.
        for site in SITES:
            rng = SPERandom.lfsr(seeds)
            rng[site].draw((1, 32), 8)
            shifted = reference("mx8", "sr", *ops, rng=rng)
            assert sum(a != b for a, b in zip(got, shifted)) > n // 4, site
        nearest = reference("mx8", "rne", *ops)
        assert sum(a != b for a, b in zip(got, nearest)) > n // 2


def test_stream_back_to_back():
    """No idle cycles: one operation per cycle."""
    check_slice(SpeMx8(rounding="sr"), *operands(60, seed=21), seed=5, idle_prob=0.0)


def test_signature_and_latency():
    dut = SpeMx8()
    members = dut.signature.members
    assert sorted(members) == ["i_d", "i_k", "i_s", "i_v", "i_valid", "o_s", "o_valid"]
    ports = slice_ports("mx8")
    for name in ("i_s", "i_d", "i_k"):
        assert members[name] == In(ports["W"]) == In(256)
    assert members["i_v"] == In(ports["Wv"]) == In(16)
    assert members["o_s"] == Out(256) and members["i_valid"] == In(1)
    assert members["o_valid"] == Out(1)
    assert dut.latency == MxMul().latency + MxAdd().latency == 7
    assert (dut.fmt, dut.lanes, dut.rounding, dut.seeds, dut.rbits, dut.renorm) == (
        "mx8", 32, "rne", None, 8, "lod")
    # nearest: units without generators; stochastic: one generator per site
    assert [u.seed for u in (dut._mul_decay, dut._mul_outer, dut._add)] == [None] * 3
    sr = SpeMx8(rounding="sr", renorm="fixed")
    assert sr.seeds == DEFAULT_SITE_SEEDS and sr.renorm == "fixed"
    assert [sr._mul_decay.seed, sr._mul_outer.seed, sr._add.seed] == [
        DEFAULT_SITE_SEEDS[s] for s in SITES]
    assert sr._mul_outer.scalar and not sr._mul_decay.scalar
    assert SpeMx8(rounding="sr", seeds=CUSTOM_SEEDS).seeds == CUSTOM_SEEDS


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"rounding": "nearest"}, ValueError, "rounding must be 'rne' or 'sr', not 'nearest'"),
    ({"seeds": CUSTOM_SEEDS}, ValueError, "seeds is only meaningful with rounding='sr'"),
    ({"rounding": "sr", "seeds": (1, 2, 3)}, TypeError,
     "seeds must be a dict site -> seed, not (1, 2, 3)"),
    ({"rounding": "sr", "seeds": {"mul_decay": 1, "mul_outer": 2}}, ValueError,
     "seeds must name exactly the sites ('mul_decay', 'mul_outer', 'add'), "
     "not ['mul_decay', 'mul_outer']"),
    ({"rounding": "sr", "seeds": {**CUSTOM_SEEDS, "mul_outer": 1 << 31}}, ValueError,
     "seed must be a non-zero 31-bit value, not 0x80000000"),
    ({"rounding": "sr", "seeds": {**CUSTOM_SEEDS, "add": "1"}}, TypeError,
     "seed must be an int, not '1'"),
    ({"renorm": "round"}, ValueError, "renorm must be one of ('lod', 'fixed'), not 'round'"),
    ({"renorm": 1}, TypeError, "renorm must be a str, not 1"),
])
def test_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        SpeMx8(**kwargs)
    assert str(info.value) == msg


@pytest.mark.parametrize("name", ["spe_mx8", "spe_mx8_sr"])
def test_registered_export(name):
    """The registered slices export with the streaming ports; only the SR one holds the
    generators (the nearest one has no PRBS network to synthesize)."""
    from hw.export import UNITS, load_units, to_verilog

    load_units()
    unit = UNITS[name]()
    sr = name.endswith("_sr")
    assert (unit.fmt, unit.latency, unit.rounding) == ("mx8", 7, "sr" if sr else "rne")
    assert unit.seeds == (DEFAULT_SITE_SEEDS if sr else None)
    text = to_verilog(unit, name)
    assert f"module {name}(" in text
    for port in ("clk", "rst", "i_valid", "i_s", "i_d", "i_k", "i_v", "o_valid", "o_s"):
        assert f" {port}" in text
    assert ("prbs_b" in text) == sr
    assert ("i_rand" in text) == (not sr)  # tied to 0 at the units' ports
