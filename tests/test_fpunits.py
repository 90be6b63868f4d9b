"""Component-level tests of hw.fpmul.FPMul and hw.fpadd.FPAdd: parameters, ports, latency,
custom formats and Verilog export. Arithmetic bit-exactness is in tests/test_fparith.py."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.lib.wiring import In, Out

from hw.fpadd import FPAdd
from hw.fpmul import FPMul
from quant.fparith import FloatFormat, model_add, model_mul, ref_add, ref_mul
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


@pytest.mark.parametrize("fmt,rounding", [("e4m3", "rne"), ("fp16", "sr")])
def test_spe_float_slice(fmt, rounding):
    """s_out = d * s + k * v per lane, two cycles later, matching the golden model."""
    from amaranth.sim import Simulator

    from hw.spe_float import SpeFloat

    lanes, steps, r = 4, 40, 4
    sr = {"rounding": "sr", "sr_bits": r} if rounding == "sr" else {}
    dut = SpeFloat(fmt, lanes=lanes, **sr)
    assert dut.latency == 2
    rng = rng_for(f"spe-{fmt}-{rounding}")
    w = dut.fmt.width
    s, d, k = (rng.integers(0, 1 << w, (steps, lanes)) for _ in range(3))
    v = rng.integers(0, 1 << w, steps)
    rnd = rng.integers(0, 1 << r, (steps, lanes, 3))
    got = np.zeros((steps, lanes), dtype=np.int64)

    async def testbench(ctx):
        for t in range(steps + dut.latency):
            if t >= dut.latency:
                for i in range(lanes):
                    got[t - dut.latency, i] = ctx.get(dut.s_out[i])
            if t < steps:
                for i in range(lanes):
                    ctx.set(dut.s_in[i], int(s[t, i]))
                    ctx.set(dut.d[i], int(d[t, i]))
                    ctx.set(dut.k[i], int(k[t, i]))
                    if sr:
                        word = int(rnd[t, i, 0] | rnd[t, i, 1] << r)
                        ctx.set(dut.rnd[i], word | int(rnd[t - 1, i, 2] if t else 0) << 2 * r)
                ctx.set(dut.v, int(v[t]))
            elif sr and t - 1 < steps:
                for i in range(lanes):
                    ctx.set(dut.rnd[i], int(rnd[t - 1, i, 2]) << 2 * r)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    vv = np.broadcast_to(v[:, None], s.shape)
    kw = [dict(rounding="sr", rand=rnd[..., j], sr_bits=r) if sr else {} for j in range(3)]
    exp = ref_add(ref_mul(d, s, fmt, **kw[0]), ref_mul(k, vv, fmt, **kw[1]), fmt, **kw[2])
    np.testing.assert_array_equal(got, exp)
