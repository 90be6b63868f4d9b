"""Operand vectors and batched golden-model expectations for the MX8 units.

Shared by the cocotb testbenches (``cosim/tb_mx_*.py``) and the Amaranth-simulator tests
(``tests/test_hw_mx_*.py``). Nothing here computes MX8 arithmetic: the expectations come from
:mod:`quant.spe` (one vectorised call per batch and rounding mode), the random bits of
stochastic rounding from :class:`quant.rng.LFSRStream`, consumed in issue order by the
stochastic operations only — exactly as the units' internal generators are.

Operand classes (:data:`CLASSES`), drawn per vector; every class is crossed with stochastic
rounding on and off:

``random``       every field uniform: exponents over the full range 0..254, any mu, sign and
                 magnitude (magnitudes skewed towards 0, 63 and small values)
``zero``         canonical zero groups in one or both operands
``exp_diff``     exponent differences -20..20 between the operands' groups (0..>=8 covered)
``mu``           all micro-exponent combinations: (mu_a, mu_b) patterns all-0, all-1, mixed
``saturate``     large magnitudes of one sign and equal exponents (7th bit, 63 x 63, 64)
``cancel``       ``b = -a`` (adder: cancellation to zero; dot: terms cancelling per pair)
``extreme_exp``  exponents 0, 1, 2, 253, 254 and sums around the multiplier's underflow
                 (``Ea + Eb`` near 132) and overflow (near 386) points
``nan``          a NaN group (``E = 0xFF``) in either operand
``small``        magnitudes 0..3 (deep renormalization shifts, gradual underflow)
``noncanonical`` negative zeros, zero magnitudes under non-zero exponents
``enumerated``   the class enumeration of :func:`cosim.coverage.enumerate_batch` (never drawn
                 at random: the directed prefix of ``make_batch(directed=True)``)

The lane-level operand classes that the coverage tables count are defined apart, in
:mod:`cosim.coverage` (:func:`cosim.coverage.label_batch` labels any batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from quant.constants import LANES  # noqa: F401 (re-exported)
from quant.mx8 import EXP_NAN, GROUP, MX8, MX8Scalar, PAIRS
from quant.mx8 import scalar_from_words as unpack_scalars  # noqa: F401 (re-exported)
from quant.mx8 import scalar_to_words as scalar_words  # noqa: F401 (re-exported)
from quant.rng import LFSRStream

from .batch import CLASSES, DRAWN, GROUPS, KINDS, Batch, _index, subchunk_words
from .coverage import enumerate_batch
from quant.spe import SPEConfig, add, dot, mul, mul_scalar

__all__ = ["CLASSES", "DRAWN", "KINDS", "Batch", "make_batch", "Expect", "subchunk_words",
           "scalar_words", "unpack_scalars"]

def _ri(gen, lo, hi, shape):
    return torch.randint(lo, hi + 1, tuple(shape), generator=gen, dtype=torch.int32)


def _random_mx(gen, n: int, groups: int = GROUPS) -> MX8:
    shape = (n, groups)
    exp = _ri(gen, 0, 254, shape)
    mu = _ri(gen, 0, 1, shape + (PAIRS,))
    sign = _ri(gen, 0, 1, shape + (GROUP,))
    mag = _ri(gen, 0, 63, shape + (GROUP,))
    sel = _ri(gen, 0, 7, shape + (GROUP,))
    mag = torch.where(sel == 0, 0, torch.where(sel == 1, 63, torch.where(sel == 2, mag % 4,
                                                                         mag)))
    # Mostly canonical: zero magnitudes positive, all-zero groups the zero group.
    sign = torch.where(mag == 0, 0, sign)
    zero = (mag == 0).all(-1)
    exp = torch.where(zero, 0, exp)
    mu = torch.where(zero.unsqueeze(-1), 0, mu)
    return MX8(exp, mu, sign, mag)


def _where(mask, x: MX8, y: MX8) -> MX8:
    """Per-group select between two MX8 tensors of the same shape (mask: (n, G))."""
    return MX8(torch.where(mask, x.exp, y.exp), torch.where(mask[..., None], x.mu, y.mu),
               torch.where(mask[..., None], x.sign, y.sign),
               torch.where(mask[..., None], x.mag, y.mag))


def _zero_like(x: MX8) -> MX8:
    return MX8(torch.zeros_like(x.exp), torch.zeros_like(x.mu), torch.zeros_like(x.sign),
               torch.zeros_like(x.mag))


def _apply_class(gen, cls: torch.Tensor, a: MX8, b: MX8, kind: str) -> tuple[MX8, MX8]:
    """Turn the random operands of vectors of each class into that class (vectorised)."""
    n = a.exp.shape[0]
    c = cls[:, None]                                    # (n, 1) broadcast over groups
    gshape = a.exp.shape

    def on(name):
        return (c == CLASSES.index(name)).expand(gshape)

    # zero: one or both operands' groups are zero groups
    pick = _ri(gen, 0, 2, gshape)
    m = on("zero")
    a = _where(m & (pick != 1), _zero_like(a), a)
    b = _where(m & (pick != 0), _zero_like(b), b)

    # exp_diff: Eb = Ea + d
    m = on("exp_diff")
    d = torch.where(_ri(gen, 0, 1, gshape) == 1, _ri(gen, -9, 9, gshape), _ri(gen, -20, 20, gshape))
    ea = _ri(gen, 21, 233, gshape)
    a = MX8(torch.where(m & (a.exp != 0), ea, a.exp), a.mu, a.sign, a.mag)
    b = MX8(torch.where(m & (b.exp != 0), (ea + d).clamp(1, 254), b.exp), b.mu, b.sign, b.mag)

    # mu: per-operand micro-exponent patterns
    m = on("mu")[..., None]
    for x_name in ("a", "b"):
        x = a if x_name == "a" else b
        pat = _ri(gen, 0, 2, gshape)[..., None]
        mu = torch.where(pat == 0, 0, torch.where(pat == 1, 1, x.mu))
        mu = torch.where(m & (x.exp != 0)[..., None], mu, x.mu)
        x = MX8(x.exp, mu, x.sign, x.mag)
        if x_name == "a":
            a = x
        else:
            b = x

    # saturate: big magnitudes, one sign per group, equal exponents
    m = on("saturate")
    big_a = _ri(gen, 56, 63, a.mag.shape)
    big_b = _ri(gen, 56, 63, b.mag.shape)
    sg = _ri(gen, 0, 1, gshape)[..., None].expand(a.sign.shape)
    e = _ri(gen, 1, 254, gshape)
    a = _where(m, MX8(e, torch.zeros_like(a.mu), sg, big_a), a)
    b = _where(m, MX8(e if kind != "mul" else _ri(gen, 100, 160, gshape),
                      torch.zeros_like(b.mu), sg, big_b), b)

    # cancel: b = -a (for dot: a pair (x, x) against (y, -y))
    m = on("cancel")
    if kind == "dot":
        x = a.mag.reshape(n, -1, PAIRS, 2)[..., :1].expand(-1, -1, -1, 2).reshape(a.mag.shape)
        y = b.mag.reshape(n, -1, PAIRS, 2)[..., :1].expand(-1, -1, -1, 2).reshape(b.mag.shape)
        alt = torch.arange(GROUP, dtype=torch.int32) % 2
        sb = (b.sign.reshape(n, -1, PAIRS, 2)[..., :1].expand(-1, -1, -1, 2).reshape(
            b.sign.shape) ^ alt)
        a = _where(m, MX8(a.exp, a.mu, torch.where(x == 0, 0, a.sign * 0), x), a)
        b = _where(m, MX8(b.exp, b.mu, torch.where(y == 0, 0, sb), y), b)
    else:
        neg = MX8(a.exp, a.mu, torch.where(a.mag == 0, 0, 1 - a.sign), a.mag)
        b = _where(m, neg, b)

    # extreme_exp
    m = on("extreme_exp")
    choices = torch.tensor([0, 1, 2, 253, 254], dtype=torch.int32)
    ea = choices[_ri(gen, 0, 4, gshape).long()]
    eb = choices[_ri(gen, 0, 4, gshape).long()]
    if kind in ("mul", "mul_scalar"):
        near = _ri(gen, 0, 3, gshape)
        s = torch.where(near == 0, _ri(gen, 118, 140, gshape), _ri(gen, 376, 392, gshape))
        ea2 = (s // 2).clamp(0, 254)
        ea = torch.where(near < 2, ea2, ea)
        eb = torch.where(near < 2, (s - ea2).clamp(0, 254), eb)
    a = MX8(torch.where(m & ((a.mag != 0).any(-1)), ea, a.exp), a.mu, a.sign, a.mag)
    b = MX8(torch.where(m & ((b.mag != 0).any(-1)), eb, b.exp), b.mu, b.sign, b.mag)

    # nan
    m = on("nan")
    pick = _ri(gen, 0, 2, gshape)
    a = MX8(torch.where(m & (pick != 1), EXP_NAN, a.exp), a.mu, a.sign, a.mag)
    b = MX8(torch.where(m & (pick == 1), EXP_NAN, b.exp), b.mu, b.sign, b.mag)

    # small: magnitudes 0..3
    m = on("small")[..., None]
    a = MX8(a.exp, a.mu, a.sign, torch.where(m, a.mag % 4, a.mag))
    b = MX8(b.exp, b.mu, b.sign, torch.where(m, b.mag % 4, b.mag))
    a = MX8(a.exp, a.mu, torch.where(m & (a.mag == 0), 0, a.sign), a.mag)
    b = MX8(b.exp, b.mu, torch.where(m & (b.mag == 0), 0, b.sign), b.mag)

    # noncanonical: negative zeros, zero groups with exponents
    m = on("noncanonical")
    for x_name in ("a", "b"):
        x = a if x_name == "a" else b
        zero_mag = _ri(gen, 0, 3, x.mag.shape) == 0
        mag = torch.where(m[..., None] & zero_mag, 0, x.mag)
        sign = torch.where(m[..., None] & zero_mag, 1, x.sign)
        allz = m & (_ri(gen, 0, 3, gshape) == 0)
        mag = torch.where(allz[..., None], 0, mag)
        exp = torch.where(allz & (x.exp == 0), _ri(gen, 1, 254, gshape), x.exp)
        x = MX8(exp, x.mu, sign, mag)
        if x_name == "a":
            a = x
        else:
            b = x
    return a, b


def make_batch(kind: str, n: int, gen: torch.Generator, *, stoch_prob: float = 0.5,
               classes: Sequence[str] | None = None, directed: bool = False) -> Batch:
    """``n`` operations of unit ``kind`` (see :data:`KINDS`).

    ``classes`` restricts the operand classes (default: all of :data:`DRAWN`, ``random`` half
    of the time). ``directed``: the class enumeration of :func:`cosim.coverage.enumerate_batch`
    (every lane-level operand class; its first ``n`` operations), then, beyond its length,
    every generator class in turn with stochastic rounding off and on.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if directed:
        enum = enumerate_batch(kind)
        if n <= len(enum):
            return enum.slice(0, n)
        return Batch.concat([enum, _class_cycle(kind, n - len(enum), gen, classes)])
    names = tuple(classes) if classes else DRAWN
    unknown = [c for c in names if c not in DRAWN]
    if unknown:
        raise ValueError(f"unknown operand classes {unknown}; allowed: {DRAWN}")
    idx = torch.tensor([CLASSES.index(c) for c in names], dtype=torch.int64)
    pick = torch.randint(0, len(idx), (n,), generator=gen)
    cls = idx[pick]
    if classes is None:
        cls = torch.where(torch.rand(n, generator=gen) < 0.5, 0, cls)
    stoch = torch.rand(n, generator=gen) < stoch_prob
    return _make(kind, n, gen, cls, stoch)


def _class_cycle(kind: str, n: int, gen: torch.Generator, classes) -> Batch:
    """Every generator class in turn, stochastic rounding off and on."""
    names = tuple(classes) if classes else DRAWN
    idx = torch.tensor([CLASSES.index(c) for c in names], dtype=torch.int64)
    cls = idx.repeat_interleave(2).repeat(n // (2 * len(idx)) + 1)[:n]
    stoch = (torch.arange(n) % 2).bool()
    return _make(kind, n, gen, cls, stoch)


def _make(kind: str, n: int, gen: torch.Generator, cls: torch.Tensor,
          stoch: torch.Tensor) -> Batch:
    a = _random_mx(gen, n)
    b = _random_mx(gen, n)
    if kind == "mul_scalar":
        # The scalar is a random value of b's first group (with its pair's mu), then classes.
        a, b = _apply_class(gen, cls, a, b, kind)
        lane = _ri(gen, 0, GROUP - 1, (n,)).long()
        ar = torch.arange(n)
        exp = b.exp[:, 0]
        s = MX8Scalar(exp, b.mu[ar, 0, lane // 2], b.sign[ar, 0, lane], b.mag[ar, 0, lane])
        # A zero scalar must still be possible with a non-zero exponent (not canonical).
        return Batch(kind, a, s, stoch, cls.to(torch.int32))
    a, b = _apply_class(gen, cls, a, b, kind)
    return Batch(kind, a, b, stoch, cls.to(torch.int32))


# --------------------------------------------------------------------------------------------
# Words (port values)
# --------------------------------------------------------------------------------------------

# Scalar port words: quant.mx8.scalar_to_words / scalar_from_words (re-exported above).


# --------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------

class Expect:
    """Expected output words of a unit, from the golden model, batch after batch.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    rbits, renorm : SPE configuration of the unit (ignored for ``dot``).
    seed : int or None
        Seed of the unit's internal generator; ``None`` when the test supplies random bits.
    mutant : str, optional
        A deliberately wrong way of *calling* the model (for the mutation tests):
        ``"stream_on_nearest"`` (nearest operations consume random bits too),
        ``"nearest_only"`` (stochastic operations are expected rounded to nearest),
        ``"drop_mu_a"`` (operand ``a``'s micro-exponents are dropped).
    """

    MUTANTS = ("stream_on_nearest", "nearest_only", "drop_mu_a")

    def __init__(self, kind: str, *, rbits: int = 8, renorm: str = "lod",
                 seed: int | None = None, mutant: str | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if mutant is not None and mutant not in self.MUTANTS:
            raise ValueError(f"mutant must be one of {self.MUTANTS}, not {mutant!r}")
        self.kind = kind
        self.mutant = mutant
        self.cfg = {r: SPEConfig(rounding=r, rbits=rbits, renorm=renorm)
                    for r in ("nearest", "stochastic")}
        self.stream = LFSRStream(seed) if seed is not None else None
        #: keep the random integers of the last call (:meth:`last_draws`, for the coverage)
        self.keep_draws = False
        self._draws = None

    def last_draws(self):
        """``(indices, bits)`` of the last call's stochastic operations (with ``keep_draws``),
        else None."""
        return self._draws

    def rand_bits(self, n: int) -> torch.Tensor:
        """Random integers of ``n`` stochastic operations (``(n, 32)``) from the stream."""
        return self.stream.draw((n, LANES), self.cfg["stochastic"].rbits)

    def __call__(self, batch: Batch, rand: torch.Tensor | None = None) -> list[int]:
        """Expected output words of ``batch`` (256-bit sub-chunks, or 37-bit dot words).

        ``rand``: random integers ``(n_stochastic, 32)`` when the unit takes them from a port;
        default: drawn from the internal generator's stream model.
        """
        a, b = batch.a, batch.b
        if self.mutant == "drop_mu_a":
            a = MX8(a.exp, torch.zeros_like(a.mu), a.sign, a.mag)
        if self.kind == "dot":
            return [int(w) for w in dot(a, b).words().reshape(-1).tolist()]
        out: list[int] = [0] * len(batch)
        self._draws = None
        stoch = batch.stoch.clone()
        if self.mutant == "nearest_only":
            stoch[:] = False
        for mode in ("nearest", "stochastic"):
            sel = torch.nonzero(stoch if mode == "stochastic" else ~stoch).flatten()
            if self.mutant == "stream_on_nearest" and mode == "nearest" and len(sel):
                self.rand_bits(len(sel))
            if not len(sel):
                continue
            bits = None
            if mode == "stochastic":
                bits = rand if rand is not None else self.rand_bits(len(sel))
                if self.keep_draws:
                    self._draws = (sel, bits)
            words = subchunk_words(self._op(a[sel], _index(b, sel), self.cfg[mode], bits))
            for i, w in zip(sel.tolist(), words):
                out[i] = w
        return out

    def _op(self, a, b, cfg, bits):
        if self.kind == "mul":
            return mul(a, b, cfg, bits)
        if self.kind == "mul_scalar":
            return mul_scalar(a, b, cfg, bits)
        return add(a, b, cfg, bits)


