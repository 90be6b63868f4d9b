"""Stimulus for the SPE datapath slices ``spe_<format>[_sr]`` (``cosim/tb_spe.py``).

:func:`make_ops` draws ``n`` state-update operations ``s' = d * s + k * v`` as port words
(Python ints, the packing of :func:`quant.spe_slice.slice_ports`). Every operation belongs to a
class (:data:`CLASSES`), drawn per operation:

``raw``
    Uniformly random port bits: every encoding, NaN/inf and NaN/zero groups included.
``typical``
    What a state update sees: states and keys of comparable magnitude (random binade offsets
    within a few octaves), decays in (0.5, 1), so the add aligns, cancels and rounds.
``cancel``
    ``k * v`` close to ``-d * s``: massive cancellation (and exact zeros).
``special``
    ``typical`` with a few lanes (or, for the group formats, the scale) replaced by corner
    values: zeros, subnormals, the largest finite value, inf, NaN.
``wide``
    ``typical`` with exponents drawn over (nearly) the whole range: overflow, underflow and
    large alignment shifts.

Everything comes from one NumPy generator seeded by the caller (the testbench seeds it from
``COCOTB_RANDOM_SEED``), so a run is reproducible bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from quant import mx8
from quant.constants import LANES
from quant.fparith import get_format
from quant.spe_slice import slice_ports

__all__ = ["CLASSES", "Ops", "make_ops"]

CLASSES = ("raw", "typical", "cancel", "special", "wide")


@dataclass
class Ops:
    """Port words of ``len(self)`` operations and the class name of each."""
    s: list[int]
    d: list[int]
    k: list[int]
    v: list[int]
    cls: list[str]

    def __len__(self) -> int:
        return len(self.s)


def _words(lanes: np.ndarray, width: int) -> list[int]:
    """Pack (n, lanes) unsigned lane values, lane 0 in the LSBs."""
    out = []
    for row in lanes.tolist():
        w = 0
        for i, x in enumerate(row):
            w |= int(x) << (i * width)
        out.append(w)
    return out


def _raw(gen: np.random.Generator, n: int, width: int) -> list[int]:
    """``n`` random ``width``-bit words, from one draw."""
    nbytes = (width + 7) // 8
    buf = gen.bytes(n * nbytes)
    mask = (1 << width) - 1
    return [int.from_bytes(buf[i:i + nbytes], "little") & mask
            for i in range(0, n * nbytes, nbytes)]


def _values(gen, cls: np.ndarray, spread: float, wide: float):
    """Real-valued s, d, k (n, 32) and v (n,) per operation class."""
    n = len(cls)
    octave = np.where(cls == "wide", wide, spread)
    s = gen.standard_normal((n, LANES)) * np.exp2(gen.uniform(-1, 1, (n, 1)) * octave[:, None])
    d = gen.uniform(0.5, 1.0, (n, LANES))
    k = gen.standard_normal((n, LANES)) * np.exp2(gen.uniform(-1, 1, (n, 1)) * octave[:, None])
    v = gen.standard_normal(n) * np.exp2(gen.uniform(-1, 1, n) * octave / 2)
    cancel = cls == "cancel"
    if cancel.any():
        # k * v = -(d * s) (1 + tiny): cancels in the add, sometimes exactly
        jitter = 1 + gen.choice([0.0, 2.0 ** -9, -(2.0 ** -7)], (n, LANES))
        k = np.where(cancel[:, None], -(d * s) / v[:, None] * jitter, k)
    return s, d, k, v


# ---- IEEE-style float formats ------------------------------------------------------------

def _float_bits(x: np.ndarray, fmt) -> np.ndarray:
    """Encodings of ``x`` (clamped to the finite range, NaN kept) in ``fmt``."""
    mx = fmt.max_finite
    t = torch.from_numpy(np.where(np.isfinite(x), np.clip(x, -mx, mx), x)).to(getattr(torch, fmt.torch_dtype))
    raw = t.view(torch.uint8 if fmt.width == 8 else torch.int16)
    return raw.numpy().astype(np.int64) & ((1 << fmt.width) - 1)


def _float_specials(fmt) -> np.ndarray:
    w = fmt.width
    sign = 1 << (w - 1)
    vals = [0, sign, 1, (1 << fmt.man_bits) - 1, fmt.max_finite_bits, fmt.max_finite_bits | sign,
            fmt.nan_bits, 1 << fmt.man_bits]
    if fmt.has_inf:
        vals += [fmt.inf_bits, fmt.inf_bits | sign]
    return np.array(vals, dtype=np.int64)


def _float_ops(gen, cls, fmt) -> tuple[list[int], ...]:
    n, w = len(cls), fmt.width
    spread = {"fp16": 4.0, "e4m3": 2.0, "e5m2": 3.0}.get(fmt.name, 3.0)
    s, d, k, v = _values(gen, cls, spread, wide=(1 << fmt.exp_bits) / 1.5)
    sb, db, kb, vb = (_float_bits(x, fmt) for x in (s, d, k, v))
    special = cls == "special"
    if special.any():
        pool = _float_specials(fmt)
        for arr in (sb, db, kb):
            hit = special[:, None] & (gen.random((n, LANES)) < 0.15)
            arr[hit] = gen.choice(pool, int(hit.sum()))
        hit = special & (gen.random(n) < 0.2)
        vb[hit] = gen.choice(pool, int(hit.sum()))
    raw = cls == "raw"
    mask = (1 << w) - 1
    for arr in (sb, db, kb):
        arr[raw] = gen.integers(0, mask + 1, (int(raw.sum()), LANES))
    vb[raw] = gen.integers(0, mask + 1, int(raw.sum()))
    return _words(sb, w), _words(db, w), _words(kb, w), [int(x) for x in vb]


# ---- MX8 ---------------------------------------------------------------------------------

def _mx8_words(x: np.ndarray) -> list[int]:
    return mx8.to_words(mx8.encode(torch.from_numpy(x).to(torch.float32)), 2)


def _mx8_scalar_words(v: np.ndarray) -> list[int]:
    """The broadcast scalar: ``v`` encoded as a group of 16 copies, element 0."""
    g = mx8.encode(torch.from_numpy(np.repeat(v[:, None], 16, axis=1)).to(torch.float32))
    return mx8.scalar_to_words(_first(g.scalars()))


def _first(s: mx8.MX8Scalar) -> mx8.MX8Scalar:
    return mx8.MX8Scalar(s.exp[:, 0], s.mu[:, 0], s.sign[:, 0], s.mag[:, 0])


def _mx8_ops(gen, cls) -> tuple[list[int], ...]:
    n = len(cls)
    s, d, k, v = _values(gen, cls, spread=6.0, wide=100.0)
    special = cls == "special"
    for arr in (s, d, k):   # whole zero groups, and groups spanning many binades
        zero = special[:, None] & (gen.random((n, 2)) < 0.3)
        arr *= np.repeat(~zero, 16, axis=1)
        arr *= np.where(special[:, None], np.exp2(gen.integers(-12, 12, (n, LANES))), 1.0)
    sw, dw, kw = (_mx8_words(x) for x in (s, d, k))
    vw = _mx8_scalar_words(v)
    ports = slice_ports("mx8")
    for i in np.flatnonzero(cls == "raw"):
        sw[i], dw[i], kw[i] = (_raw(gen, 1, ports["W"])[0] for _ in range(3))
        vw[i] = _raw(gen, 1, ports["Wv"])[0]
    return sw, dw, kw, vw


# ---- int8 with an fp16 group scale ---------------------------------------------------------

def _int8_ops(gen, cls) -> tuple[list[int], ...]:
    from quant import spe_int8

    n = len(cls)
    s, d, k, v = _values(gen, cls, spread=6.0, wide=14.0)
    fp16 = get_format("fp16")
    words = []
    for x in (s, d, k):
        q, sigma = spe_int8.quantize(x)
        special = (cls == "special") & (gen.random(n) < 0.2)
        sigma = np.where(special, gen.choice(_float_specials(fp16), n), sigma)
        q = np.where((cls == "special")[:, None] & (gen.random((n, LANES)) < 0.1),
                     gen.choice([0, 127, -127, -128, 1, -1], (n, LANES)), q)
        words.append(spe_int8.pack(q, sigma))
    qv, sv = spe_int8.quantize(np.repeat(v[:, None], LANES, axis=1))
    vw = spe_int8.pack_scalar(qv[:, 0], sv)
    ports = slice_ports("int8")
    for i in np.flatnonzero(cls == "raw"):
        for w in words:
            w[i] = _raw(gen, 1, ports["W"])[0]
        vw[i] = _raw(gen, 1, ports["Wv"])[0]
    return (*words, vw)


def make_ops(fmt: str, n: int, gen: np.random.Generator, *,
             classes: tuple[str, ...] | None = None, directed: bool = False) -> Ops:
    """``n`` operations of the slice in format ``fmt`` (classes drawn uniformly from
    ``classes``, default all of :data:`CLASSES`). ``directed`` (MX8 only): the state-update
    enumeration of :func:`cosim.coverage.enumerate_update` first (class ``enumerated``; every
    operand class of the two products), then random operations."""
    if directed:
        if fmt != "mx8":
            raise ValueError(f"directed operations exist for mx8 only, not {fmt!r}")
        from .coverage import enumerate_update

        s, d, k, v = (w[:n] for w in enumerate_update())
        head = Ops(s, d, k, v, ["enumerated"] * len(s))
        if len(head) == n:
            return head
        tail = make_ops(fmt, n - len(head), gen, classes=classes)
        return Ops(head.s + tail.s, head.d + tail.d, head.k + tail.k, head.v + tail.v,
                   head.cls + tail.cls)
    pool = CLASSES if classes is None else classes
    unknown = [c for c in pool if c not in CLASSES]
    if unknown:
        raise ValueError(f"unknown operation classes {unknown}; expected some of {CLASSES}")
    cls = gen.choice(np.array(pool), n)
    if fmt == "mx8":
        words = _mx8_ops(gen, cls)
    elif fmt == "int8":
        words = _int8_ops(gen, cls)
    else:
        words = _float_ops(gen, cls, get_format(fmt))
    return Ops(*words, cls=cls.tolist())
