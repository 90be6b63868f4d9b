"""Bit-exact golden model of the INT8G32 state-update slice (int8 values, fp16 group scale).

The normative text, with a worked example, is ``docs/spe_int8.md``; :mod:`hw.spe_int8` is the
RTL that must reproduce :func:`update_words` bit for bit.

Format INT8G32
--------------
One group = :data:`GROUP` (32) values = one sub-chunk. The values ``q_i`` are int8 two's
complement (the update only produces -127..127; an input -128 is read as -128); one IEEE
binary16 scale ``sigma`` per group; ``value_i = q_i * sigma``. Port word of a sub-chunk
(:data:`WORD_BITS` = 272 bits): ``q_i`` at bits ``[8i, 8i+8)``, ``sigma`` at ``[256, 272)``.
Scalar word (:data:`SCALAR_BITS` = 24 bits): ``q_v`` at ``[0, 8)``, ``sigma_v`` at ``[8, 24)``.

Update ``s' = d (.) s + k * v`` of one group
--------------------------------------------
1. Integer products ``P1_i = q_d_i * q_s_i``, ``P2_i = q_k_i * q_v``; scale products
   ``A = sigma_d * sigma_s``, ``B = sigma_k * sigma_v`` in fp16 (RNE, IEEE specials:
   :func:`quant.fparith.ref_mul`).
2. Dequantize: ``x1_i`` = the exact ``P1_i * A`` rounded once to fp16 (RNE,
   :func:`quant.fparith.round_exact`); ``x2_i`` likewise from ``P2_i * B``. ``A`` NaN -> NaN;
   ``A`` = +-inf -> +-inf (sign ``sign(P) ^ sign(A)``), NaN when ``P = 0``; finite overflow ->
   +-inf. A zero result has the sign ``sign(P) ^ sign(A)`` (``sign(0) = +``).
3. ``y_i = x1_i + x2_i`` in fp16 (RNE, :func:`quant.fparith.ref_add`).
4. Requantize (:func:`requantize`): any ``y_i`` NaN or +-inf -> NaN group (all ``q = 0``,
   ``sigma' =`` :data:`NAN_SCALE`). Else ``M = max |y_i|``, ``sigma' = M * C`` in fp16 (RNE)
   with ``C =`` :data:`SCALE_C` (the fp16 nearest to 1/127). ``sigma'`` zero -> zero group
   (all ``q = 0``, ``sigma' = 0``). Else ``q_i = sign(y_i) * min(127, rho(|y_i| / sigma'))``
   with the exact rational quotient; ``rho`` rounds half to even (``"rne"``) or, with an
   :data:`SR_BITS`-bit random integer ``R_i``, ``floor((floor(Q * 2**8) + R_i) / 2**8)``
   (``"sr"``).

Only step 4 rounds stochastically; the fp16 steps are internal precision (always RNE). The
random integers come from the ``"add"`` site of a :class:`quant.rng.SPERandom`: every
operation (NaN and zero groups included) consumes one ``(32,)`` block of 8-bit integers, i.e.
:func:`update_words` draws ``rng["add"].draw((N, 32), 8)`` for ``N`` operations in order.

All array functions are vectorised over ``N`` operations: ``q`` arrays are int64 of shape
``(N, 32)``, scales int64 fp16 encodings of shape ``(N,)``.
"""

from __future__ import annotations


import numpy as np

from .constants import (INT8_GROUP, INT8_NAN_SCALE, INT8_Q_BITS, INT8_Q_MAX, INT8_ROUNDINGS,
                        INT8_SCALAR_BITS, INT8_SCALE_BITS, INT8_SCALE_C, INT8_SR_BITS,
                        INT8_WORD_BITS)
from .fparith import decode as _fp_decode
from .fparith import get_format, ref_add, ref_mul, round_exact
from .rng import SPERandom
from .words import check_words

__all__ = [
    "GROUP", "Q_MAX", "Q_BITS", "SCALE_BITS", "WORD_BITS", "SCALAR_BITS", "SCALE_C",
    "NAN_SCALE", "SR_BITS", "ROUNDINGS", "pack", "unpack", "pack_scalar", "unpack_scalar",
    "decode", "requantize", "quantize", "dequantize", "update", "update_words",
]

# The format's constants (quant.constants, the one source), under this module's names.
GROUP = INT8_GROUP
Q_MAX = INT8_Q_MAX
Q_BITS = INT8_Q_BITS
SCALE_BITS = INT8_SCALE_BITS
WORD_BITS = INT8_WORD_BITS
SCALAR_BITS = INT8_SCALAR_BITS
SCALE_C = INT8_SCALE_C
NAN_SCALE = INT8_NAN_SCALE
SR_BITS = INT8_SR_BITS
ROUNDINGS = INT8_ROUNDINGS

_FP16 = get_format("fp16")
_MAG_MASK = (1 << (_FP16.width - 1)) - 1          # 0x7FFF
_EXP_ALL_ONES = _FP16.exp_max_field                # 31


# ---------------------------------------------------------------------------------------------
# Argument checks

def _check_rounding(rounding) -> str:
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be 'rne' or 'sr', not {rounding!r}")
    return rounding


def _int_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, not dtype {arr.dtype}")
    return arr.astype(np.int64)


def _check_q(q, name: str) -> np.ndarray:
    q = _int_array(q, name)
    if q.ndim != 2 or q.shape[1] != GROUP:
        raise ValueError(f"{name} must have shape (N, {GROUP}), not {q.shape}")
    if q.size and (q.min() < -128 or q.max() > 127):
        raise ValueError(f"{name} values must lie in -128..127")
    return q


def _check_sigma(sigma, name: str, n: int) -> np.ndarray:
    sigma = _int_array(sigma, name)
    if sigma.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), not {sigma.shape}")
    if sigma.size and (sigma.min() < 0 or sigma.max() > 0xFFFF):
        raise ValueError(f"{name} values must be fp16 encodings in 0..0xffff")
    return sigma


def _check_group(x, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(x, tuple) or len(x) != 2:
        raise TypeError(f"{name} must be a (q, sigma) tuple, not {type(x).__name__}")
    q = _check_q(x[0], f"{name} q")
    return q, _check_sigma(x[1], f"{name} sigma", q.shape[0])


def _check_rand(rand, rounding: str, n: int) -> np.ndarray | None:
    if rounding == "rne":
        if rand is not None:
            raise ValueError("rand is only meaningful with rounding='sr'")
        return None
    if rand is None:
        raise ValueError("rounding='sr' needs rand")
    rand = _int_array(rand, "rand")
    if rand.shape != (n, GROUP):
        raise ValueError(f"rand must have shape ({n}, {GROUP}), not {rand.shape}")
    if rand.size and (rand.min() < 0 or rand.max() >= 1 << SR_BITS):
        raise ValueError(f"rand values must lie in [0, 2**{SR_BITS})")
    return rand


# ---------------------------------------------------------------------------------------------
# Port words

def pack(q, sigma) -> list[int]:
    """Sub-chunk port words (272-bit ints): ``q_i`` at bits ``[8i, 8i+8)``, ``sigma`` at
    ``[256, 272)``.

    Parameters
    ----------
    q : array_like of int, shape (N, 32)
        Values in -128..127.
    sigma : array_like of int, shape (N,)
        fp16 scale encodings.
    """
    q = _check_q(q, "q")
    sigma = _check_sigma(sigma, "sigma", q.shape[0])
    raw = np.concatenate([q.astype(np.uint8), sigma.astype("<u2").view(np.uint8).reshape(-1, 2)],
                         axis=1)
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def unpack(words) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack`: ``(q (N, 32), sigma (N,))`` from 272-bit port words."""
    words = check_words(words, "words", WORD_BITS)
    raw = np.frombuffer(b"".join(w.to_bytes(WORD_BITS // 8, "little") for w in words),
                        dtype=np.uint8).reshape(len(words), WORD_BITS // 8)
    q = raw[:, :GROUP].view(np.int8).astype(np.int64)
    sigma = raw[:, GROUP:].copy().view("<u2")[:, 0].astype(np.int64)
    return q, sigma


def pack_scalar(q, sigma) -> list[int]:
    """Scalar port words (24-bit ints): ``q`` at bits ``[0, 8)``, ``sigma`` at ``[8, 24)``.
    ``q`` and ``sigma`` have shape ``(N,)``."""
    q = _int_array(q, "q")
    if q.ndim != 1:
        raise ValueError(f"q must have shape (N,), not {q.shape}")
    if q.size and (q.min() < -128 or q.max() > 127):
        raise ValueError("q values must lie in -128..127")
    sigma = _check_sigma(sigma, "sigma", q.shape[0])
    return [int(w) for w in ((q & 0xFF) | (sigma << Q_BITS)).tolist()]


def unpack_scalar(words) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_scalar`: ``(q (N,), sigma (N,))``."""
    w = np.asarray(check_words(words, "words", SCALAR_BITS), dtype=np.int64).reshape(-1)
    q = w & 0xFF
    return np.where(q >= 128, q - 256, q), w >> Q_BITS


# ---------------------------------------------------------------------------------------------
# Values

def _fields(bits: np.ndarray):
    """fp16 fields: sign, significand (hidden bit included), exponent of the LSB (value =
    sig * 2**e2 for finite encodings), NaN, inf."""
    bits = bits & 0xFFFF
    sign = bits >> 15
    exp = (bits >> _FP16.man_bits) & _EXP_ALL_ONES
    man = bits & ((1 << _FP16.man_bits) - 1)
    sig = np.where(exp == 0, man, man | (1 << _FP16.man_bits))
    e2 = np.maximum(exp, 1) - _FP16.bias - _FP16.man_bits
    all_ones = exp == _EXP_ALL_ONES
    return sign, sig, e2, all_ones & (man != 0), all_ones & (man == 0)


def decode(q, sigma) -> np.ndarray:
    """float64 values ``q_i * sigma`` (exact), shape ``(N, 32)``; a NaN scale gives NaN values
    (an infinite scale gives +-inf, and NaN for ``q = 0``, as IEEE arithmetic does)."""
    q = _check_q(q, "q")
    sigma = _check_sigma(sigma, "sigma", q.shape[0])
    with np.errstate(invalid="ignore"):
        return q.astype(np.float64) * _fp_decode(sigma, _FP16)[:, None]


def dequantize(p, a) -> np.ndarray:
    """fp16 encodings of the exact ``p * a`` rounded once to nearest-even (step 2).

    Parameters
    ----------
    p : array_like of int, shape (N, 32)
        Integer products (``|p| < 2**15``).
    a : array_like of int, shape (N,)
        fp16 encodings of the group's scale product.
    """
    p = _int_array(p, "p")
    if p.ndim != 2 or p.shape[1] != GROUP:
        raise ValueError(f"p must have shape (N, {GROUP}), not {p.shape}")
    if p.size and np.abs(p).max() >= 1 << 15:
        raise ValueError("p values must lie in -(2**15 - 1)..2**15 - 1")
    a = _check_sigma(a, "a", p.shape[0])
    sa, siga, ea, nan_a, inf_a = (f[:, None] for f in _fields(a))
    sign = (p < 0).astype(np.int64) ^ sa
    res = round_exact(sign, np.abs(p) * siga, ea, _FP16)
    res = np.where(inf_a, (sign << 15) | _FP16.inf_bits, res)
    return np.where(nan_a | (inf_a & (p == 0)), _FP16.nan_bits, res)


def requantize(y_bits, rounding: str = "rne", rand=None) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: groups of fp16 values to int8 values and a new fp16 scale.

    Parameters
    ----------
    y_bits : array_like of int, shape (N, 32)
        fp16 encodings of the exact-precision sums.
    rounding : {"rne", "sr"}
        Rounding of ``|y| / sigma'`` to an integer.
    rand : array_like of int, shape (N, 32), optional
        8-bit random integers (``"sr"`` only), lane ``i`` of operation ``n`` in ``rand[n, i]``.

    Returns
    -------
    q : ndarray of int64, shape (N, 32)
    sigma : ndarray of int64, shape (N,)
    """
    rounding = _check_rounding(rounding)
    y = _int_array(y_bits, "y_bits")
    if y.ndim != 2 or y.shape[1] != GROUP:
        raise ValueError(f"y_bits must have shape (N, {GROUP}), not {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 0xFFFF):
        raise ValueError("y_bits values must be fp16 encodings in 0..0xffff")
    n = y.shape[0]
    rand = _check_rand(rand, rounding, n)
    if n == 0:
        return np.zeros((0, GROUP), np.int64), np.zeros(0, np.int64)

    mag = y & _MAG_MASK
    nan_group = ((mag >> _FP16.man_bits) == _EXP_ALL_ONES).any(axis=1)
    big = mag.max(axis=1)                      # encodings of magnitudes order like values
    sigma = ref_mul(np.where(nan_group, 0, big), np.full(n, SCALE_C), _FP16)
    zero_group = ~nan_group & ((sigma & _MAG_MASK) == 0)
    ok = ~(nan_group | zero_group)

    # Exact quotient |y| / sigma' = (my / ms) * 2**(ey - es), rounded with integer arithmetic
    # (all terms stay below 2**50).
    _, my, ey, _, _ = _fields(mag)
    _, ms, es, _, _ = _fields(np.where(ok, sigma, 0x3C00))
    frac = 1 if rounding == "rne" else SR_BITS
    shift = ey - es[:, None] + frac
    num = my << np.maximum(shift, 0)
    den = ms[:, None] << np.maximum(-shift, 0)
    t = num // den                              # floor(Q * 2**frac)
    if rounding == "rne":
        sticky = (num - t * den) != 0
        half, keep = t & 1, t >> 1
        r = keep + (half & (sticky | (keep & 1)))
    else:
        r = (t + rand) >> SR_BITS
    q = np.minimum(r, Q_MAX)
    q = np.where((y >> 15) == 1, -q, q)
    q = np.where(ok[:, None], q, 0)
    sigma = np.where(nan_group, NAN_SCALE, np.where(zero_group, 0, sigma))
    return q.astype(np.int64), sigma.astype(np.int64)


def quantize(x, rounding: str = "rne", rand=None) -> tuple[np.ndarray, np.ndarray]:
    """Groups of real values to INT8G32: :func:`requantize` of the fp16 RNE rounding of ``x``
    (a float array of shape ``(N, 32)``; NaN or +-inf in a group gives a NaN group, values
    beyond the fp16 range too). For making test vectors."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a float array, not dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != GROUP:
        raise ValueError(f"x must have shape (N, {GROUP}), not {x.shape}")
    with np.errstate(over="ignore"):
        # NumPy converts float64 to binary16 with a single correctly rounded step.
        bits = x.astype(np.float64).astype(np.float16).view(np.uint16).astype(np.int64)
    return requantize(bits, rounding, rand)


def update(s, d, k, v, rounding: str = "rne", rand=None) -> tuple[np.ndarray, np.ndarray]:
    """The state update ``s' = d (.) s + k * v`` of ``N`` groups.

    Parameters
    ----------
    s, d, k : tuple (q, sigma)
        State, decay and key groups: ``q`` int arrays ``(N, 32)``, ``sigma`` fp16 encodings
        ``(N,)``.
    v : tuple (q_v, sigma_v)
        The broadcast element of ``v`` per operation, both of shape ``(N,)``.
    rounding : {"rne", "sr"}
        Rounding of the requantizer.
    rand : array_like of int, shape (N, 32), optional
        8-bit random integers of the requantizer (``"sr"`` only).

    Returns
    -------
    q : ndarray of int64, shape (N, 32)
    sigma : ndarray of int64, shape (N,)
    """
    rounding = _check_rounding(rounding)
    qs, ss = _check_group(s, "s")
    qd, sd = _check_group(d, "d")
    qk, sk = _check_group(k, "k")
    n = qs.shape[0]
    if not qd.shape[0] == qk.shape[0] == n:
        raise ValueError(f"s, d, k must hold the same number of groups, not "
                         f"{n}, {qd.shape[0]}, {qk.shape[0]}")
    if not isinstance(v, tuple) or len(v) != 2:
        raise TypeError(f"v must be a (q_v, sigma_v) tuple, not {type(v).__name__}")
    qv = _int_array(v[0], "v q")
    if qv.shape != (n,):
        raise ValueError(f"v q must have shape ({n},), not {qv.shape}")
    if n and (qv.min() < -128 or qv.max() > 127):
        raise ValueError("v q values must lie in -128..127")
    sv = _check_sigma(v[1], "v sigma", n)
    rand = _check_rand(rand, rounding, n)
    if n == 0:
        return np.zeros((0, GROUP), np.int64), np.zeros(0, np.int64)
    a = ref_mul(sd, ss, _FP16)
    b = ref_mul(sk, sv, _FP16)
    x1 = dequantize(qd * qs, a)
    x2 = dequantize(qk * qv[:, None], b)
    y = ref_add(x1, x2, _FP16)
    return requantize(y, rounding, rand)


def update_words(s, d, k, v, *, rounding: str = "rne", rng: SPERandom | None = None
                 ) -> list[int]:
    """:func:`update` on port words: what the slice :class:`hw.spe_int8.SpeInt8` computes.

    Parameters
    ----------
    s, d, k : sequence of int
        272-bit sub-chunk words (``i_s``, ``i_d``, ``i_k``), one per operation.
    v : sequence of int
        24-bit scalar words (``i_v``).
    rounding : {"rne", "sr"}
        Rounding of the requantizer.
    rng : SPERandom, optional
        Required for ``"sr"``: draws ``rng["add"].draw((N, 32), 8)`` (``SPERandom.lfsr()``
        reproduces the slice's generator). Ignored (nothing drawn) for ``"rne"``.

    Returns
    -------
    list of int
        ``N`` 272-bit ``o_s`` words.
    """
    rounding = _check_rounding(rounding)
    if rng is not None and not isinstance(rng, SPERandom):
        raise TypeError(f"rng must be an SPERandom, not {type(rng).__name__}")
    if rounding == "sr" and rng is None:
        raise ValueError("rounding='sr' needs rng (an SPERandom, e.g. SPERandom.lfsr())")
    sw, dw, kw = (check_words(x, name, WORD_BITS) for name, x in (("s", s), ("d", d),
                                                                     ("k", k)))
    vw = check_words(v, "v", SCALAR_BITS)
    if not len(sw) == len(dw) == len(kw) == len(vw):
        raise ValueError(f"s, d, k, v must have the same length, not "
                         f"{len(sw)}, {len(dw)}, {len(kw)}, {len(vw)}")
    n = len(sw)
    if n == 0:
        return []
    rand = None
    if rounding == "sr":
        rand = np.asarray(rng["add"].draw((n, GROUP), SR_BITS)).astype(np.int64)
    q, sigma = update(unpack(sw), unpack(dw), unpack(kw), unpack_scalar(vw), rounding, rand)
    return pack(q, sigma)
