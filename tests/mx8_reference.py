"""A slow, obviously-correct scalar reference of the MX8 specification (docs/mx8.md).

Written separately from ``quant/`` on purpose: plain Python integers and ``Fraction``s, one
group or sub-chunk at a time, following the prose of the spec rather than the vectorised
code. Groups are dicts ``{"E": int, "mu": [8 ints], "s": [16 ints], "m": [16 ints]}``.
"""

from __future__ import annotations

import math
from fractions import Fraction

NAN_GROUP = {"E": 255, "mu": [0] * 8, "s": [0] * 16, "m": [0] * 16}
ZERO_GROUP = {"E": 0, "mu": [0] * 8, "s": [0] * 16, "m": [0] * 16}


def copy_group(g):
    return {"E": g["E"], "mu": list(g["mu"]), "s": list(g["s"]), "m": list(g["m"])}


def value(g, i) -> Fraction | float:
    """Exact value of element i (NaN as float nan)."""
    if g["E"] == 255:
        return math.nan
    mu = g["mu"][i // 2]
    v = Fraction(g["m"][i]) * Fraction(2) ** (g["E"] - 127 - mu - 5)
    return -v if g["s"][i] else v


def round_mag_unsaturated(exact: Fraction, rounding: str, r: int, rand: int) -> int:
    if rounding == "nearest":
        return math.floor(exact + Fraction(1, 2))
    return (math.floor(exact * 2 ** r) + rand) >> r


def round_mag(exact: Fraction, rounding: str, r: int, rand: int) -> int:
    """Spec rounding of a non-negative exact magnitude (in LSB units) to 0..63."""
    return min(round_mag_unsaturated(exact, rounding, r, rand), 63)


def canonical(E, mu, s, m):
    if E > 254:
        return copy_group(NAN_GROUP)
    if all(x == 0 for x in m):
        return copy_group(ZERO_GROUP)
    s = [si if mi else 0 for si, mi in zip(s, m)]
    return {"E": E, "mu": list(mu), "s": s, "m": list(m)}


def encode_group(xs, rounding="nearest", r=8, rands=None, overflow="saturate"):
    """16 Python floats (fp32 values) -> group dict. ``overflow="carry"``: an element whose
    magnitude rounds to 64 (below the NaN exponent) is replaced by that power of two and the
    group is encoded again with the same random bits."""
    rands = rands or [0] * 16
    if overflow == "carry":
        g = encode_group(xs, rounding, r, rands)
        if g["E"] in (0, 255):
            return g
        redo = list(xs)
        for i, x in enumerate(xs):
            if g["m"][i] != 63 or abs(x) < 2.0 ** -126:
                continue
            mu = g["mu"][i // 2]
            unit = Fraction(2) ** (g["E"] - 127 - mu - 5)
            if round_mag_unsaturated(Fraction(abs(x)) / unit, rounding, r, rands[i]) >= 64 \
                    and g["E"] - mu < 254:
                redo[i] = math.copysign(float(64 * unit), x)
        return encode_group(redo, rounding, r, rands) if redo != list(xs) else g
    if any(math.isnan(x) or math.isinf(x) for x in xs):
        return copy_group(NAN_GROUP)
    exps = []
    for x in xs:
        if abs(x) < 2.0 ** -126:  # zero or fp32 denormal: flushed, no exponent
            exps.append(None)
        else:
            exps.append(math.frexp(abs(x))[1] - 1 + 127)
    present = [e for e in exps if e is not None]
    if not present:
        return copy_group(ZERO_GROUP)
    E = max(present)
    mu = []
    for j in range(8):
        below = [exps[2 * j + t] is None or exps[2 * j + t] < E for t in range(2)]
        mu.append(1 if all(below) else 0)
    m, s = [], []
    for i, x in enumerate(xs):
        if exps[i] is None:
            m.append(0)
            s.append(0)
            continue
        unit = Fraction(2) ** (E - 127 - mu[i // 2] - 5)
        m.append(round_mag(Fraction(abs(x)) / unit, rounding, r, rands[i]))
        s.append(1 if x < 0 else 0)
    return canonical(E, mu, s, m)


def mul_group(a, b, renorm="lod", rounding="nearest", r=8, rands=None):
    """Element-wise product of two groups."""
    rands = rands or [0] * 16
    if a["E"] == 255 or b["E"] == 255:
        return copy_group(NAN_GROUP)
    Ep = a["E"] + b["E"] - 127
    musum = [a["mu"][j] + b["mu"][j] for j in range(8)]
    mur = [min(x, 1) for x in musum]
    # exact magnitude of each product at its pair's result scale, per unit 2**(Ep-127-mur-10)
    p = [a["m"][i] * b["m"][i] for i in range(16)]
    at_pair = [Fraction(p[i], 2 if musum[i // 2] == 2 else 1) for i in range(16)]
    if renorm == "fixed":
        Er = Ep + 1
    else:  # smallest Er >= Ep - 5 at which every product is below 64 at its pair's scale
        Er = Ep - 5
        while any(x * Fraction(2) ** (Ep - 5 - Er) >= 64 for x in at_pair):
            Er += 1
    Er = max(Er, 0)
    # magnitude at Er: value / 2**(Er-127-mur-5) = at_pair * 2**(Ep-127-mur-10 - (Er-127-mur-5))
    m = [round_mag(at_pair[i] * Fraction(2) ** (Ep - 5 - Er), rounding, r, rands[i])
         for i in range(16)]
    s = [a["s"][i] ^ b["s"][i] for i in range(16)]
    return canonical(Er, mur, s, m)


def add_group(a, b, renorm="lod", rounding="nearest", r=8, rands=None, frac=8):
    """Sum of two groups."""
    rands = rands or [0] * 16
    if a["E"] == 255 or b["E"] == 255:
        return copy_group(NAN_GROUP)
    E0 = max(a["E"], b["E"])
    total = []
    for i in range(16):
        acc = 0
        for g in (a, b):
            dist = E0 - g["E"] + g["mu"][i // 2]
            t = (g["m"][i] << frac) >> dist  # magnitude truncated to `frac` fraction bits
            acc += -t if g["s"][i] else t
        total.append(acc)  # units of 2**(E0-127-5-frac)
    vmax = max(abs(x) for x in total)
    if renorm == "fixed":
        Er = E0 + (1 if vmax >= 64 << frac else 0)
    else:  # leading one of the largest sum lands in magnitude bit 5
        Er = E0
        if vmax:
            while Fraction(vmax, 2 ** frac) * Fraction(2) ** (E0 - Er) >= 64:
                Er += 1
            while Fraction(vmax, 2 ** frac) * Fraction(2) ** (E0 - Er) < 32:
                Er -= 1
    Er = max(Er, 0)
    m = [round_mag(Fraction(abs(x), 2 ** frac) * Fraction(2) ** (E0 - Er), rounding, r,
                   rands[i]) for i, x in enumerate(total)]
    s = [1 if x < 0 else 0 for x in total]
    return canonical(Er, [0] * 8, s, m)


def dot_subchunk(a_groups, b_groups, guard=8):
    """Dot product of two sub-chunks (2 groups each) -> (Y, X)."""
    if any(g["E"] == 255 for g in a_groups + b_groups):
        return 0, 0x1FF
    parts = []
    for ga, gb in zip(a_groups, b_groups):
        A = 0
        for i in range(16):
            musum = ga["mu"][i // 2] + gb["mu"][i // 2]
            term = ga["m"][i] * gb["m"][i] * 2 ** (2 - musum)
            A += -term if ga["s"][i] ^ gb["s"][i] else term
        parts.append((A, ga["E"] + gb["E"]))
    live = [x for A, x in parts if A != 0]
    X = max(live) if live else 0
    Y = sum((A << guard) // 2 ** max(X - x, 0) for A, x in parts)
    return Y, X


def dot_value(Y, X, guard=8):
    return Fraction(Y) * Fraction(2) ** (X - 254 - 12 - guard)
