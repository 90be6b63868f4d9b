"""Small binary floating-point formats (fp16, e4m3, e5m2): their parameters and decoding.

Torch-free (NumPy only), so that the RTL (``hw/``) reads the formats without importing torch;
the arithmetic's golden model is :mod:`quant.fparith`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FloatFormat", "FORMATS", "get_format", "decode", "canonicalize_nan"]


@dataclass(frozen=True)
class FloatFormat:
    """A small binary floating-point format.

    Parameters
    ----------
    name : str
        Short name (``fp16``, ``e4m3``, ``e5m2``).
    exp_bits : int
        Exponent field width.
    man_bits : int
        Stored mantissa (fraction) width, without the hidden bit.
    has_inf : bool
        IEEE-style specials (exponent all ones: inf when the fraction is 0, NaN otherwise).
        When false (``fn`` formats) there is no inf and only S.1…1.1…1 is NaN.
    saturate : bool
        Finite overflow gives ±max-finite instead of ±inf.
    torch_dtype : str
        Name of the matching ``torch`` dtype.
    """

    name: str
    exp_bits: int
    man_bits: int
    has_inf: bool
    saturate: bool
    torch_dtype: str

    def __post_init__(self):
        if not (2 <= self.exp_bits <= 8):
            raise ValueError(f"exp_bits must be in 2..8, not {self.exp_bits}")
        if not (1 <= self.man_bits <= 23):
            raise ValueError(f"man_bits must be in 1..23, not {self.man_bits}")

    @property
    def width(self) -> int:
        """Total encoding width (sign + exponent + mantissa)."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        """Exponent bias, ``2**(exp_bits-1) - 1``."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def exp_max_field(self) -> int:
        """The all-ones exponent field."""
        return (1 << self.exp_bits) - 1

    @property
    def max_finite_bits(self) -> int:
        """Magnitude encoding (no sign) of the largest finite value."""
        if self.has_inf:
            return ((self.exp_max_field - 1) << self.man_bits) | ((1 << self.man_bits) - 1)
        return (self.exp_max_field << self.man_bits) | ((1 << self.man_bits) - 2)

    @property
    def inf_bits(self) -> int:
        """Magnitude encoding of +inf (formats with inf only)."""
        if not self.has_inf:
            raise ValueError(f"format {self.name} has no infinity")
        return self.exp_max_field << self.man_bits

    @property
    def nan_bits(self) -> int:
        """Canonical NaN: positive, quiet (top fraction bit set; all ones for fn formats)."""
        if self.has_inf:
            return (self.exp_max_field << self.man_bits) | (1 << (self.man_bits - 1))
        return (self.exp_max_field << self.man_bits) | ((1 << self.man_bits) - 1)

    @property
    def max_finite(self) -> float:
        """Largest finite value."""
        return float(decode(np.array([self.max_finite_bits]), self)[0])


FORMATS: dict[str, FloatFormat] = {
    "fp16": FloatFormat("fp16", 5, 10, has_inf=True, saturate=False, torch_dtype="float16"),
    "e4m3": FloatFormat("e4m3", 4, 3, has_inf=False, saturate=True,
                        torch_dtype="float8_e4m3fn"),
    "e5m2": FloatFormat("e5m2", 5, 2, has_inf=True, saturate=True, torch_dtype="float8_e5m2"),
}


def get_format(fmt: FloatFormat | str) -> FloatFormat:
    """Return a :class:`FloatFormat` given one or its name."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown float format {fmt!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


# ---------------------------------------------------------------------------------------------
# Decoding helpers

def _fields(bits, fmt: FloatFormat):
    bits = np.asarray(bits, dtype=np.int64) & ((1 << fmt.width) - 1)
    sign = (bits >> (fmt.width - 1)) & 1
    exp = (bits >> fmt.man_bits) & fmt.exp_max_field
    man = bits & ((1 << fmt.man_bits) - 1)
    if fmt.has_inf:
        is_nan = (exp == fmt.exp_max_field) & (man != 0)
        is_inf = (exp == fmt.exp_max_field) & (man == 0)
    else:
        is_nan = (exp == fmt.exp_max_field) & (man == (1 << fmt.man_bits) - 1)
        is_inf = np.zeros_like(is_nan)
    # value = sig * 2**e2  (integers), for finite encodings
    sig = np.where(exp == 0, man, man | (1 << fmt.man_bits))
    e2 = np.maximum(exp, 1) - fmt.bias - fmt.man_bits
    return sign, sig, e2, is_nan, is_inf


def decode(bits, fmt: FloatFormat | str) -> np.ndarray:
    """Decode encodings to exact float64 values (NaN and ±inf included)."""
    fmt = get_format(fmt)
    sign, sig, e2, is_nan, is_inf = _fields(bits, fmt)
    val = np.ldexp(sig.astype(np.float64), e2)
    val = np.where(is_inf, np.inf, val)
    val = np.where(is_nan, np.nan, val)
    return np.where(sign == 1, -val, val)


def canonicalize_nan(bits, fmt: FloatFormat | str) -> np.ndarray:
    """Replace every NaN encoding by the canonical NaN."""
    fmt = get_format(fmt)
    bits = np.asarray(bits, dtype=np.int64) & ((1 << fmt.width) - 1)
    is_nan = _fields(bits, fmt)[3]
    return np.where(is_nan, fmt.nan_bits, bits)
