"""MX8: the block number format of the state-update engine (bit-exact specification).

The normative text is ``docs/mx8.md``; this module is its executable form. In short:

* A *group* is 16 consecutive values along the last dimension; a *pair* is elements
  ``2j, 2j+1`` of a group.
* Per group an 8-bit biased exponent ``E`` (bias 127); per pair a micro-exponent ``mu``;
  per value a sign ``s`` and a 6-bit magnitude ``m`` (no hidden bit)::

      value = (-1)**s * m * 2**(E - 127 - mu - 5)

* ``E == 0xFF`` marks a NaN group. A group whose magnitudes are all zero is stored canonically
  as ``E = 0, mu = 0, s = 0``. A zero magnitude always carries ``s = 0`` (no negative zero).
* Quantization from fp32: ``E`` is the largest fp32 exponent field of the group (fp32 zeros and
  denormals are flushed to zero and take no part); ``mu = 1`` for a pair whose two values both
  have exponents below ``E``; magnitudes are the exact values scaled to the pair's scale and
  rounded (half away from zero, or stochastically with ``r`` random bits added below the kept
  LSB), saturating at 63. Any Inf or NaN makes the whole group NaN.

Packing: one group is a 128-bit word, LSB first: bits 0-7 ``E``; bit ``8 + j`` the ``mu`` of
pair ``j``; element ``i`` at bits ``16 + 7*i`` (magnitude, 6 bits) and ``16 + 7*i + 6`` (sign).
A 256-bit DRAM column (a *sub-chunk*) holds two groups, group 0 in bits 0-127.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .constants import (BIAS, EXP_BITS, EXP_NAN, GROUP, GROUP_BITS, MAG_BITS, MAG_MAX, PAIRS,
                        SCALAR_BITS)
from .rng import RandomSource, make_source

__all__ = [
    "GROUP", "PAIRS", "MAG_BITS", "EXP_BITS", "BIAS", "MAG_MAX", "EXP_NAN", "GROUP_BITS",
    "ROUNDINGS", "OVERFLOWS", "MX8", "MX8Scalar", "encode", "decode", "quantize", "pack", "unpack", "to_words",
    "from_words", "SCALAR_BITS", "scalar_to_words", "scalar_from_words", "pow2", "round_shifted",
    "check_rounding", "check_fields", "FIELD_RANGES",
]

ROUNDINGS = ("nearest", "stochastic")
OVERFLOWS = ("saturate", "carry")


@dataclass(frozen=True)
class MX8:
    """An MX8 tensor as its fields (all ``torch.int32``).

    Members
    -------
    exp : (..., G) group exponents, 0..255 (255 = NaN group)
    mu : (..., G, 8) pair micro-exponents, 0/1
    sign : (..., G, 16) sign bits, 0/1
    mag : (..., G, 16) magnitudes, 0..63

    The logical shape is ``(..., 16 * G)``: groups run along the last dimension.
    """

    exp: torch.Tensor
    mu: torch.Tensor
    sign: torch.Tensor
    mag: torch.Tensor

    def __post_init__(self):
        g = tuple(self.exp.shape)
        if tuple(self.mu.shape) != g + (PAIRS,):
            raise ValueError(f"MX8 mu must have shape {g + (PAIRS,)}, not {tuple(self.mu.shape)}")
        for name in ("sign", "mag"):
            t = getattr(self, name)
            if tuple(t.shape) != g + (GROUP,):
                raise ValueError(f"MX8 {name} must have shape {g + (GROUP,)}, "
                                 f"not {tuple(t.shape)}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Logical shape (values)."""
        return tuple(self.exp.shape[:-1]) + (self.exp.shape[-1] * GROUP,)

    @property
    def mu_el(self) -> torch.Tensor:
        """Micro-exponent per element, (..., G, 16)."""
        return pair_to_elements(self.mu)

    @property
    def nan(self) -> torch.Tensor:
        """NaN flag per group, (..., G)."""
        return self.exp == EXP_NAN

    def __getitem__(self, idx) -> "MX8":
        """Index the *leading* dimensions (not the value dimension)."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        if any(i is Ellipsis for i in idx):
            raise IndexError("MX8 indexing takes leading-dimension indices, not Ellipsis")
        return MX8(self.exp[idx], self.mu[idx], self.sign[idx], self.mag[idx])

    def unsqueeze(self, dim: int) -> "MX8":
        """Insert a leading dimension at ``dim`` (0 <= dim <= number of leading dims)."""
        nlead = self.exp.dim() - 1
        if not 0 <= dim <= nlead:
            raise IndexError(f"MX8.unsqueeze: dim must be in 0..{nlead}, not {dim}")
        return MX8(self.exp.unsqueeze(dim), self.mu.unsqueeze(dim), self.sign.unsqueeze(dim),
                   self.mag.unsqueeze(dim))

    def reshape_lead(self, *lead: int) -> "MX8":
        """Reshape the leading dimensions (the value dimension is kept)."""
        g = self.exp.shape[-1]
        return MX8(self.exp.reshape(*lead, g), self.mu.reshape(*lead, g, PAIRS),
                   self.sign.reshape(*lead, g, GROUP), self.mag.reshape(*lead, g, GROUP))

    def broadcast_to(self, lead: tuple[int, ...]) -> "MX8":
        """Broadcast the leading dimensions to ``lead``."""
        g = self.exp.shape[-1]
        lead = tuple(lead)
        return MX8(self.exp.expand(*lead, g), self.mu.expand(*lead, g, PAIRS),
                   self.sign.expand(*lead, g, GROUP), self.mag.expand(*lead, g, GROUP))

    def scalars(self) -> "MX8Scalar":
        """Each value as a broadcastable MX8 scalar (its group's E, its pair's mu)."""
        g = self.exp.shape[-1]
        lead = tuple(self.exp.shape[:-1])
        e = self.exp.unsqueeze(-1).expand(*lead, g, GROUP).reshape(*lead, g * GROUP)
        return MX8Scalar(e, self.mu_el.reshape(*lead, g * GROUP),
                         self.sign.reshape(*lead, g * GROUP), self.mag.reshape(*lead, g * GROUP))

    def equal(self, other: "MX8") -> bool:
        """Bit-exact equality of every field."""
        return all(torch.equal(getattr(self, f), getattr(other, f))
                   for f in ("exp", "mu", "sign", "mag"))


@dataclass(frozen=True)
class MX8Scalar:
    """One MX8 value per position, with its group exponent and pair micro-exponent attached
    (the operand of a broadcast multiply). All fields ``torch.int32`` of one shape."""

    exp: torch.Tensor
    mu: torch.Tensor
    sign: torch.Tensor
    mag: torch.Tensor

    def expand_groups(self, lead: tuple[int, ...], groups: int) -> MX8:
        """The multiplier operand of a broadcast multiply: an MX8 tensor of leading shape
        ``lead`` (the scalar's shape broadcast to it) and ``groups`` groups, every value equal
        to the scalar, every group exponent its ``exp`` and every pair micro-exponent its
        ``mu``."""
        lead = tuple(lead)
        return MX8(self.exp[..., None].expand(*lead, groups),
                   self.mu[..., None, None].expand(*lead, groups, PAIRS),
                   self.sign[..., None, None].expand(*lead, groups, GROUP),
                   self.mag[..., None, None].expand(*lead, groups, GROUP))


# --------------------------------------------------------------------------------------------
# Shared exact helpers (also used by quant.spe)
# --------------------------------------------------------------------------------------------

def pow2(n: torch.Tensor) -> torch.Tensor:
    """Exact ``2.0**n`` as float32 for integer tensors ``n`` in [-149, 127] (denormals too)."""
    n = n.to(torch.int32)
    normal = n >= -126
    bits = torch.where(normal, (n + 127).clamp(min=1) << 23,
                       torch.ones_like(n) << (n + 149).clamp(0, 22))
    return bits.view(torch.float32)


def pair_to_elements(t: torch.Tensor) -> torch.Tensor:
    """Repeat a per-pair tensor (..., 8) to its elements (..., 16)."""
    return t.unsqueeze(-1).expand(*t.shape, 2).reshape(*t.shape[:-1], GROUP)


def apply_sign(t: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """``-t`` where ``sign`` is 1, ``t`` where it is 0 (two's complement, no branches)."""
    return (t ^ -sign) + sign


def check_rounding(rounding: str, rbits: int) -> None:
    """Validate a rounding mode and random-bit count (one-line errors)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
    if isinstance(rbits, bool) or not isinstance(rbits, int):
        raise TypeError(f"rbits must be an int, not {rbits!r}")
    if not 1 <= rbits <= 16:
        raise ValueError(f"rbits must be in 1..16, not {rbits}")


def round_shifted(v: torch.Tensor, shift: torch.Tensor, rounding: str, rbits: int,
                  rand: torch.Tensor | None, *, saturate: bool = True) -> torch.Tensor:
    """Round the non-negative integer ``v * 2**-shift`` to an integer magnitude <= 63.

    This is the one rounding primitive of the specification. The value is first truncated to
    ``r`` fraction bits (``t = floor(v * 2**(r - shift))``), then ``R`` is added and the
    ``r`` fraction bits are dropped: ``m = min((t + R) >> r, 63)``. Round-to-nearest uses
    ``r = 1, R = 1`` (exactly half-up on the magnitude = half away from zero); stochastic
    rounding uses ``r = rbits`` and ``R`` = the random integer of that element. With
    ``saturate=False`` the result is not clamped (it can reach 64).
    """
    if rounding == "nearest":
        r, add = 1, 1
    else:
        r, add = rbits, rand
    u = (shift - r).clamp(-31, 31)
    if bool((u < 0).any()):
        t = (v >> u.clamp(min=0)) << (-u).clamp(min=0)
    else:
        t = v >> u
    m = (t + add) >> r
    return m.clamp_(max=MAG_MAX) if saturate else m


def _draw(rng, shape, rounding: str, rbits: int) -> torch.Tensor | None:
    """Random integers for a rounding of ``shape`` elements (row-major), or None for nearest."""
    if rounding == "nearest":
        return None
    if isinstance(rng, torch.Tensor):
        if tuple(rng.shape) != tuple(shape):
            raise ValueError(f"pre-drawn random bits have shape {tuple(rng.shape)}, "
                             f"expected {tuple(shape)}")
        if rng.is_floating_point() or rng.is_complex() or rng.dtype == torch.bool:
            raise TypeError(f"pre-drawn random bits must be an integer tensor, not {rng.dtype}")
        if rng.numel() and (int(rng.min()) < 0 or int(rng.max()) >= 1 << rbits):
            raise ValueError(f"pre-drawn random bits out of range: min {int(rng.min())}, max "
                             f"{int(rng.max())} (allowed: 0..{(1 << rbits) - 1} for rbits={rbits})")
        return rng.to(torch.int32)
    return make_source(rng).draw(shape, rbits)


# --------------------------------------------------------------------------------------------
# Encode / decode
# --------------------------------------------------------------------------------------------

def _check_input(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, not {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"MX8 quantization needs a floating-point tensor, not {x.dtype}")
    if x.dim() == 0 or x.shape[-1] % GROUP != 0:
        raise ValueError(f"last dimension must be a multiple of {GROUP} (MX8 group size), "
                         f"got shape {tuple(x.shape)}")
    return x


_FP32_MAX = float(torch.finfo(torch.float32).max)


def _to_float32(x: torch.Tensor) -> torch.Tensor:
    """The fp32 input of the quantizer: finite values beyond the fp32 range (float64 input)
    are clamped to +-max fp32 first, so they saturate like any large finite value instead of
    becoming Inf (docs/mx8.md, "Inputs wider than fp32"); Inf and NaN stay as they are."""
    if x.dtype == torch.float32:
        return x
    if torch.finfo(x.dtype).max > _FP32_MAX:
        x = torch.where(torch.isfinite(x), x.clamp(-_FP32_MAX, _FP32_MAX), x)
    return x.to(torch.float32)


def encode(x: torch.Tensor, rounding: str = "nearest", *, rbits: int = 8,
           rng: RandomSource | int | torch.Tensor | None = None,
           overflow: str = "saturate") -> MX8:
    """Quantize a floating-point tensor to MX8 fields.

    Parameters
    ----------
    x : torch.Tensor
        Any floating dtype (converted to float32 first; finite float64 values beyond the fp32
        range saturate like any large finite value); last dimension a multiple of 16.
    rounding : {"nearest", "stochastic"}
    rbits : int
        Random bits added below the kept LSB by stochastic rounding (1..16, default 8).
    rng : RandomSource, int seed, pre-drawn int tensor of ``x.shape``, or None
        Source of the random bits; one ``rbits``-bit integer per element, row-major. None:
        the module-level default source of :mod:`quant.rng`, which advances with every call
        (restart it with ``quant.rng.seed(n)``); pre-drawn bits must lie in ``0..2**rbits-1``.
    overflow : {"saturate", "carry"}
        A magnitude that rounds to 64: ``"saturate"`` (the design brief) keeps 63;
        ``"carry"`` replaces the element by the power of two it rounded to (``m = 32`` one
        binade up) and quantizes the group again with the same random bits, so the group
        exponent or the pair's micro-exponent absorbs the carry. The GPU encodes the decay
        ``d`` this way (docs/mx8.md section 2; measured in docs/study.md).
    """
    x = _check_input(x)
    check_rounding(rounding, rbits)
    if overflow not in OVERFLOWS:
        raise ValueError(f"overflow must be one of {OVERFLOWS}, not {overflow!r}")
    x32 = _to_float32(x.detach()).contiguous()
    lead = tuple(x32.shape[:-1])
    g = x32.shape[-1] // GROUP
    rand = _draw(rng, x32.shape, rounding, rbits)

    bits = x32.view(torch.int32).reshape(*lead, g, GROUP)
    e = (bits >> 23) & 0xFF
    special = e == 0xFF
    normal = (e != 0) & ~special
    ee = torch.where(normal, e, 0)
    mant = torch.where(normal, (bits & 0x7FFFFF) | 0x800000, 0)

    gexp = ee.amax(dim=-1)
    pexp = ee.reshape(*lead, g, PAIRS, 2).amax(dim=-1)
    mu = ((pexp < gexp.unsqueeze(-1)) & (gexp.unsqueeze(-1) > 0)).to(torch.int32)
    mu_el = pair_to_elements(mu)
    # value = mant * 2**(e-150); target unit 2**(E-132-mu)  =>  m = mant * 2**-(E - mu - e + 18)
    shift = (gexp.unsqueeze(-1) - mu_el - ee + 18).clamp(max=40)
    if rand is not None:
        rand = rand.reshape(*lead, g, GROUP)
    mag = round_shifted(mant, shift, rounding, rbits, rand, saturate=False)
    # (a carry out of E = 254 would need E = 255, the NaN marker: those saturate)
    carried = ((mag > MAG_MAX) & ~special.any(dim=-1, keepdim=True)
               & (gexp.unsqueeze(-1) - mu_el < EXP_NAN - 1))
    if overflow == "carry" and bool(carried.any()):
        # the exact power of two each carried element rounded to, then the group again
        top = pow2((gexp.unsqueeze(-1) - mu_el) - (BIAS - 1)).reshape(x32.shape)
        x2 = torch.where(carried.reshape(x32.shape), torch.copysign(top, x32), x32)
        again = None if rand is None else rand.reshape(x32.shape)
        return encode(x2, rounding, rbits=rbits, rng=again, overflow="saturate")
    mag = mag.clamp_(max=MAG_MAX)
    sign = ((bits < 0) & (mag > 0)).to(torch.int32)
    # A group's largest value always rounds to a magnitude >= 32, so the only all-zero groups
    # are those with no normal value: E = 0 and mu = 0 already (the canonical zero group).
    nan = special.any(dim=-1)
    if bool(nan.any()):
        gexp = torch.where(nan, EXP_NAN, gexp)
        keep = ~nan.unsqueeze(-1)
        mu, sign, mag = mu * keep, sign * keep, mag * keep
    return MX8(gexp.to(torch.int32), mu, sign, mag.to(torch.int32))


def decode(m: MX8) -> torch.Tensor:
    """Exact float32 values of an MX8 tensor (every MX8 value is representable in fp32)."""
    scale = pow2(m.exp.unsqueeze(-1) - (BIAS + MAG_BITS - 1) - m.mu_el)
    val = m.mag.to(torch.float32) * scale
    val = torch.where(m.sign.bool(), -val, val)
    val = torch.where(m.nan.unsqueeze(-1), torch.nan, val)
    return val.reshape(m.shape)


def quantize(x: torch.Tensor, rounding: str = "nearest", *, rbits: int = 8,
             rng: RandomSource | int | torch.Tensor | None = None,
             overflow: str = "saturate") -> torch.Tensor:
    """Quantize to MX8 and decode back: float32 tensor of ``x``'s shape (see :func:`encode`).

    Computed without the fields, in fp32 (bit-identical to ``decode(encode(x, ...))``, checked
    by tests/test_mx8_format.py): ``y = |x| / unit`` is exact (a power-of-two scaling), so is
    the truncation ``t = floor(y * 2**r)``, and ``(t + R) * 2**-r`` stays below 2**24.
    """
    x = _check_input(x)
    check_rounding(rounding, rbits)
    if overflow not in OVERFLOWS:
        raise ValueError(f"overflow must be one of {OVERFLOWS}, not {overflow!r}")
    if overflow == "carry":
        return decode(encode(x, rounding, rbits=rbits, rng=rng, overflow=overflow))
    x32 = x.detach().to(torch.float32).contiguous()
    rand = _draw(rng, x32.shape, rounding, rbits)
    lead = tuple(x32.shape[:-1])
    g = x32.shape[-1] // GROUP
    ab = x32.view(torch.int32).reshape(*lead, g, PAIRS, 2) & 0x7FFFFFFF
    pexp = ab.amax(dim=-1) >> 23  # (..., G, 8): the pair's largest exponent field
    gexp = pexp.amax(dim=-1, keepdim=True)  # 255 where the group holds an Inf or NaN
    mu = ((pexp < gexp) & (gexp > 0)).to(torch.int32)
    n = gexp - (BIAS + MAG_BITS - 1) - mu  # unit 2**n of each pair
    r, add = (1, 1.0) if rounding == "nearest" else (rbits, rand.reshape(ab.shape))
    if bool((gexp <= 24).any()):
        # a denormal input (flushed to zero by the spec) could otherwise reach t >= 1, and
        # 2**-n would overflow: flush, and divide by the unit instead of multiplying
        ab = ab * (ab >= 0x00800000)
        y = ab.view(torch.float32) / pow2(n).unsqueeze(-1)
        y.mul_(float(1 << r))
    else:
        y = ab.view(torch.float32) * pow2(r - n).unsqueeze(-1)
    m = y.floor_().add_(add).mul_(1.0 / (1 << r)).floor_().clamp_(max=MAG_MAX)
    val = m.mul_(pow2(n).unsqueeze(-1)).reshape(x32.shape).copysign_(x32).add_(0.0)
    nan = gexp == EXP_NAN
    if bool(nan.any()):
        val = val.reshape(*lead, g, GROUP).masked_fill_(nan.reshape(*lead, g, 1), torch.nan)
    return val.reshape(x32.shape)


# --------------------------------------------------------------------------------------------
# Packing (the RTL's bit layout)
# --------------------------------------------------------------------------------------------

def _field_bits(m: MX8) -> np.ndarray:
    """(..., G, 128) uint8 array of the group words' bits, LSB first."""
    lead = tuple(m.exp.shape)
    out = np.zeros(lead + (GROUP_BITS,), dtype=np.uint8)
    e = m.exp.numpy().astype(np.int64)
    for j in range(EXP_BITS):
        out[..., j] = (e >> j) & 1
    out[..., EXP_BITS:EXP_BITS + PAIRS] = m.mu.numpy()
    elem = out[..., EXP_BITS + PAIRS:].reshape(lead + (GROUP, MAG_BITS + 1))
    mag = m.mag.numpy().astype(np.int64)
    for j in range(MAG_BITS):
        elem[..., j] = (mag >> j) & 1
    elem[..., MAG_BITS] = m.sign.numpy()
    return out


#: Allowed range of each field (inclusive), checked before packing.
FIELD_RANGES = {"exp": (0, EXP_NAN), "mu": (0, 1), "sign": (0, 1), "mag": (0, MAG_MAX)}


def check_fields(m) -> None:
    """Refuse an :class:`MX8` or :class:`MX8Scalar` whose fields do not fit their bit widths
    (a hand-built ``mag = 64`` would otherwise be truncated silently when packed)."""
    for name, (lo, hi) in FIELD_RANGES.items():
        t = getattr(m, name)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"MX8 field {name} must be an integer tensor, not {t.dtype}")
        if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
            raise ValueError(f"MX8 field {name} out of range: min {int(t.min())}, max "
                             f"{int(t.max())} (allowed: {lo}..{hi})")


def pack(m: MX8) -> torch.Tensor:
    """Pack to bytes: uint8 tensor (..., G, 16), each group's 128-bit word little-endian.
    Fields out of their range are refused (:func:`check_fields`)."""
    check_fields(m)
    return torch.from_numpy(np.packbits(_field_bits(m), axis=-1, bitorder="little"))


def unpack(b: torch.Tensor) -> MX8:
    """Inverse of :func:`pack`: uint8 tensor (..., G, 16) -> MX8."""
    if b.dtype != torch.uint8 or b.dim() < 2 or b.shape[-1] != GROUP_BITS // 8:
        raise ValueError(f"unpack needs a uint8 tensor (..., G, 16), got {b.dtype} "
                         f"{tuple(b.shape)}")
    bits = np.unpackbits(b.numpy(), axis=-1, bitorder="little").astype(np.int64)
    lead = tuple(bits.shape[:-1])
    w = lambda a: (a * (1 << np.arange(a.shape[-1], dtype=np.int64))).sum(-1)  # noqa: E731
    exp = w(bits[..., :EXP_BITS])
    mu = bits[..., EXP_BITS:EXP_BITS + PAIRS]
    elem = bits[..., EXP_BITS + PAIRS:].reshape(lead + (GROUP, MAG_BITS + 1))
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(torch.int32)  # noqa: E731
    return MX8(t(exp), t(mu), t(elem[..., MAG_BITS]), t(w(elem[..., :MAG_BITS])))


def to_words(m: MX8, groups_per_word: int = 1) -> list[int]:
    """Python ints of ``128 * groups_per_word`` bits (2 = one 256-bit sub-chunk), row-major
    over the leading dimensions and the groups; the first group of a word is its LSBs."""
    if groups_per_word < 1 or m.exp.shape[-1] % groups_per_word:
        raise ValueError(f"{m.exp.shape[-1]} groups do not split into words of "
                         f"{groups_per_word} groups")
    raw = pack(m).numpy().reshape(-1, groups_per_word * GROUP_BITS // 8)
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def from_words(words, lead: tuple[int, ...], groups: int, groups_per_word: int = 1) -> MX8:
    """Inverse of :func:`to_words` for leading shape ``lead`` and ``groups`` groups."""
    nbytes = groups_per_word * GROUP_BITS // 8
    raw = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(tuple(lead) + (groups, GROUP_BITS // 8))
    return unpack(torch.from_numpy(arr.copy()))



def scalar_to_words(s: MX8Scalar) -> list[int]:
    """16-bit words of scalars (row-major): exp bits 0-7, mu bit 8, mag bits 9-14, sign bit 15
    (the RTL's ``hw.mx8_layout.mx_scalar_layout``). Fields out of range are refused."""
    check_fields(s)
    w = s.exp | (s.mu << EXP_BITS) | (s.mag << (EXP_BITS + 1)) | (s.sign << (SCALAR_BITS - 1))
    return [int(v) for v in w.reshape(-1).tolist()]


def scalar_from_words(words) -> MX8Scalar:
    """Inverse of :func:`scalar_to_words`: a 1-D :class:`MX8Scalar` of ``len(words)``."""
    w = torch.tensor([int(x) for x in words], dtype=torch.int32)
    return MX8Scalar(w & ((1 << EXP_BITS) - 1), (w >> EXP_BITS) & 1,
                     (w >> (SCALAR_BITS - 1)) & 1, (w >> (EXP_BITS + 1)) & MAG_MAX)
