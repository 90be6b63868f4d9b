"""Random-bit sources for stochastic rounding.

Every rounding point of the golden model takes its random numbers from a *source*. Two kinds
exist and both hand out ``r``-bit unsigned integers, one per rounded element, in row-major
order of the elements being rounded:

* :class:`LFSRStream` — the exact model of the hardware generator (PRBS31, see below). It
  reproduces, bit for bit, what the RTL feeds its rounding adders, provided the elements are
  rounded in the same order as the hardware rounds them.
* :class:`TorchBits` — a seeded ``torch.Generator``; fast, for accuracy studies.

The hardware generator (specified in ``docs/mx8.md``, section "Random bits")
-------------------------------------------------------------------------------
One generator per rounding site. Its output is the bit stream ``b[0], b[1], ...`` of the
primitive trinomial x^31 + x^3 + 1 (the PRBS31 sequence)::

    b[n] = b[n - 31] XOR b[n - 28]          for n >= 31
    b[j] = (seed >> j) & 1                  for 0 <= j < 31 (the 31-bit seed, non-zero)

A rounding event of ``L`` lanes consumes the next ``L * r`` bits of the stream; lane ``i``
receives the integer ``sum(b[base + i*r + j] << j for j in range(r))`` (first bit = LSB).
So the lanes of one event never share bits, and consecutive events of one lane get fresh
bits. In RTL the state register holds the 31 most recent stream bits; one clock produces the
``L * r`` next bits with a network of two-input XOR gates (each new bit is the XOR of two
older ones).

Stepping is vectorised: because (x^31 + x^3 + 1)^(2^k) = x^(31*2^k) + x^(3*2^k) + 1 over
GF(2), the stream also satisfies ``b[n] = b[n - 31*2^k] XOR b[n - 28*2^k]``, so blocks of
``28 * 2^k`` bits can be produced by one NumPy XOR once ``31 * 2^k`` bits of history exist.
"""

from __future__ import annotations

import numpy as np
import torch

from . import native
from .constants import DEFAULT_SITE_SEEDS, LFSR_TAPS, LFSR_WIDTH, SITES

__all__ = [
    "LFSR_WIDTH",
    "LFSR_TAPS",
    "SITES",
    "DEFAULT_SITE_SEEDS",
    "RandomSource",
    "LFSRStream",
    "TorchBits",
    "SPERandom",
    "prbs31_reference",
    "make_source",
    "TORCH_SEED_LIMIT",
    "seed",
    "default_source",
]


_MAX_RBITS = 16
_KEEP_HISTORY = 31 << 16  # history kept between draws (enough for 28*2^16-bit blocks)


def _check_rbits(r: int) -> int:
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"random bits r must be an int, not {r!r}")
    if not 1 <= r <= _MAX_RBITS:
        raise ValueError(f"random bits r must be in 1..{_MAX_RBITS}, not {r}")
    return r


class RandomSource:
    """Base class: hands out ``r``-bit unsigned integers in row-major element order."""

    def draw(self, shape, r: int) -> torch.Tensor:
        """Return an ``int32`` tensor of the given shape with values in ``[0, 2**r)``."""
        raise NotImplementedError


class LFSRStream(RandomSource):
    """Exact model of one hardware PRBS31 generator (see module docstring).

    Parameters
    ----------
    seed : int
        31-bit non-zero reset value; bit ``j`` of the seed is stream bit ``b[j]``.
    """

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"LFSR seed must be an int, not {seed!r}")
        if not 0 < seed < (1 << LFSR_WIDTH):
            raise ValueError(f"LFSR seed must be a non-zero {LFSR_WIDTH}-bit value, not {seed:#x}")
        self._seed = seed
        self._hist = np.array([(seed >> j) & 1 for j in range(LFSR_WIDTH)], dtype=np.uint8)
        self._pos = 0  # index (in the whole stream) of _hist[0]
        self._next = 0  # index (in the whole stream) of the next bit to hand out

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def position(self) -> int:
        """Number of stream bits consumed so far."""
        return self._next

    def bits(self, count: int) -> np.ndarray:
        """Consume and return the next ``count`` stream bits (uint8 array of 0/1)."""
        if count < 0:
            raise ValueError(f"bit count must be >= 0, not {count}")
        need_end = self._next + count
        have_end = self._pos + len(self._hist)
        if need_end > have_end:
            self._hist = _extend(self._hist, need_end - have_end)
        lo = self._next - self._pos
        out = self._hist[lo:lo + count].copy()
        self._next = need_end
        # Trim history: keep what has not been handed out plus enough past bits for fast blocks.
        drop = min(self._next - self._pos, max(0, len(self._hist) - _KEEP_HISTORY))
        if drop > 0:
            self._hist = self._hist[drop:]
            self._pos += drop
        return out

    def draw(self, shape, r: int) -> torch.Tensor:
        _check_rbits(r)
        shape = tuple(shape)
        n = int(np.prod(shape)) if shape else 1
        raw = self.bits(n * r).reshape(n, r).astype(np.int64)
        weights = (1 << np.arange(r, dtype=np.int64))
        vals = (raw * weights).sum(axis=1).astype(np.int32)
        return torch.from_numpy(vals).reshape(shape)

    def state(self) -> int:
        """The 31-bit register the RTL holds now: bits b[p .. p+30] of the stream (LSB first),
        p = :attr:`position`. Does not consume."""
        need_end = self._next + LFSR_WIDTH
        have_end = self._pos + len(self._hist)
        if need_end > have_end:
            self._hist = _extend(self._hist, need_end - have_end)
        lo = self._next - self._pos
        return int(sum(int(b) << j for j, b in enumerate(self._hist[lo:lo + LFSR_WIDTH])))


def _extend(hist: np.ndarray, count: int) -> np.ndarray:
    """Append ``count`` stream bits to ``hist`` (which holds >= 31 consecutive stream bits)."""
    n = len(hist)
    out = np.empty(n + count, dtype=np.uint8)
    out[:n] = hist
    end = n + count
    while n < end:
        k = 0
        while (LFSR_TAPS[0] << (k + 1)) <= n:
            k += 1
        lag_a, lag_b = LFSR_TAPS[0] << k, LFSR_TAPS[1] << k
        blk = min(lag_b, end - n)
        np.bitwise_xor(out[n - lag_a:n - lag_a + blk], out[n - lag_b:n - lag_b + blk],
                       out=out[n:n + blk])
        n += blk
    return out


def prbs31_reference(seed: int, count: int) -> list[int]:
    """Bit-serial Fibonacci-register model of the stream, for tests (slow, obviously right)."""
    reg = [(seed >> j) & 1 for j in range(LFSR_WIDTH)]  # reg[j] = b[n + j]
    out = []
    for _ in range(count):
        out.append(reg[0])
        new = reg[0] ^ reg[LFSR_WIDTH - LFSR_TAPS[1]]  # b[n+31] = b[n] ^ b[n+3]
        reg = reg[1:] + [new]
    return out


#: Seeds of :class:`TorchBits` are ``0 <= seed < TORCH_SEED_LIMIT``: the CPU ``torch.Generator``
#: (mt19937) keeps only the low 32 bits of its seed, so wider seeds would repeat streams.
TORCH_SEED_LIMIT = 1 << 32


def _check_torch_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    if not 0 <= seed < TORCH_SEED_LIMIT:
        raise ValueError(f"seed {seed} out of range (allowed: 0..2**32-1; the torch generator "
                         f"keeps 32 bits, so wider seeds would repeat streams)")
    return seed


class TorchBits(RandomSource):
    """Seeded ``torch.Generator`` source (fast; for studies, not bit-compatible with the RTL).
    ``seed``: 0..2**32-1 (:data:`TORCH_SEED_LIMIT`); distinct seeds give distinct streams."""

    def __init__(self, seed: int):
        self._seed = _check_torch_seed(seed)
        self._gen = torch.Generator().manual_seed(seed)

    @property
    def seed(self) -> int:
        return self._seed

    def draw(self, shape, r: int) -> torch.Tensor:
        """``torch.randint(0, 2**r, shape, generator, dtype=int32)``'s values: each draws one
        32-bit mt19937 output ``x`` and takes ``x mod 2**r``. ``random_()`` on int32 takes
        ``x mod 2**31`` per element (the same outputs, in the same order, without a division);
        its low ``r`` bits are the same value (tests/test_rng.py), about 1.6x cheaper."""
        return self.draw_into(torch.empty(tuple(shape), dtype=torch.int32), r)

    def draw_into(self, out: torch.Tensor, r: int) -> torch.Tensor:
        """:meth:`draw` of ``out.shape`` written into ``out`` (a contiguous ``int32`` tensor,
        e.g. a buffer reused from call to call) and returned: the same values, the same
        stream."""
        _check_rbits(r)
        if out.dtype != torch.int32 or not out.is_contiguous():
            raise ValueError(f"TorchBits.draw_into needs a contiguous int32 tensor, not "
                             f"{out.dtype} with strides {out.stride()}")
        if not native.mt19937_draw(self._gen, out, r):  # the same outputs, compiled
            out.random_(generator=self._gen).bitwise_and_((1 << r) - 1)
        return out


# The module-level default source: what ``rng=None`` draws from. It advances with every draw
# (so repeated calls get fresh bits) and starts from seed 0 in every process; :func:`seed`
# restarts it.
_default: RandomSource = TorchBits(0)


def seed(n: int) -> None:
    """Restart the default source (used wherever ``rng=None``) as ``TorchBits(n)``."""
    global _default
    _default = TorchBits(n)


def default_source() -> RandomSource:
    """The module-level default source (seed 0 at import, see :func:`seed`); it advances."""
    return _default


def make_source(rng) -> RandomSource:
    """Accept a :class:`RandomSource`, an int seed (-> :class:`TorchBits`) or ``None``
    (-> the module-level default source, which advances: see :func:`seed`)."""
    if rng is None:
        return _default
    if isinstance(rng, RandomSource):
        return rng
    if isinstance(rng, int) and not isinstance(rng, bool):
        return TorchBits(rng)
    raise TypeError(f"rng must be a RandomSource, an int seed or None, not {type(rng).__name__}")


class SPERandom:
    """The random sources of one SPE: one per rounding site (:data:`SITES`)."""

    def __init__(self, sources: dict[str, RandomSource]):
        missing = [s for s in SITES if s not in sources]
        extra = [s for s in sources if s not in SITES]
        if missing or extra:
            raise ValueError(f"SPERandom needs exactly the sites {SITES}; "
                             f"missing {missing}, unknown {extra}")
        self._sources = dict(sources)

    @classmethod
    def lfsr(cls, seeds: dict[str, int] | None = None) -> "SPERandom":
        """Hardware-exact generators, reset to ``seeds`` (default :data:`DEFAULT_SITE_SEEDS`)."""
        seeds = dict(DEFAULT_SITE_SEEDS if seeds is None else seeds)
        return cls({s: LFSRStream(seeds[s]) for s in SITES})

    @classmethod
    def torch(cls, seed: int) -> "SPERandom":
        """Fast seeded generators; ``seed`` in 0..2**32-1, the site streams are seeded
        ``(seed*3 + index) mod 2**32`` (3 is odd, so distinct seeds differ in every site)."""
        _check_torch_seed(seed)
        return cls({s: TorchBits((seed * len(SITES) + i) % TORCH_SEED_LIMIT)
                    for i, s in enumerate(SITES)})

    @classmethod
    def default(cls) -> "SPERandom":
        """Every site draws from the module-level default source (what ``rng=None`` means)."""
        return cls({s: _default for s in SITES})

    def __getitem__(self, site: str) -> RandomSource:
        return self._sources[site]
