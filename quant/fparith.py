"""Bit-exact golden model of the small IEEE-style float units (multiply, add).

The RTL in :mod:`hw.fpmul` and :mod:`hw.fpadd` must reproduce these functions bit for bit.
All functions are vectorised over NumPy arrays of *encodings* (unsigned integers holding the
raw bits of the format).

Formats
-------
``fp16`` (e5m10)
    IEEE 754 binary16: subnormals, ±inf, NaN. Overflow rounds to ±inf (IEEE).
``e4m3`` (``torch.float8_e4m3fn``)
    No infinity; the only NaN encodings are S.1111.111; largest finite value 448.
``e5m2`` (``torch.float8_e5m2``)
    IEEE-like: subnormals, ±inf, NaN.

Reference (round-to-nearest-even)
---------------------------------
* fp16: PyTorch's own ``torch.float16`` arithmetic (``a * b``, ``a + b``).
* fp8: the exact product / sum (computed in float64, exact for these widths), clamped to
  ±max-finite when it is a finite value beyond the range, then converted with PyTorch to the
  fp8 dtype. **Saturation** on overflow is the choice for both fp8 formats (what fp8 hardware
  usually does; a state that saturates is less harmful than one that becomes inf/NaN). An inf
  *operand* of e5m2 still gives inf: only finite overflow saturates.
* NaN results are returned as the format's canonical NaN (:attr:`FloatFormat.nan_bits`,
  positive, quiet); NaN payloads are not propagated. Every non-NaN result is bit-exact,
  including the sign of zero (``x + (-x) = +0``, ``(-0) + (-0) = -0``).

Stochastic rounding (SR)
------------------------
Defined at the integer level. Let the exact result be ``x`` and ``q`` the quantum (ulp) of
the result's binade (the subnormal quantum below the normal range). With ``r`` random bits
``R`` (an integer in ``[0, 2**r)``), the rounded magnitude is::

    |result| = q * floor((floor(|x| / q * 2**r) + R) / 2**r)

i.e. ``R`` is added ``r`` bits below the kept LSB of the magnitude and the sum is truncated.
Bits of ``|x|`` more than ``r`` places below the LSB do not matter (adding an integer and
flooring commutes with the inner floor). A carry out of the significand moves the result to the
next binade. The result keeps the sign of ``x``; an exact zero is ``+0`` except
``(-0) + (-0) = -0`` and signed zero products. Overflow (a rounded magnitude above max-finite)
gives inf for fp16 and saturates for fp8, as with round-to-nearest-even.
"""

from __future__ import annotations

import numpy as np
import torch

from .fpformat import FORMATS, FloatFormat, _fields, canonicalize_nan, decode, get_format

__all__ = [
    "FloatFormat", "FORMATS", "get_format", "decode", "canonicalize_nan",
    "ref_mul", "ref_add", "model_mul", "model_add", "round_exact",
]


def _torch_dtype(fmt: FloatFormat) -> torch.dtype:
    """The ``torch`` dtype of ``fmt``."""
    return getattr(torch, fmt.torch_dtype)


def _to_torch_bits(values: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(_torch_dtype(fmt))
    raw = t.view(torch.uint8 if fmt.width == 8 else torch.int16)
    return raw.numpy().astype(np.int64) & ((1 << fmt.width) - 1)


def _from_bits_torch(bits, fmt: FloatFormat) -> torch.Tensor:
    bits = np.asarray(bits, dtype=np.int64) & ((1 << fmt.width) - 1)
    if fmt.width == 8:
        return torch.from_numpy(bits.astype(np.uint8)).view(_torch_dtype(fmt))
    return torch.from_numpy(bits.astype(np.uint16).view(np.int16)).view(_torch_dtype(fmt))


def _torch_reference(exact: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """fp8 path: clamp a finite exact result to ±max-finite, then convert with PyTorch."""
    mx = fmt.max_finite
    clamped = np.where(np.isfinite(exact), np.clip(exact, -mx, mx), exact)
    return canonicalize_nan(_to_torch_bits(clamped, fmt), fmt)


# ---------------------------------------------------------------------------------------------
# Round-to-nearest-even reference (PyTorch)

def ref_mul(a, b, fmt: FloatFormat | str, *, rounding: str = "rne", rand=None,
            sr_bits: int | None = None) -> np.ndarray:
    """Reference product encodings ``a * b``.

    Parameters
    ----------
    a, b : array_like of int
        Operand encodings.
    fmt : FloatFormat or str
        Format of operands and result.
    rounding : {"rne", "sr"}
        Round-to-nearest-even (PyTorch reference) or stochastic rounding (integer model).
    rand : array_like of int, optional
        Random integers in ``[0, 2**sr_bits)``, one per element (``rounding="sr"``).
    sr_bits : int, optional
        Number of random bits ``r`` (``rounding="sr"``).
    """
    fmt = get_format(fmt)
    if rounding == "sr":
        return model_mul(a, b, fmt, rounding="sr", rand=rand, sr_bits=sr_bits)
    _check_rounding(rounding)
    if fmt.name == "fp16":
        out = _from_bits_torch(a, fmt) * _from_bits_torch(b, fmt)
        bits = out.view(torch.int16).numpy().astype(np.int64) & 0xFFFF
        return canonicalize_nan(bits, fmt)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = decode(a, fmt) * decode(b, fmt)
    return _torch_reference(exact, fmt)


def ref_add(a, b, fmt: FloatFormat | str, *, rounding: str = "rne", rand=None,
            sr_bits: int | None = None) -> np.ndarray:
    """Reference sum encodings ``a + b`` (parameters as :func:`ref_mul`)."""
    fmt = get_format(fmt)
    if rounding == "sr":
        return model_add(a, b, fmt, rounding="sr", rand=rand, sr_bits=sr_bits)
    _check_rounding(rounding)
    if fmt.name == "fp16":
        out = _from_bits_torch(a, fmt) + _from_bits_torch(b, fmt)
        bits = out.view(torch.int16).numpy().astype(np.int64) & 0xFFFF
        return canonicalize_nan(bits, fmt)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = decode(a, fmt) + decode(b, fmt)
    return _torch_reference(exact, fmt)


def _check_rounding(rounding):
    if rounding not in ("rne", "sr"):
        raise ValueError(f"rounding must be 'rne' or 'sr', not {rounding!r}")


# ---------------------------------------------------------------------------------------------
# Integer-level model (defines SR; cross-checked against PyTorch for RNE)

def _bitlen(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2**52 (exact through float64)."""
    _, e = np.frexp(x.astype(np.float64))
    return np.where(x == 0, 0, e).astype(np.int64)


def round_exact(sign, mag, e2, fmt: FloatFormat | str, *, rounding: str = "rne",
                rand=None, sr_bits: int | None = None) -> np.ndarray:
    """Round the exact values ``(-1)**sign * mag * 2**e2`` to encodings of ``fmt``.

    ``mag`` must be a non-negative integer below 2**52. Zero magnitudes give a zero with the
    given sign. See the module docstring for the SR definition.
    """
    fmt = get_format(fmt)
    _check_rounding(rounding)
    sign = np.asarray(sign, dtype=np.int64)
    mag = np.asarray(mag, dtype=np.int64)
    e2 = np.asarray(e2, dtype=np.int64)
    sign, mag, e2 = np.broadcast_arrays(sign, mag, e2)
    man = fmt.man_bits
    qmin = 1 - fmt.bias - man                    # exponent of the subnormal quantum
    qexp = np.maximum(_bitlen(mag) - 1 + e2 - man, qmin)
    shift = qexp - e2                             # > 0: bits to drop
    lsh = np.clip(-shift, 0, 62)
    rsh = np.clip(shift, 0, 62)
    kept = np.where(shift <= 0, mag << lsh, mag >> rsh)
    rem = np.where(shift <= 0, 0, mag & ((np.int64(1) << rsh) - 1))
    if rounding == "rne":
        half = np.where(rsh > 0, np.int64(1) << np.maximum(rsh - 1, 0), 0)
        inc = (rsh > 0) & ((rem > half) | ((rem == half) & ((kept & 1) == 1)))
    else:
        if sr_bits is None or not (1 <= int(sr_bits) <= 24):
            raise ValueError(f"sr_bits must be an int in 1..24, not {sr_bits!r}")
        r = int(sr_bits)
        if rand is None:
            raise ValueError("rounding='sr' needs rand")
        rand = np.broadcast_to(np.asarray(rand, dtype=np.int64), mag.shape)
        if np.any((rand < 0) | (rand >= (1 << r))):
            raise ValueError(f"rand values must lie in [0, 2**{r})")
        # floor(rem / 2**rsh * 2**r): the r bits just below the kept LSB
        frac = np.where(rsh >= r, rem >> np.clip(rsh - r, 0, 62), rem << np.clip(r - rsh, 0, 62))
        inc = ((frac + rand) >> r) == 1
    kept = kept + inc.astype(np.int64)
    carry = kept >> (man + 1) == 1
    kept = np.where(carry, kept >> 1, kept)
    qexp = qexp + carry
    normal = kept >= (1 << man)
    exp_field = np.where(normal, qexp + man + fmt.bias, 0)
    mag_bits = (np.maximum(exp_field, 0) << man) | (kept & ((1 << man) - 1))
    overflow = (exp_field > fmt.exp_max_field) | (mag_bits > fmt.max_finite_bits)
    over_bits = fmt.max_finite_bits if fmt.saturate else fmt.inf_bits
    mag_bits = np.where(overflow, over_bits, mag_bits)
    mag_bits = np.where(mag == 0, 0, mag_bits)
    return (sign << (fmt.width - 1)) | mag_bits


def _specials(result, nan, inf, inf_sign, fmt):
    if fmt.has_inf:
        result = np.where(inf, (inf_sign << (fmt.width - 1)) | fmt.inf_bits, result)
    return np.where(nan, fmt.nan_bits, result)


def model_mul(a, b, fmt: FloatFormat | str, *, rounding: str = "rne", rand=None,
              sr_bits: int | None = None) -> np.ndarray:
    """Integer-level model of ``a * b`` (parameters as :func:`ref_mul`)."""
    fmt = get_format(fmt)
    sa, ma, ea, na, ia = _fields(a, fmt)
    sb, mb, eb, nb, ib = _fields(b, fmt)
    sign = sa ^ sb
    res = round_exact(sign, ma * mb, ea + eb, fmt, rounding=rounding, rand=rand,
                      sr_bits=sr_bits)
    zero_a = (ma == 0) & ~ia & ~na
    zero_b = (mb == 0) & ~ib & ~nb
    nan = na | nb | (ia & zero_b) | (ib & zero_a)
    return _specials(res, nan, ia | ib, sign, fmt)


def model_add(a, b, fmt: FloatFormat | str, *, rounding: str = "rne", rand=None,
              sr_bits: int | None = None) -> np.ndarray:
    """Integer-level model of ``a + b`` (parameters as :func:`ref_add`; ``man_bits <= 11``)."""
    fmt = get_format(fmt)
    sa, ma, ea, na, ia = _fields(a, fmt)
    sb, mb, eb, nb, ib = _fields(b, fmt)
    # An operand more than man + 28 binades below the other only acts as a sticky bit (it
    # sits below every bit that RNE or SR with <= 24 random bits looks at): replace it by the
    # smallest nonzero value at that distance, which keeps magnitudes below 2**52.
    far = fmt.man_bits + 28
    b_far = eb < ea - far
    a_far = ea < eb - far
    mb, eb = np.where(b_far, np.sign(mb), mb), np.where(b_far, ea - far, eb)
    ma, ea = np.where(a_far, np.sign(ma), ma), np.where(a_far, eb - far, ea)
    emin = np.minimum(ea, eb)
    va = np.where(sa == 1, -1, 1) * (ma << (ea - emin))
    vb = np.where(sb == 1, -1, 1) * (mb << (eb - emin))
    total = va + vb
    # exact zero: +0, unless both operands are -0 (or both negative zero-valued)
    sign = np.where(total < 0, 1, np.where(total > 0, 0, sa & sb))
    res = round_exact(sign, np.abs(total), emin, fmt, rounding=rounding, rand=rand,
                      sr_bits=sr_bits)
    nan = na | nb | (ia & ib & (sa != sb))
    inf_sign = np.where(ia, sa, sb)
    return _specials(res, nan, ia | ib, inf_sign, fmt)
