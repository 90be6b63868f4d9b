"""Scalar reference of the fused state update (docs/mx8.md section 8a), written from the
spec's prose with Python integers and ``Fraction``s, one group at a time."""

from __future__ import annotations

import math
from fractions import Fraction

from mx8_reference import NAN_GROUP, canonical, copy_group, round_mag


def fused_group(a, b, c, e, rounding="nearest", r=8, rands=None, frac=8):
    """``a * b + c * e`` of four groups, rounded once."""
    rands = rands or [0] * 16
    if any(g["E"] == 255 for g in (a, b, c, e)):
        return copy_group(NAN_GROUP)
    prods = []
    for x, y in ((a, b), (c, e)):
        X = x["E"] + y["E"]
        # exact product of element i is P * 2**(X - 254 - 12), P an integer below 2**14
        P = [x["m"][i] * y["m"][i] * 2 ** (2 - x["mu"][i // 2] - y["mu"][i // 2])
             for i in range(16)]
        assert all(p < 2 ** 14 for p in P)
        s = [x["s"][i] ^ y["s"][i] for i in range(16)]
        prods.append((X, P, s))
    X0 = max(X for X, _, _ in prods)
    total = [0] * 16
    for X, P, s in prods:
        for i in range(16):
            t = math.floor(Fraction(P[i] * 2 ** frac, 2 ** (X0 - X)))  # truncating alignment
            total[i] += -t if s[i] else t
    # total[i] * 2**(X0 - 254 - 12 - frac) is the exact sum of the aligned products
    unit = Fraction(2) ** (X0 - 254 - 12 - frac)
    vmax = max(abs(x) for x in total)
    scale = lambda E: Fraction(2) ** (E - 127 - 5)  # noqa: E731
    Er = 0
    if vmax:  # the exponent that puts the largest |sum| in [32, 64) magnitude units
        Er = X0 - 127
        while vmax * unit / scale(Er) >= 64:
            Er += 1
        while vmax * unit / scale(Er) < 32:
            Er -= 1
    lead = Er  # the group's leading binade is [32, 64) * scale(lead)
    Er = max(Er, 0)
    if Er > 254:
        return copy_group(NAN_GROUP)
    # pairs whose largest |sum| is below the leading binade: mu = 1, rounded one bit finer
    mu = [1 if max(abs(total[2 * j]), abs(total[2 * j + 1])) * unit < 32 * scale(lead) else 0
          for j in range(8)]
    m = [round_mag(abs(x) * unit / scale(Er) * 2 ** mu[i // 2], rounding, r, rands[i])
         for i, x in enumerate(total)]
    s = [1 if x < 0 else 0 for x in total]
    return canonical(Er, mu, s, m)
