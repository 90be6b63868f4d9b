"""Component-level tests of hw.fpmul.FPMul and hw.fpadd.FPAdd: parameters, ports, latency,
custom formats and Verilog export. Arithmetic bit-exactness is in tests/test_fparith.py."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.lib.wiring import In, Out

from hw.fpadd import FPAdd
from hw.fpmul import FPMul
from quant.fparith import FloatFormat, get_format, model_add, model_mul, ref_add, ref_mul
from tests.test_fparith import rng_for, simulate

UNITS = [(FPMul, ref_mul, model_mul), (FPAdd, ref_add, model_add)]

# Components built only to inspect their signature are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


@pytest.mark.parametrize("cls", [FPMul, FPAdd])
def test_parameter_errors(cls):
    with pytest.raises(TypeError, match=r"^fmt must be a FloatFormat or a format name, not 3$"):
        cls(3)
    with pytest.raises(ValueError, match=r"^unknown float format 'e3m4'"):
        cls("e3m4")
    with pytest.raises(ValueError, match=r"^rounding must be 'rne' or 'sr', not 'rtz'$"):
        cls("fp16", rounding="rtz")
    with pytest.raises(ValueError, match=r"^rounding='sr' needs sr_bits$"):
        cls("fp16", rounding="sr")
    with pytest.raises(TypeError, match=r"^sr_bits must be an int, not 2.0$"):
        cls("fp16", rounding="sr", sr_bits=2.0)
    with pytest.raises(ValueError, match=r"^sr_bits must be in 1\.\.24, not 0$"):
        cls("fp16", rounding="sr", sr_bits=0)
    with pytest.raises(ValueError, match=r"^sr_bits is only meaningful with rounding='sr'$"):
        cls("fp16", sr_bits=4)
    with pytest.raises(ValueError, match=r"^latency must be 0 \(combinational\) or 1"):
        cls("fp16", latency=2)
    with pytest.raises(TypeError, match=r"^latency must be an int, not True$"):
        cls("fp16", latency=True)


@pytest.mark.parametrize("cls", [FPMul, FPAdd])
def test_signature_and_properties(cls):
    dut = cls("e5m2", rounding="sr", sr_bits=5, latency=1)
    members = dut.signature.members
    assert members["a"] == In(8) and members["b"] == In(8) and members["o"] == Out(8)
    assert members["rnd"] == In(5)
    assert (dut.fmt.name, dut.rounding, dut.sr_bits, dut.latency) == ("e5m2", "sr", 5, 1)
    plain = cls("fp16")
    assert "rnd" not in plain.signature.members
    assert plain.latency == 0 and plain.sr_bits is None and len(plain.o) == 16


@pytest.mark.parametrize("cls,ref,_model", UNITS)
def test_registered_latency(cls, ref, _model):
    rng = rng_for(f"latency-{cls.__name__}")
    a = rng.integers(0, 1 << 16, 500)
    b = rng.integers(0, 1 << 16, 500)
    dut = cls("fp16", latency=1)
    assert dut.latency == 1
    np.testing.assert_array_equal(simulate(dut, a, b), ref(a, b, "fp16"))


@pytest.mark.parametrize("cls,_ref,model", UNITS)
@pytest.mark.parametrize("fmt", [
    FloatFormat("e3m2", 3, 2, has_inf=True, saturate=False, torch_dtype="float16"),
    FloatFormat("e2m1", 2, 1, has_inf=False, saturate=True, torch_dtype="float16"),
    FloatFormat("e6m4", 6, 4, has_inf=True, saturate=True, torch_dtype="float16"),
])
def test_custom_formats_match_model(cls, _ref, model, fmt):
    """The same RTL serves any (exponent, mantissa) width: check against the integer model."""
    rng = rng_for(f"custom-{fmt.name}-{cls.__name__}")
    n = 1 << fmt.width
    if n * n <= 1 << 14:
        a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        a, b = a.ravel(), b.ravel()
    else:
        a, b = rng.integers(0, n, 4000), rng.integers(0, n, 4000)
    np.testing.assert_array_equal(simulate(cls(fmt), a, b), model(a, b, fmt))
    rand = rng.integers(0, 8, a.size)
    got = simulate(cls(fmt, rounding="sr", sr_bits=3), a, b, rand)
    np.testing.assert_array_equal(got, model(a, b, fmt, rounding="sr", rand=rand, sr_bits=3))


@pytest.mark.parametrize("cls", [FPMul, FPAdd])
def test_verilog_export(cls):
    text = verilog.convert(cls("e4m3", rounding="sr", sr_bits=4, latency=1), name="u")
    assert "module u" in text
    for port in ("a", "b", "rnd", "o", "clk", "rst"):
        assert f" {port}" in text


# ---- SpeFloat: the float SPE datapath slice (streaming ports, internal generators) --------

def slice_operands(rng, fmt, n, lanes=32):
    """Port words of ``n`` operations: lanes of random encodings, three quarters of them with
    exponents near the bias (so products and sums stay finite and rounding matters)."""
    f = get_format(fmt)
    w, man = f.width, f.man_bits
    exp_mask = f.exp_max_field << man

    def lanes_of(shape):
        raw = rng.integers(0, 1 << w, shape)
        exp = rng.integers(f.bias - 3, f.bias + 4, shape)
        near = rng.random(shape) < 0.75
        return np.where(near, (raw & ~exp_mask) | (exp << man), raw)

    def words(x):
        return [sum(int(e) << (i * w) for i, e in enumerate(row)) for row in x]

    s, d, k = (words(lanes_of((n, lanes))) for _ in range(3))
    v = [int(e) for e in lanes_of(n)]
    return s, d, k, v


CUSTOM_SEEDS = {"mul_decay": 0x1234567, "mul_outer": 0x7654321, "add": 0x2AAAAAAA}


@pytest.mark.parametrize("fmt,rounding,seeds", [
    ("e4m3", "rne", None), ("e5m2", "rne", None), ("fp16", "rne", None),
    ("fp16", "sr", None), ("e4m3", "sr", CUSTOM_SEEDS), ("e5m2", "sr", None),
])
def test_spe_float_slice(fmt, rounding, seeds):
    """o_s = d * s + k * v per lane, streamed with idle gaps, `latency` cycles later, equal
    bit for bit to quant.spe_slice.reference (SR: the internal LFSRs against LFSRStream)."""
    from hw.spe_float import SpeFloat
    from hw_stream import check_slice
    from quant.rng import SPERandom
    from quant.spe_slice import reference

    dut = SpeFloat(fmt, rounding=rounding, seeds=seeds)
    n = 120 if fmt == "fp16" else 150
    ops = slice_operands(rng_for(f"spe-{fmt}-{rounding}"), fmt, n)
    got = check_slice(dut, *ops, seed=len(fmt) + len(rounding))
    if rounding == "sr":
        # the comparison sees the draw order: streams one operation ahead do not match
        rng = SPERandom.lfsr(seeds)
        for site in ("mul_decay", "mul_outer", "add"):
            rng[site].draw((1, 32), 8)
        shifted = reference(fmt, "sr", *ops, rng=rng)
        assert sum(a != b for a, b in zip(got, shifted)) > n // 2


def test_spe_float_signature_and_latency():
    from hw.lfsr import LFSR
    from hw.spe_float import SpeFloat
    from quant.rng import DEFAULT_SITE_SEEDS

    dut = SpeFloat("fp16")
    members = dut.signature.members
    assert members["i_valid"] == In(1) and members["o_valid"] == Out(1)
    for name in ("i_s", "i_d", "i_k"):
        assert members[name] == In(512)
    assert members["i_v"] == In(16) and members["o_s"] == Out(512)
    assert sorted(members) == ["i_d", "i_k", "i_s", "i_v", "i_valid", "o_s", "o_valid"]
    assert dut.latency == FPMul("fp16", latency=1).latency + FPAdd("fp16", latency=1).latency
    assert dut.latency == 2
    assert (dut.fmt, dut.lanes, dut.rounding, dut.seeds, dut.sr_bits) == ("fp16", 32, "rne",
                                                                         None, None)
    assert dut.float_format.width == 16
    sr = SpeFloat("e5m2", rounding="sr")
    assert sr.seeds == DEFAULT_SITE_SEEDS and sr.sr_bits == 8 and sr.fmt == "e5m2"
    assert sr.signature.members["o_s"] == Out(256) and sr.signature.members["i_v"] == In(8)
    assert SpeFloat("e4m3", lanes=4).signature.members["i_k"] == In(32)
    assert LFSR(lanes=32, rbits=sr.sr_bits).width == 256


def test_spe_float_parameter_errors():
    from hw.spe_float import SpeFloat

    cases = [
        (dict(fmt=3), TypeError, "fmt must be a FloatFormat or a format name, not 3"),
        (dict(fmt="fp16", rounding="rtz"), ValueError, "rounding must be 'rne' or 'sr', not 'rtz'"),
        (dict(fmt="fp16", seeds=CUSTOM_SEEDS), ValueError,
         "seeds is only meaningful with rounding='sr'"),
        (dict(fmt="fp16", rounding="sr", seeds=[1, 2, 3]), TypeError,
         "seeds must be a dict site -> seed, not [1, 2, 3]"),
        (dict(fmt="fp16", rounding="sr", seeds={"add": 1}), ValueError,
         "seeds must name exactly the sites ('mul_decay', 'mul_outer', 'add'), not ['add']"),
        (dict(fmt="fp16", rounding="sr", seeds={**CUSTOM_SEEDS, "add": 0}), ValueError,
         "seed must be a non-zero 31-bit value, not 0x0"),
        (dict(fmt="fp16", rounding="sr", seeds={**CUSTOM_SEEDS, "add": 1.0}), TypeError,
         "seed must be an int, not 1.0"),
        (dict(fmt="fp16", lanes=0), ValueError, "lanes must be in 1..256, not 0"),
        (dict(fmt="fp16", lanes="32"), TypeError, "lanes must be an int, not '32'"),
    ]
    for kwargs, exc, msg in cases:
        fmt = kwargs.pop("fmt")
        with pytest.raises(exc) as info:
            SpeFloat(fmt, **kwargs)
        assert str(info.value) == msg


@pytest.mark.parametrize("name", [f"spe_{f}{r}" for f in ("fp16", "e4m3", "e5m2")
                                  for r in ("", "_sr")])
def test_spe_float_registered_export(name):
    """Each registered float slice exports with the streaming ports; the SR ones hold their
    three generators, the RNE ones none."""
    from hw.export import UNITS, load_units, to_verilog

    load_units()
    unit = UNITS[name]()
    fmt = name.split("_")[1]
    assert (unit.fmt, unit.lanes, unit.latency) == (fmt, 32, 2)
    assert unit.rounding == ("sr" if name.endswith("_sr") else "rne")
    text = to_verilog(unit, name)
    assert f"module {name}(" in text
    for port in ("clk", "rst", "i_valid", "i_s", "i_d", "i_k", "i_v", "o_valid", "o_s"):
        assert f" {port}" in text
    sites = [f"lfsr_{s}" for s in ("mul_decay", "mul_outer", "add")]
    if unit.rounding == "sr":
        assert all(s in text for s in sites)
    else:
        assert not any(s in text for s in sites) and "rnd" not in text
