"""Arithmetic of the State-update Processing Engine on MX8 operands (bit-exact specification).

The normative text, with worked examples, is ``docs/mx8.md``. Operations:

* :func:`mul` — element-wise product of two MX8 tensors (group ``g`` times group ``g``);
  :func:`mul_scalar` — an MX8 tensor times a broadcast MX8 scalar.
* :func:`add` — sum with shift alignment and renormalization.
* :func:`dot` — 32-element dot products (one per sub-chunk) in the exact ``DotOut`` format.
* :func:`state_update` — ``S' = d * S + k v_j ; y_j = S'^T q`` on MX8 sub-chunks.
* :func:`attention_score`, :func:`attention_attend` — the attention mode of the datapath.

Every rounding point (the two multipliers and the adder; the dot product does not round)
takes its random bits from the source of its *site* (``quant.rng.SITES``), one ``rbits``-bit
integer per result element, in row-major order of the result (or the hardware order for
:func:`state_update`, see there).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from .constants import (ADD_FRAC_BITS, ATTEND_PARTIALS, ATTEND_PARTIALS_FUSED, ATTEND_ROW,
                        DOT_GUARD_BITS, DOT_X_NAN, DOT_Y_BITS, FMA_FRAC_BITS, LANES, ONE_EXP,
                        ONE_MAG, RBITS)
from .constants import attend_partials as _attend_partials
from .mx8 import (BIAS, EXP_NAN, GROUP, MAG_BITS, MAG_MAX, MX8, MX8Scalar, PAIRS, _draw,
                  apply_sign, check_rounding, pair_to_elements, round_shifted)
from . import native
from .rng import SITES, SPERandom, TorchBits

__all__ = [
    "RBITS",
    "RENORMS", "ADD_FRAC_BITS", "ATTEND_PARTIALS", "ATTEND_PARTIALS_FUSED", "ATTEND_ROW",
    "DOT_GUARD_BITS", "attend_partials", "one_mx8",
    "DOT_Y_BITS", "DOT_X_NAN", "SUBCHUNK",
    "SPEConfig", "DotOut", "StateUpdateOut", "mul", "mul_scalar", "add", "dot",
    "state_update", "attention_score", "attention_attend", "hardware_order_rand",
    "fused_mul_add", "FMA_FRAC_BITS",
]

RENORMS = ("lod", "fixed")
#: Values per sub-chunk (one 256-bit DRAM column = two groups).
SUBCHUNK = LANES


@dataclass(frozen=True)
class SPEConfig:
    """Arithmetic options of the SPE.

    Parameters
    ----------
    rounding : {"stochastic", "nearest"}
        Rounding of the multipliers and the adder.
    rbits : int
        Random bits of stochastic rounding (1..8; the adder keeps 8 fraction bits).
    renorm : {"lod", "fixed"}
        ``"lod"``: group-wide leading-one detection picks the result exponent so the group's
        largest magnitude uses all 6 bits. ``"fixed"``: the multiplier always drops 6 bits
        (result exponent ``Ea + Eb - 126``) and the adder only shifts right by one when a sum
        needs a 7th bit.
    fused : bool
        The state update as one fused multiply-add (:func:`fused_mul_add`): both products
        enter the adder exact and the sum is rounded once (site ``add``; the multiplier sites
        draw nothing). Needs ``renorm="lod"``. :func:`state_update` and
        :func:`attention_attend` (its token sum and fold through the same unit) look at it.
    """

    rounding: str = "stochastic"
    rbits: int = RBITS
    renorm: str = "lod"
    fused: bool = False

    def __post_init__(self):
        check_rounding(self.rounding, self.rbits)
        if self.rbits > ADD_FRAC_BITS:
            raise ValueError(f"SPEConfig.rbits must be in 1..{ADD_FRAC_BITS}, not {self.rbits}")
        if self.renorm not in RENORMS:
            raise ValueError(f"SPEConfig.renorm must be one of {RENORMS}, not {self.renorm!r}")
        if not isinstance(self.fused, bool):
            raise TypeError(f"SPEConfig.fused must be a bool, not {self.fused!r}")
        if self.fused and self.renorm != "lod":
            raise ValueError(f"SPEConfig.fused=True needs renorm='lod' (the fused adder "
                             f"normalizes by leading-one detection), not {self.renorm!r}")


@dataclass(frozen=True)
class DotOut:
    """Exact-format dot-product partial: ``y = Y * 2**(X - 254 - 12 - DOT_GUARD_BITS)``.

    Members
    -------
    y_int : int64 tensor, the signed mantissa ``Y`` (fits ``DOT_Y_BITS`` two's complement)
    x_exp : int32 tensor, the exponent ``X`` (9 bits; ``DOT_X_NAN`` = NaN)
    """

    y_int: torch.Tensor
    x_exp: torch.Tensor

    def value(self) -> torch.Tensor:
        """Exact float64 value of each partial (NaN where ``X == DOT_X_NAN``)."""
        scale = torch.exp2((self.x_exp.to(torch.float64)
                            - (2 * BIAS + 2 * (MAG_BITS - 1) + 2 + DOT_GUARD_BITS)))
        val = self.y_int.to(torch.float64) * scale
        return torch.where(self.x_exp == DOT_X_NAN, torch.nan, val)

    def words(self) -> torch.Tensor:
        """The 37-bit result word the RTL returns: ``Y`` in bits 0-27, ``X`` in bits 28-36."""
        y = self.y_int & ((1 << DOT_Y_BITS) - 1)
        return y | (self.x_exp.to(torch.int64) << DOT_Y_BITS)


@dataclass(frozen=True)
class StateUpdateOut:
    """Result of :func:`state_update`: new state, per-sub-chunk partials and ``y``."""

    state: MX8
    partial: DotOut
    y: torch.Tensor


def _bitlen(v: torch.Tensor) -> torch.Tensor:
    """Bit length of non-negative integers (< 2**53): 0 -> 0, 1 -> 1, 4 -> 3."""
    return torch.frexp(v.to(torch.float64)).exponent.to(torch.int32)


def _normalize_round(v, neg, e_base, frac, sh, mu_r, nan, cfg: SPEConfig, rand, *,
                     finer: bool = False) -> MX8:
    """Common back end of the multiplier, the adder and the fused adder.

    ``v`` (..., G, 16) are exact non-negative magnitudes in units of
    ``2**(e_base - 127 - mu_r - 5 - frac)`` (``finer``: of ``2**(e_base - 127 - 5 - frac)``,
    and a pair with ``mu_r = 1`` is rounded one bit finer); ``sh`` (..., G) is the policy's
    exponent shift. The shift is raised where needed so the result exponent ``e_base + sh`` is
    >= 0 (gradual underflow); a result exponent above 254 gives a NaN group (overflow).
    """
    sh = torch.maximum(sh, -e_base)
    exp = e_base + sh
    shift = (frac + sh).unsqueeze(-1)
    if finer:
        shift = shift - pair_to_elements(mu_r)
    mag = round_shifted(v, shift, cfg.rounding, cfg.rbits, rand)
    nan = nan | (exp > EXP_NAN - 1)
    zero = (mag.amax(dim=-1) == 0) & ~nan
    clear = (nan | zero).unsqueeze(-1)
    exp = torch.where(nan, EXP_NAN, torch.where(zero, 0, exp)).to(torch.int32)
    sign = torch.where(clear, 0, (neg & (mag > 0)).to(torch.int32))
    mu = torch.where(clear, 0, mu_r)
    mag = torch.where(clear, 0, mag)
    return MX8(exp, mu.to(torch.int32).contiguous(), sign.contiguous(),
               mag.to(torch.int32).contiguous())


def _broadcast(a: MX8, b: MX8) -> tuple[MX8, MX8]:
    if a.exp.shape[-1] != b.exp.shape[-1]:
        raise ValueError(f"MX8 operands have different value lengths {a.shape} and {b.shape}")
    lead = torch.broadcast_shapes(a.exp.shape[:-1], b.exp.shape[:-1])
    return a.broadcast_to(lead), b.broadcast_to(lead)


def mul(a: MX8, b: MX8, cfg: SPEConfig = SPEConfig(), rng=None) -> MX8:
    """Element-wise MX8 product (leading dimensions broadcast).

    Steps (per group): ``Ep = Ea + Eb - 127``; per pair ``mu_sum = mu_a + mu_b``, result
    ``mu = min(mu_sum, 1)`` and products of pairs with ``mu_sum == 2`` are shifted right by
    one; ``p = ma * mb`` (12-bit), sign ``sa ^ sb``; reduction to 6 bits by the renorm policy
    and rounding. ``rng``: the ``mul_*`` site's source, or pre-drawn bits of the result shape.
    """
    a, b = _broadcast(a, b)
    mu_sum = a.mu + b.mu
    lead_g = mu_sum.shape[:-1]
    scale = 2 - (mu_sum == 2).to(torch.int32).unsqueeze(-1)  # x2 unless the pair is halved
    prod = ((a.mag * b.mag).reshape(*lead_g, PAIRS, 2) * scale).reshape(*lead_g, GROUP)
    neg = (a.sign ^ b.sign).bool()
    e_base = a.exp + b.exp - BIAS - (MAG_BITS - 1)
    if cfg.renorm == "fixed":
        sh = torch.full_like(e_base, MAG_BITS)
    else:
        sh = (_bitlen(prod.amax(dim=-1)) - (MAG_BITS + 1)).clamp(min=0)
    rand = _draw(rng, prod.shape[:-2] + (prod.shape[-2] * GROUP,), cfg.rounding, cfg.rbits)
    if rand is not None:
        rand = rand.reshape(prod.shape)
    return _normalize_round(prod, neg, e_base, 1, sh, mu_sum.clamp(max=1), a.nan | b.nan,
                            cfg, rand)


def mul_scalar(a: MX8, s: MX8Scalar, cfg: SPEConfig = SPEConfig(), rng=None) -> MX8:
    """``a`` times a broadcast MX8 scalar per leading position (``s.exp.shape`` broadcasts
    against ``a``'s leading shape). The scalar enters the multiplier as a group of 16 copies
    with its own group exponent and pair micro-exponent."""
    lead = torch.broadcast_shapes(a.exp.shape[:-1], s.exp.shape)
    return mul(a, s.expand_groups(lead, a.exp.shape[-1]), cfg, rng)


def add(a: MX8, b: MX8, cfg: SPEConfig = SPEConfig(), rng=None) -> MX8:
    """MX8 sum (leading dimensions broadcast).

    Steps (per group): ``Er = max(Ea, Eb)``; each addend's magnitude, extended by
    ``ADD_FRAC_BITS`` zero fraction bits, is shifted right (truncating) by
    ``Er - E + mu`` of its own group and pair; signed integer addition; renormalization by
    the policy; rounding; result ``mu = 0``.
    """
    a, b = _broadcast(a, b)
    e_max = torch.maximum(a.exp, b.exp)
    lim = MAG_BITS + ADD_FRAC_BITS + 1

    def aligned(x: MX8) -> torch.Tensor:
        dist = ((e_max - x.exp).unsqueeze(-1) + x.mu).clamp(max=lim).unsqueeze(-1)
        lead_g = e_max.shape
        t = ((x.mag << ADD_FRAC_BITS).reshape(*lead_g, PAIRS, 2) >> dist).reshape(
            *lead_g, GROUP)
        return apply_sign(t, x.sign)

    total = aligned(a) + aligned(b)
    v = total.abs()
    if cfg.renorm == "fixed":
        sh = (v.amax(dim=-1) >> (MAG_BITS + ADD_FRAC_BITS)).clamp(max=1)
    else:
        sh = _bitlen(v.amax(dim=-1)) - (MAG_BITS + ADD_FRAC_BITS)
    rand = _draw(rng, v.shape[:-2] + (v.shape[-2] * GROUP,), cfg.rounding, cfg.rbits)
    if rand is not None:
        rand = rand.reshape(v.shape)
    mu0 = torch.zeros(e_max.shape + (PAIRS,), dtype=torch.int32)
    return _normalize_round(v, total < 0, e_max, ADD_FRAC_BITS, sh, mu0, a.nan | b.nan,
                            cfg, rand)


def _full_product(a: MX8, b: MX8):
    """Exact products at full width: ``P = ma * mb << (2 - mu_a - mu_b)`` (< 2**14), sign
    ``sa ^ sb`` and exponent ``X = Ea + Eb``: value ``(-1)**s * P * 2**(X - 254 - 12)``."""
    lead_g = a.exp.shape
    scale = (4 >> (a.mu + b.mu)).unsqueeze(-1)
    p = ((a.mag * b.mag).reshape(*lead_g, PAIRS, 2) * scale).reshape(*lead_g, GROUP)
    return p, a.sign ^ b.sign, a.exp + b.exp, a.nan | b.nan


def fused_mul_add(a: MX8, b: MX8, c: MX8, e: MX8, cfg: SPEConfig = SPEConfig(),
                  rng=None) -> MX8:
    """``a * b + c * e`` rounded once (leading dimensions broadcast; ``renorm`` must be
    ``"lod"``).

    Steps (per group, docs/mx8.md section 8a): the products exact, ``P = ma*mb << (2 - mu_sum)``
    with ``X = Ea + Eb``; ``X0 = max(X_ab, X_ce)``; each ``P``, extended by
    :data:`FMA_FRAC_BITS` zero fraction bits, shifted right (truncating) by ``X0 - X``; signed
    integer addition; leading-one renormalization, ``mu = 1`` for the pairs below the group's
    leading binade, and one rounding (site ``add``); exponent ``X0 - 127 + sh``.
    """
    if cfg.renorm != "lod":
        raise ValueError(f"fused_mul_add needs renorm='lod', not {cfg.renorm!r}")
    lead = torch.broadcast_shapes(*(t.exp.shape[:-1] for t in (a, b, c, e)))
    if len({t.exp.shape[-1] for t in (a, b, c, e)}) != 1:
        raise ValueError(f"MX8 operands have different value lengths "
                         f"{[t.shape for t in (a, b, c, e)]}")
    a, b, c, e = (t.broadcast_to(lead) for t in (a, b, c, e))
    p1, n1, x1, nan1 = _full_product(a, b)
    p2, n2, x2, nan2 = _full_product(c, e)
    x0 = torch.maximum(x1, x2)
    lim = 2 * MAG_BITS + 2 + FMA_FRAC_BITS  # P << FMA_FRAC_BITS < 2**lim: all shifted out

    def aligned(p, neg, x):
        return apply_sign((p << FMA_FRAC_BITS) >> (x0 - x).clamp(max=lim).unsqueeze(-1), neg)

    total = aligned(p1, n1, x1) + aligned(p2, n2, x2)
    v = total.abs()
    frac = MAG_BITS + 1 + FMA_FRAC_BITS  # total's unit is 2**(X0 - 127 - 127 - 5 - frac)
    top = _bitlen(v.amax(dim=-1))
    sh = top - (MAG_BITS + frac)
    # a pair whose largest |sum| lies below the group's leading binade gets mu = 1 (the
    # quantizer's rule, section 2) and is rounded one bit finer
    pair_top = _bitlen(v.reshape(*v.shape[:-1], PAIRS, 2).amax(dim=-1))
    mu = (pair_top < top.unsqueeze(-1)).to(torch.int32)
    rand = _draw(rng, v.shape[:-2] + (v.shape[-2] * GROUP,), cfg.rounding, cfg.rbits)
    if rand is not None:
        rand = rand.reshape(v.shape)
    return _normalize_round(v, total < 0, x0 - BIAS, frac, sh, mu, nan1 | nan2, cfg, rand,
                            finer=True)


def dot(a: MX8, b: MX8) -> DotOut:
    """32-element dot products, one per sub-chunk (two groups) of the last dimension.

    Exact per group: ``A_g = sum(+-(ma*mb) << (2 - mu_sum))`` (19-bit signed) with exponent
    ``X_g = Ea + Eb``. Per sub-chunk: ``X = max X_g`` over groups with ``A_g != 0`` (0 if
    none); ``Y = sum((A_g << 8) >> (X - X_g))`` with arithmetic (floor) shifts. Any NaN group
    gives ``X = 0x1FF, Y = 0``. Nothing is rounded except the floor of the lower group.
    """
    a, b = _broadcast(a, b)
    if a.exp.shape[-1] % 2:
        raise ValueError(f"dot needs whole 32-value sub-chunks, got {a.shape[-1]} values")
    lead_g = a.exp.shape
    scale = (4 >> (a.mu + b.mu)).unsqueeze(-1)  # << (2 - mu_sum)
    term = ((a.mag * b.mag).reshape(*lead_g, PAIRS, 2) * scale).reshape(*lead_g, GROUP)
    term = apply_sign(term, a.sign ^ b.sign)
    acc = term.sum(dim=-1, dtype=torch.int64)  # (..., G), < 2**18 in magnitude
    xg = (a.exp + b.exp).to(torch.int64)
    nan = a.nan | b.nan
    lead = acc.shape[:-1]
    acc = acc.reshape(*lead, -1, 2)
    xg = xg.reshape(*lead, -1, 2)
    nan = nan.reshape(*lead, -1, 2).any(dim=-1)
    x = torch.where(acc != 0, xg, 0).amax(dim=-1)
    dist = (x.unsqueeze(-1) - xg).clamp(0, 62)
    y = ((acc << DOT_GUARD_BITS) >> dist).sum(dim=-1)
    y = torch.where(nan, 0, y)
    x = torch.where(nan, DOT_X_NAN, x).to(torch.int32)
    return DotOut(y, x)


def hardware_order_rand(src, lead: tuple[int, ...], dim_state: int, dim_head: int,
                        rounding: str, rbits: int) -> torch.Tensor | None:
    """Random bits for a state-shaped result ``(*lead, dim_state, dim_head)`` drawn in the
    SPU's processing order: for each leading index, for each dim_head sub-chunk range (a
    chunk), for each state column (an iteration), the 32 lanes."""
    r = _hardware_draw(src, lead, dim_state, dim_head, rounding, rbits)
    return None if r is None else r.transpose(-2, -3).reshape(*lead, dim_state, dim_head)


def _hardware_draw(src, lead, dim_state: int, dim_head: int, rounding: str, rbits: int,
                   scratch: int | None = None):
    """The bits of :func:`hardware_order_rand` as drawn, ``(*lead, dim_head / 32, dim_state,
    32)`` (chunk, iteration, lane), or None for round-to-nearest. ``scratch``: a
    :class:`TorchBits` source draws into per-thread scratch tensor number ``scratch``
    (reused from call to call: fresh pages cost as much as drawing the bits)."""
    if rounding == "nearest":
        return None
    shape = tuple(lead) + (dim_head // SUBCHUNK, dim_state, SUBCHUNK)
    if scratch is not None and type(src) is TorchBits:
        return src.draw_into(_workspace(scratch, shape), rbits)
    return src.draw(shape, rbits)


def _check_shapes(S: MX8, d: MX8, k: MX8, v: MX8, q: MX8):
    *lead, dim_state, dim_head = S.shape
    lead = tuple(lead)
    if dim_head % SUBCHUNK:
        raise ValueError(f"dim_head must be a multiple of {SUBCHUNK} (one sub-chunk), "
                         f"got {dim_head}")
    for name, t, n in (("d", d, dim_head), ("k", k, dim_head), ("q", q, dim_head),
                       ("v", v, dim_state)):
        if t.shape != lead + (n,):
            raise ValueError(f"state_update: {name} must have shape {lead + (n,)} for a state "
                             f"of shape {S.shape}, got {t.shape}")
    return lead, dim_state, dim_head


def _spe_random(rng) -> SPERandom:
    """``rng`` of the SPE operations: an :class:`SPERandom`, an int seed
    (``SPERandom.torch(seed)``) or None (the advancing module-level default source)."""
    if rng is None:
        return SPERandom.default()
    if isinstance(rng, int) and not isinstance(rng, bool):
        return SPERandom.torch(rng)
    if not isinstance(rng, SPERandom):
        raise TypeError(f"rng must be an SPERandom, an int seed or None, not {type(rng)}")
    return rng


def state_update(S: MX8, d: MX8, k: MX8, v: MX8, q: MX8, cfg: SPEConfig = SPEConfig(),
                 rng: SPERandom | int | None = None) -> StateUpdateOut:
    """One generation step of the state update on MX8 data, exactly as the SPE computes it.

    ``S`` holds the state transposed, shape ``(*lead, dim_state, dim_head)`` (state column
    ``j`` is row ``j``, groups along dim_head); ``d, k, q``: ``(*lead, dim_head)``;
    ``v``: ``(*lead, dim_state)``. Per sub-chunk (32 values of one state column)::

        decay = mul(d, S[j])          (site mul_decay)
        outer = mul_scalar(k, v[j])   (site mul_outer)
        S'[j] = add(decay, outer)     (site add)
        partial = dot(S'[j], q)       (exact, no rounding)

    With ``cfg.fused``: ``S'[j] = fused_mul_add(d, S[j], k, v[j])`` (one rounding, site
    ``add``; the multiplier sites draw nothing).

    ``y[j]`` is the float64 sum of the ``dim_head / 32`` partials of column ``j`` (the GPU
    accumulates them in higher precision). Random bits are consumed in the SPU's order (see
    :func:`hardware_order_rand`); ``rng`` is an :class:`SPERandom`, an int seed
    (``SPERandom.torch(seed)``) or None (the module-level default source of
    :mod:`quant.rng`, which advances; ``quant.rng.seed(n)`` restarts it).

    It runs as the compiled kernel of :mod:`quant.native` where one can be built, else as
    eager PyTorch code; the two are bit-identical.
    """
    lead, dim_state, dim_head = _check_shapes(S, d, k, v, q)
    rng = _spe_random(rng)
    kernel = native.lib()
    if kernel is not None:  # the compiled form of the code below (quant/csrc/spe_update.c)
        sites = ("add",) if cfg.fused else SITES
        raw = {s: _hardware_draw(rng[s], lead, dim_state, dim_head, cfg.rounding, cfg.rbits,
                                 _RAND_SCRATCH + i) for i, s in enumerate(sites)}
        new, partial = _native_update(kernel, S, d, k, v, q, cfg, raw)
        return StateUpdateOut(new, partial, partial.value().sum(dim=-1))
    if cfg.fused:  # one rounding: only the adder's generator draws
        rand = hardware_order_rand(rng["add"], lead, dim_state, dim_head, cfg.rounding,
                                   cfg.rbits)
        new, partial = _fused_update_fast(S, d, k, v, q, cfg, rand)
        return StateUpdateOut(new, partial, partial.value().sum(dim=-1))
    draws = {s: hardware_order_rand(rng[s], lead, dim_state, dim_head, cfg.rounding, cfg.rbits)
             for s in SITES}
    new, partial = _state_update_fast(S, d, k, v, q, cfg, draws)
    return StateUpdateOut(new, partial, partial.value().sum(dim=-1))


# --------------------------------------------------------------------------------------------
# The state update, fused for speed. Bit-identical to
#     new = add(mul(S, d), mul_scalar(k, v.scalars()), cfg); partial = dot(new, q)
# (tests/test_spe_arith.py compares the two on random and corner fields). All int32, in place
# where possible, over chunks of the leading dimension small enough to stay in the caches; the
# group-level work (exponents, shifts, NaN/zero flags) is on tensors 16x smaller.
# --------------------------------------------------------------------------------------------

#: Values per chunk of the fused state update.
_CHUNK = 1 << 18
#: Scratch tensors of the fused update, per thread, reused from call to call (fresh tensors
#: of this size cost more in page faults than the arithmetic on them).
_SCRATCH = threading.local()
#: Scratch numbers of the compiled update's random bits (one per site; 0-3: the eager update).
_RAND_SCRATCH = 4


def _workspace(i: int, shape) -> torch.Tensor:
    """Scratch int32 tensor number ``i`` of ``shape`` (contents undefined)."""
    n = 1
    for x in shape:
        n *= x
    bufs = _SCRATCH.__dict__.setdefault("bufs", {})
    t = bufs.get(i)
    if t is None or t.numel() < n:
        t = bufs[i] = torch.empty(n, dtype=torch.int32)
    return t[:n].view(shape)


def _round_inplace(v: torch.Tensor, shift: torch.Tensor, cfg: SPEConfig, rand) -> torch.Tensor:
    """``round_shifted(v, shift[..., None], ...)`` for a group-level ``shift``, in place on
    ``v`` (int32, non-negative)."""
    r, add_ = (1, 1) if cfg.rounding == "nearest" else (cfg.rbits, rand)
    u = (shift - r).clamp_(-31, 31)
    left = (-u).clamp_(min=0)
    if bool(left.any()):
        v <<= left.unsqueeze(-1)
    v >>= u.clamp_(min=0).unsqueeze(-1)
    v += add_
    v >>= r
    return v.clamp_(max=MAG_MAX)


def _exp_and_clear(mag, exp, vmax, surely_nonzero, nan):
    """``_normalize_round``'s zero and NaN groups: result exponent, ``mag`` cleared in NaN
    groups (in place). ``vmax`` is the group maximum before rounding; where
    ``surely_nonzero`` the largest value rounds to >= 32, so ``vmax == 0`` decides zero."""
    nan = nan | (exp > EXP_NAN - 1)
    if bool((~surely_nonzero & (vmax > 0)).any()):
        zero = mag.amax(dim=-1) == 0
    else:
        zero = vmax == 0
    zero &= ~nan
    exp = torch.where(nan, EXP_NAN, torch.where(zero, 0, exp))
    if bool(nan.any()):
        mag.mul_((~nan).unsqueeze(-1))
    return exp, zero | nan


def _product_inplace(prod, e_base, nan, cfg: SPEConfig, rand):
    """Multiplier back end on the exact products (int32, one fraction bit), in place:
    returns ``(mag, exp)`` of the normalized, rounded product."""
    pmax = prod.amax(dim=-1)
    if cfg.renorm == "fixed":
        sh = torch.full_like(e_base, MAG_BITS)
        sure = torch.zeros_like(nan)
    else:
        sh = (_bitlen(pmax) - (MAG_BITS + 1)).clamp_(min=0)
        sure = (sh > 0) & (sh >= -e_base)  # leading one lands in bit 5 or 6 of the result
    sh = torch.maximum(sh, -e_base)
    exp = e_base + sh
    mag = _round_inplace(prod, sh + 1, cfg, rand)
    exp, _ = _exp_and_clear(mag, exp, pmax, sure, nan)
    return mag, exp


def _signed_aligned(mag, neg, exp, mu_el, e_max):
    """Adder input, in place on ``mag`` (and on ``mu_el``, ``neg``: scratch): magnitude with
    ADD_FRAC_BITS fraction bits, shifted (truncating) to the common exponent ``e_max``, then
    signed (``neg``: 0/1)."""
    dist = mu_el.add_((e_max - exp).unsqueeze(-1))
    mag <<= ADD_FRAC_BITS
    mag >>= dist.clamp_(max=MAG_BITS + ADD_FRAC_BITS + 1)
    m = neg.neg_()
    mag ^= m
    mag -= m
    return mag


def _signed_magnitude(total, mag, work, out_sign):
    """The rounded magnitude ``mag`` with the sign of the unrounded sum ``total`` (in place in
    ``work``; ``total`` is consumed), and ``out_sign`` = 1 where it is negative and non-zero."""
    neg = total.__irshift__(31)  # -1 where the sum is negative
    smag = torch.bitwise_xor(mag, neg, out=work)
    smag -= neg
    torch.bitwise_right_shift(smag, 31, out=out_sign).neg_()  # 1 only for a non-zero magnitude
    return smag


def _state_update_fast(S: MX8, d: MX8, k: MX8, v: MX8, q: MX8, cfg: SPEConfig, draws):
    i32 = torch.int32
    lead_s = tuple(S.exp.shape[:-1])  # (*lead, dim_state)
    ds, G = S.exp.shape[-2], S.exp.shape[-1]
    L = S.exp[..., 0, 0].numel()
    S = S.reshape_lead(L, ds)
    d, k, q = d.reshape_lead(L), k.reshape_lead(L), q.reshape_lead(L)
    vs = v.scalars()
    vexp, vmu, vsign, vmag = (t.reshape(L, ds) for t in (vs.exp, vs.mu, vs.sign, vs.mag))
    rand = {s: None if r is None else r.reshape(L, ds, G, GROUP) for s, r in draws.items()}
    ebias = BIAS + MAG_BITS - 1
    # per-lead operands (broadcast over dim_state)
    d_mu, k_mu = d.mu_el, k.mu_el
    d_mag2, k_mag2 = d.mag << 1, k.mag << 1  # the product's fraction bit
    q_mu = q.mu_el
    qf = apply_sign(q.mag << (2 - q_mu), q.sign)  # new.mu == 0: dot terms are m * qf
    d_eb, k_eb = d.exp - ebias, k.exp - ebias
    d_nan, k_nan = d.nan, k.nan
    out_exp = torch.empty(L, ds, G, dtype=i32)
    out_sign = torch.empty(L, ds, G, GROUP, dtype=i32)
    out_mag = torch.empty(L, ds, G, GROUP, dtype=i32)
    acc = torch.empty(L, ds, G, dtype=i32)
    step = max(1, _CHUNK // (ds * G * GROUP))
    for a in range(0, L, step):
        c = slice(a, min(L, a + step))
        r = {s: None if t is None else t[c] for s, t in rand.items()}
        sexp = S.exp[c]
        shape = S.mag[c].shape
        w = [_workspace(i, shape) for i in range(4)]
        # decay = mul(S, d): products halved where both pair micro-exponents are 1
        smu = w[0]
        smu.view(*shape[:-1], PAIRS, 2).copy_(S.mu[c].unsqueeze(-1).expand(
            *shape[:-1], PAIRS, 2))
        dmu = d_mu[c, None]
        prod = torch.mul(S.mag[c], d_mag2[c, None], out=w[1])
        prod >>= torch.bitwise_and(smu, dmu, out=w[2])
        dm, dexp = _product_inplace(prod, sexp + d_eb[c, None], (sexp == EXP_NAN) | d_nan[c, None],
                                    cfg, r["mul_decay"])
        # new = add(decay, outer) starts with the decay term (a cleared group has magnitude
        # 0, so its mu does not matter)
        # outer = mul_scalar(k, v_j)
        vm = vmu[c, :, None, None]
        kmu = k_mu[c, None]
        prod = torch.mul(k_mag2[c, None], vmag[c, :, None, None], out=w[3])
        prod >>= torch.bitwise_and(kmu, vm, out=w[2])
        ve = vexp[c, :, None]
        om, oexp = _product_inplace(prod, k_eb[c, None] + ve, k_nan[c, None] | (ve == EXP_NAN),
                                    cfg, r["mul_outer"])
        e_max = torch.maximum(dexp, oexp)
        smu |= dmu
        total = _signed_aligned(dm, torch.bitwise_xor(S.sign[c], d.sign[c, None], out=w[2]),
                                dexp, smu, e_max)
        omu = torch.bitwise_or(kmu, vm, out=w[0])
        total += _signed_aligned(om, torch.bitwise_xor(k.sign[c, None], vsign[c, :, None, None],
                                                       out=w[2]), oexp, omu, e_max)
        mag = torch.abs(total, out=out_mag[c])
        vmax = mag.amax(dim=-1)
        if cfg.renorm == "fixed":
            sh = (vmax >> (MAG_BITS + ADD_FRAC_BITS)).clamp_(max=1)
            sure = torch.zeros_like(vmax, dtype=torch.bool)
        else:
            sh = _bitlen(vmax) - (MAG_BITS + ADD_FRAC_BITS)
            sure = sh >= -e_max
        sh = torch.maximum(sh, -e_max)
        _round_inplace(mag, sh + ADD_FRAC_BITS, cfg, r["add"])
        exp, _ = _exp_and_clear(mag, e_max + sh, vmax, sure,
                                (dexp == EXP_NAN) | (oexp == EXP_NAN))
        out_exp[c] = exp
        smag = _signed_magnitude(total, mag, w[0], out_sign[c])
        smag *= qf[c, None]
        torch.sum(smag, dim=-1, dtype=i32, out=acc[c])  # |A_g| < 2**18
    new = MX8(out_exp, torch.zeros(L, ds, G, PAIRS, dtype=i32), out_sign,
              out_mag).reshape_lead(*lead_s)
    return new, _dot_of_groups(acc, new, q, lead_s)


def _native_update(kernel, S: MX8, d: MX8, k: MX8, v: MX8, q: MX8, cfg: SPEConfig, raw):
    """The state update by the compiled kernel: :func:`_state_update_fast` or (``cfg.fused``)
    :func:`_fused_update_fast`, with :func:`_dot_of_groups`, in one pass per group. ``raw``:
    each drawing site's bits as :func:`_hardware_draw` returns them (None for nearest)."""
    i32 = torch.int32
    lead_s = tuple(S.exp.shape[:-1])
    ds, G = S.exp.shape[-2], S.exp.shape[-1]
    L = S.exp[..., 0, 0].numel()
    keep = []  # the tensors whose memory the kernel reads or writes

    def ptr(t: torch.Tensor) -> int:
        t = t.to(i32).contiguous()
        keep.append(t)
        return t.data_ptr()

    def fields(m: MX8, *lead: int) -> list[int]:
        m = m.reshape_lead(*lead)
        return [ptr(t) for t in (m.exp, m.mu, m.sign, m.mag)]

    args = [L, ds, G, cfg.rbits, *fields(S, L, ds), *fields(d, L), *fields(k, L),
            *fields(v, L), *fields(q, L)]
    rand = [None if raw[s] is None else ptr(raw[s]) for s in raw]
    out_exp = torch.empty(L, ds, G, dtype=i32)
    out_sign = torch.empty(L, ds, G, GROUP, dtype=i32)
    out_mag = torch.empty(L, ds, G, GROUP, dtype=i32)
    acc = torch.empty(L, ds, G, dtype=i32)
    out_mu = torch.empty(L, ds, G, PAIRS, dtype=i32)
    y = torch.empty(*lead_s, G // 2, dtype=torch.int64)
    x = torch.empty(*lead_s, G // 2, dtype=i32)
    outs = [t.data_ptr() for t in (out_exp, out_mu, out_sign, out_mag, acc, y, x)]
    if cfg.fused:
        kernel.spe_update_fused(*args, *rand, *outs)
    else:
        kernel.spe_update_unfused(*args, int(cfg.renorm == "fixed"), *rand, *outs)
    return MX8(out_exp, out_mu, out_sign, out_mag).reshape_lead(*lead_s), DotOut(y, x)


def _dot_of_groups(acc, new: MX8, q: MX8, lead_s) -> DotOut:
    """``dot(new, q)`` from the exact per-group sums ``acc`` (``(L, dim_state, G)`` int32, the
    ``A_g`` of docs/mx8.md section 7): per sub-chunk, the two groups aligned to the larger
    exponent."""
    i32 = torch.int32
    G = new.exp.shape[-1]
    q_nan = q.nan
    acc = acc.reshape(*lead_s, G // 2, 2)
    xg = (new.exp + q.exp.reshape(*lead_s[:-1], 1, G)).reshape(*lead_s, G // 2, 2)
    nan = (new.nan | q_nan.reshape(*lead_s[:-1], 1, G)).reshape(*lead_s, G // 2, 2).any(-1)
    x = torch.where(acc != 0, xg, 0).amax(dim=-1)
    dist = (x.unsqueeze(-1) - xg).clamp_(0, 31)  # |acc << 8| < 2**26: >> 31 == >> 62
    y = ((acc << DOT_GUARD_BITS) >> dist).sum(dim=-1, dtype=torch.int64)
    y = torch.where(nan, 0, y)
    x = torch.where(nan, DOT_X_NAN, x).to(i32)
    return DotOut(y, x)


def _fused_update_fast(S: MX8, d: MX8, k: MX8, v: MX8, q: MX8, cfg: SPEConfig, rand):
    """The fused state update (:func:`fused_mul_add` then :func:`dot`), in place over chunks
    like :func:`_state_update_fast`; bit-identical to the composition (tests/test_spe_arith.py).
    ``rand``: the adder site's bits, ``(*lead, dim_state, dim_head)``, or None."""
    i32 = torch.int32
    lead_s = tuple(S.exp.shape[:-1])
    ds, G = S.exp.shape[-2], S.exp.shape[-1]
    L = S.exp[..., 0, 0].numel()
    S = S.reshape_lead(L, ds)
    d, k, q = d.reshape_lead(L), k.reshape_lead(L), q.reshape_lead(L)
    vs = v.scalars()
    vexp, vmu, vsign, vmag = (t.reshape(L, ds) for t in (vs.exp, vs.mu, vs.sign, vs.mag))
    rand = None if rand is None else rand.reshape(L, ds, G, GROUP)
    frac = MAG_BITS + 1 + FMA_FRAC_BITS
    lim = 2 * MAG_BITS + 2 + FMA_FRAC_BITS
    d_sh = 2 - d.mu_el  # the product's shift is 2 - mu_a - mu_b
    k_sh = 2 - k.mu_el
    q_sh = 2 - q.mu_el
    qs = apply_sign(q.mag, q.sign)
    out_exp = torch.empty(L, ds, G, dtype=i32)
    out_mu = torch.empty(L, ds, G, PAIRS, dtype=i32)
    out_sign = torch.empty(L, ds, G, GROUP, dtype=i32)
    out_mag = torch.empty(L, ds, G, GROUP, dtype=i32)
    acc = torch.empty(L, ds, G, dtype=i32)
    step = max(1, _CHUNK // (ds * G * GROUP))
    for a in range(0, L, step):
        c = slice(a, min(L, a + step))
        shape = S.mag[c].shape
        w = [_workspace(i, shape) for i in range(4)]
        # decay product, exact: S.mag * d.mag << (2 - mu_S - mu_d)
        sh1 = w[0]
        sh1.view(*shape[:-1], PAIRS, 2).copy_(S.mu[c].unsqueeze(-1).expand(
            *shape[:-1], PAIRS, 2))
        torch.sub(d_sh[c, None], sh1, out=sh1)
        p1 = torch.mul(S.mag[c], d.mag[c, None], out=w[1])
        p1 <<= sh1
        x1 = S.exp[c] + d.exp[c, None]
        # outer product, exact: k.mag * v_j.mag << (2 - mu_k - mu_v)
        p2 = torch.mul(k.mag[c, None], vmag[c, :, None, None], out=w[2])
        p2 <<= torch.sub(k_sh[c, None], vmu[c, :, None, None], out=w[3])
        x2 = k.exp[c, None] + vexp[c, :, None]
        x0 = torch.maximum(x1, x2)
        nan = ((S.exp[c] == EXP_NAN) | (d.exp[c, None] == EXP_NAN)
               | (k.exp[c, None] == EXP_NAN) | (vexp[c, :, None] == EXP_NAN))
        # alignment to X0 with FMA_FRAC_BITS fraction bits, signed, summed
        p1 <<= FMA_FRAC_BITS
        p1 >>= (x0 - x1).clamp_(max=lim).unsqueeze(-1)
        m = torch.bitwise_xor(S.sign[c], d.sign[c, None], out=w[0]).neg_()
        p1 ^= m
        p1 -= m
        p2 <<= FMA_FRAC_BITS
        p2 >>= (x0 - x2).clamp_(max=lim).unsqueeze(-1)
        m = torch.bitwise_xor(k.sign[c, None], vsign[c, :, None, None], out=w[0]).neg_()
        p2 ^= m
        p2 -= m
        total = p1.add_(p2)
        mag = torch.abs(total, out=out_mag[c])
        pmax = mag.view(*shape[:-1], PAIRS, 2).amax(dim=-1)
        vmax = pmax.amax(dim=-1)
        top = _bitlen(vmax)
        mu = (_bitlen(pmax) < top.unsqueeze(-1)).to(i32)  # the quantizer's rule (8a.7)
        e_base = x0 - BIAS
        sh = top - (MAG_BITS + frac)
        sure = sh >= -e_base  # not raised by underflow: the largest rounds to >= 32
        sh = torch.maximum(sh, -e_base)
        mag.view(*shape[:-1], PAIRS, 2).__ilshift__(mu.unsqueeze(-1))  # mu = 1: one bit finer
        _round_inplace(mag, sh + frac, cfg, None if rand is None else rand[c])
        exp, clear = _exp_and_clear(mag, e_base + sh, vmax, sure, nan)
        out_exp[c] = exp
        out_mu[c] = mu.mul_((~clear).unsqueeze(-1))
        smag = _signed_magnitude(total, mag, w[0], out_sign[c])
        # dot terms: m * q << (2 - mu_new - mu_q), exact (|A_g| < 2**19)
        smag *= qs[c, None]
        qsh = torch.sub(q_sh[c, None], out_mu[c].unsqueeze(-1).expand(
            *shape[:-1], PAIRS, 2).reshape(shape), out=w[1])
        smag <<= qsh
        torch.sum(smag, dim=-1, dtype=i32, out=acc[c])
    new = MX8(out_exp, out_mu, out_sign, out_mag).reshape_lead(*lead_s)
    return new, _dot_of_groups(acc, new, q, lead_s)


def attention_score(keys: MX8, q: MX8) -> DotOut:
    """Score mode: partial dot products of ``q`` (``(*lead, dim_head)``) with every key
    (``(*lead, seq, dim_head)``), one per sub-chunk: ``(*lead, seq, dim_head/32)``."""
    return dot(keys, q.unsqueeze(q.exp.dim() - 1))


def _zero_mx8(lead: tuple[int, ...], groups: int) -> MX8:
    zero = torch.zeros(tuple(lead) + (groups,), dtype=torch.int32)
    return MX8(zero, zero[..., None].expand(*zero.shape, PAIRS).contiguous(),
               zero[..., None].expand(*zero.shape, GROUP).contiguous(),
               zero[..., None].expand(*zero.shape, GROUP).contiguous())


def one_mx8(lead: tuple[int, ...], groups: int) -> MX8:
    """Groups of 1.0 (:data:`quant.constants.ONE_EXP`, ``ONE_MAG``)."""
    z = _zero_mx8(lead, groups)
    return MX8(torch.full_like(z.exp, ONE_EXP), z.mu, z.sign, torch.full_like(z.mag, ONE_MAG))


def attend_partials(cfg: SPEConfig) -> int:
    """Interleaved partial sums of the attend mode: :data:`ATTEND_PARTIALS` (token sum in the
    adder), :data:`ATTEND_PARTIALS_FUSED` with ``cfg.fused`` (in the fused multiply-add)."""
    return _attend_partials(cfg.fused)


def attention_attend(values: MX8, scores: MX8Scalar, cfg: SPEConfig = SPEConfig(),
                     rng: SPERandom | int | None = None, *, partials: int | None = None,
                     row: int = ATTEND_ROW) -> MX8:
    """Attend mode: ``acc = sum_t s_t * V_t`` accumulated in MX8 in ``partials`` interleaved
    partial sums, folded once per row.

    ``values``: ``(*lead, seq, dim_head)``; ``scores``: MX8 scalars ``(*lead, seq)`` (the
    softmax output quantized by the GPU). The order of the sums is part of the spec
    (docs/mx8.md section 8): the tokens come in rows of ``row`` (one DRAM row of a bank);
    token ``t`` (position ``c = t mod row`` in its row) is added to partial ``c mod partials``
    (``P_c = add(P_c, mul_scalar(V_t, s_t))``, site ``mul_outer`` for the product, ``add``
    for the sum); after the last token of every row, and after the last token of the
    sequence, the partials are folded into partial 0 in index order
    (``P_0 = add(P_0, P_k)`` for ``k = 1 .. partials-1``, site ``add``) and partials
    ``1 ..`` restart from the zero group. Every partial starts as the zero group; the result
    is partial 0 after the last fold. ``partials = 1`` is the plain running sum (no fold).
    Random bits are drawn once per product, per token sum and per fold step, in that order.

    With ``cfg.fused`` every sum is one fused multiply-add with one rounding (site ``add``;
    nothing drawn at ``mul_outer``), 1 being :func:`one_mx8`:
    ``P_c = fused_mul_add(P_c, 1, V_t, s_t)`` and ``P_0 = fused_mul_add(P_0, 1, P_k, 1)``.
    ``partials`` defaults to :func:`attend_partials` of ``cfg``.
    """
    rng = _spe_random(rng)
    if partials is None:
        partials = attend_partials(cfg)
    for name, val in (("partials", partials), ("row", row)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"attention_attend: {name} must be a positive int, not {val!r}")
    *lead, seq, _ = values.shape
    if tuple(scores.exp.shape) != tuple(lead) + (seq,):
        raise ValueError(f"attention_attend: scores must have shape {tuple(lead) + (seq,)} "
                         f"(one per token) for values of shape {values.shape}, got "
                         f"{tuple(scores.exp.shape)}")
    groups = values.exp.shape[-1]
    parts = [_zero_mx8(tuple(lead), groups) for _ in range(partials)]
    one = one_mx8(tuple(lead), groups)

    def accumulate(p: MX8, x: MX8, s: MX8Scalar | None) -> MX8:
        """``p + x * s`` (``s is None``: ``p + x``) as the datapath sums."""
        if cfg.fused:
            e = one if s is None else s.expand_groups(tuple(lead), groups)
            return fused_mul_add(p, one, x, e, cfg, rng["add"])
        return add(p, x if s is None else mul_scalar(x, s, cfg, rng["mul_outer"]), cfg,
                   rng["add"])

    for t in range(seq):
        vt = values[(slice(None),) * len(lead) + (t,)]
        st = MX8Scalar(*(f[..., t] for f in (scores.exp, scores.mu, scores.sign, scores.mag)))
        i = (t % row) % partials
        parts[i] = accumulate(parts[i], vt, st)
        if partials > 1 and ((t + 1) % row == 0 or t == seq - 1):
            for k in range(1, partials):
                parts[0] = accumulate(parts[0], parts[k], None)
                parts[k] = _zero_mx8(tuple(lead), groups)
    return parts[0]
