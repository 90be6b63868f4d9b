"""PRBS31 random-bit generator of the stochastic-rounding sites (:class:`LFSR`).

Bit-exact with :class:`quant.rng.LFSRStream`: the stream of the trinomial x^31 + x^3 + 1,
``b[n] = b[n-31] ^ b[n-28]``, with ``b[0..30]`` the seed bits. The 31-bit state register holds
the 31 oldest stream bits not yet handed out. Every cycle the generator presents the next
``lanes * rbits`` stream bits on ``o_rand`` (the first 31 are the state itself, the others come
from a network of two-input XOR gates); on a cycle with ``i_en`` high they are consumed and the
state advances by ``lanes * rbits`` bits. Lane ``i`` gets stream bits
``[i*rbits, (i+1)*rbits)``, LSB first.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from quant.constants import DEFAULT_SITE_SEEDS, LFSR_TAPS, LFSR_WIDTH, SITES

from .export import register_unit

__all__ = ["LFSR", "check_seed", "check_site_seeds", "check_rbits", "prbs_network"]

_MAX_RBITS = 8


def check_seed(seed) -> int:
    """Validate a generator seed (31-bit, non-zero)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    if not 0 < seed < (1 << LFSR_WIDTH):
        raise ValueError(f"seed must be a non-zero {LFSR_WIDTH}-bit value, not {seed:#x}")
    return seed


def check_site_seeds(seeds) -> dict[str, int]:
    """Validate the seeds of the three generators of one SPE (``None``: the defaults).

    Returns a new dict ``site -> seed`` in :data:`quant.rng.SITES` order.

    Raises
    ------
    TypeError
        ``seeds`` is not a dict, or a seed is not an int.
    ValueError
        The keys are not exactly the sites, or a seed is zero or wider than 31 bits.
    """
    if seeds is None:
        seeds = DEFAULT_SITE_SEEDS
    if not isinstance(seeds, dict):
        raise TypeError(f"seeds must be a dict site -> seed, not {seeds!r}")
    if set(seeds) != set(SITES):
        raise ValueError(f"seeds must name exactly the sites {SITES}, "
                         f"not {sorted(seeds, key=str)}")
    return {s: check_seed(seeds[s]) for s in SITES}


def check_rbits(rbits) -> int:
    """Validate the random bits per rounded value (1..8, see :class:`quant.spe.SPEConfig`)."""
    if isinstance(rbits, bool) or not isinstance(rbits, int):
        raise TypeError(f"rbits must be an int, not {rbits!r}")
    if not 1 <= rbits <= _MAX_RBITS:
        raise ValueError(f"rbits must be in 1..{_MAX_RBITS}, not {rbits}")
    return rbits


def prbs_network(m: Module, state: Value, count: int) -> list[Value]:
    """Stream bits ``b[0 .. count + 30]`` as Amaranth values from the 31-bit ``state``.

    ``b[j] = state[j]`` for ``j < 31``; every further bit is one two-input XOR
    (``b[n] = b[n-31] ^ b[n-28]``), so the network has exactly ``count`` XOR gates. The bits
    are grouped in named blocks of 28 (each block depends only on earlier ones), which keeps
    the netlist a DAG of wires instead of nested expressions.
    """
    lag_a, lag_b = LFSR_TAPS
    bits = [state[j] for j in range(LFSR_WIDTH)]
    end = count + LFSR_WIDTH
    n = LFSR_WIDTH
    while n < end:
        size = min(lag_b, end - n)
        block = Signal(size, name=f"prbs_b{n}")
        m.d.comb += block.eq(Cat(*(bits[k - lag_a] ^ bits[k - lag_b]
                                   for k in range(n, n + size))))
        bits.extend(block[i] for i in range(size))
        n += size
    return bits


class LFSR(wiring.Component):
    """PRBS31 generator handing out ``lanes * rbits`` bits per enabled cycle.

    Parameters
    ----------
    lanes : int
        Values rounded per event (32 for a sub-chunk).
    rbits : int
        Random bits per value (1..8).
    seed : int
        Reset value of the state (31-bit, non-zero); bit ``j`` is stream bit ``b[j]``.

    Members
    -------
    i_en : In(1)
        Consume the bits presented on ``o_rand`` this cycle (advance the state).
    o_rand : Out(ArrayLayout(rbits, lanes))
        The next ``lanes * rbits`` stream bits, lane ``i`` = ``o_rand[i]`` (combinational
        from the state register).
    o_state : Out(31)
        The state register (stream bits ``b[p .. p+30]``, ``p`` = bits consumed so far).

    Cost: 31 flip-flops with reset, ``lanes * rbits`` two-input XOR gates, and a 2:1 mux per
    state bit (the enable); the XOR depth is about ``(lanes * rbits) / 28 + 1`` gates.
    """

    def __init__(self, *, lanes: int = 32, rbits: int = 8,
                 seed: int = DEFAULT_SITE_SEEDS["add"]):
        if isinstance(lanes, bool) or not isinstance(lanes, int):
            raise TypeError(f"lanes must be an int, not {lanes!r}")
        if not 1 <= lanes <= 256:
            raise ValueError(f"lanes must be in 1..256, not {lanes}")
        self._lanes = lanes
        self._rbits = check_rbits(rbits)
        self._seed = check_seed(seed)
        super().__init__({
            "i_en": In(1),
            "o_rand": Out(data.ArrayLayout(unsigned(rbits), lanes)),
            "o_state": Out(LFSR_WIDTH),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def rbits(self) -> int:
        return self._rbits

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def width(self) -> int:
        """Stream bits consumed per enabled cycle."""
        return self._lanes * self._rbits

    @property
    def latency(self) -> int:
        """0: ``o_rand`` belongs to the cycle in which ``i_en`` consumes it."""
        return 0

    def elaborate(self, platform):
        m = Module()
        state = Signal(LFSR_WIDTH, init=self._seed)
        bits = prbs_network(m, state, self.width)
        m.d.comb += [
            self.o_rand.as_value().eq(Cat(*bits[:self.width])),
            self.o_state.eq(state),
        ]
        with m.If(self.i_en):
            m.d.sync += state.eq(Cat(*bits[self.width:self.width + LFSR_WIDTH]))
        return m


register_unit("lfsr", lambda: LFSR(lanes=32, rbits=8, seed=DEFAULT_SITE_SEEDS["add"]))
