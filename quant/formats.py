"""The number formats of the accuracy study, each with round-to-nearest and stochastic rounding.

``quantize(x, fmt, rounding, rbits=8, rng=None)`` returns the float32 values of ``x`` after
rounding to ``fmt``:

========  =========================================================================
``fp32``  identity (the reference)
``fp16``  IEEE binary16: round-to-nearest-even, subnormals, overflow to +-inf
``bf16``  bfloat16: round-to-nearest-even, subnormals, overflow to +-inf
``e4m3``  OCP fp8 E4M3 (``torch.float8_e4m3fn``: no inf); overflow *saturates* to +-448
``e5m2``  OCP fp8 E5M2; overflow *saturates* to +-57344 (the usual hardware choice)
``int8``  symmetric int8 per group of 32 along the last dimension: ``scale = absmax / 127``
          (fp32), ``q = clamp(round(x / scale), -127, 127)``; round half to even
``mx8``   the MX8 block format of :mod:`quant.mx8` (round half away from zero)
========  =========================================================================

Stochastic rounding, for every format: the exact magnitude in units of the format's LSB at
that value is truncated to ``r`` fraction bits, an ``r``-bit random integer is added and the
fraction dropped (as in :func:`quant.mx8.round_shifted`). It acts on the magnitude, so it is
sign-symmetric. One random integer per element, row-major, from ``rng``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import mx8
from .constants import INT8_GROUP
from .mx8 import _draw, check_rounding
from .rng import RandomSource

__all__ = ["FORMATS", "FloatFormat", "FLOAT_FORMATS", "INT8_GROUP", "quantize", "bits_of"]

FORMATS = ("fp32", "fp16", "bf16", "int8", "e4m3", "e5m2", "mx8")


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: ``exp_bits``, ``man_bits`` (stored fraction bits),
    ``bias``; ``max_finite``; ``saturate``: overflow gives +-max_finite instead of +-inf."""

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    max_finite: float
    saturate: bool

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias


FLOAT_FORMATS = {
    "fp16": FloatFormat("fp16", 5, 10, 15, 65504.0, False),
    "bf16": FloatFormat("bf16", 8, 7, 127, float(torch.finfo(torch.bfloat16).max), False),
    "e4m3": FloatFormat("e4m3", 4, 3, 7, 448.0, True),
    "e5m2": FloatFormat("e5m2", 5, 2, 15, 57344.0, True),
}

#: storage bits per value (int8 and mx8 include their shared scales)
bits_of = {"fp32": 32, "fp16": 16, "bf16": 16, "e4m3": 8, "e5m2": 8,
           "int8": 8 + 32 / INT8_GROUP, "mx8": 8}


def _round_units(q: torch.Tensor, rounding: str, rbits: int, rand) -> torch.Tensor:
    """Round non-negative float64 ``q`` (a magnitude in LSB units) to an integer."""
    if rounding == "nearest":
        return torch.round(q)  # half to even
    t = torch.floor(torch.ldexp(q, torch.tensor(rbits, dtype=torch.int32)))
    return torch.floor((t + rand.to(torch.float64)) / (1 << rbits))


def _float_quantize(x: torch.Tensor, f: FloatFormat, rounding: str, rbits: int,
                    rand) -> torch.Tensor:
    ax = x.to(torch.float64).abs()
    ex = torch.frexp(ax).exponent - 1  # floor(log2|x|) for x != 0
    lsb_exp = torch.clamp(ex, min=f.emin) - f.man_bits
    q = torch.ldexp(ax, -lsb_exp)  # exact power-of-two scaling
    mag = torch.ldexp(_round_units(q, rounding, rbits, rand), lsb_exp)
    over = mag > f.max_finite
    mag = torch.where(over, f.max_finite if f.saturate else torch.inf, mag)
    mag = torch.where(torch.isinf(ax), f.max_finite if f.saturate else torch.inf, mag)
    out = torch.where(x < 0, -mag, mag)
    out = torch.where(ax == 0, x.to(torch.float64), out)  # keeps the sign of zero
    return torch.where(torch.isnan(x), torch.nan, out).to(torch.float32)


def _int8_quantize(x: torch.Tensor, rounding: str, rbits: int, rand) -> torch.Tensor:
    if x.dim() == 0 or x.shape[-1] % INT8_GROUP:
        raise ValueError(f"int8 needs a last dimension that is a multiple of {INT8_GROUP}, "
                         f"got shape {tuple(x.shape)}")
    lead = x.shape[:-1]
    xg = x.to(torch.float32).reshape(*lead, -1, INT8_GROUP)
    amax = xg.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = (xg / scale).to(torch.float64)
    r = None if rand is None else rand.reshape(xg.shape)
    qi = _round_units(q.abs(), rounding, rbits, r).clamp(max=127)
    qi = torch.where(q < 0, -qi, qi)
    return (qi.to(torch.float32) * scale).reshape(x.shape)


def quantize(x: torch.Tensor, fmt: str, rounding: str = "nearest", *, rbits: int = 8,
             rng: RandomSource | int | torch.Tensor | None = None) -> torch.Tensor:
    """Round ``x`` to format ``fmt`` and return float32 values of the same shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, not {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"quantization needs a floating-point tensor, not {x.dtype}")
    if fmt not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; choose one of {FORMATS}")
    check_rounding(rounding, rbits)
    if fmt == "mx8":
        return mx8.quantize(x, rounding, rbits=rbits, rng=rng)
    if fmt == "fp32":
        return x.to(torch.float32)
    rand = _draw(rng, x.shape, rounding, rbits)
    if fmt == "int8":
        return _int8_quantize(x, rounding, rbits, rand)
    return _float_quantize(x.to(torch.float32), FLOAT_FORMATS[fmt], rounding, rbits, rand)
