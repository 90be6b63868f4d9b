"""Simulator-independent testbench of the HBM-PIM PCU with its bank models
(:class:`hw.hbmpim_pcu_sim.HbmPimPcuSim`: ``hbmpim_pcu``, ``hbmpim_pcu_perbank``).

* **driver** -- per mode (state update, score, attend) heads of random shapes, one per bank
  served in turn (the pair unit's registers are shared, so its two banks' heads run one after
  the other). Each head is laid out from a random base row of its bank and its host command
  stream comes from :func:`quant.hbmpim_pcu.build_head` (CRF, GRF, SRF writes, CTRL start,
  the column commands of whole rows, the GRF_B reads). The controller opens the row of each
  column command (PRECHARGE: the row buffer read back into the bench's DRAM array; ACTIVATE:
  the row loaded) and puts random idle cycles (junk on the inputs) between commands, except
  in the first (timed) head of each mode.
* **monitor / scoreboard** -- the golden model :class:`quant.hbmpim_pcu.PcuModel` executes
  the same commands in lock-step: every cycle the bank reads and writes (``o_trace_*``) must
  be the ones of the instruction it executes, no bank is read and written in one cycle,
  ``o_error`` stays low; every REG_READ equals the model's register bit for bit; after each
  head every column of the head in the DRAM array equals the model's.
* **counts** -- per mode: column commands, bank columns read and written, register writes and
  reads, rows used; compared with the sum of :func:`quant.hbmpim_programs.plan` over the heads.
  ``commands_per_column`` = column commands / bank columns read.
* **random programs** -- after the three modes, random valid programs over the whole ISA
  (ADD, MUL, MAC, MAD, MOV, FILL, NOP with counts, AAM with 1-8 repeats, a JUMP loop) on
  random register contents and an open random row per bank, column commands on random
  (bank, column) until EXIT, register writes between them; then every GRF entry is read
  back and the rows compared (counted as ``random_programs``; not in the timing file).
* **timing** -- in the timed head, ``pipeline_depth`` = cycles from the last column command
  until a REG_READ returns the final accumulator and the row buffer holds the final column.

The simulator is reached through an *io* object: ``await io.cycle(cmd, addr, data, act,
rows, read_rows) -> Sample`` drives one cycle, samples the settled outputs and advances the
clock (``cosim/tb_hbmpim_pcu.py`` for cocotb, ``tests/test_hw_hbmpim_pcu.py`` for
Amaranth's simulator).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import numpy as np

from quant import hbmpim_programs as hp
from quant.hbmpim_pcu import (COLUMN, READ, WRITE, PcuModel, build_head, column_to_lanes,
                              fadd, lanes_to_column)
from quant.hbmpim_programs import LANES, Op, Opd, Space

from .pim_fp16_bench import random_fp16

__all__ = ["Sample", "PcuBench", "MUTANTS", "CMD_NOP", "CMD_REG_WRITE", "CMD_COLUMN",
           "CMD_REG_READ"]

COLUMNS = hp.COLUMNS_PER_ROW
CMD_NOP, CMD_REG_WRITE, CMD_COLUMN, CMD_REG_READ = 0, 1, 2, 3
_log = logging.getLogger("cosim.hbmpim_pcu")
_PROBE_MAX = 8


@dataclass
class Sample:
    """Outputs of one cycle."""
    rdata: int
    rvalid: int
    running: int
    error: int
    rd: int
    wr: int
    collision: int
    rows: tuple | None = None


class _SingleRoundingMac(PcuModel):
    """Mutant: MAC/MAD rounded once (the exact ``a * b + c`` rounded to fp16)."""

    def _execute(self, ins, bank, col, banks):
        if ins.op not in (Op.MAC, Op.MAD):
            return super()._execute(ins, bank, col, banks)

        def rd(kind, idx):
            return self._read(ins, kind, idx, bank, col, banks)

        def f64(bits):
            return np.asarray(bits, np.uint16).view(np.float16).astype(np.float64)
        a, b = f64(rd(ins.src0, ins.src0_idx)), f64(rd(ins.src1, ins.src1_idx))
        c = f64(rd(ins.dst, ins.dst_idx) if ins.op == Op.MAC else rd(ins.src2, ins.src2_idx))
        with np.errstate(all="ignore"):
            r = (a * b + c).astype(np.float16).view(np.uint16).astype(np.int64)
        r = np.where((r & 0x7C00) == 0x7C00, np.where(r & 0x3FF, 0x7E00, r), r)
        r = fadd(r, 0x8000)                   # -0 + x = x (canonical NaN, keeps -0/+0)
        if ins.dst == Opd.BANK:
            banks[bank][col] = r
        else:
            self.grf[Opd(ins.dst)][self._index(ins, ins.dst_idx, col)] = r


#: Reference models: the golden one and deliberately broken ones.
MUTANTS = {"golden": PcuModel, "mac_single_rounding": _SingleRoundingMac}


def _row_int(arr: np.ndarray) -> int:
    return sum(lanes_to_column(arr[c]) << (256 * c) for c in range(COLUMNS))


def _row_arr(value: int) -> np.ndarray:
    return np.array([column_to_lanes((value >> (256 * c)) & ((1 << 256) - 1))
                     for c in range(COLUMNS)], dtype=np.int64)


class _Bank:
    """The bench's DRAM array of one bank: rows of (32, 16) fp16 encodings."""

    def __init__(self):
        self.rows: dict[int, np.ndarray] = {}
        self.open: int | None = None

    def row(self, r: int) -> np.ndarray:
        return self.rows.setdefault(r, np.zeros((COLUMNS, LANES), np.int64))


class _View:
    """A head's columns inside a bank array (``view[col]`` = column ``base * 32 + col``)."""

    def __init__(self, bank: _Bank, base_row: int):
        self.bank, self.base = bank, base_row

    def __getitem__(self, c):
        return self.bank.row(self.base + c // COLUMNS)[c % COLUMNS]

    def __setitem__(self, c, value):
        self.bank.row(self.base + c // COLUMNS)[c % COLUMNS] = value


class PcuBench:
    """Controller, monitor and scoreboard of one PCU (see the module docstring).

    Parameters
    ----------
    io : object with ``async cycle(...) -> Sample``
    unit : HbmPimPcu
    rng : random.Random
    vectors : int
        Data columns to check per mode (whole heads; at least one head per bank and mode).
    gap_prob : float
        Probability of idle cycles before a command (not in the timed heads).
    modes : tuple of str
    mutant : str, optional
        A key of :data:`MUTANTS` instead of the golden model.
    """

    def __init__(self, io, *, unit, rng: random.Random, vectors: int, gap_prob: float = 0.2,
                 log: logging.Logger | None = None, mutant: str | None = None,
                 modes: tuple[str, ...] = hp.MODES, random_programs: int | None = None):
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError(f"unknown mutant {mutant!r}; expected one of {sorted(MUTANTS)}")
        self.io, self.unit, self.rng = io, unit, rng
        self.banks = unit.banks
        self.vectors_per_mode = vectors
        self.gap_prob = gap_prob
        self.modes = modes
        #: random whole-ISA programs after the modes (default: one per 32 vectors, >= 2)
        self.random_programs = (max(2, vectors // 32) if random_programs is None
                                else random_programs)
        self.log = log or _log
        self.model = MUTANTS[mutant or "golden"]()
        self.gen = np.random.default_rng(rng.getrandbits(32))
        self.dram = [_Bank() for _ in range(self.banks)]
        self.golden = [_Bank() for _ in range(self.banks)]
        self.cycle = 0
        self.mismatches: list[str] = []
        self.collisions = 0
        self._expect = None             # (rd, wr) bits expected in the cycle being driven
        self._pending_read = None       # expected o_rdata of the REG_READ of the last cycle

    def fail(self, msg: str) -> None:
        if len(self.mismatches) < 20:
            self.log.error("cycle %d: %s", self.cycle, msg)
        self.mismatches.append(f"cycle {self.cycle}: {msg}")

    # -- one cycle ------------------------------------------------------------------------
    async def step(self, cmd=CMD_NOP, addr=None, data=None, act=0, rows=None,
                   read_rows=False, expect=(0, 0)) -> Sample:
        if addr is None:
            addr = self.rng.getrandbits(8) if cmd == CMD_NOP else 0
        if data is None:
            data = self.rng.getrandbits(256)
        s = await self.io.cycle(cmd, addr, data, act, rows, read_rows)
        if s.collision:
            self.collisions += 1
            self.fail(f"bank read and written in one cycle (collision {s.collision:#x})")
        if s.error:
            self.fail("o_error set")
        if (s.rd, s.wr) != expect:
            self.fail(f"bank accesses rd={s.rd:#x} wr={s.wr:#x}, expected "
                      f"rd={expect[0]:#x} wr={expect[1]:#x}")
        if self._pending_read is not None:
            want, what = self._pending_read
            self._pending_read = None
            if not s.rvalid:
                self.fail(f"{what}: o_rvalid low")
            elif s.rdata != want:
                self.fail(f"{what}: {column_to_lanes(s.rdata).tolist()}, expected "
                          f"{column_to_lanes(want).tolist()}")
        self.cycle += 1
        return s

    async def _idle(self, prob: float) -> None:
        while self.rng.random() < prob:
            await self.step()

    async def _open(self, b: int, row: int) -> None:
        bank = self.dram[b]
        if bank.open == row:
            return
        if bank.open is not None:
            s = await self.step(read_rows=True)
            bank.rows[bank.open] = _row_arr(s.rows[b])
        rows = [_row_int(self.dram[x].row(row if x == b else 0)) for x in range(self.banks)]
        await self.step(act=1 << b, rows=rows)
        bank.open = row

    async def _close_all(self) -> None:
        s = await self.step(read_rows=True)
        for b, bank in enumerate(self.dram):
            if bank.open is not None:
                bank.rows[bank.open] = _row_arr(s.rows[b])
                bank.open = None

    # -- heads ------------------------------------------------------------------------------
    def _shape(self, mode: str) -> dict:
        """Random head shape whose plan has at most ``max(vectors, 16)`` data columns."""
        cap = max(self.vectors_per_mode, 16)
        for _ in range(1000):
            arrays = self._draw(mode)
            job_plan = build_head(mode, **arrays).plan
            if job_plan.data_columns <= cap:
                self._last_shape = arrays
                return arrays
        raise AssertionError(f"no {mode} head shape within {cap} columns")

    def _draw(self, mode: str) -> dict:
        g = self.gen
        if mode == "state_update":
            dh = int(g.choice([1, 2, 4, 8, 16]))
            ds = 16 * int(g.integers(1, 17))
            return dict(S=random_fp16(g, (dh, ds)), d=random_fp16(g, dh, decay=True),
                        k=random_fp16(g, dh), q=random_fp16(g, dh), v=random_fp16(g, ds))
        if mode == "score":
            dh = int(g.choice([8, 16, 32, 64]))
            t = int(g.integers(1, 200))
            return dict(K=random_fp16(g, (t, dh)), q=random_fp16(g, dh))
        dh = 16 * int(g.integers(1, 11))
        t = int(g.integers(1, 40))
        return dict(V=random_fp16(g, (t, dh)), p=random_fp16(g, t, decay=True))

    async def _head(self, mode: str, b: int, timed: bool, counts: dict) -> dict | None:
        job = build_head(mode, **self._shape(mode))
        counts["shapes"].append({k: list(v.shape) for k, v in self._last_shape.items()})
        base_row = int(self.gen.integers(0, 64)) * 64
        view, gview = _View(self.dram[b], base_row), _View(self.golden[b], base_row)
        for c in range(len(job.columns)):
            view[c] = job.columns[c]
            gview[c] = job.columns[c]
        gap = 0.0 if timed else self.gap_prob
        gbanks = {b: gview}
        last_col = None
        probe = None
        rows_used = set()
        cmds = job.commands
        for n, cmd in enumerate(cmds):
            await self._idle(gap)
            if cmd[0] == WRITE:
                _, space, idx, word = cmd
                self.model.reg_write(space, idx, word)
                await self.step(CMD_REG_WRITE, hp.reg_addr(space, idx), word)
                counts["reg_write_columns"] += 1
            elif cmd[0] == COLUMN:
                _, c, _ = cmd
                row = base_row + c // COLUMNS
                rows_used.add(row)
                await self._open(b, row)
                ins = self.model.column(b, c, gbanks)
                reads = Opd.BANK in (ins.src0, ins.src1, ins.src2) and ins.op != Op.NOP
                writes = ins.dst == Opd.BANK and ins.op != Op.NOP
                await self.step(CMD_COLUMN, ((c % COLUMNS) << 1) | b, None,
                                expect=(int(reads) << b, int(writes) << b))
                counts["compute_commands"] += 1
                counts["data_columns"] += int(reads)
                counts["bank_writes"] += int(writes)
                last_col = (self.cycle - 1, c)
            else:
                _, space, idx = cmd
                if timed and probe is None:
                    j = n
                    while j + 1 < len(cmds) and cmds[j + 1][0] == READ:
                        j += 1
                    probe = await self._probe(b, cmds[j][1], cmds[j][2], last_col, gview)
                want = lanes_to_column(self.model.reg_read(space, idx))
                await self.step(CMD_REG_READ, hp.reg_addr(space, idx), None)
                self._pending_read = (want, f"{mode} bank {b} GRF_B[{idx}] read")
                counts["result_read_columns"] += 1
        await self.step()                                   # the last read's data
        if not self.model.done:
            self.fail(f"{mode}: the golden program did not reach EXIT")
        await self._close_all()
        counts["rows"] += len(rows_used)
        checked = 0
        for c in range(len(job.columns)):
            got, want = view[c], gview[c]
            if not np.array_equal(got, want):
                self.fail(f"{mode} bank {b} column {c}: {got.tolist()}, expected "
                          f"{want.tolist()}")
            checked += 1
        counts["vectors"] += checked
        pl = job.plan
        for key in ("compute_commands", "data_columns", "bank_writes", "reg_write_columns",
                    "result_read_columns", "rows"):
            counts["plan_" + key] += getattr(pl, key)
        return probe

    async def _probe(self, b, space, idx, last_col, gview) -> int:
        """Cycles after the last column command until the accumulator read is final and the
        row buffer holds the last column (extra reads, not counted)."""
        t_last, c = last_col
        want = lanes_to_column(self.model.reg_read(space, idx))
        for _ in range(_PROBE_MAX):
            t = self.cycle
            s = await self.step(CMD_REG_READ, hp.reg_addr(space, idx), None, read_rows=True)
            row_ok = np.array_equal(_row_arr(s.rows[b])[c % COLUMNS], gview[c])
            s2 = await self.step(read_rows=False)
            if s2.rvalid and s2.rdata == want and row_ok:
                return t - t_last
        self.fail(f"accumulator not final {_PROBE_MAX} cycles after the last command")
        return -1

    def _random_program(self) -> list:
        """A random valid program over the whole ISA (at most one JUMP, small counts)."""
        g = self.gen
        ops = list(hp.OPERAND_RULES) + [Op.NOP]
        while True:
            body = []
            for _ in range(int(g.integers(1, 10))):
                op = ops[int(g.integers(len(ops)))]
                if op == Op.NOP:
                    body.append(hp.Instruction(Op.NOP, count=int(g.integers(0, 3))))
                    continue
                kinds = []
                for allowed in hp.OPERAND_RULES[op]:
                    kinds.append(allowed[int(g.integers(len(allowed)))])
                aam = op != Op.MAD and g.random() < 0.3
                idx = [int(g.integers(8)) for _ in range(4)]
                body.append(hp.Instruction(
                    op, kinds[0], idx[0], kinds[1], idx[1], kinds[2], idx[2],
                    hp.Opd.NONE if aam else kinds[3], 0 if aam else idx[3], aam=aam,
                    count=int(g.choice(hp.AAM_REPEATS)) if aam else 0))
            prog = list(body)
            if g.random() < 0.6:
                prog.append(hp.Instruction(Op.JUMP, target=int(g.integers(len(body))),
                                           count=int(g.integers(0, 3))))
            prog.append(hp.Instruction(Op.EXIT))
            try:
                return hp.validate_program(prog)
            except ValueError:
                continue

    async def _random_run(self, counts: dict) -> None:
        g = self.gen
        prog = self._random_program()
        words = hp.program_words(prog)
        rows = [int(g.integers(0, 4096)) for _ in range(self.banks)]
        for b in range(self.banks):
            self.dram[b].rows[rows[b]] = random_fp16(g, (COLUMNS, LANES))
            self.golden[b].rows[rows[b]] = self.dram[b].rows[rows[b]].copy()
            await self._open(b, rows[b])
        gbanks = {b: self.golden[b].row(rows[b]) for b in range(self.banks)}
        writes = [(Space.CRF, c, sum(words[8 * c + j] << (32 * j) for j in range(8)))
                  for c in range(hp.CRF_COLUMNS)]
        writes += [(sp, i, lanes_to_column(random_fp16(g, LANES)))
                   for sp in (Space.GRF_A, Space.GRF_B) for i in range(hp.GRF_ENTRIES)]
        writes.append((Space.SRF, 0, lanes_to_column(random_fp16(g, LANES))))
        self.rng.shuffle(writes)
        writes.append((Space.CTRL, 0, 0))
        for space, idx, word in writes:
            await self._idle(self.gap_prob)
            self.model.reg_write(space, idx, word)
            await self.step(CMD_REG_WRITE, hp.reg_addr(space, idx), word)
        n = 0
        while not self.model.done:
            await self._idle(self.gap_prob)
            if self.rng.random() < 0.05:                   # an SRF/GRF write in between
                space = (Space.SRF, Space.GRF_A, Space.GRF_B)[self.rng.randrange(3)]
                idx = 0 if space == Space.SRF else self.rng.randrange(hp.GRF_ENTRIES)
                word = lanes_to_column(random_fp16(g, LANES))
                self.model.reg_write(space, idx, word)
                await self.step(CMD_REG_WRITE, hp.reg_addr(space, idx), word)
            b, c = self.rng.randrange(self.banks), self.rng.randrange(COLUMNS)
            ins = self.model.column(b, c, gbanks)
            busy = ins.op != Op.NOP
            reads = busy and Opd.BANK in (ins.src0, ins.src1, ins.src2)
            writes_bank = busy and ins.dst == Opd.BANK
            await self.step(CMD_COLUMN, (c << 1) | b, None,
                            expect=(int(reads) << b, int(writes_bank) << b))
            n += 1
            if n > 4096:
                self.fail("random program did not reach EXIT")
                return
        for sp in (Space.GRF_A, Space.GRF_B):
            for i in range(hp.GRF_ENTRIES):
                want = lanes_to_column(self.model.reg_read(sp, i))
                await self.step(CMD_REG_READ, hp.reg_addr(sp, i), None)
                self._pending_read = (want, f"random program {sp.name}[{i}] read")
                counts["registers"] += 1
        await self.step()
        await self._close_all()
        for b in range(self.banks):
            got, want = self.dram[b].rows[rows[b]], self.golden[b].rows[rows[b]]
            for c in np.nonzero((got != want).any(axis=1))[0]:
                self.fail(f"random program bank {b} column {c}: {got[c].tolist()}, "
                          f"expected {want[c].tolist()}")
        counts["programs"] += 1
        counts["commands"] += n
        counts["vectors"] += n

    async def run(self) -> dict:
        t0 = time.perf_counter()
        per_mode = {}
        total_vectors = 0
        for mode in self.modes:
            counts = {k: 0 for k in (
                "compute_commands", "data_columns", "bank_writes", "reg_write_columns",
                "result_read_columns", "rows", "vectors")}
            counts["shapes"] = []
            counts.update({"plan_" + k: 0 for k in (
                "compute_commands", "data_columns", "bank_writes", "reg_write_columns",
                "result_read_columns", "rows")})
            depth = None
            heads = 0
            while heads < self.banks or counts["vectors"] < self.vectors_per_mode:
                b = heads % self.banks
                d = await self._head(mode, b, timed=(heads == 0), counts=counts)
                depth = d if depth is None else depth
                heads += 1
            for key in ("compute_commands", "data_columns", "bank_writes",
                        "reg_write_columns", "result_read_columns", "rows"):
                if counts[key] != counts["plan_" + key]:
                    self.fail(f"{mode}: {key} issued {counts[key]}, plan "
                              f"{counts['plan_' + key]}")
            cpc = counts["compute_commands"] / max(counts["data_columns"], 1)
            if cpc != hp.commands_per_column(mode):
                self.fail(f"{mode}: {cpc} commands per column, programs say "
                          f"{hp.commands_per_column(mode)}")
            per_mode[mode] = {
                "commands_per_column": int(cpc) if cpc == int(cpc) else cpc,
                "pipeline_depth": depth, "vectors_checked": counts["vectors"],
                "heads": heads, "shapes": counts["shapes"], **{k: counts[k] for k in (
                    "compute_commands", "data_columns", "bank_writes", "reg_write_columns",
                    "result_read_columns", "rows")}}
            total_vectors += counts["vectors"]
        if self.random_programs:
            counts = {"programs": 0, "commands": 0, "registers": 0, "vectors": 0}
            for _ in range(self.random_programs):
                await self._random_run(counts)
            per_mode["random_programs"] = counts
            total_vectors += counts["vectors"]
        wall = time.perf_counter() - t0
        return {"vectors": total_vectors, "mismatches": len(self.mismatches),
                "collisions": self.collisions, "cycles": self.cycle, "wall_s": wall,
                "cycles_per_s": round(self.cycle / max(wall, 1e-9)), "modes": per_mode}


def replay_bench(io, meta: dict, mutant: str | None, log: logging.Logger) -> PcuBench:
    """The bench of a recorded run (:func:`cosim.replay.check_mutant`)."""
    from .replay import load_unit

    unit = load_unit(meta["unit"]).unit
    return PcuBench(io, unit=unit, rng=random.Random(meta["seed"]), vectors=meta["vectors"],
                 gap_prob=meta["idle"], log=log, mutant=mutant)
