"""Input contracts a hostile user cannot break (issue 15): one test per row of its table.

Each test reproduces the input of one row and checks the defined behaviour: a one-line
refusal naming the problem, or the specified result. Command-line rows run the ``main``
functions in-process (fast) and check the exit status, the one-line message and the files.
"""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

from quant import formats, mx8, rng as qrng, spe
from quant.mx8 import MX8, MX8Scalar
from quant.rng import SPERandom, TorchBits

LSB_AT_1 = 2.0 ** -5  # MX8 LSB of a group whose largest value is in [1, 2)


# ------------------------------------------------------------------ stochastic default rng

@pytest.mark.parametrize("quantizer", [
    lambda t: mx8.quantize(t, "stochastic"),
    lambda t: mx8.decode(mx8.encode(t, "stochastic")),
    lambda t: formats.quantize(t, "mx8", "stochastic"),
], ids=["mx8.quantize", "mx8.encode", "formats.quantize"])
def test_default_rng_advances_256_steps_of_eighth_lsb(quantizer):
    """The issue's loop: 256 steps of +1/8 LSB from 1.0 with ``rng=None`` end near 2.0 (the
    exact sum), not stuck near 1.0 as with the same random bits every call."""
    qrng.seed(0)
    x = torch.ones(16)
    for _ in range(256):
        x = quantizer(x + LSB_AT_1 / 8)
    assert abs(float(x.mean()) - 2.0) < 0.1, x


def test_default_rng_is_seedable_in_one_call():
    x = torch.full((64,), 1.0 + LSB_AT_1 / 3)
    qrng.seed(123)
    a = [mx8.quantize(x, "stochastic") for _ in range(3)]
    qrng.seed(123)
    b = [mx8.quantize(x, "stochastic") for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], a[1])  # it advances between calls


def test_default_rng_of_spe_advances():
    qrng.seed(5)
    vals = mx8.encode(torch.full((1, 32), 35 * LSB_AT_1))  # 35 * 45 needs rounding
    s = mx8.encode(torch.full((16,), 0.7)).scalars()
    sc = MX8Scalar(s.exp[:1], s.mu[:1], s.sign[:1], s.mag[:1])
    outs = [spe.attention_attend(vals, sc) for _ in range(8)]
    assert any(not outs[0].equal(o) for o in outs[1:])


# ----------------------------------------------------------------------------------- seeds

def test_distinct_seeds_distinct_streams_or_refused():
    x = torch.full((256,), 1.0 + LSB_AT_1 / 3)
    a = mx8.encode(x, "stochastic", rng=7)
    with pytest.raises(ValueError, match=r"seed 4294967303 out of range \(allowed: 0\.\.2\*\*32-1"):
        mx8.encode(x, "stochastic", rng=7 + 2 ** 32)
    assert not a.equal(mx8.encode(x, "stochastic", rng=8))
    for bad in (2 ** 64, -1):
        with pytest.raises(ValueError, match="out of range"):
            mx8.quantize(x, "stochastic", rng=bad)
        with pytest.raises(ValueError, match="out of range"):
            SPERandom.torch(bad)


def test_spe_random_torch_seeds_stay_distinct_and_in_range():
    # the study's 31-bit seeds (seed*3 + site wraps modulo 2**32, as torch always did)
    big = 2 ** 31 - 1
    r = SPERandom.torch(big)
    assert r["add"].seed == (big * 3 + 2) % 2 ** 32
    assert SPERandom.torch(1)["mul_decay"].seed != SPERandom.torch(2)["mul_decay"].seed
    assert TorchBits(2 ** 32 - 1).seed == 2 ** 32 - 1


# ---------------------------------------------------------------------------------- 1e39

def test_float64_above_fp32_range_saturates():
    """docs/mx8.md "Inputs wider than fp32": a finite float64 beyond the fp32 range saturates
    like any large finite value (E = 254, m = 63), the rest of the group is kept."""
    xs = [1e39, -1e300, 1.0, 3e38] + [0.0] * 12
    got = mx8.encode(torch.tensor(xs, dtype=torch.float64))
    assert int(got.exp[0]) == 254
    assert got.mag[0, :4].tolist() == [63, 63, 0, 56]
    assert got.sign[0, :4].tolist() == [0, 1, 0, 0]
    fmax = torch.finfo(torch.float32).max
    same = mx8.encode(torch.tensor([fmax, -fmax, 1.0, 3e38] + [0.0] * 12))
    assert got.equal(same)
    # Inf and NaN still make the group NaN
    assert bool(mx8.encode(torch.tensor([float("inf")] + [1.0] * 15,
                                        dtype=torch.float64)).nan.all())


# ------------------------------------------------------------------- hand-built MX8 fields

def _fields(**over):
    f = dict(exp=torch.tensor([127]), mu=torch.zeros(1, 8, dtype=torch.int32),
             sign=torch.zeros(1, 16, dtype=torch.int32), mag=torch.ones(1, 16, dtype=torch.int32))
    f.update(over)
    return MX8(**f)


@pytest.mark.parametrize("field, value, pattern", [
    ("mag", 64, r"field mag out of range: min 1, max 64 \(allowed: 0\.\.63\)"),
    ("exp", 300, r"field exp out of range: min 300, max 300 \(allowed: 0\.\.255\)"),
    ("mu", 2, r"field mu out of range"),
    ("sign", -1, r"field sign out of range"),
])
def test_to_words_refuses_out_of_range_fields(field, value, pattern):
    m = _fields()
    t = getattr(m, field).clone()
    t.view(-1)[-1] = value
    bad = _fields(**{field: t})
    with pytest.raises(ValueError, match=pattern):
        mx8.to_words(bad)
    with pytest.raises(ValueError, match=pattern):
        mx8.pack(bad)


def test_scalar_to_words_refuses_out_of_range():
    s = MX8Scalar(torch.tensor([127]), torch.tensor([0]), torch.tensor([0]), torch.tensor([64]))
    with pytest.raises(ValueError, match="field mag out of range"):
        mx8.scalar_to_words(s)


# ------------------------------------------------------------------- pre-drawn random bits

@pytest.mark.parametrize("value", [-5, 300, 10 ** 9])
def test_predrawn_bits_range_checked(value):
    x = torch.full((16,), 1.01)
    bits = torch.full((16,), value, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"pre-drawn random bits out of range.*0\.\.255"):
        mx8.quantize(x, "stochastic", rng=bits)
    with pytest.raises(ValueError, match="pre-drawn random bits out of range"):
        formats.quantize(x, "fp16", "stochastic", rng=bits)
    a = mx8.encode(torch.ones(1, 16))
    with pytest.raises(ValueError, match="pre-drawn random bits out of range"):
        spe.mul(a, a, spe.SPEConfig(), torch.full((1, 16), value))


def test_predrawn_bits_must_be_integers():
    with pytest.raises(TypeError, match="integer tensor"):
        mx8.quantize(torch.ones(16), "stochastic", rng=torch.full((16,), 3.0))


# ------------------------------------------------------------------------ attention_attend

def test_attend_refuses_more_scores_than_tokens():
    vals = mx8.encode(torch.ones(2, 32))
    s = mx8.encode(torch.ones(16)).scalars()
    three = MX8Scalar(s.exp[:3], s.mu[:3], s.sign[:3], s.mag[:3])
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\).*got \(3,\)"):
        spe.attention_attend(vals, three, rng=0)
