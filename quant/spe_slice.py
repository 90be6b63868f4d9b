"""Port-level golden model of the SPE datapath slices (``spe_<format>[_sr]``).

The slices (:mod:`hw.spe_float`, :mod:`hw.spe_mx8`, :mod:`hw.spe_int8`) compute the state
update of one 32-lane sub-chunk, ``s' = d (.) s + k * v``, and share one streaming port
convention::

    i_valid In(1)   i_s, i_d, i_k In(W)   i_v In(Wv)   o_valid Out(1)   o_s Out(W)

:func:`reference` maps the port words of ``N`` valid operations (in issue order) to the ``N``
words expected on ``o_s``; :func:`slice_ports` gives ``W`` and ``Wv`` per format. This module
is what testbenches import; the arithmetic is composed from the format's own golden model:

``fp16``, ``e4m3``, ``e5m2``
    Lane ``i`` of a port word is bits ``[i*w, (i+1)*w)`` (``w`` = 16 or 8), ``Wv = w``.
    ``o[i] = ref_add(ref_mul(d[i], s[i]), ref_mul(k[i], v))`` (:mod:`quant.fparith`),
    each operation rounded (RNE, or SR with :data:`RBITS` random bits).
``mx8``
    ``W = 256`` (:func:`quant.mx8.to_words` with two groups per word), ``Wv = 16``
    (:func:`quant.mx8.scalar_to_words`). ``o = add(mul(s, d), mul_scalar(k, v))``
    (:mod:`quant.spe`, ``SPEConfig(rounding, rbits=8, renorm="lod")``); ``"rne"`` is the MX
    round-to-nearest (``"nearest"``), ``"sr"`` is ``"stochastic"``. With ``fused=True``:
    ``o = fused_mul_add(s, d, k, v)`` (``SPEConfig(fused=True)``, docs/mx8.md section 8a), one
    rounding, and only the ``add`` site draws random bits.
``int8``
    Delegated to :func:`quant.spe_int8.update_words`.

Random bits (``rounding="sr"``): ``rng`` is a :class:`quant.rng.SPERandom`; each call draws,
per site (``mul_decay``, ``mul_outer``, ``add``), ``rng[site].draw((N, 32), r)`` — one block
of ``32 * r`` stream bits per operation, in operation order, lane ``i`` taking bits
``[i*r, (i+1)*r)``. Calling batch after batch with the same ``rng`` continues the streams, as
the hardware generators do (they advance only on valid operations). With
``SPERandom.lfsr(seeds)`` the bits are those of the slices' internal generators reset to
``seeds``. ``rounding="rne"`` draws nothing (``rng`` is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .constants import LANES
from .fparith import get_format, ref_add, ref_mul
from .mx8 import GROUP_BITS, SCALAR_BITS, from_words, scalar_from_words, to_words
from .rng import SITES, SPERandom
from . import spe_int8
from .spe import RBITS, SPEConfig, add, fused_mul_add, mul, mul_scalar
from .words import check_words

__all__ = ["FORMATS", "ROUNDINGS", "LANES", "slice_ports",
           "reference"]

#: Formats of the slices.
FORMATS = ("fp16", "e4m3", "e5m2", "mx8", "int8")
#: Rounding modes of the slices.
ROUNDINGS = ("rne", "sr")
_FLOAT_FORMATS = ("fp16", "e4m3", "e5m2")
_MX8_GROUPS = 2


def _check_fmt(fmt) -> str:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    return fmt


def slice_ports(fmt: str) -> dict[str, int]:
    """Port widths of the slice of ``fmt``: ``{"W": ..., "Wv": ..., "lanes": 32}``.

    ``W`` is the width of ``i_s``, ``i_d``, ``i_k`` and ``o_s``, ``Wv`` that of ``i_v``:
    fp16 512/16, e4m3 and e5m2 256/8, mx8 256/16, int8 272/24.

    Raises
    ------
    ValueError
        Unknown format.
    """
    _check_fmt(fmt)
    if fmt in _FLOAT_FORMATS:
        w = get_format(fmt).width
        ports = {"W": LANES * w, "Wv": w}
    elif fmt == "mx8":
        ports = {"W": _MX8_GROUPS * GROUP_BITS, "Wv": SCALAR_BITS}
    else:
        ports = {"W": spe_int8.WORD_BITS, "Wv": spe_int8.SCALAR_BITS}
    ports["lanes"] = LANES
    return ports


def _float_lanes(words: list[int], width: int) -> np.ndarray:
    """``(N, 32)`` int64 lanes of float port words (lane ``i`` at bits ``[i*w, (i+1)*w)``)."""
    nbytes = LANES * width // 8
    raw = b"".join(w.to_bytes(nbytes, "little") for w in words)
    return np.frombuffer(raw, dtype=f"<u{width // 8}").reshape(len(words), LANES).astype(
        np.int64)


def _float_words(lanes: np.ndarray, width: int) -> list[int]:
    raw = np.ascontiguousarray(lanes.astype(f"<u{width // 8}"))
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def _draws(rng: SPERandom, n: int, r: int) -> dict:
    """One ``(n, 32)`` block of ``r``-bit integers per site, in operation order."""
    return {site: rng[site].draw((n, LANES), r) for site in SITES}


def reference(fmt: str, rounding: str, s: Sequence[int], d: Sequence[int], k: Sequence[int],
              v: Sequence[int], rng: SPERandom | None = None, *,
              renorm: str = "lod", fused: bool = False) -> list[int]:
    """Expected ``o_s`` words of ``N`` slice operations ``s' = d (.) s + k * v``.

    Parameters
    ----------
    fmt : {"fp16", "e4m3", "e5m2", "mx8", "int8"}
        Slice format.
    rounding : {"rne", "sr"}
        Round to nearest (even for the float formats; the format's own nearest for mx8) or
        stochastic rounding.
    s, d, k : sequence of int
        ``i_s``, ``i_d``, ``i_k`` port words (``W`` bits, :func:`slice_ports`), one per
        operation.
    v : sequence of int
        ``i_v`` port words (``Wv`` bits).
    rng : SPERandom, optional
        Random sources of the three sites (required for ``"sr"``; ``SPERandom.lfsr(seeds)``
        reproduces the slices' generators). Consumed: one ``(N, 32)`` draw per site (only
        site ``add`` when ``fused``).
    renorm : {"lod", "fixed"}
        ``mx8`` only: the renormalization policy of the slice (:class:`quant.spe.SPEConfig`;
        the registered units use ``"lod"``).
    fused : bool
        ``mx8`` only: the fused state update (one rounding, :func:`quant.spe.fused_mul_add`).

    Returns
    -------
    list of int
        ``N`` ``o_s`` port words.

    Raises
    ------
    ValueError
        Unknown format or rounding, operand lists of different lengths, a word that does not
        fit its port, ``"sr"`` without ``rng``.
    TypeError
        A word that is not an int, ``rng`` not an :class:`~quant.rng.SPERandom`.
    """
    _check_fmt(fmt)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
    if renorm != "lod" and fmt != "mx8":
        raise ValueError(f"renorm applies to the mx8 slice only, not {fmt!r}")
    if not isinstance(fused, bool):
        raise TypeError(f"fused must be a bool, not {fused!r}")
    if fused and fmt != "mx8":
        raise ValueError(f"fused=True is an MX8 datapath option, not one of {fmt!r}")
    if fmt == "int8":
        return spe_int8.update_words(s, d, k, v, rounding=rounding, rng=rng)
    if rounding == "sr":
        if rng is None:
            raise ValueError("rounding='sr' needs rng (an SPERandom, e.g. SPERandom.lfsr())")
        if not isinstance(rng, SPERandom):
            raise TypeError(f"rng must be an SPERandom, not {type(rng).__name__}")
    ports = slice_ports(fmt)
    s, d, k = (check_words(x, n, ports["W"]) for n, x in (("s", s), ("d", d), ("k", k)))
    v = check_words(v, "v", ports["Wv"])
    if not len(s) == len(d) == len(k) == len(v):
        raise ValueError(f"s, d, k, v must have the same length, not "
                         f"{len(s)}, {len(d)}, {len(k)}, {len(v)}")
    n = len(s)
    if n == 0:
        return []
    if fmt == "mx8":
        return _mx8(rounding, s, d, k, v, rng, renorm, fused)
    return _float(fmt, rounding, s, d, k, v, rng)


def _float(fmt, rounding, s, d, k, v, rng) -> list[int]:
    width = get_format(fmt).width
    n = len(s)
    s, d, k = (_float_lanes(x, width) for x in (s, d, k))
    vv = np.broadcast_to(np.asarray(v, dtype=np.int64)[:, None], (n, LANES)).copy()
    if rounding == "sr":
        bits = {site: r.numpy().astype(np.int64)
                for site, r in _draws(rng, n, RBITS).items()}
        kw = {site: {"rounding": "sr", "rand": bits[site], "sr_bits": RBITS}
              for site in bits}
    else:
        kw = {site: {} for site in SITES}
    decay = ref_mul(d, s, fmt, **kw["mul_decay"])
    outer = ref_mul(k, vv, fmt, **kw["mul_outer"])
    return _float_words(ref_add(decay, outer, fmt, **kw["add"]), width)


def _mx8(rounding, s, d, k, v, rng, renorm="lod", fused=False) -> list[int]:
    n = len(s)
    stoch = rounding == "sr"
    cfg = SPEConfig(rounding="stochastic" if stoch else "nearest", rbits=RBITS,
                    renorm=renorm, fused=fused)
    S, D, K = (from_words(x, (n,), _MX8_GROUPS, _MX8_GROUPS) for x in (s, d, k))
    V = scalar_from_words(v)
    if fused:  # one rounding: only the adder's generator draws
        bits = rng["add"].draw((n, LANES), RBITS) if stoch else None
        lead = V.exp.shape
        return to_words(fused_mul_add(S, D, K, V.expand_groups(lead, S.exp.shape[-1]), cfg,
                                      bits), _MX8_GROUPS)
    bits = _draws(rng, n, RBITS) if stoch else dict.fromkeys(SITES)
    decay = mul(S, D, cfg, bits["mul_decay"])
    outer = mul_scalar(K, V, cfg, bits["mul_outer"])
    return to_words(add(decay, outer, cfg, bits["add"]), _MX8_GROUPS)
