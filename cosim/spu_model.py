"""Workloads and golden-model expectations of the SPU (:class:`hw.spu.Spu`).

Nothing here computes MX8 arithmetic: every expected value comes from :mod:`quant.spe`
(``mul``, ``mul_scalar``, ``add``, ``fused_mul_add``, ``dot``, ``state_update``,
``attention_score``, ``attention_attend``). The SPU processes the sub-chunks of a row pair in
the order A0, B0, A1, B1, ... (bank, column); :class:`SpuModel` calls the low-level
operations in exactly that order with random bits drawn in that order from one PRBS31 stream
per rounding site (:meth:`quant.rng.SPERandom.lfsr`, the SPU's reset seeds), and records which
bits went to which sub-chunk so that the chunk-group functions of :mod:`quant.spe` can be
replayed with the same bits (:class:`ReplaySource`): the final states must then equal
``state_update`` bit for bit also with stochastic rounding.

A fused SPU (``hw.spu.Spu(fused=True)``, ``SpuModel(fused=True)``) computes the state update,
attend's token sums and its folds as ``fused_mul_add`` with one rounding (site ``add``) from
the fused unit's generator, reset to the ``add`` seed; it has no other generator.

Used by the cocotb benches (``cosim/tb_spu.py``) and the Amaranth tests
(``tests/test_hw_spu.py``); no cocotb import.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch

from quant.constants import COLUMNS, GROUPS_PER_COLUMN, LANES
from quant.mx8 import GROUP, MX8, MX8Scalar, encode, from_words, to_words
from quant.rng import DEFAULT_SITE_SEEDS, RandomSource, SITES, SPERandom
from quant.spe import (SPEConfig, add, attention_attend, attention_score, dot, fused_mul_add,
                       mul, mul_scalar, one_mx8, state_update)

__all__ = ["COLUMNS", "SpuWorkload", "SpuModel", "ReplaySource",
           "comp_order", "words_of", "mx_of", "new_acc", "acc_words"]

SUB = LANES        # values per sub-chunk
GPW = GROUPS_PER_COLUMN  # groups per 256-bit word


def comp_order(columns: int = COLUMNS) -> list[tuple[int, int]]:
    """(bank, column) of the COMPs of one row pair, in issue order."""
    return [(b, c) for c in range(columns) for b in (0, 1)]


def words_of(m: MX8) -> list[int]:
    """256-bit words of an MX8 tensor whose groups split into sub-chunks, row-major."""
    return to_words(m, GPW)


def mx_of(words: list[int]) -> MX8:
    """``(n, 2 groups)`` MX8 from ``n`` sub-chunk words."""
    return from_words(list(words), (len(words),), GPW, GPW)


def _groups(m: MX8, lo: int, hi: int) -> MX8:
    """Groups ``lo:hi`` of the last dimension."""
    return MX8(m.exp[..., lo:hi], m.mu[..., lo:hi, :], m.sign[..., lo:hi, :],
               m.mag[..., lo:hi, :])


def _stack(items: list[MX8]) -> MX8:
    return MX8(*(torch.stack([getattr(x, f) for x in items]) for f in
                 ("exp", "mu", "sign", "mag")))


def _scalars_of_word(word: int) -> MX8Scalar:
    s = mx_of([word]).scalars()
    return MX8Scalar(s.exp[0], s.mu[0], s.sign[0], s.mag[0])


def _pick_scalars(words: list[int], cols: list[int]) -> MX8Scalar:
    """Element ``cols[n]`` of sub-chunk ``words[n]`` as MX8 scalars ``(n,)``."""
    cache = {}
    out = []
    for w, c in zip(words, cols):
        if w not in cache:
            cache[w] = _scalars_of_word(w)
        s = cache[w]
        out.append((s.exp[c], s.mu[c], s.sign[c], s.mag[c]))
    return MX8Scalar(*(torch.stack([o[i] for o in out]) for i in range(4)))


class ReplaySource(RandomSource):
    """Hands out one pre-arranged tensor per ``draw`` (the shapes must match, in order)."""

    def __init__(self, tensors):
        self._queue = deque(tensors)

    def draw(self, shape, r: int) -> torch.Tensor:
        if not self._queue:
            raise RuntimeError("ReplaySource: no more pre-arranged random bits")
        t = self._queue.popleft()
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"ReplaySource: draw of shape {tuple(shape)}, prepared "
                             f"{tuple(t.shape)}")
        return t


class _Unused(RandomSource):
    def draw(self, shape, r):
        raise RuntimeError("this rounding site is not used here")


# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------

@dataclass
class SpuWorkload:
    """Operands of one mode for ``L`` leading positions (requests x heads), ``H`` dim_head
    sub-chunk ranges and ``C`` rows (chunks) per chunk group.

    A chunk group is one ``(l, h)``: ``G = L * H`` groups, dealt to the banks in pairs
    (group ``2p`` on bank A, ``2p + 1`` on bank B) and processed pair after pair, ``C`` row
    pairs each.

    state_update: ``S (L, 32C, 32H)`` (state columns x dim_head), ``d, k, q (L, 32H)``,
    ``v (L, 32C)``. score: ``keys (L, 32C, 32H)`` (tokens x dim_head), ``q``. attend:
    ``values (L, 32C, 32H)``, ``scores (L, 32C)`` (MX8 along the tokens).
    """

    mode: str
    L: int
    H: int
    C: int
    tensors: dict[str, MX8]
    stochastic: list[bool] = field(default_factory=list)  # per pair

    @property
    def groups(self) -> int:
        return self.L * self.H

    @property
    def pairs(self) -> int:
        return self.groups // 2

    def group(self, g: int) -> tuple[int, int]:
        return divmod(g, self.H)

    # ---- memory image and operands (256-bit words) ------------------------------------
    def rows(self, g: int) -> list[list[int]]:
        """The ``C`` rows (32 words each) of group ``g`` (state, keys or values)."""
        l, h = self.group(g)
        big = self.tensors["S" if self.mode == "state_update" else "X"]
        w = words_of(_groups(big[l], 2 * h, 2 * h + 2))   # (32C,) sub-chunks
        return [w[r * COLUMNS:(r + 1) * COLUMNS] for r in range(self.C)]

    def operand(self, name: str, g: int, r: int = 0) -> int:
        """Word of operand ``name`` (d, q, k; v / scores per row ``r``) of group ``g``."""
        l, h = self.group(g)
        if name in ("d", "q", "k"):
            return words_of(_groups(self.tensors[name][l:l + 1], 2 * h, 2 * h + 2))[0]
        t = self.tensors["v" if self.mode == "state_update" else "scores"]
        return words_of(_groups(t[l:l + 1], 2 * r, 2 * r + 2))[0]

    # ---- chunk-group slices in the layout of quant.spe's functions -----------------------
    def pair_slice(self, p: int, name: str) -> MX8:
        """Tensor ``name`` of the two groups of pair ``p`` stacked as leading dimension 2."""
        out = []
        for g in (2 * p, 2 * p + 1):
            l, h = self.group(g)
            t = self.tensors[name][l]
            if name in ("S", "X", "d", "q", "k"):
                t = _groups(t, 2 * h, 2 * h + 2)
            out.append(t)
        return _stack(out)


def _mx(x: torch.Tensor, gen: torch.Generator) -> MX8:
    return encode(x, "stochastic", rbits=8, rng=int(torch.randint(0, 2**31, (1,),
                                                                    generator=gen)))


def _spread(shape, gen, lo=-6, hi=4) -> torch.Tensor:
    """Normal values with a random power-of-two scale per group of 16 (wide exponent range)."""
    x = torch.randn(shape, generator=gen)
    g = x.reshape(*shape[:-1], -1, GROUP)
    sc = torch.randint(lo, hi + 1, g.shape[:-1] + (1,), generator=gen).to(torch.float32)
    g = g * torch.exp2(sc)
    # A few zero groups and values with a big spread inside a group (mu = 1 pairs).
    z = torch.rand(g.shape[:-1] + (1,), generator=gen) < 0.03
    g = torch.where(z, 0.0, g)
    small = torch.rand(g.shape, generator=gen) < 0.2
    g = torch.where(small, g * 2.0 ** -5, g)
    return g.reshape(shape)


def make_workload(mode: str, *, L: int, H: int, C: int, seed: int,
                  stochastic: list[bool] | None = None) -> SpuWorkload:
    """Random operands for ``mode`` (quantized from floats with realistic ranges: states of
    mixed scale, decays in (0, 1] — scalar per head for half of the leads — keys, queries and
    v of unit scale, softmax-like positive scores)."""
    if (L * H) % 2:
        raise ValueError(f"L * H = {L * H} chunk groups must pair up on the two banks")
    gen = torch.Generator().manual_seed(seed)
    dh, n = SUB * H, SUB * C
    t: dict[str, MX8] = {}
    if mode == "state_update":
        t["S"] = _mx(_spread((L, n, dh), gen), gen)
        dec = torch.sigmoid(torch.randn(L, dh, generator=gen) * 2 + 2)
        scalar = torch.rand(L, 1, generator=gen) < 0.5
        dec = torch.where(scalar, dec[:, :1].expand(L, dh), dec)
        t["d"] = _mx(dec, gen)
        t["k"] = _mx(_spread((L, dh), gen, -3, 1), gen)
        t["q"] = _mx(_spread((L, dh), gen, -3, 1), gen)
        t["v"] = _mx(_spread((L, n), gen, -3, 1), gen)
    elif mode == "score":
        t["X"] = _mx(_spread((L, n, dh), gen, -3, 2), gen)
        t["q"] = _mx(_spread((L, dh), gen, -3, 1), gen)
    elif mode == "attend":
        t["X"] = _mx(_spread((L, n, dh), gen, -3, 2), gen)
        logits = torch.randn(L, n, generator=gen) * 2
        t["scores"] = _mx(torch.softmax(logits, dim=-1), gen)
    else:
        raise ValueError(f"mode must be state_update, score or attend, not {mode!r}")
    pairs = L * H // 2
    if stochastic is None:
        stochastic = [bool(p % 2) for p in range(pairs)]
    if len(stochastic) != pairs:
        raise ValueError(f"stochastic needs one flag per pair ({pairs}), got {len(stochastic)}")
    return SpuWorkload(mode, L, H, C, t, list(stochastic))


# --------------------------------------------------------------------------------------------
# The expectation, COMP by COMP
# --------------------------------------------------------------------------------------------

class SpuModel:
    """Expected SPU results, round (row pair) after round, from :mod:`quant.spe`.

    The three site streams persist across rounds, as the SPU's generators do; only stochastic
    operations consume bits. ``fused``: the state update is ``fused_mul_add`` (one rounding)
    with bits from a fourth stream, the fused unit's generator (reset to the ``add`` seed).
    """

    def __init__(self, *, rbits: int = 8, renorm: str = "lod", seeds: dict | None = None,
                 fused: bool = False):
        self.cfg = {s: SPEConfig(rounding="stochastic" if s else "nearest", rbits=rbits,
                                 renorm=renorm, fused=fused) for s in (False, True)}
        seeds = dict(DEFAULT_SITE_SEEDS if seeds is None else seeds)
        self.rand = SPERandom.lfsr(seeds)
        self.fused = fused
        # the fused unit's generator: its own PRBS31, reset to the add site's seed
        self.rand_fma = SPERandom.lfsr(seeds)["add"]
        self.rbits = rbits

    def _bits(self, site: str, n: int, stoch: bool):
        if not stoch:
            return None
        return self.rand[site].draw((n, SUB), self.rbits)

    def _fma_bits(self, n: int, stoch: bool):
        return self.rand_fma.draw((n, SUB), self.rbits) if stoch else None

    def state_round(self, rows: tuple[list[int], list[int]], ops: tuple[dict, dict],
                    stoch: bool, order=None) -> dict:
        """One state-update row pair. ``rows[b]``: the 32 words of bank ``b``'s open row;
        ``ops[b]``: the bank's words ``d, q, k, v``. Returns per COMP (issue order) the new
        sub-chunk words ``new``, the partial words ``partial`` and the random bits ``bits``
        (site -> (64, 32) or None; fused: site ``add`` only)."""
        order = order or comp_order()
        cfg = self.cfg[stoch]
        n = len(order)
        S = mx_of([rows[b][c] for b, c in order])
        D = mx_of([ops[b]["d"] for b, _ in order])
        K = mx_of([ops[b]["k"] for b, _ in order])
        Q = mx_of([ops[b]["q"] for b, _ in order])
        vj = _pick_scalars([ops[b]["v"] for b, _ in order], [c for _, c in order])
        if self.fused:
            bits = {"add": self._fma_bits(n, stoch)}
            new = fused_mul_add(D, S, K, vj.expand_groups(vj.exp.shape, S.exp.shape[-1]), cfg,
                                bits["add"])
        else:
            bits = {s: self._bits(s, n, stoch) for s in SITES}
            decay = mul(S, D, cfg, bits["mul_decay"])
            outer = mul_scalar(K, vj, cfg, bits["mul_outer"])
            new = add(decay, outer, cfg, bits["add"])
        part = dot(new, Q).words()
        return {"order": order, "new": words_of(new), "partial": [int(x) for x in
                                                                   part.flatten().tolist()],
                "bits": bits}

    def score_round(self, rows, ops, order=None) -> dict:
        order = order or comp_order()
        Kx = mx_of([rows[b][c] for b, c in order])
        Q = mx_of([ops[b]["q"] for b, _ in order])
        part = dot(Kx, Q).words()
        return {"order": order, "partial": [int(x) for x in part.flatten().tolist()]}

    def attend_round(self, rows, ops, acc: list[list[MX8]], stoch: bool, order=None) -> dict:
        """One attend row pair; ``acc[b][k]`` (partial ``k`` of bank ``b``, MX8 ``(1, 2)``) is
        updated in place: column ``c`` into partial ``c mod P``, then the fold of each bank
        (partial k into partial 0, k = 1 .. P-1; bank A then B per step), as the adder (fused:
        the fused unit) sees them (``quant.spe.attention_attend``'s order; the adder's random
        bits: the 64 COMPs, then the fold steps)."""
        order = order or comp_order()
        cfg = self.cfg[stoch]
        n = len(order)
        nparts = len(acc[0])
        folds = 2 * (nparts - 1)
        if self.fused:
            bits = {"add": self._fma_bits(n + folds, stoch)}
        else:
            bits = {"mul_outer": self._bits("mul_outer", n, stoch),
                    "add": self._bits("add", n + folds, stoch)}

        def add_bits(i):
            return None if bits["add"] is None else bits["add"][i:i + 1]

        V = mx_of([rows[b][c] for b, c in order])
        s = _pick_scalars([ops[b]["v"] for b, _ in order], [c for _, c in order])
        if self.fused:
            one = one_mx8((1,), GPW)
            e = s.expand_groups(s.exp.shape, GPW)

            def acc_add(i, p, x, scale):
                return fused_mul_add(p, one, x, one if scale is None else scale, cfg,
                                     add_bits(i))
            terms = [(V[i:i + 1], e[i:i + 1]) for i in range(n)]
        else:
            def acc_add(i, p, x, scale):
                return add(p, x, cfg, add_bits(i))
            # the products do not depend on the sums: one call for the row pair
            # (element-wise, so row i with bits row i is the product of COMP i alone)
            prods = mul_scalar(V, s, cfg, bits["mul_outer"])
            terms = [(prods[i:i + 1], None) for i in range(n)]
        for i, (b, c) in enumerate(order):
            k = c % nparts
            acc[b][k] = acc_add(i, acc[b][k], *terms[i])
        for f in range(folds):
            k, b = divmod(f, 2)
            acc[b][0] = acc_add(n + f, acc[b][0], acc[b][k + 1], None)
            acc[b][k + 1] = zero_acc()
        return {"order": order, "bits": bits, "folds": folds}


def new_acc(partials: int) -> list[list[MX8]]:
    """Zero partial accumulators of both banks: ``[bank][partial]`` (``partials``: the SPU's
    ``attend_partials``)."""
    return [[zero_acc() for _ in range(partials)] for _ in range(2)]


def acc_words(acc: list[list[MX8]]) -> list[int]:
    """The word each bank's RESULT_READ returns in attend mode (partial 0, folded)."""
    return [words_of(a[0])[0] for a in acc]


def zero_acc() -> MX8:
    z = torch.zeros(1, GPW, dtype=torch.int32)
    return MX8(z, torch.zeros(1, GPW, 8, dtype=torch.int32),
               torch.zeros(1, GPW, GROUP, dtype=torch.int32),
               torch.zeros(1, GPW, GROUP, dtype=torch.int32))


# --------------------------------------------------------------------------------------------
# Chunk-group checks against quant.spe's own functions
# --------------------------------------------------------------------------------------------

def replay_state_bits(rounds: list[dict], C: int) -> dict[str, list[torch.Tensor]]:
    """Bits of a pair's rounds arranged for ``state_update`` on the pair (leading dimension 2
    = the two groups): per site that drew (all three; a fused SPU: ``add``) one
    ``(2, 1, 32C, 32)`` tensor."""
    out = {}
    for site in rounds[0]["bits"]:
        t = torch.zeros(2, 1, COLUMNS * C, SUB, dtype=torch.int32)
        for r, rd in enumerate(rounds):
            for i, (b, c) in enumerate(rd["order"]):
                t[b, 0, r * COLUMNS + c] = rd["bits"][site][i]
        out[site] = [t]
    return out


def pair_state_update(work: SpuWorkload, p: int, rounds: list[dict], stoch: bool,
                      cfg: SPEConfig):
    """``quant.spe.state_update`` of pair ``p``'s two chunk groups (stochastic: with the
    SPU's bits replayed in the function's order)."""
    S, d, k, q = (work.pair_slice(p, x) for x in ("S", "d", "k", "q"))
    v = work.pair_slice(p, "v")
    if stoch:
        bits = replay_state_bits(rounds, work.C)
        rng = SPERandom({s: ReplaySource(bits[s]) if s in bits else _Unused() for s in SITES})
    else:
        rng = SPERandom({s: _Unused() for s in SITES})
    return state_update(S, d, k, v, q, cfg, rng)


def pair_score(work: SpuWorkload, p: int):
    return attention_score(work.pair_slice(p, "X"), work.pair_slice(p, "q"))


def pair_attend(work: SpuWorkload, p: int, rounds: list[dict], stoch: bool,
                cfg: SPEConfig) -> MX8:
    """``quant.spe.attention_attend`` of pair ``p`` (token after token per group), with the
    SPU's bits replayed in the function's order when stochastic."""
    values = work.pair_slice(p, "X")                      # (2, seq, 32)
    sc = work.pair_slice(p, "scores").scalars()           # (2, seq)
    if stoch:
        # The function draws per row: one (2, 32) tensor per token and site, then one per
        # fold step (add); the rounds hold the SPU's bits in the adder's order.
        draws = {site: [] for site in rounds[0]["bits"]}
        for rd in rounds:
            n = len(rd["order"])
            tok = {s: [torch.zeros(2, SUB, dtype=torch.int32) for _ in range(COLUMNS)]
                   for s in draws}
            for i, (b, c) in enumerate(rd["order"]):
                for s in draws:
                    tok[s][c][b] = rd["bits"][s][i]
            for s in draws:
                draws[s] += tok[s]
            for k in range(rd["folds"] // 2):
                draws["add"].append(torch.stack([rd["bits"]["add"][n + 2 * k + b]
                                                 for b in (0, 1)]))
        rng = SPERandom({s: ReplaySource(draws[s]) if s in draws else _Unused()
                         for s in SITES})
    else:
        rng = SPERandom({s: _Unused() for s in SITES})
    return attention_attend(values, sc, cfg, rng)
