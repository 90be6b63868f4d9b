"""Study formats: IEEE-style floats match torch's conversions; int8; stochastic rounding."""

import math

import pytest
import torch

from quant import formats
from quant.rng import LFSRStream

TORCH_TYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "e4m3": torch.float8_e4m3fn,
               "e5m2": torch.float8_e5m2}


def sample(seed=0, n=200_000):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-40, 40, (n,), generator=g)
                                                  .float())
    extra = torch.tensor([65504.0, 65519.9, 65520.0, 1e9, -1e9, 6e-8, 3e-8, 2.98e-8, 448.0,
                          464.0, 500.0, 57344.0, 61440.0, math.inf, -math.inf, math.nan,
                          0.0, -0.0, 1e-45])
    return torch.cat([x, extra])


@pytest.mark.parametrize("fmt", list(TORCH_TYPES))
def test_nearest_matches_torch(fmt):
    x = sample()
    got = formats.quantize(x, fmt)
    want = x.to(TORCH_TYPES[fmt]).to(torch.float32)
    f = formats.FLOAT_FORMATS[fmt]
    if f.saturate:  # documented choice: fp8 overflow saturates instead of NaN / inf
        over = (x.abs() > f.max_finite) & ~torch.isnan(x)
        want = torch.where(over, torch.sign(x) * f.max_finite, want)
    same = (got == want) | (torch.isnan(got) & torch.isnan(want))
    assert bool(same.all()), (x[~same][:5], got[~same][:5], want[~same][:5])
    assert torch.equal(torch.signbit(got[-3:-1]), torch.signbit(x[-3:-1]))


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "e4m3", "e5m2", "int8", "mx8"])
def test_stochastic_is_unbiased_and_on_grid(fmt):
    n = 1 << 15
    base = torch.randn(64, generator=torch.Generator().manual_seed(1)).repeat(n // 64 * 32, 1)
    base = base.reshape(-1, 64)
    y = formats.quantize(base, fmt, "stochastic", rbits=12, rng=LFSRStream(4242))
    mean = y.double().mean(0)
    lo = formats.quantize(base[:1], fmt).double()[0]
    # every draw is one of the two neighbours of the value; the mean converges to the value
    spread = (y.double() - base.double()).abs().amax(0)
    tol = 6 * spread / math.sqrt(y.shape[0]) + spread * 2 ** -10
    assert bool(((mean - base[0].double()).abs() <= tol + 1e-12).all())
    assert bool((formats.quantize(y, fmt) == y).all())  # stochastic results are representable
    assert lo.shape == mean.shape


def test_int8_group_scale():
    x = torch.randn(8, 64)
    y = formats.quantize(x, "int8")
    scale = x.reshape(8, 2, 32).abs().amax(-1, keepdim=True) / 127
    assert bool(((y - x).reshape(8, 2, 32).abs() <= scale / 2 + 1e-7).all())
    assert torch.equal(formats.quantize(torch.zeros(2, 32), "int8"), torch.zeros(2, 32))
    with pytest.raises(ValueError, match="multiple of 32"):
        formats.quantize(torch.randn(4, 16), "int8")


def test_errors():
    with pytest.raises(ValueError, match="unsupported format"):
        formats.quantize(torch.randn(32), "fp4")
    with pytest.raises(TypeError, match="floating-point"):
        formats.quantize(torch.ones(32, dtype=torch.int64), "fp16")
