"""Simulator-independent testbench of the SPU with its two banks (:class:`hw.spu_sim.SpuSim`).

The bench plays the memory controller and checks everything the SPU does:

* **driver** — per chunk-group pair and row pair (round): PRECHARGE of the previous rows
  (read back from the row buffers), RESULT_READs of the previous round, ACTIVATE of the next
  rows, REG_WRITEs (MODE, d/q/k once per chunk group, v per chunk) in random order where legal
  with random idle cycles, then the 64 COMPs of the row pair with random gaps (idle cycles,
  sometimes a refresh-long one); the last COMP is marked. Idle cycles carry junk on
  ``i_addr``/``i_data``.
* **monitor** — every cycle: the column accesses of both banks (``o_trace_*``), the collision
  flags, the RESULT_READ responses, the protocol-error flag.
* **scoreboard** — the expectation of every sub-chunk from :class:`cosim.spu_model.SpuModel`
  (quant's operations called in the SPU's order with the SPU's random bits): each read is
  the next (bank, column) of the interleaving order, each write-back carries the expected new
  sub-chunk exactly once, each partial / accumulator read back is bit-exact, no bank is ever
  read and written in one cycle; at the end the chunk groups are compared with
  ``quant.spe.state_update`` / ``attention_score`` / ``attention_attend`` (stochastic pairs
  with the SPU's bits replayed in those functions' order; nearest pairs also on the whole
  tensors).
* **timing** — the first round runs its COMPs back to back (each presented until accepted):
  COMPs per row pair, SPU cycles per COMP, utilization, write-back distance, and the pipeline
  depth (cycles from the last COMP until ``o_busy`` drops, with a RESULT_READ of the last
  result in that very cycle that must return the final value).

The simulator is reached through an *io* object with one method,
``await io.cycle(cmd, addr, data, act, rows, read_rows) -> Sample``: drive the inputs of this
cycle, sample the outputs of this cycle (combinational outputs settled), advance one clock.
``cosim/tb_spu.py`` implements it for cocotb, ``tests/test_hw_spu.py`` for Amaranth's
simulator.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from hw.spu import Cmd, Reg, comp_addr, mode_word, reg_addr, result_addr

from .spu_model import (COLUMNS, SpuModel, SpuWorkload, acc_words, comp_order, new_acc,
                        pair_attend, pair_score, pair_state_update, words_of)

__all__ = ["Sample", "SpuBench", "make_bench", "replay_bench", "workload_size"]

_log = logging.getLogger("cosim.spu")


@dataclass
class Sample:
    """Outputs of one cycle."""
    comp_ready: int
    busy: int
    err: int
    rvalid: int
    rdata: int
    rd: int
    rd_col: int
    wr: int
    wr_col: int
    wdata: int
    collision: int
    rows: tuple[int, int] | None = None


def workload_size(vectors: int, rng: random.Random) -> tuple[int, int, int]:
    """``(L, H, C)`` for about ``vectors`` COMPs (64 per row pair): at least two chunk-group
    pairs (a nearest and a stochastic one) of at least two chunks."""
    rounds = max(4, -(-vectors // 64))
    C = 2 if rounds < 12 else 4
    pairs = max(2, -(-rounds // C))
    H = rng.choice((1, 2))          # one or two dim_head ranges per head
    return 2 * pairs // H, H, C


def _row_int(words: list[int]) -> int:
    return sum(w << (256 * c) for c, w in enumerate(words))


def _row_words(value: int) -> list[int]:
    mask = (1 << 256) - 1
    return [(value >> (256 * c)) & mask for c in range(COLUMNS)]


class SpuBench:
    """One run of a mode over a workload (see the module docstring).

    Parameters
    ----------
    io : object with ``async cycle(...)``
    work : SpuWorkload
    rng : random.Random
        Decides gaps, junk and the order of register writes and result reads.
    spu : hw.spu.Spu
        The unit (its timing properties bound the waits; nothing else is taken from it).
    gap_prob : float
        Probability of idle cycles before each COMP (and between other commands).
    """

    MUTANTS = ("swap_banks", "nearest_only", "unfused")

    def __init__(self, io, work: SpuWorkload, *, rng: random.Random, spu, gap_prob: float = 0.2,
                 log: logging.Logger | None = None, mutant: str | None = None):
        if mutant is not None and mutant not in self.MUTANTS:
            raise ValueError(f"mutant must be one of {self.MUTANTS}, not {mutant!r}")
        if mutant == "unfused" and not spu.fused:
            raise ValueError("mutant 'unfused' needs a fused SPU (Spu(fused=True))")
        # Deliberately wrong expectations (for the harness's mutation checks): the model
        # interleaves B before A, rounds stochastic pairs to nearest, or (a fused SPU) rounds
        # products and sums separately (state update and attend).
        self.mutant = mutant
        self.io = io
        self.work = work
        self.mode = work.mode
        self.rng = rng
        self.spu = spu
        self.gap_prob = gap_prob
        self.log = log or _log
        self.model = SpuModel(rbits=spu.rbits, renorm=spu.renorm, seeds=spu.seeds,
                              fused=spu.fused and mutant != "unfused")
        self.cycle = 0
        self.mem = {g: work.rows(g) for g in range(work.groups)}
        self.mismatches: list[str] = []
        self.vectors = 0
        self.collisions = 0
        self.err_seen = False
        self.last = None               # last Sample
        self._rr_expect: list = []     # expectations of RESULT_READs in flight
        self._round = None             # the round whose accesses are being checked
        self.timing: dict = {}
        self.poll: dict = {}
        self.results: dict = {}        # (pair, round, bank, col) -> partial word / acc word

    # ---- plumbing ------------------------------------------------------------------------
    def fail(self, msg: str) -> None:
        self.mismatches.append(msg)
        if len(self.mismatches) <= 10:
            self.log.error("cycle %d: %s", self.cycle, msg)

    async def step(self, cmd: Cmd = Cmd.NOP, addr: int | None = None, data: int | None = None,
                   act: int = 0, rows=None, read_rows: bool = False,
                   expect=None) -> Sample:
        """One cycle with one command; ``expect``: what a RESULT_READ must return
        (``(key, word)``, or None to ignore the response)."""
        if addr is None:
            addr = self.rng.getrandbits(8)
        if data is None:
            data = self.rng.getrandbits(256)
        s = await self.io.cycle(int(cmd.value), addr, data, act, rows, read_rows)
        self._monitor(s)
        if cmd == Cmd.RESULT_READ:
            self._rr_expect.append(expect)
        self.last = s
        self.cycle += 1
        return s

    def _monitor(self, s: Sample) -> None:
        if s.collision:
            self.collisions += 1
            self.fail(f"bank model: read/write collision on banks {s.collision:#b}")
        if s.rd & s.wr:
            self.fail(f"trace: bank {s.rd & s.wr:#b} read and written in one cycle")
        if s.rd == 3:
            self.fail("trace: both banks read in one cycle")
        if s.err and not self.err_seen:
            self.err_seen = True
            self.fail("SPU flagged a protocol error (o_err)")
        if s.rvalid:
            if not self._rr_expect:
                self.fail("RESULT_READ response without a request")
            else:
                exp = self._rr_expect.pop(0)
                if isinstance(exp, int):            # a polling read issued in cycle exp
                    self.poll[exp] = s.rdata
                elif exp is not None:
                    key, word = exp
                    self.results[key] = s.rdata
                    if s.rdata != word:
                        self.fail(f"RESULT_READ {key}: expected {word:#x}, got {s.rdata:#x}")
        rnd = self._round
        if s.rd and rnd is not None:
            bank = 0 if s.rd & 1 else 1
            i = len(rnd["reads"])
            if i >= len(rnd["order"]):
                self.fail(f"extra read of bank {bank} column {s.rd_col}")
            elif (bank, s.rd_col) != rnd["order"][i]:
                self.fail(f"read {i}: bank {bank} column {s.rd_col}, expected "
                          f"{rnd['order'][i]}")
            rnd["reads"].append((self.cycle, bank, s.rd_col))
        if s.wr:
            bank = 0 if s.wr & 1 else 1
            key = (bank, s.wr_col)
            if rnd is None or key not in rnd.get("wb", {}):
                self.fail(f"unexpected write-back to bank {bank} column {s.wr_col}")
            else:
                want = rnd["wb"].pop(key)
                rnd["writes"].append((self.cycle, bank, s.wr_col))
                if s.wdata != want:
                    self.fail(f"write-back bank {bank} column {s.wr_col}: expected "
                              f"{want:#x}, got {s.wdata:#x}")

    # ---- the controller ------------------------------------------------------------------
    async def run(self) -> dict:
        w = self.work
        prev = None                    # (pair, round) whose results are still to be read
        acc_prev = None                # (pair, accumulators) still to be read (attend)
        wall0 = time.perf_counter()
        cycle0 = self.cycle
        self.pair_rounds = {p: [] for p in range(w.pairs)}
        for p in range(w.pairs):
            stoch = w.stochastic[p]
            acc = new_acc(self.spu.attend_partials)
            for r in range(w.C):
                await self._between(p, r, prev, acc_prev if r == 0 else None, stoch)
                acc_prev = None
                rnd = self._expect_round(p, r, stoch, acc)
                self.pair_rounds[p].append(rnd)
                timing = p == 0 and r == 0
                await self._comps(rnd, timing)
                prev = (p, r)
            if self.mode == "attend":
                acc_prev = (p, acc_words(acc))
        await self._between(None, None, prev, acc_prev, False)
        for _ in range(3):
            await self.step()
        self._final_checks()
        wall = time.perf_counter() - wall0
        cycles = self.cycle - cycle0
        return {
            "vectors": self.vectors,
            "expected": w.pairs * w.C * 2 * COLUMNS,
            "mismatches": len(self.mismatches),
            "pending": len(self._rr_expect),
            "collisions": self.collisions,
            "cycles": cycles,
            "wall_s": round(wall, 4),
            "cycles_per_s": round(cycles / wall, 1) if wall > 0 else None,
            "timing": self.timing,
        }

    def _expect_round(self, p: int, r: int, stoch: bool, acc) -> dict:
        w = self.work
        ga, gb = 2 * p, 2 * p + 1
        rows = (self.mem[ga][r], self.mem[gb][r])
        order = comp_order()
        if self.mutant == "swap_banks":
            order = [(1 - b, c) for b, c in order]
        stoch = stoch and self.mutant != "nearest_only"
        ops = tuple({n: w.operand(n, g, r) for n in ("d", "q", "k", "v")} if self.mode ==
                    "state_update" else ({"q": w.operand("q", g)} if self.mode == "score" else
                                         {"v": w.operand("v", g, r)}) for g in (ga, gb))
        if self.mode == "state_update":
            e = self.model.state_round(rows, ops, stoch, order)
            e["wb"] = {bc: e["new"][i] for i, bc in enumerate(e["order"])}
        elif self.mode == "score":
            e = self.model.score_round(rows, ops, order)
        else:
            e = self.model.attend_round(rows, ops, acc, stoch, order)
            e["acc"] = acc_words(acc)
        e.update(pair=p, round=r, reads=[], writes=[], stoch=stoch, ops=ops)
        if "wb" in e:
            e["new_rows"] = ([e["wb"][(0, c)] for c in range(COLUMNS)],
                             [e["wb"][(1, c)] for c in range(COLUMNS)])
        return e

    async def _between(self, p, r, prev, acc_prev, stoch) -> None:
        """Commands between two rounds, in random order where legal."""
        w = self.work
        actions = []        # (name, needs_idle, deps, coroutine factory)
        prev_rnd = self.pair_rounds[prev[0]][prev[1]] if prev is not None else None
        if prev_rnd is not None:
            actions.append(("pre", True, (), lambda: self._pre(prev_rnd)))
            if self.mode in ("state_update", "score"):
                for i, (b, c) in enumerate(prev_rnd["order"]):
                    key = (prev_rnd["pair"], prev_rnd["round"], b, c)
                    word = prev_rnd["partial"][i]
                    actions.append((f"rr{b}{c}", True, (), self._rr(result_addr(b, c),
                                                                    (key, word))))
        if acc_prev is not None:
            pp, words = acc_prev
            for b in (0, 1):
                actions.append((f"racc{b}", True, (), self._rr(result_addr(b, 0),
                                                               ((pp, "acc", b), words[b]))))
        if p is not None:
            ga, gb = 2 * p, 2 * p + 1
            acts = (_row_int(self.mem[ga][r]), _row_int(self.mem[gb][r]))
            actions.append(("act", True, ("pre",) if prev_rnd is not None else (),
                            self._cmd_factory(act=3, rows=acts)))
            if r == 0:
                deps = tuple(a[0] for a in actions if a[0].startswith("racc"))
                actions.append(("mode", True, deps, self._cmd_factory(
                    Cmd.REG_WRITE, reg_addr(Reg.MODE, 0), mode_word(self.mode, stoch))))
                names = {"state_update": ("d", "q", "k"), "score": ("q",), "attend": ()}
                for n in names[self.mode]:
                    for b, g in ((0, ga), (1, gb)):
                        reg = Reg[n.upper()]
                        idle = reg == Reg.Q
                        actions.append((f"{n}{b}", idle, (), self._cmd_factory(
                            Cmd.REG_WRITE, reg_addr(reg, b), w.operand(n, g))))
                if self.mode == "attend":
                    for b in (0, 1):
                        actions.append((f"clr{b}", True, ("mode",), self._cmd_factory(
                            Cmd.REG_WRITE, reg_addr(Reg.ACC_CLEAR, b), None)))
            if self.mode in ("state_update", "attend"):
                for b, g in ((0, ga), (1, gb)):
                    actions.append((f"v{b}", False, (), self._cmd_factory(
                        Cmd.REG_WRITE, reg_addr(Reg.V, b), w.operand("v", g, r))))
        done: set[str] = set()
        pending = list(actions)
        guard = 0
        while pending:
            idle_ok = self.last is not None and not self.last.busy
            ready = [a for a in pending if (idle_ok or not a[1]) and all(d in done for d in a[2])]
            if not ready or self.rng.random() < self.gap_prob:
                await self.step()
                guard += 1
                if guard > 10_000:
                    self.fail(f"controller stuck with {[a[0] for a in pending]}")
                    return
                continue
            a = self.rng.choice(ready)
            pending.remove(a)
            await a[3]()
            done.add(a[0])

    def _cmd_factory(self, cmd=Cmd.NOP, addr=None, data=None, act=0, rows=None):
        async def go():
            await self.step(cmd, addr, data, act=act, rows=rows)
        return go

    def _rr(self, addr, expect):
        async def go():
            await self.step(Cmd.RESULT_READ, addr, None, expect=expect)
        return go

    async def _pre(self, rnd) -> None:
        """PRECHARGE: read both row buffers back into the memory image."""
        s = await self.step(read_rows=True)
        p, r = rnd["pair"], rnd["round"]
        for b, g in ((0, 2 * p), (1, 2 * p + 1)):
            got = _row_words(s.rows[b])
            if "new_rows" in rnd:
                want = rnd["new_rows"][b]
                if rnd["wb"]:
                    self.fail(f"pair {p} round {r}: write-backs never seen: "
                              f"{sorted(rnd['wb'])}")
                bad = [c for c in range(COLUMNS) if got[c] != want[c]]
                if bad:
                    self.fail(f"pair {p} round {r} bank {b}: row buffer differs at columns "
                              f"{bad[:8]}")
            elif got != self.mem[g][r]:
                self.fail(f"pair {p} round {r} bank {b}: row changed without write-back")
            self.mem[g][r] = got
        if len(rnd["reads"]) != len(rnd["order"]):
            self.fail(f"pair {p} round {r}: {len(rnd['reads'])} reads, expected "
                      f"{len(rnd['order'])}")
        self.vectors += len(rnd["order"])

    async def _comps(self, rnd, timing: bool) -> None:
        """The COMPs of one row pair; back to back (each presented until accepted) when
        ``timing``, with random gaps otherwise."""
        self._round = rnd
        n = len(rnd["order"])
        accepted = []
        for i in range(n):
            if not timing:
                await self._comp_gap(rnd, rnd["order"][i - 1][0] if i else None)
            tries = 0
            while True:
                s = await self.step(Cmd.COMP, comp_addr(i == n - 1))
                if s.comp_ready:
                    accepted.append(self.cycle - 1)
                    break
                tries += 1
                if tries > 64:
                    self.fail("COMP never accepted")
                    return
        if timing:
            await self._measure(rnd, accepted)

    async def _comp_gap(self, rnd, last_bank) -> None:
        """Idle cycles before a COMP; some of them carry register writes that are legal in
        the middle of a row pair: a bank's d, k or v rewritten with its current value while no
        operation of that bank waits for it (not the bank of the previous COMP)."""
        names = {"state_update": ("d", "k", "v"), "attend": ("v",), "score": ()}[self.mode]
        banks = [b for b in (0, 1) if b != last_bank]
        if self.rng.random() < self.gap_prob * 0.05:      # a refresh-long gap now and then
            for _ in range(self.rng.randint(8, 30)):
                await self.step()
        while self.rng.random() < self.gap_prob:
            if names and self.rng.random() < 0.3:
                n, b = self.rng.choice(names), self.rng.choice(banks)
                await self.step(Cmd.REG_WRITE, reg_addr(Reg[n.upper()], b), rnd["ops"][b][n])
            else:
                await self.step()

    async def _measure(self, rnd, accepted: list[int]) -> None:
        """Pipeline depth: RESULT_READ of the last COMP's result every cycle until o_busy
        drops; the read issued in that cycle must return the final value."""
        t_last = accepted[-1]
        b, c = rnd["order"][-1]
        if self.mode == "attend":
            key, word = ("timing", "acc", b), rnd["acc"][b]
            addr = result_addr(b, 0)
        else:
            key, word = ("timing", b, c), rnd["partial"][-1]
            addr = result_addr(b, c)
        depth = None
        self.poll = {}
        for _ in range(max(self.spu.latency.values()) + 8):
            s = await self.step(Cmd.RESULT_READ, addr, None, expect=self.cycle)
            if not s.busy:
                depth = self.cycle - 1 - t_last
                break
        await self.step()
        if depth is None:
            self.fail("pipeline never drained")
            return
        got = self.poll.get(t_last + depth)
        self.results[key] = got
        if got != word:
            self.fail(f"result not final when o_busy dropped ({depth} cycles after the last "
                      f"COMP): expected {word:#x}, got {got}")
        intervals = [b - a for a, b in zip(accepted, accepted[1:])]
        cpc = max(intervals) if intervals else 1
        reads = rnd["reads"]
        span = reads[-1][0] - reads[0][0] + cpc
        t = {
            "pipeline_depth": depth,
            "spu_cycles_per_comp": cpc,
            "comps_per_row_pair": len(accepted),
            "utilization": round(len(reads) / span, 4),
        }
        if rnd["writes"]:
            rd_at = {(bk, col): cyc for cyc, bk, col in reads}
            dist = {cyc - rd_at[(bk, col)] for cyc, bk, col in rnd["writes"]}
            if len(dist) != 1:
                self.fail(f"write-back distances vary: {sorted(dist)}")
            t["writeback_delay"] = max(dist)
            if max(dist) % 2 == 0:
                self.fail(f"even read-to-write distance {max(dist)}: the schedule collides")
        self.timing = t

    # ---- chunk-group checks --------------------------------------------------------------
    def _final_checks(self) -> None:
        if self.mutant is not None:       # the per-COMP checks have failed already
            return
        w = self.work
        for p in range(w.pairs):
            rounds = self.pair_rounds[p]
            stoch = w.stochastic[p]
            cfg = self.model.cfg[stoch]
            if self.mode == "state_update":
                out = pair_state_update(w, p, rounds, stoch, cfg)
                want_rows = words_of(out.state)            # (2, 32C) sub-chunks
                parts = [int(x) for x in out.partial.words().flatten().tolist()]
                for b, g in ((0, 2 * p), (1, 2 * p + 1)):
                    got = [x for row in self.mem[g] for x in row]
                    want = want_rows[b * len(got):(b + 1) * len(got)]
                    if got != want:
                        self.fail(f"pair {p} bank {b}: final state differs from "
                                  f"quant.spe.state_update")
                self._check_partials(p, parts)
            elif self.mode == "score":
                parts = [int(x) for x in pair_score(w, p).words().flatten().tolist()]
                self._check_partials(p, parts)
            else:
                acc = words_of(pair_attend(w, p, rounds, stoch, cfg))
                for b in (0, 1):
                    got = self.results.get((p, "acc", b))
                    if got != acc[b]:
                        self.fail(f"pair {p} bank {b}: accumulator {got} differs from "
                                  f"quant.spe.attention_attend")
        self._check_whole_nearest()

    def _check_partials(self, p: int, parts: list[int]) -> None:
        """``parts``: the function's partials of the pair, (2 groups, 32C columns)."""
        n = COLUMNS * self.work.C
        for r in range(self.work.C):
            for b in (0, 1):
                for c in range(COLUMNS):
                    got = self.results.get((p, r, b, c))
                    if got != parts[b * n + r * COLUMNS + c]:
                        self.fail(f"pair {p} round {r} bank {b} column {c}: partial differs "
                                  f"from quant.spe ({got})")
                        return

    def _check_whole_nearest(self) -> None:
        """Round-to-nearest pairs against the chunk-group function on the whole tensors
        (the processing order does not matter when no random bits are used)."""
        from quant.spe import attention_attend, attention_score, state_update

        w = self.work
        near = [p for p in range(w.pairs) if not w.stochastic[p]]
        if not near:
            return
        cfg = self.model.cfg[False]
        t = w.tensors
        if self.mode == "state_update":
            out = state_update(t["S"], t["d"], t["k"], t["v"], t["q"], cfg, rng=0)
            words = words_of(out.state)       # (L, 32C, H) row-major
        elif self.mode == "score":
            words = [int(x) for x in attention_score(t["X"], t["q"]).words().flatten()]
        else:
            acc = attention_attend(t["X"], t["scores"].scalars(), cfg, rng=0)
            words = words_of(acc)             # (L, H)
        n = COLUMNS * w.C
        for p in near:
            for b, g in ((0, 2 * p), (1, 2 * p + 1)):
                l, h = w.group(g)
                if self.mode == "state_update":
                    got = [x for row in self.mem[g] for x in row]
                    want = [words[(l * n + j) * w.H + h] for j in range(n)]
                elif self.mode == "score":
                    got = [self.results.get((p, j // COLUMNS, b, j % COLUMNS))
                           for j in range(n)]
                    want = [words[(l * n + j) * w.H + h] for j in range(n)]
                else:
                    got = [self.results.get((p, "acc", b))]
                    want = [words[l * w.H + h]]
                if got != want:
                    self.fail(f"pair {p} bank {b} (nearest): differs from quant.spe on the "
                              f"whole tensors")


def make_bench(io, spu, mode: str, vectors: int, seed: int, *, idle: float = 0.2,
               log: logging.Logger | None = None, mutant: str | None = None) -> SpuBench:
    """The bench of ``mode`` over a random workload of about ``vectors`` COMPs, everything
    drawn from ``seed`` (so that a recorded run can be replayed, :mod:`cosim.replay`)."""
    from .spu_model import make_workload

    log = log or _log
    rng = random.Random(seed)
    L, H, C = workload_size(vectors, rng)
    first = rng.getrandbits(1)
    pairs = L * H // 2
    work = make_workload(mode, L=L, H=H, C=C, seed=rng.getrandbits(31),
                         stochastic=[bool((p + first) % 2) for p in range(pairs)])
    log.info("%s: L=%d H=%d C=%d (%d chunk groups, %d row pairs), stochastic %s", mode, L, H,
             C, L * H, pairs * C, work.stochastic)
    return SpuBench(io, work, rng=rng, spu=spu, gap_prob=idle, log=log, mutant=mutant)


def replay_bench(io, meta: dict, mutant: str | None, log: logging.Logger) -> SpuBench:
    """:func:`make_bench` of a recorded run (:func:`cosim.replay.check_mutant`)."""
    from .replay import load_unit

    return make_bench(io, load_unit(meta["unit"]).spu, meta["mode"], meta["vectors"],
                      meta["seed"], idle=meta["idle"], log=log, mutant=mutant)
