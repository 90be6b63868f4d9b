"""Slow scalar reference of the INT8G32 state update, written from docs/spe_int8.md with
exact rationals (``fractions.Fraction``), independent of ``quant.fparith`` and
``quant.spe_int8``. Not a test module: tests/test_spe_int8.py imports it.

fp16 values are handled as ``(kind, sign, mag)`` with ``kind`` in ``{"num", "inf", "nan"}``
and ``mag`` a non-negative Fraction (so -0 keeps its sign).
"""

from __future__ import annotations

import math
from fractions import Fraction

C_BITS = 0x2008
NAN_BITS = 0x7E00
INF_BITS = 0x7C00
EMIN = -14                 # exponent of the smallest normal
QUANTUM = Fraction(1, 1 << 24)
MAX_FINITE = Fraction(65504)


def fp16(bits: int):
    """Decode an fp16 encoding."""
    sign, exp, man = bits >> 15 & 1, bits >> 10 & 31, bits & 1023
    if exp == 31:
        return ("nan" if man else "inf", sign, None)
    if exp == 0:
        return ("num", sign, man * QUANTUM)
    return ("num", sign, Fraction(1024 + man) * Fraction(2) ** (exp - 25))


def value(bits: int):
    """The fp16 value as a Fraction (finite) or a float (inf/NaN)."""
    kind, sign, mag = fp16(bits)
    if kind == "nan":
        return math.nan
    if kind == "inf":
        return -math.inf if sign else math.inf
    return -mag if sign else mag


def round16(sign: int, mag: Fraction) -> int:
    """Encoding of ``(-1)**sign * mag`` rounded to fp16, nearest-even; overflow -> inf."""
    if mag == 0:
        return sign << 15
    e = math.floor(math.log2(mag))          # may be off by one for huge/small: fix below
    while Fraction(2) ** e > mag:
        e -= 1
    while Fraction(2) ** (e + 1) <= mag:
        e += 1
    qe = max(e, EMIN) - 10                  # exponent of the quantum of that binade
    scaled = mag / Fraction(2) ** qe
    n = math.floor(scaled)
    rem = scaled - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1):
        n += 1
    rounded = n * Fraction(2) ** qe
    if rounded > MAX_FINITE:
        return sign << 15 | INF_BITS
    if rounded < Fraction(2) ** EMIN:       # subnormal (or the smallest normal via n=1024)
        return sign << 15 | n
    if n == 2048:
        n, qe = 1024, qe + 1
    return sign << 15 | (qe + 25) << 10 | (n - 1024)


def mul16(a: int, b: int) -> int:
    """IEEE fp16 product, RNE; NaN results are the canonical NaN."""
    ka, sa, ma = fp16(a)
    kb, sb, mb = fp16(b)
    sign = sa ^ sb
    if "nan" in (ka, kb):
        return NAN_BITS
    if ka == "inf" or kb == "inf":
        if (ka == "num" and ma == 0) or (kb == "num" and mb == 0):
            return NAN_BITS
        return sign << 15 | INF_BITS
    return round16(sign, ma * mb)


def add16(a: int, b: int) -> int:
    """IEEE fp16 sum, RNE; exact zero sums are +0 unless both operands are -0."""
    ka, sa, ma = fp16(a)
    kb, sb, mb = fp16(b)
    if "nan" in (ka, kb):
        return NAN_BITS
    if ka == "inf" and kb == "inf":
        return NAN_BITS if sa != sb else sa << 15 | INF_BITS
    if ka == "inf":
        return sa << 15 | INF_BITS
    if kb == "inf":
        return sb << 15 | INF_BITS
    total = (-ma if sa else ma) + (-mb if sb else mb)
    if total == 0:
        return (sa & sb) << 15
    return round16(1 if total < 0 else 0, abs(total))


def dequant(p: int, a: int) -> int:
    """fp16 of the exact ``p * A`` (one RNE rounding, IEEE specials)."""
    ka, sa, ma = fp16(a)
    sign = (1 if p < 0 else 0) ^ sa
    if ka == "nan" or (ka == "inf" and p == 0):
        return NAN_BITS
    if ka == "inf":
        return sign << 15 | INF_BITS
    return round16(sign, abs(p) * ma)


def requant(ys: list[int], rounding: str, rands: list[int] | None):
    """Step 4 of the spec on one group: ``(q list, sigma')``."""
    if any(fp16(y)[0] != "num" for y in ys):
        return [0] * len(ys), NAN_BITS
    m_bits = max(ys, key=lambda y: fp16(y)[2]) & 0x7FFF
    sigma = mul16(m_bits, C_BITS)
    _, _, s_mag = fp16(sigma)
    if s_mag == 0:
        return [0] * len(ys), 0
    out = []
    for i, y in enumerate(ys):
        _, sy, my = fp16(y)
        quot = my / s_mag
        if rounding == "rne":
            r = math.floor(quot)
            frac = quot - r
            if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and r % 2 == 1):
                r += 1
        else:
            r = (math.floor(quot * 256) + rands[i]) // 256
        r = min(r, 127)
        out.append(-r if sy else r)
    return out, sigma


def update(qs, ss, qd, sd, qk, sk, qv, sv, rounding="rne", rands=None):
    """One operation: lists of 32 ints for the q's, ints for the scales."""
    a = mul16(sd, ss)
    b = mul16(sk, sv)
    ys = [add16(dequant(qd[i] * qs[i], a), dequant(qk[i] * qv, b)) for i in range(len(qs))]
    return requant(ys, rounding, rands)
