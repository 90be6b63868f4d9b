"""Bit-exactness of the float units (hw.fpmul, hw.fpadd) against quant.fparith.

* The golden model's integer-level path equals the PyTorch reference (exhaustive fp8, random
  fp16), so the stochastic-rounding model, which shares that rounding code, is trustworthy.
* RTL in the Amaranth simulator: exhaustive 256 x 256 pairs for e4m3 / e5m2 multiply and add
  (RNE and SR), large random + directed sets for fp16.

Knobs: ``FPARITH_SEED`` (default 2024), ``FPARITH_FP16_VECTORS`` (default 12000 per unit).
"""

import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.fpadd import FPAdd
from hw.fpmul import FPMul
from quant.fparith import (FORMATS, FloatFormat, decode, model_add, model_mul, ref_add,
                           ref_mul, round_exact)

SEED = int(os.environ.get("FPARITH_SEED", "2024"))
FP16_VECTORS = int(os.environ.get("FPARITH_FP16_VECTORS", "12000"))
UNITS = {"mul": (FPMul, ref_mul, model_mul), "add": (FPAdd, ref_add, model_add)}


def rng_for(name):
    seed = SEED + sum(map(ord, name))
    print(f"[{name}] seed={seed}")
    return np.random.default_rng(seed)


def all_pairs(width=8):
    a, b = np.meshgrid(np.arange(1 << width), np.arange(1 << width), indexing="ij")
    return a.ravel(), b.ravel()


def simulate(dut, a, b, rand=None):
    """Drive operand vectors through ``dut`` and return its outputs (one testbench)."""
    out = np.zeros(len(a), dtype=np.int64)
    a_l, b_l = a.tolist(), b.tolist()
    r_l = rand.tolist() if rand is not None else None

    async def testbench(ctx):
        for i in range(len(a_l)):
            ctx.set(dut.a, a_l[i])
            ctx.set(dut.b, b_l[i])
            if r_l is not None:
                ctx.set(dut.rnd, r_l[i])
            if dut.latency:
                await ctx.tick()
            out[i] = ctx.get(dut.o)

    sim = Simulator(dut)
    if dut.latency:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def assert_same(got, exp, a, b, fmt, what, rand=None):
    bad = np.nonzero(got != exp)[0]
    if len(bad):
        rows = []
        for i in bad[:8]:
            extra = f" rand={rand[i]}" if rand is not None else ""
            rows.append(f"  a={a[i]:#x} ({decode(a[i], fmt)}) b={b[i]:#x} ({decode(b[i], fmt)})"
                        f"{extra}: got {got[i]:#x} expected {exp[i]:#x}")
        pytest.fail(f"{what}: {len(bad)} mismatches of {len(got)}\n" + "\n".join(rows))


# ---------------------------------------------------------------------------------------------
# Golden model self-consistency


@pytest.mark.parametrize("op", ["mul", "add"])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_model_matches_torch_fp8_exhaustive(fmt, op):
    _, ref, model = UNITS[op]
    a, b = all_pairs()
    assert_same(model(a, b, fmt), ref(a, b, fmt), a, b, fmt, f"{op} {fmt} model")


@pytest.mark.parametrize("op", ["mul", "add"])
def test_model_matches_torch_fp16_random(op):
    _, ref, model = UNITS[op]
    rng = rng_for(f"model-fp16-{op}")
    a = rng.integers(0, 1 << 16, 400_000)
    b = np.concatenate([rng.integers(0, 1 << 16, 200_000),
                        a[200_000:] ^ rng.integers(0, 1 << 12, 200_000)])
    assert_same(model(a, b, "fp16"), ref(a, b, "fp16"), a, b, "fp16", f"{op} fp16 model")


def test_format_constants():
    e4m3, e5m2, fp16 = FORMATS["e4m3"], FORMATS["e5m2"], FORMATS["fp16"]
    assert e4m3.max_finite == 448.0 and e4m3.nan_bits == 0x7F
    assert e5m2.max_finite == 57344.0 and e5m2.inf_bits == 0x7C
    assert fp16.max_finite == 65504.0 and fp16.nan_bits == 0x7E00


def test_fp8_overflow_saturates_fp16_goes_to_inf():
    assert ref_mul([0x7E], [0x48], "e4m3")[0] == 0x7E          # 448 * 4 -> 448
    assert ref_add([0xFE], [0xFE], "e4m3")[0] == 0xFE          # -448 + -448 -> -448
    assert ref_mul([0x7B], [0x40], "e5m2")[0] == 0x7B          # 57344 * 2 -> max
    assert ref_mul([0x7C], [0x3C], "e5m2")[0] == 0x7C          # inf operand stays inf
    assert ref_mul([0x7BFF], [0x4000], "fp16")[0] == 0x7C00    # 65504 * 2 -> inf


def test_sr_definition_small_cases():
    fmt = FloatFormat("e3m2", 3, 2, has_inf=True, saturate=False, torch_dtype="float16")
    # 1 + 3/16 = 1.0011b: kept 1.00, the 2 bits below the LSB are 11 (= 3 of 4).
    outs = [int(round_exact(0, 19, -4, fmt, rounding="sr", rand=r, sr_bits=2)) for r in range(4)]
    assert outs == [0x0C, 0x0D, 0x0D, 0x0D]
    # bits further below do not matter: 1 + 3/16 + 1/64
    outs2 = [int(round_exact(0, 77, -6, fmt, rounding="sr", rand=r, sr_bits=2)) for r in range(4)]
    assert outs2 == outs


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "fp16"])
def test_sr_is_unbiased_on_average(fmt):
    f = FORMATS[fmt]
    rng = rng_for(f"sr-mean-{fmt}")
    r = 8
    # One exact product far from representable values, rounded with every rand value.
    a = np.full(1 << r, 0x3C00 + 0x155 if fmt == "fp16" else 0x3B if fmt == "e4m3" else 0x3D)
    b = np.full(1 << r, 0x3C00 + 0x2AB if fmt == "fp16" else 0x35 if fmt == "e4m3" else 0x3A)
    rand = rng.permutation(1 << r)
    got = decode(ref_mul(a, b, f, rounding="sr", rand=rand, sr_bits=r), f)
    exact = decode(a[:1], f)[0] * decode(b[:1], f)[0]
    ulp = np.diff(np.unique(got))[0]
    assert abs(got.mean() - exact) <= ulp / (1 << r) + 1e-12
    assert len(np.unique(got)) == 2


# ---------------------------------------------------------------------------------------------
# RTL bit-exactness


@pytest.mark.parametrize("op", ["mul", "add"])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_rtl_fp8_exhaustive_rne(fmt, op):
    cls, ref, _ = UNITS[op]
    a, b = all_pairs()
    assert_same(simulate(cls(fmt), a, b), ref(a, b, fmt), a, b, fmt, f"RTL {op} {fmt}")


@pytest.mark.parametrize("op", ["mul", "add"])
@pytest.mark.parametrize("fmt,sr_bits", [("e4m3", 3), ("e5m2", 6)])
def test_rtl_fp8_exhaustive_sr(fmt, sr_bits, op):
    cls, ref, _ = UNITS[op]
    a, b = all_pairs()
    rand = rng_for(f"sr-{fmt}-{op}").integers(0, 1 << sr_bits, a.size)
    dut = cls(fmt, rounding="sr", sr_bits=sr_bits)
    exp = ref(a, b, fmt, rounding="sr", rand=rand, sr_bits=sr_bits)
    assert_same(simulate(dut, a, b, rand), exp, a, b, fmt, f"RTL SR {op} {fmt}", rand)


def fp16_directed():
    """Pairs of corner values: zeros, subnormals, normal edges, max, inf, NaNs, both signs."""
    base = [0x0000, 0x0001, 0x0002, 0x01FF, 0x0200, 0x03FF, 0x0400, 0x0401, 0x07FF, 0x0800,
            0x1400, 0x2000, 0x3800, 0x3BFF, 0x3C00, 0x3C01, 0x3DFF, 0x4000, 0x5800, 0x7800,
            0x7BFE, 0x7BFF, 0x7C00, 0x7C01, 0x7E00, 0x7FFF, 0x1001, 0x2401]
    vals = np.array(base + [v | 0x8000 for v in base])
    a, b = np.meshgrid(vals, vals, indexing="ij")
    return a.ravel(), b.ravel()


def fp16_random(rng, n, op):
    """Random encodings with extra weight on the hard regions of each operation."""
    k = n // 4
    a = rng.integers(0, 1 << 16, n)
    b = rng.integers(0, 1 << 16, n)
    if op == "add":
        # cancellation: b close to -a; ties: b about half an ulp of a
        b[:k] = (a[:k] ^ rng.integers(0, 1 << 11, k)) ^ 0x8000
        shift = rng.integers(10, 13, k)
        ea = (a[k:2 * k] >> 10) & 0x1F
        eb = np.clip(ea - shift, 0, 30)
        b[k:2 * k] = (rng.integers(0, 2, k) << 15) | (eb << 10) | rng.choice([0, 0x200], k)
    else:
        # products near / below the subnormal range, and near overflow
        ea = rng.integers(0, 16, k)
        eb = np.clip(15 - ea - rng.integers(0, 14, k), 0, 30)
        a[:k] = (a[:k] & 0x83FF) | (ea << 10)
        b[:k] = (b[:k] & 0x83FF) | (eb << 10)
        ea = rng.integers(15, 31, k)
        eb = np.clip(45 - ea + rng.integers(-2, 2, k), 0, 30)
        a[k:2 * k] = (a[k:2 * k] & 0x83FF) | (ea << 10)
        b[k:2 * k] = (b[k:2 * k] & 0x83FF) | (eb << 10)
    return a, b


@pytest.mark.parametrize("op", ["mul", "add"])
def test_rtl_fp16_directed_and_random(op):
    cls, ref, _ = UNITS[op]
    da, db = fp16_directed()
    ra, rb = fp16_random(rng_for(f"rtl-fp16-{op}"), FP16_VECTORS, op)
    a, b = np.concatenate([da, ra]), np.concatenate([db, rb])
    assert_same(simulate(cls("fp16"), a, b), ref(a, b, "fp16"), a, b, "fp16", f"RTL {op} fp16")


@pytest.mark.parametrize("op", ["mul", "add"])
def test_rtl_fp16_sr_random(op):
    cls, ref, _ = UNITS[op]
    rng = rng_for(f"rtl-fp16-sr-{op}")
    da, db = fp16_directed()
    ra, rb = fp16_random(rng, FP16_VECTORS // 3, op)
    a, b = np.concatenate([da, ra]), np.concatenate([db, rb])
    r = 12
    rand = rng.integers(0, 1 << r, a.size)
    dut = cls("fp16", rounding="sr", sr_bits=r)
    exp = ref(a, b, "fp16", rounding="sr", rand=rand, sr_bits=r)
    assert_same(simulate(dut, a, b, rand), exp, a, b, "fp16", f"RTL SR {op} fp16", rand)
