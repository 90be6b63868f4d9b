"""MX8 format: encode/decode/pack against the spec and the scalar reference."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import mx8_reference as ref
from mx8_fields import random_fields, to_dicts
from quant import mx8
from quant.rng import LFSRStream, TorchBits

FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def group_floats(n_groups=1, elements=FINITE32):
    return st.lists(elements, min_size=16 * n_groups, max_size=16 * n_groups)


def wide_group():
    """Groups whose values span a few binades around a random centre (realistic blocks)."""
    return st.tuples(st.integers(-120, 120), st.lists(
        st.tuples(st.floats(-1, 1, width=32), st.integers(-12, 0)), min_size=16, max_size=16)
    ).map(lambda t: [m * 2.0 ** (t[0] + s) for m, s in t[1]])


def half_pair_lsb(m: mx8.MX8) -> torch.Tensor:
    return mx8.pow2(m.exp.unsqueeze(-1) - 133 - m.mu_el).reshape(m.shape)  # LSB = 2**(E-132-mu)


# ---------------------------------------------------------------------------------- contract

def test_contract_shape_and_dtype():
    x = torch.randn(3, 5, 32)
    y = mx8.quantize(x, rounding="nearest")
    assert y.shape == x.shape and y.dtype == torch.float32


def test_contract_errors():
    with pytest.raises(ValueError, match="multiple of 16"):
        mx8.quantize(torch.randn(4, 15))
    with pytest.raises(TypeError, match="floating-point"):
        mx8.quantize(torch.ones(16, dtype=torch.int32))
    with pytest.raises(ValueError, match="rounding must be one of"):
        mx8.quantize(torch.randn(16), rounding="up")
    with pytest.raises(ValueError, match="rbits must be in"):
        mx8.quantize(torch.randn(16), rounding="stochastic", rbits=0)


# ------------------------------------------------------------------------ against reference

@settings(max_examples=300, deadline=None)
@given(st.one_of(group_floats(), wide_group()))
def test_encode_matches_scalar_reference_nearest(xs):
    x = torch.tensor(xs, dtype=torch.float32)
    got = to_dicts(mx8.encode(x))[0]
    assert got == ref.encode_group([float(v) for v in x])


@settings(max_examples=200, deadline=None)
@given(wide_group(), st.integers(1, 16), st.integers(1, 2**31 - 1))
def test_encode_matches_scalar_reference_stochastic(xs, r, seed):
    x = torch.tensor(xs, dtype=torch.float32)
    rand = TorchBits(seed).draw((16,), r)
    got = to_dicts(mx8.encode(x, "stochastic", rbits=r, rng=rand))[0]
    assert got == ref.encode_group([float(v) for v in x], "stochastic", r, rand.tolist())


@settings(max_examples=200, deadline=None)
@given(st.one_of(wide_group(), st.lists(st.floats(0.875, 1.0, width=32), min_size=16,
                                        max_size=16)),
       st.sampled_from(["nearest", "stochastic"]), st.integers(1, 2**31 - 1))
def test_encode_carry_matches_scalar_reference(xs, rounding, seed):
    x = torch.tensor(xs, dtype=torch.float32)
    rand = TorchBits(seed).draw((16,), 8)
    got = to_dicts(mx8.encode(x, rounding, rng=rand, overflow="carry"))[0]
    want = ref.encode_group([float(v) for v in x], rounding, 8, rand.tolist(), "carry")
    assert got == want


def test_carry_keeps_a_decay_close_to_one():
    d = torch.full((4, 16), 1 - 2.0 ** -14)
    sat = mx8.quantize(d)
    assert torch.equal(sat, torch.full_like(d, 63 / 64))  # the brief's saturation
    car = mx8.quantize(d, overflow="carry")
    assert torch.equal(car, torch.ones_like(d))  # 64/64 carried: E + 1, m = 32
    sr = mx8.quantize(d.repeat(4096, 1), "stochastic", rng=LFSRStream(3), overflow="carry")
    assert abs(sr.double().mean().item() - (1 - 2.0 ** -14)) < 2e-4  # unbiased, mean kept
    # a carry in a mu = 1 pair clears that pair's micro-exponent instead
    x = torch.zeros(16)
    x[0], x[2] = 1.5, 0.999  # pair 1 (mu = 1): 0.999 * 64 rounds to 64
    m = mx8.encode(x, overflow="carry")
    assert m.mu[0, 1].item() == 0 and m.mag[0, 2].item() == 32 and m.exp.item() == 127
    with pytest.raises(ValueError, match="overflow must be one of"):
        mx8.encode(x, overflow="wrap")


def test_carry_saturates_at_the_top_exponent():
    x = torch.full((16,), 3.4e38)  # rounds to 64 at E = 254: nothing above but NaN
    m = mx8.encode(x, overflow="carry")
    assert m.exp.item() == 254 and m.mag.max().item() == 63


# ------------------------------------------------------------------------------- properties

@settings(max_examples=200, deadline=None)
@given(st.one_of(group_floats(2), wide_group().map(lambda g: g + g[::-1])))
def test_round_trip_error_within_half_pair_lsb(xs):
    x = torch.tensor(xs, dtype=torch.float32)
    m = mx8.encode(x)
    y = mx8.decode(m)
    err = (y.double() - x.double()).abs()
    bound = half_pair_lsb(m).double()
    saturated = m.mag.reshape(x.shape) == 63
    flushed = x.abs() < 2.0 ** -126
    ok = (err <= bound) | saturated | flushed
    assert bool(ok.all()), (x[~ok], y[~ok])


@settings(max_examples=200, deadline=None)
@given(st.one_of(group_floats(2), wide_group().map(lambda g: g + g)))
def test_idempotent_and_sign_symmetric(xs):
    x = torch.tensor(xs, dtype=torch.float32)
    y = mx8.quantize(x)
    assert torch.equal(mx8.quantize(y), y)
    assert torch.equal(mx8.quantize(-x), -y)


def test_sign_symmetry_stochastic_same_bits():
    x = torch.randn(64, 32)
    a = mx8.quantize(x, "stochastic", rng=LFSRStream(99))
    b = mx8.quantize(-x, "stochastic", rng=LFSRStream(99))
    assert torch.equal(a, -b)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_exact_representables_preserved(gen, rounding):
    f = random_fields(gen, (200,), 2, exp_lo=8, exp_hi=254)
    v = mx8.decode(f)
    assert torch.equal(mx8.quantize(v, rounding, rng=5), v)


def test_stochastic_rounding_unbiased():
    # value 1/3 of the way between two grid points, far below the group max
    n = 1 << 16
    base = torch.zeros(n, 16)
    base[:, 0] = 1.0  # E = 127, pair 0 has mu = 0
    base[:, 2] = 0.25 + (1 / 3) / 64  # pair 1: mu = 1, LSB 1/64
    y = mx8.quantize(base, "stochastic", rbits=8, rng=LFSRStream(12345))[:, 2].double()
    lsb = 1 / 64
    exact = 0.25 + lsb / 3
    mean = y.mean().item()
    # r-bit truncation bias <= 2**-8 LSB; statistical bound 6 sigma of a Bernoulli(1/3)
    sigma = lsb * math.sqrt((1 / 3) * (2 / 3) / n)
    assert abs(mean - exact) <= 6 * sigma + lsb * 2 ** -8
    assert set(torch.unique(y).tolist()) == {0.25, 0.25 + lsb}
    # round-to-nearest of the same value is biased by a third of an LSB
    yn = mx8.quantize(base[:1], "nearest")[0, 2].item()
    assert abs(yn - exact) > 0.3 * lsb


def test_stochastic_rounding_reproducible():
    x = torch.randn(8, 64)
    assert torch.equal(mx8.quantize(x, "stochastic", rng=7), mx8.quantize(x, "stochastic",
                                                                            rng=7))
    assert not torch.equal(mx8.quantize(x, "stochastic", rng=7),
                           mx8.quantize(x, "stochastic", rng=8))


# ----------------------------------------------------------------------------- corner cases

def test_all_zero_group_is_canonical():
    m = mx8.encode(torch.tensor([[0.0] * 8 + [-0.0] * 8, [1e-40] * 16]))
    assert m.exp.tolist() == [[0], [0]]
    assert int(m.mu.sum() + m.sign.sum() + m.mag.sum()) == 0
    y = mx8.decode(m)
    assert torch.equal(y, torch.zeros_like(y)) and not torch.signbit(y).any()


def test_negative_zero_and_denormals_flush():
    x = torch.tensor([1.0, -0.0, -1e-39, 3e-45] + [0.0] * 12)
    m = mx8.encode(x)
    assert m.sign[0, 1:4].tolist() == [0, 0, 0] and m.mag[0, 1:4].tolist() == [0, 0, 0]


@pytest.mark.parametrize("special", [math.inf, -math.inf, math.nan])
def test_inf_nan_make_the_group_nan(special):
    x = torch.ones(32)
    x[20] = special
    m = mx8.encode(x)
    assert m.exp.tolist() == [127, 255]
    y = mx8.decode(m)
    assert torch.isnan(y[16:]).all() and not torch.isnan(y[:16]).any()


def test_saturation_at_63():
    x = torch.zeros(16)
    x[0] = 1.99  # rounds to 64 -> saturates
    m = mx8.encode(x)
    assert m.mag[0, 0].item() == 63 and m.exp.item() == 127
    assert mx8.decode(m)[0].item() == 63 / 32


def test_micro_exponent_rule_every_combination():
    x = torch.zeros(16)
    x[0], x[1] = 1.5, 0.25  # one at the group max -> mu 0
    x[2], x[3] = 0.75, 0.5  # both below -> mu 1
    x[4], x[5] = 0.0, 0.0  # zero pair -> mu 1 (no exponent at the max)
    x[6], x[7] = 1.0, 1.9  # both at the max -> mu 0
    m = mx8.encode(x)
    assert m.mu[0, :4].tolist() == [0, 1, 1, 0]
    assert m.mag[0, 2:4].tolist() == [48, 32]  # 0.75 / 2**-6, 0.5 / 2**-6


def test_extreme_exponents():
    big = torch.full((16,), 3.0e38)
    small = torch.full((16,), 1.5e-38)
    mb, ms = mx8.encode(big), mx8.encode(small)
    assert mb.exp.item() == 254 and ms.exp.item() == 1
    assert torch.allclose(mx8.decode(mb), big, rtol=1 / 32)
    assert torch.allclose(mx8.decode(ms), small, rtol=1 / 32)
    # decoding E = 0 with mu = 1 is an fp32 denormal and exact
    f = mx8.MX8(torch.tensor([0], dtype=torch.int32), torch.ones(1, 8, dtype=torch.int32),
                torch.zeros(1, 16, dtype=torch.int32), torch.ones(1, 16, dtype=torch.int32))
    assert mx8.decode(f)[0].item() == 2.0 ** -133


def test_group_far_below_max_underflows_to_zero():
    x = torch.zeros(16)
    x[0], x[2] = 1.0, 2.0 ** -30
    assert mx8.quantize(x)[2].item() == 0.0


def test_other_dtypes_converted_to_fp32():
    x = torch.randn(4, 16, dtype=torch.float64)
    assert torch.equal(mx8.quantize(x), mx8.quantize(x.float()))
    xh = torch.randn(4, 16).half()
    assert torch.equal(mx8.quantize(xh), mx8.quantize(xh.float()))


# ----------------------------------------------------------------------------------- packing

def test_pack_bit_layout():
    f = mx8.MX8(torch.tensor([0x81], dtype=torch.int32),
                torch.tensor([[1, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.int32),
                torch.tensor([[0] * 15 + [1]], dtype=torch.int32),
                torch.tensor([[5] + [0] * 14 + [63]], dtype=torch.int32))
    (w,) = mx8.to_words(f)
    expect = 0x81 | (1 << 8) | (1 << 15) | (5 << 16) | (63 << (16 + 7 * 15)) | (1 << 127)
    assert w == expect


def test_pack_round_trip(gen):
    f = random_fields(gen, (3, 5), 4, exp_lo=0, exp_hi=255, canonical=False)
    assert mx8.unpack(mx8.pack(f)).equal(f)
    words = mx8.to_words(f, groups_per_word=2)
    assert all(0 <= w < 1 << 256 for w in words) and len(words) == 3 * 5 * 2
    assert mx8.from_words(words, (3, 5), 4, groups_per_word=2).equal(f)
    # group 0 of a sub-chunk is the low half of the 256-bit word
    lo = mx8.to_words(f[0, 0].reshape_lead(1), 1)
    assert words[0] == lo[0] | (lo[1] << 128)


def test_pack_bytes_are_little_endian_words(gen):
    f = random_fields(gen, (4,), 1)
    raw = mx8.pack(f).numpy()
    for row, w in zip(raw.reshape(4, 16), mx8.to_words(f)):
        assert int.from_bytes(bytes(row.astype(np.uint8)), "little") == w


@pytest.mark.parametrize("rounding,rbits", [("nearest", 8), ("stochastic", 1),
                                            ("stochastic", 8), ("stochastic", 16)])
def test_quantize_fast_path_is_decode_of_encode(rounding, rbits):
    """mx8.quantize computes in fp32 without the fields: every bit equals decode(encode)."""
    g = torch.Generator().manual_seed(rbits)
    wide = torch.randn(1 << 14, generator=g) * torch.exp2(
        torch.randint(-150, 128, (1 << 14,), generator=g).float())
    x = torch.randn(4096, generator=g)
    x[::7] = 0.0
    x[5::13] = 1e-40  # denormals next to normals
    x[300:316] = 1e-39  # a denormal-only group
    x[400:416] = -0.0
    x[100:116] = float("inf")
    x[200] = float("nan")
    x[500:516] = torch.tensor([63.5, 64, -63.5, 1.5, -1.5, 0.5, -0.5, 2.5] * 2) * 2.0 ** -5
    for xs in (torch.randn(64, 32, generator=g), wide, x):
        rand = torch.randint(0, 1 << rbits, xs.shape, generator=g, dtype=torch.int32)
        want = mx8.decode(mx8.encode(xs, rounding, rbits=rbits, rng=rand))
        got = mx8.quantize(xs, rounding, rbits=rbits, rng=rand)
        assert torch.equal(got.view(torch.int32), want.view(torch.int32))
