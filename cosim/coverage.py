"""Operand classes of the MX8 units, defined once: a labeller, an enumerator, a coverage table.

Every *class* is a set of *bins* (:data:`CLASSES` per unit kind); :func:`label_batch` puts
each lane (or group, or vector) of any :class:`cosim.mx_vectors.Batch` into its bins, so random
vectors count as well as enumerated ones; :class:`Coverage` counts, per class, the vectors that
hit it and, per bin, the lanes (groups, vectors) that fall in it; :func:`enumerate_batch`
builds a deterministic batch that hits **every** bin of its kind (32 lanes packed per vector).
The benches put the enumeration first (the streaming benches' directed prefix, the bulk mode's
first chunk) and write the table with their counters;
``python -m cosim`` gathers them into ``build/sim/coverage.{json,md}``.

The bins follow the arithmetic of ``docs/mx8.md`` (sections cited):

========================= =====================================================================
class                     bins
========================= =====================================================================
``rounding``              nearest, stochastic (per vector; not the dot product: it never rounds)
``mag_pair``              every (m_a, m_b) of 6-bit magnitudes, 64 x 64, per lane
``sign_pair``             every (s_a, s_b) of non-zero lanes
``mu_pair``               every (mu_a, mu_b) of a lane's pair (the scalar's mu for mul_scalar)
``exp_extreme``           (class E_a, class E_b), class in {0, 1, mid, 254}, non-zero groups
``special_group``         zero / NaN groups in a, b or both, NaN against zero (per group)
``noncanonical``          negative zero lane, zero group with E != 0
``rand``                  every value 0..2^rbits-1 of the random integer a stochastic lane got
                          from the unit's PRBS31 stream (section 3), when the bench passes it
``exp_sum`` (mul)         E_p = E_a + E_b - 127 (section 5): each value around the gradual-
                          underflow (-8..12) and overflow (250..266) points, below, mid, above
``product_shift`` (mul)   the renormalization shift sh = 0..6 of the group (section 5, lod)
``exp_diff`` (add)        E_a - E_b = -16..16 each, and beyond (< -16, > 16)
``align_shift`` (add)     alignment shift E0 - E + mu of a non-zero lane: 0..14, >= 15 (shifted
                          out entirely) (section 6)
``sum`` (add)             lane cancels exactly, group cancels to zero, left renormalization,
                          carry into a 7th bit, saturation (the top magnitude rounds to 64),
                          gradual underflow, exponent overflow (section 6)
``group_exp_diff`` (dot)  X_0 - X_1 of the two groups' X = E_a + E_b: -28..28 each, and beyond
                          (the lower group's 8 guard bits and 28-bit Y; section 7)
``dot_sum`` (dot)         one group cancels, both cancel, negative / positive Y, lower group
                          floored (bits lost), lower group shifted out
``decay.*``, ``outer.*``  (update: the SPU's state update ``s' = d s + k v_j`` on an
                          ``spe_mx8`` slice) the multiplier classes of its two products
========================= =====================================================================

The multiplier has no saturation bin: by section 5 its largest rounded magnitude is
``P / 2^(sh + 1) <= 7938 / 128 < 63`` (with ``mu_sum = 2``: ``3969 / 64 < 63``), so a product
never rounds to 64. The labeller reads operand fields and the spec's exact intermediate
integers (products, aligned addends); it never computes a result, which stays the golden
model's (:mod:`quant.spe`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from quant.mx8 import EXP_NAN, GROUP, MAG_MAX, MX8, MX8Scalar, PAIRS
from quant.mx8 import scalar_to_words as scalar_words
from quant.spe import ADD_FRAC_BITS, DOT_GUARD_BITS, DOT_Y_BITS, RBITS

from .batch import CLASSES as GEN_CLASSES, Batch, subchunk_words

__all__ = ["CLASSES", "Coverage", "class_bins", "enumerate_batch", "enumerate_update",
           "label_batch", "label_update", "merge_tables", "write_report"]

_MAGS = MAG_MAX + 1


def _range_bins(prefix: str, lo: int, hi: int) -> list[str]:
    return [f"{prefix}<{lo}"] + [f"{prefix}={v}" for v in range(lo, hi + 1)] + [f"{prefix}>{hi}"]


_COMMON = {
    "mag_pair": [f"{a},{b}" for a in range(_MAGS) for b in range(_MAGS)],
    "sign_pair": ["++", "+-", "-+", "--"],
    "mu_pair": ["0,0", "0,1", "1,0", "1,1"],
    "exp_extreme": [f"{a},{b}" for a in ("0", "1", "mid", "254") for b in ("0", "1", "mid", "254")],
    "special_group": ["zero_a", "zero_b", "zero_both", "nan_a", "nan_b", "nan_both",
                      "nan_a_zero_b", "zero_a_nan_b"],
    "noncanonical": ["neg_zero", "zero_group_exp"],
}
_ROUNDING = {"rounding": ["nearest", "stochastic"], "rand": [str(r) for r in range(1 << RBITS)]}
_EXP_SUM_LO, _EXP_SUM_HI = (-8, 12), (250, 266)
_MUL = {
    "exp_sum": ([f"Ep<{_EXP_SUM_LO[0]}"]
                + [f"Ep={v}" for v in range(_EXP_SUM_LO[0], _EXP_SUM_LO[1] + 1)] + ["Ep=mid"]
                + [f"Ep={v}" for v in range(_EXP_SUM_HI[0], _EXP_SUM_HI[1] + 1)]
                + [f"Ep>{_EXP_SUM_HI[1]}"]),
    "product_shift": [f"sh={s}" for s in range(7)],
}
_ADD_DIFF = 16
_ADD_SHIFT_OUT = 15  # (m << F) >> s is 0 for s >= 6 + F + 1 = 15
_ADD = {
    "exp_diff": _range_bins("d", -_ADD_DIFF, _ADD_DIFF),
    "align_shift": [f"s={s}" for s in range(_ADD_SHIFT_OUT)] + [f"s>={_ADD_SHIFT_OUT}"],
    "sum": ["lane_cancel", "group_cancel", "renorm_left", "carry", "saturate", "underflow",
            "overflow"],
}
_DOT_DIFF = DOT_Y_BITS
_DOT = {
    "group_exp_diff": _range_bins("d", -_DOT_DIFF, _DOT_DIFF),
    "dot_sum": ["group_cancel", "both_cancel", "negative", "positive", "lower_floored",
                "lower_shifted_out"],
}

#: kind -> class -> bin names.
CLASSES: dict[str, dict[str, list[str]]] = {
    "mul": {**_ROUNDING, **_COMMON, **_MUL},
    "mul_scalar": {**_ROUNDING, **_COMMON, **_MUL},
    "add": {**_ROUNDING, **_COMMON, **_ADD},
    "dot": {**_COMMON, **_DOT},
}


#: The SPU's state update on MX8 (the ``spe_mx8[_sr]`` slices, docs/mx8.md section 8): the
#: operand classes of its two products, ``decay = d * s`` (the multiplier's) and
#: ``outer = k * v_j`` (the broadcast multiplier's), from the port words. The rounding mode is
#: the slice's, its random bits come from its own generators (not labelled here), and the
#: sum's operands are rounded products (the adder's classes are those of ``mx_add``).
CLASSES["update"] = {
    **{f"decay.{c}": b for c, b in CLASSES["mul"].items() if c not in _ROUNDING},
    **{f"outer.{c}": b for c, b in CLASSES["mul_scalar"].items() if c not in _ROUNDING},
}


def class_bins(kind: str) -> dict[str, list[str]]:
    """The classes of unit ``kind`` and their bins."""
    if kind not in CLASSES:
        raise ValueError(f"kind must be one of {tuple(CLASSES)}, not {kind!r}")
    return CLASSES[kind]


# --------------------------------------------------------------------------------------------
# Labelling
# --------------------------------------------------------------------------------------------

def _bitlen(v: torch.Tensor) -> torch.Tensor:
    """bitlen of non-negative integers below 2^53 (exact in float64: frexp's exponent)."""
    return torch.frexp(v.to(torch.float64)).exponent.to(torch.int64)


def _lanes(a: MX8, b):
    """Per-lane (n, 2, 16) fields of both operands, the scalar broadcast."""
    n = a.exp.shape[0]
    shape = a.mag.shape
    if isinstance(b, MX8Scalar):
        eb = b.exp[:, None].expand(n, a.exp.shape[1])
        mub = b.mu[:, None, None].expand(shape)
        sb = b.sign[:, None, None].expand(shape)
        mb = b.mag[:, None, None].expand(shape)
    else:
        eb, mub, sb, mb = b.exp, b.mu.repeat_interleave(2, -1), b.sign, b.mag
    return (a.exp.long(), eb.long(), a.mu.repeat_interleave(2, -1).long(), mub.long(),
            a.sign.long(), sb.long(), a.mag.long(), mb.long())


def _flat(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.reshape(n, -1)


def label_batch(batch, *, rand=None, rbits: int = RBITS) -> dict[str, torch.Tensor]:
    """Bins of every vector of ``batch``: class -> (n, k) int64 bin indices, -1 = none.

    ``rand``: ``(indices, bits)`` — the vectors that rounded stochastically and the
    ``(len(indices), 32)`` random integers their lanes got (:meth:`Expect.last_draws`).
    """
    kind = batch.kind
    bins = class_bins(kind)
    a, b = batch.a, batch.b
    n = len(batch)
    ea, eb, mua, mub, sa, sb, ma, mb = _lanes(a, b)
    none = torch.tensor(-1)
    nan_a, nan_b = ea == EXP_NAN, eb == EXP_NAN
    zero_a, zero_b = (ma == 0).all(-1) & ~nan_a, (mb == 0).all(-1) & ~nan_b
    live = ~(nan_a | nan_b)                                     # (n, 2)
    lane_live = live[..., None].expand(ma.shape)
    out: dict[str, torch.Tensor] = {}
    if "rounding" in bins:
        out["rounding"] = batch.stoch.long()[:, None]
    out["mag_pair"] = _flat(torch.where(lane_live, ma * _MAGS + mb, none), n)
    nz = lane_live & (ma != 0) & (mb != 0)
    out["sign_pair"] = _flat(torch.where(nz, sa * 2 + sb, none), n)
    both = live & ~zero_a & ~zero_b
    out["mu_pair"] = _flat(torch.where(both[..., None], mua * 2 + mub, none), n)

    def ecls(e):
        return torch.where(e == 0, 0, torch.where(e == 1, 1, torch.where(e == EXP_NAN - 1, 3,
                                                                          2)))
    out["exp_extreme"] = torch.where(both, ecls(ea) * 4 + ecls(eb), none)
    sg = torch.full_like(ea, -1)
    names = bins["special_group"]
    for name, m in (("zero_a", zero_a & ~zero_b & ~nan_b), ("zero_b", zero_b & ~zero_a & ~nan_a),
                    ("zero_both", zero_a & zero_b), ("nan_a", nan_a & ~nan_b & ~zero_b),
                    ("nan_b", nan_b & ~nan_a & ~zero_a), ("nan_both", nan_a & nan_b),
                    ("nan_a_zero_b", nan_a & zero_b), ("zero_a_nan_b", zero_a & nan_b)):
        sg = torch.where(m, names.index(name), sg)
    out["special_group"] = sg
    negz = ((ma == 0) & (sa == 1) & ~nan_a[..., None]) | ((mb == 0) & (sb == 1)
                                                          & ~nan_b[..., None])
    zexp = (zero_a & (ea != 0)) | (zero_b & (eb != 0))
    out["noncanonical"] = torch.cat([torch.where(negz.any(-1).any(-1), 0, -1)[:, None],
                                     torch.where(zexp.any(-1), 1, -1)[:, None]], 1)
    if "rand" in bins:
        r = torch.full((n, 2 * GROUP), -1, dtype=torch.int64)
        if rand is not None and len(rand[0]):
            idx, bits = rand
            r[torch.as_tensor(idx).long()] = torch.as_tensor(bits).long().reshape(len(idx), -1)
        out["rand"] = r
    if kind in ("mul", "mul_scalar"):
        ep = ea + eb - 127
        lo, hi = _EXP_SUM_LO, _EXP_SUM_HI
        k = torch.where(ep < lo[0], 0, torch.where(ep <= lo[1], 1 + ep - lo[0], torch.where(
            ep < hi[0], 2 + lo[1] - lo[0], torch.where(ep <= hi[1], 3 + lo[1] - lo[0] + ep - hi[0],
                                                       4 + lo[1] - lo[0] + hi[1] - hi[0]))))
        out["exp_sum"] = torch.where(both, k, none)
        big = (ma * mb) << (1 - (mua + mub == 2).long())
        sh = (_bitlen(big.amax(-1)) - 7).clamp(min=0)
        out["product_shift"] = torch.where(both, sh, none)
    elif kind == "add":
        d = ea - eb
        out["exp_diff"] = torch.where(both, (d.clamp(-_ADD_DIFF - 1, _ADD_DIFF + 1)
                                             + _ADD_DIFF + 1), none)
        e0 = torch.maximum(torch.where(zero_a, 0, ea), torch.where(zero_b, 0, eb))[..., None]
        s_a, s_b = e0 - ea[..., None] + mua, e0 - eb[..., None] + mub
        shifts = torch.cat([torch.where(lane_live & (ma != 0), s_a.clamp(max=_ADD_SHIFT_OUT),
                                        none), torch.where(lane_live & (mb != 0),
                                                           s_b.clamp(max=_ADD_SHIFT_OUT), none)],
                           -1)
        out["align_shift"] = _flat(shifts, n)
        F = ADD_FRAC_BITS
        ta = ((ma << F) >> s_a.clamp(0, 62)) * (1 - 2 * sa)
        tb = ((mb << F) >> s_b.clamp(0, 62)) * (1 - 2 * sb)
        s = ta + tb
        v = s.abs().amax(-1)
        sh = _bitlen(v) - 6 - F
        er = e0[..., 0] + sh
        top = s.abs() == v[..., None]
        q = s.abs() >> (F + sh).clamp(min=0)[..., None]
        frac = s.abs() & ((1 << (F + sh).clamp(min=0)[..., None]) - 1)
        conds = {
            "lane_cancel": ((ta != 0) & (s == 0)).any(-1),
            "group_cancel": (v == 0) & ((ta != 0) | (tb != 0)).any(-1),
            "renorm_left": (v > 0) & (sh < 0),
            "carry": sh > 0,
            "saturate": (v > 0) & (top & (q == MAG_MAX) & (frac != 0)).any(-1),
            "underflow": (v > 0) & (er < 0),
            "overflow": er > EXP_NAN - 1,
        }
        out["sum"] = torch.stack([torch.where(live & c, bins["sum"].index(k), -1)
                                  for k, c in conds.items()], -1).reshape(n, -1)
    elif kind == "dot":
        term = (ma * mb) << (2 - mua - mub)
        acc = (term * (1 - 2 * (sa ^ sb))).sum(-1)                # (n, 2)
        nonzero_terms = (term != 0).any(-1)
        x = ea + eb
        ok = live.all(-1)
        both_a = ok & (acc != 0).all(-1)
        d = x[:, 0] - x[:, 1]
        out["group_exp_diff"] = torch.where(both_a, d.clamp(-_DOT_DIFF - 1, _DOT_DIFF + 1)
                                            + _DOT_DIFF + 1, none)[:, None]
        cancel = (acc == 0) & nonzero_terms
        hi_g = torch.where(d >= 0, 0, 1)
        ar = torch.arange(n)
        lo_acc = acc[ar, 1 - hi_g] << DOT_GUARD_BITS
        dd = d.abs().clamp(max=62)
        lo_shift = lo_acc >> dd
        y = (acc[ar, hi_g] << DOT_GUARD_BITS) + lo_shift
        names = bins["dot_sum"]
        conds = {
            "group_cancel": ok & (cancel.sum(-1) == 1),
            "both_cancel": ok & cancel.all(-1),
            "negative": ok & (y < 0),
            "positive": ok & (y > 0),
            "lower_floored": both_a & ((lo_shift << dd) != lo_acc) & (lo_shift != 0)
            & (lo_shift != -1),
            "lower_shifted_out": both_a & ((lo_shift == 0) | (lo_shift == -1)),
        }
        out["dot_sum"] = torch.stack([torch.where(c, names.index(k), -1)
                                      for k, c in conds.items()], -1)
    return out


def label_update(s_words, d_words, k_words, v_words) -> dict[str, torch.Tensor]:
    """Bins of state-update operations given as port words of an ``spe_mx8`` slice
    (:func:`quant.spe_slice.slice_ports`: 256-bit sub-chunks ``s d k``, the 16-bit scalar
    ``v``): the ``update`` classes."""
    from quant.mx8 import from_words, scalar_from_words

    n = len(s_words)
    sub = lambda w: from_words(list(w), (n,), 2, 2)  # noqa: E731
    zeros = torch.zeros(n, dtype=torch.bool)
    cls = torch.zeros(n, dtype=torch.int32)
    out = {}
    for prefix, kind, a, b in (("decay", "mul", sub(d_words), sub(s_words)),
                               ("outer", "mul_scalar", sub(k_words), scalar_from_words(v_words))):
        for c, idx in label_batch(Batch(kind, a, b, zeros, cls)).items():
            if c not in _ROUNDING:
                out[f"{prefix}.{c}"] = idx
    return out


def enumerate_update() -> tuple[list[int], list[int], list[int], list[int]]:
    """Port words ``(s, d, k, v)`` of state updates that hit every ``update`` bin: the
    multiplier's enumeration as ``(d, s)`` next to the broadcast multiplier's as ``(k, v)``
    (the shorter one repeated to the other's length)."""

    dec, out = enumerate_batch("mul"), enumerate_batch("mul_scalar")
    n = max(len(dec), len(out))
    cyc = lambda words: [words[i % len(words)] for i in range(n)]  # noqa: E731
    return (cyc(subchunk_words(dec.b)), cyc(subchunk_words(dec.a)), cyc(subchunk_words(out.a)),
            cyc(scalar_words(out.b)))


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------

class Coverage:
    """Per bin, the lanes (or groups, or vectors, as the class counts) that hit it, and per
    class the vectors that hit any of its bins, accumulated over batches."""

    def __init__(self, kind: str):
        self.kind = kind
        self.bins = class_bins(kind)
        self.counts = {c: torch.zeros(len(b), dtype=torch.int64) for c, b in self.bins.items()}
        self.vectors = {c: 0 for c in self.bins}
        self.total = 0

    def add(self, labels: Mapping[str, torch.Tensor]) -> None:
        n = 0
        for c, idx in labels.items():
            nb = len(self.bins[c])
            n = idx.shape[0]
            ok = idx >= 0
            self.counts[c] += torch.bincount(idx[ok], minlength=nb)
            self.vectors[c] += int(ok.any(-1).sum())
        self.total += n

    def table(self) -> dict[str, dict[str, Any]]:
        """class -> {bins, hit (bins hit), vectors (that hit any bin of the class), min (hits
        of the least-hit bin), missing (up to 8 bin names never hit)}."""
        out = {}
        for c, cnt in self.counts.items():
            miss = [self.bins[c][i] for i in torch.nonzero(cnt == 0).flatten().tolist()]
            out[c] = {"bins": len(cnt), "hit": int((cnt > 0).sum()), "vectors": self.vectors[c],
                      "min": int(cnt.min()), "missing": miss[:8]}
        return out


def merge_tables(tables) -> dict[str, dict[str, Any]]:
    """Sum of coverage tables of the same kind (bins hit: the maximum; an approximation only
    when the tables hit different bins, so the benches report their own tables)."""
    out: dict[str, dict[str, Any]] = {}
    for t in tables:
        for c, row in t.items():
            o = out.setdefault(c, {"bins": row["bins"], "hit": 0, "vectors": 0, "min": 0,
                                   "missing": row["missing"]})
            o["hit"] = max(o["hit"], row["hit"])
            o["vectors"] += row["vectors"]
            o["min"] += row["min"]
    return out


def write_report(summary: Mapping[str, Mapping[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """``coverage.json`` and ``coverage.md`` in ``out_dir`` from the summary records that carry
    a coverage table."""
    rows = {k: r["coverage"] for k, r in sorted(summary.items()) if r.get("coverage")}
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out_dir / "coverage.json", out_dir / "coverage.md"
    jpath.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    lines = ["# Operand-class coverage of the MX8 benches", "",
             "Per run (`<testbench>_<simulator>`) and class: bins hit / bins, vectors that hit "
             "the class, hits (lanes, groups or vectors) of its least-hit bin "
             "(cosim/coverage.py).", ""]
    for key, table in rows.items():
        total = sum(1 for r in table.values() if r["hit"] == r["bins"])
        lines += [f"## {key}: {total}/{len(table)} classes complete", "",
                  "| class | bins hit | vectors | min hits per bin | missing |",
                  "|---|---|---|---|---|"]
        for c, r in table.items():
            lines.append(f"| {c} | {r['hit']}/{r['bins']} | {r['vectors']} | {r['min']} | "
                         f"{', '.join(r['missing']) or '-'} |")
        lines.append("")
    mpath.write_text("\n".join(lines))
    return jpath, mpath


# --------------------------------------------------------------------------------------------
# Enumeration
# --------------------------------------------------------------------------------------------

_ENUM_SEED = 0x5EED


def _fields(n: int, gen: torch.Generator):
    """Mid-range base fields of ``n`` vectors: E 100..150, mu 0, random non-zero magnitudes."""
    exp = torch.randint(100, 151, (n, 2), generator=gen, dtype=torch.int32)
    mu = torch.zeros((n, 2, PAIRS), dtype=torch.int32)
    sign = torch.randint(0, 2, (n, 2, GROUP), generator=gen, dtype=torch.int32)
    mag = torch.randint(1, _MAGS, (n, 2, GROUP), generator=gen, dtype=torch.int32)
    return [exp, mu, sign, mag]


class _Builder:
    """Vectors appended section by section, operands as lists of per-vector field tensors."""

    def __init__(self, kind: str):
        self.kind = kind
        self.gen = torch.Generator().manual_seed(_ENUM_SEED)
        self.a: list[list[torch.Tensor]] = []
        self.b: list[list[torch.Tensor]] = []
        self.stoch: list[torch.Tensor] = []

    def new(self, n: int):
        """Fresh base operands of ``n`` vectors (a, b as field lists; modify in place)."""
        return _fields(n, self.gen), _fields(n, self.gen)

    def push(self, a, b, *, both_modes: bool = True) -> None:
        n = a[0].shape[0]
        if both_modes:
            a = [torch.cat([t, t]) for t in a]
            b = [torch.cat([t, t]) for t in b]
            st = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
        else:
            st = (torch.arange(n) % 2).bool()
        self.a.append(a)
        self.b.append(b)
        self.stoch.append(st)

    def batch(self):
        a = MX8(*(torch.cat([x[i] for x in self.a]) for i in range(4)))
        b = MX8(*(torch.cat([x[i] for x in self.b]) for i in range(4)))
        stoch = torch.cat(self.stoch)
        if self.kind == "mul_scalar":
            # the scalar: b's group 0, lane 0 (mu of pair 0)
            b = MX8Scalar(b.exp[:, 0].clone(), b.mu[:, 0, 0].clone(), b.sign[:, 0, 0].clone(),
                          b.mag[:, 0, 0].clone())
        if self.kind == "dot":
            stoch = torch.zeros_like(stoch)
        cls = torch.full((len(stoch),), GEN_CLASSES.index("enumerated"), dtype=torch.int32)
        return Batch(self.kind, a, b, stoch, cls)


def _set_all_lanes(x, *, mag=None, sign=None, exp=None, mu=None):
    e, m_u, s, m = x
    if exp is not None:
        e[...] = torch.as_tensor(exp, dtype=torch.int32).reshape(-1, *([1] * (e.dim() - 1))) \
            if torch.as_tensor(exp).dim() else exp
    if mu is not None:
        m_u[...] = mu
    if sign is not None:
        s[...] = sign
    if mag is not None:
        m[...] = mag


def _col(values) -> torch.Tensor:
    """A per-vector column (n, 1) for broadcasting into (n, 2) exponents."""
    return torch.as_tensor(values, dtype=torch.int32)[:, None]


@functools.lru_cache(maxsize=None)
def enumerate_batch(kind: str):
    """A deterministic :class:`cosim.mx_vectors.Batch` of unit ``kind`` (cached: do not modify
    it) that hits every bin of :func:`class_bins` except ``rand`` (the random bits come from
    the unit's generator, which presents every value within the first few hundred stochastic
    vectors). Corner sections
    come first (so a short prefix still crosses them), the 64 x 64 magnitude pairs last;
    each corner vector comes with rounding to nearest and stochastic."""
    bins = class_bins(kind)
    bld = _Builder(kind)
    scalar = kind == "mul_scalar"

    # special groups: zero / NaN in a, b, both (group 0 and group 1 alike)
    specs = [("zero", None), (None, "zero"), ("zero", "zero"), ("nan", None), (None, "nan"),
             ("nan", "nan"), ("nan", "zero"), ("zero", "nan")]
    a, b = bld.new(len(specs))
    for i, (sa_, sb_) in enumerate(specs):
        for x, spec in ((a, sa_), (b, sb_)):
            if spec == "zero":
                x[0][i] = 0
                x[1][i] = 0
                x[2][i] = 0
                x[3][i] = 0
            elif spec == "nan":
                x[0][i] = EXP_NAN
    bld.push(a, b)
    # non-canonical: a negative zero lane; a zero group under a non-zero exponent
    a, b = bld.new(2)
    a[3][0, :, 3] = 0
    a[2][0, :, 3] = 1
    b[3][0, :, 5] = 0
    b[2][0, :, 5] = 1
    if scalar:
        b[3][0, 0, 0], b[2][0, 0, 0] = 0, 1
    a[3][1] = 0
    a[2][1] = 0
    a[0][1] = 77
    bld.push(a, b)
    # exponent extremes: E in {0, 1, mid, 254} for a and b
    ev = [0, 1, 127, 254]
    a, b = bld.new(16)
    for i in range(16):
        a[0][i] = ev[i // 4]
        b[0][i] = ev[i % 4]
    bld.push(a, b)
    # micro-exponent pairs on every pair: (mu_a, mu_b) in all four patterns
    a, b = bld.new(4)
    for i in range(4):
        a[1][i] = i // 2
        b[1][i] = i % 2
    bld.push(a, b)
    if kind in ("mul", "mul_scalar"):
        names = bins["exp_sum"]
        eps = []
        for nm in names:
            if nm == "Ep=mid":
                eps.append(100)
            elif nm.startswith("Ep<"):
                eps.append(-20)
            elif nm.startswith("Ep>"):
                eps.append(300)
            else:
                eps.append(int(nm[3:]))
        a, b = bld.new(len(eps))
        for i, ep in enumerate(eps):
            s = ep + 127
            a[0][i] = s // 2
            b[0][i] = s - s // 2
        bld.push(a, b)
        # renormalization shift sh = 0..6: every product of the group m*m (p = m^2)
        ms = [6, 8, 12, 16, 23, 32, 46]
        a, b = bld.new(len(ms))
        for i, m in enumerate(ms):
            a[3][i] = m
            b[3][i] = m
        bld.push(a, b)
    if kind == "add":
        ds = [-20] + list(range(-_ADD_DIFF, _ADD_DIFF + 1)) + [20]
        a, b = bld.new(len(ds))
        for i, d in enumerate(ds):
            a[0][i] = 127
            b[0][i] = 127 - d
            a[1][i, :, 1::2] = 1          # pairs with mu = 1 shift one more place
            b[1][i, :, 2::3] = 1
        bld.push(a, b)
        # sums: cancellation, left renormalization, carry, saturation, underflow, overflow
        a, b = bld.new(6)
        for i in range(6):
            a[1][i] = 0
            b[1][i] = 0
            a[0][i] = 127
            b[0][i] = 127
        b[2][0] = 1 - a[2][0]                  # b = -a: every lane and the group cancel
        b[3][0] = a[3][0]
        a[2][1] = 0                            # 40 - 38 ... : left renormalization
        b[2][1] = 1
        a[3][1] = 40
        b[3][1] = 38
        a[2][2] = 0                            # 63 + 63: carry into a 7th bit
        b[2][2] = 0
        a[3][2] = 63
        b[3][2] = 63
        a[2][3] = 0                            # 63 + 0.5: rounds to 64, saturates
        b[2][3] = 0
        a[3][3] = 1
        a[3][3, :, 0] = 63
        b[3][3] = 1
        b[0][3] = 126
        a[0][4] = 2                            # cancellation at E = 2: gradual underflow
        b[0][4] = 2
        a[2][4] = 0
        b[2][4] = 1
        a[3][4] = 40
        b[3][4] = 38
        a[0][5] = 254                          # carry at E = 254: overflow to NaN
        b[0][5] = 254
        a[2][5] = 0
        b[2][5] = 0
        a[3][5] = 63
        b[3][5] = 63
        bld.push(a, b)
    if kind == "dot":
        ds = [-40] + list(range(-_DOT_DIFF, _DOT_DIFF + 1)) + [40]
        a, b = bld.new(2 * len(ds))
        for i, d in enumerate(ds * 2):
            a[0][i, 0] = 127
            b[0][i, 0] = 127
            x1 = 254 - d
            a[0][i, 1] = x1 // 2
            b[0][i, 1] = x1 - x1 // 2
            b[2][i] = 0
            a[2][i] = 0 if i < len(ds) else 1          # second half: negative lower terms
            a[2][i, 0] = 0
        bld.push(a, b, both_modes=False)
        # cancelling groups: a lanes equal, b lanes alternating in sign
        a, b = bld.new(3)
        for i in range(3):
            a[3][i] = 20
            a[2][i] = 0
            b[3][i] = 33
            b[2][i] = torch.arange(GROUP, dtype=torch.int32) % 2
        b[2][0, 1] = 0                                  # group 1 does not cancel
        b[2][2, 1] = 1                                  # group 1 negative
        b[2][2, 0] = 0                                  # group 0 positive
        bld.push(a, b, both_modes=False)
    # every magnitude pair, 32 lanes per vector; sign pairs and mu pairs vary by lane
    lane = torch.arange(2 * GROUP).reshape(2, GROUP)
    a, b = bld.new(_MAGS * _MAGS // (2 * GROUP))
    for v in range(a[0].shape[0]):
        a[0][v] = 127
        b[0][v] = 126
        if scalar:
            # the scalar is constant over a vector: m_b = v mod 64, m_a sweeps 0..63 twice
            idx = (v // _MAGS) * 2 * GROUP + lane
            a[3][v] = idx
            b[3][v] = v % _MAGS
            b[2][v] = (v // _MAGS) % 2
            b[1][v] = (v // 2) % 2
        else:
            idx = v * 2 * GROUP + lane
            a[3][v] = idx // _MAGS
            b[3][v] = idx % _MAGS
            b[2][v] = (lane // 2) % 2
            b[1][v] = (torch.arange(PAIRS) // 2 % 2)[None, :]
        a[2][v] = lane % 2
        a[1][v] = (torch.arange(PAIRS) % 2)[None, :]
    bld.push(a, b, both_modes=False)
    return bld.batch()
