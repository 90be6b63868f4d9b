"""Golden model of the HBM-PIM Programmable Computing Unit (``hw/hbmpim_pcu.py``).

:class:`PcuModel` executes the CRF program one instruction per column command on bank
columns, with the PCU's fp16 semantics: 16 lanes, every multiply and every add rounded to
fp16 (round to nearest even, :func:`quant.fparith.ref_mul` / :func:`~quant.fparith.ref_add`,
canonical NaN 0x7E00), so ``MAC`` and ``MAD`` round twice (docs/baselines.md "Rounding").
The ISA, the encoding and the programs are :mod:`quant.hbmpim_programs`.

The closed-form references :func:`state_update_ref`, :func:`score_ref` and :func:`attend_ref`
give the same results from the formulas (operation order of the programs), independently of
the machine; the tests check the two against each other.
"""

from __future__ import annotations

import numpy as np

from .fparith import ref_add, ref_mul
from .hbmpim_programs import (CRF_ENTRIES, CRF_WORDS_PER_COLUMN, GRF_ENTRIES, LANES,
                              SRF_ENTRIES, Instruction, Op, Opd, Space, decode,
                              instruction_commands, validate_program)

__all__ = ["PcuModel", "column_to_lanes", "lanes_to_column", "state_update_ref", "HeadJob",
           "build_head", "run_head", "WRITE", "COLUMN", "READ",
           "score_ref", "attend_ref", "fmul", "fadd"]


def _pair(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, np.int64) & 0xFFFF,
                               np.asarray(b, np.int64) & 0xFFFF)
    return np.array(a, ndmin=1), np.array(b, ndmin=1)


def fmul(a, b) -> np.ndarray:
    """fp16 product of encodings, rounded (RNE)."""
    return ref_mul(*_pair(a, b), "fp16").astype(np.int64)


def fadd(a, b) -> np.ndarray:
    """fp16 sum of encodings, rounded (RNE)."""
    return ref_add(*_pair(a, b), "fp16").astype(np.int64)


def column_to_lanes(word: int) -> np.ndarray:
    """A 256-bit column as 16 fp16 encodings (lane ``i`` in bits ``[16 i, 16 i + 16)``)."""
    return np.array([(int(word) >> (16 * i)) & 0xFFFF for i in range(LANES)], dtype=np.int64)


def lanes_to_column(lanes) -> int:
    """16 fp16 encodings as a 256-bit column."""
    return sum((int(v) & 0xFFFF) << (16 * i) for i, v in enumerate(lanes))


class PcuModel:
    """One PCU and the register files it holds; the banks are passed to :meth:`column`.

    Host side: :meth:`reg_write` (``Space`` CRF/GRF_A/GRF_B/SRF/CTRL, as the RTL's
    REG_WRITE), :meth:`reg_read` (GRF_A/GRF_B). PIM side: :meth:`column` executes the
    instruction at the PC for a column command on ``(bank, col)``.
    """

    def __init__(self):
        self.crf = [0] * CRF_ENTRIES
        self.grf = {Opd.GRF_A: np.zeros((GRF_ENTRIES, LANES), np.int64),
                    Opd.GRF_B: np.zeros((GRF_ENTRIES, LANES), np.int64)}
        self.srf = np.zeros(2 * SRF_ENTRIES, np.int64)
        self.pc = 0
        self.rep = 0
        self.loop_active = False
        self.loop_left = 0
        self.running = False

    # -- host ---------------------------------------------------------------------------
    def reg_write(self, space: Space, index: int, data) -> None:
        """Write a 256-bit column (int or 16 lanes) into a register space."""
        word = data if isinstance(data, int) else lanes_to_column(data)
        space = Space(space)
        if space is Space.CRF:
            for w in range(CRF_WORDS_PER_COLUMN):
                self.crf[CRF_WORDS_PER_COLUMN * index + w] = (word >> (32 * w)) & 0xFFFFFFFF
        elif space in (Space.GRF_A, Space.GRF_B):
            kind = Opd.GRF_A if space is Space.GRF_A else Opd.GRF_B
            self.grf[kind][index] = column_to_lanes(word)
        elif space is Space.SRF:
            self.srf[:] = column_to_lanes(word)
        else:
            self.start()

    def reg_read(self, space: Space, index: int) -> np.ndarray:
        """A GRF entry (16 lanes)."""
        kind = {Space.GRF_A: Opd.GRF_A, Space.GRF_B: Opd.GRF_B}.get(Space(space))
        if kind is None:
            raise ValueError(f"only GRF_A and GRF_B can be read, not {Space(space).name}")
        return self.grf[kind][index].copy()

    def program(self) -> list[Instruction]:
        """The CRF contents up to the first EXIT, validated (one-line ValueError)."""
        words = []
        for w in self.crf:
            words.append(w)
            if (w >> 28) == Op.EXIT:
                break
        return validate_program(words)

    def start(self) -> None:
        """CTRL write: validate the CRF program and start it at instruction 0."""
        self.program()
        self.pc, self.rep, self.loop_active, self.loop_left = 0, 0, False, 0
        self.running = True
        self._settle()

    @property
    def done(self) -> bool:
        """The program reached EXIT."""
        return not self.running

    # -- PIM ----------------------------------------------------------------------------
    def current(self) -> Instruction:
        return decode(self.crf[self.pc])

    def column(self, bank: int, col: int, banks) -> Instruction:
        """Execute the instruction at the PC for a column command on ``(bank, col)``.

        ``banks[bank][col]`` is the column (16 lanes, modified in place by a bank write).
        Returns the instruction executed.
        """
        if not self.running:
            raise RuntimeError("column command while no program runs (not started or EXIT)")
        ins = self.current()
        n = instruction_commands(ins)
        if ins.op != Op.NOP:
            self._execute(ins, bank, col, banks)
        if self.rep + 1 < n:
            self.rep += 1
        else:
            self.rep = 0
            self.pc += 1
            self._settle()
        return ins

    def _settle(self) -> None:
        """Resolve JUMP (zero-cycle) and EXIT at the PC."""
        ins = decode(self.crf[self.pc])
        if ins.op == Op.JUMP:
            if not self.loop_active:
                self.loop_active, self.loop_left = True, ins.count
            if self.loop_left:
                self.loop_left -= 1
                self.pc = ins.target
            else:
                self.loop_active = False
                self.pc += 1
            ins = decode(self.crf[self.pc])
        if ins.op == Op.EXIT:
            self.running = False

    def _index(self, ins: Instruction, idx: int, col: int) -> int:
        return col & (ins.count - 1) if ins.aam else idx

    def _read(self, ins, kind, idx, bank, col, banks) -> np.ndarray:
        kind = Opd(kind)
        if kind is Opd.BANK:
            return np.asarray(banks[bank][col], np.int64).copy()
        if kind in (Opd.GRF_A, Opd.GRF_B):
            return self.grf[kind][self._index(ins, idx, col)].copy()
        if kind is Opd.SRF_M:
            return np.full(LANES, self.srf[idx], np.int64)
        if kind is Opd.SRF_A:
            return np.full(LANES, self.srf[SRF_ENTRIES + idx], np.int64)
        raise AssertionError(kind)

    def _execute(self, ins: Instruction, bank: int, col: int, banks) -> None:
        op = Op(ins.op)

        def rd(kind, idx):
            return self._read(ins, kind, idx, bank, col, banks)
        s0 = rd(ins.src0, ins.src0_idx)
        if op is Op.ADD:
            r = fadd(s0, rd(ins.src1, ins.src1_idx))
        elif op is Op.MUL:
            r = fmul(s0, rd(ins.src1, ins.src1_idx))
        elif op is Op.MAC:
            r = fadd(fmul(s0, rd(ins.src1, ins.src1_idx)), rd(ins.dst, ins.dst_idx))
        elif op is Op.MAD:
            r = fadd(fmul(s0, rd(ins.src1, ins.src1_idx)), rd(ins.src2, ins.src2_idx))
        else:                                   # MOV, FILL
            r = s0
        if ins.dst == Opd.BANK:
            banks[bank][col] = r
        else:
            self.grf[Opd(ins.dst)][self._index(ins, ins.dst_idx, col)] = r


# -- closed-form references (the programs' operation order) --------------------------------

def state_update_ref(S, d, k, v, q):
    """``S'[i, j] = fp16(fp16(d_i S[i, j]) + fp16(v_j k_i))``; ``y_j`` = sequential fp16 sum
    over ``i = 0, 1, ...`` of ``fp16(S'[i, j] q_i)``, starting from +0.

    ``S``: (dim_head, dim_state) encodings; ``d, k, q``: (dim_head,); ``v``: (dim_state,).
    """
    S = np.asarray(S, np.int64)
    d, k, q = (np.asarray(x, np.int64)[:, None] for x in (d, k, q))
    v = np.asarray(v, np.int64)[None, :]
    s_new = fadd(fmul(S, d), fmul(v, k))
    y = np.zeros(S.shape[1], np.int64)
    for i in range(S.shape[0]):
        y = fadd(fmul(s_new[i], q[i]), y)
    return s_new, y


def score_ref(K, q):
    """``s_t`` = sequential fp16 sum over ``i`` of ``fp16(K[t, i] q_i)`` from +0;
    ``K``: (tokens, dim_head)."""
    K = np.asarray(K, np.int64)
    s = np.zeros(K.shape[0], np.int64)
    for i in range(K.shape[1]):
        s = fadd(fmul(K[:, i], np.int64(q[i])), s)
    return s


def attend_ref(V, p):
    """``o_j`` = sequential fp16 sum over ``t`` of ``fp16(V[t, j] p_t)`` from +0;
    ``V``: (tokens, dim_head)."""
    V = np.asarray(V, np.int64)
    o = np.zeros(V.shape[1], np.int64)
    for t in range(V.shape[0]):
        o = fadd(fmul(V[t], np.int64(p[t])), o)
    return o


# -- the command stream of a head -------------------------------------------------------------

#: Host command kinds of :class:`HeadJob.commands`.
WRITE, COLUMN, READ = "W", "C", "R"


class HeadJob:
    """The bank layout and the host command stream of one head (:func:`build_head`).

    ``columns``: (data_columns, 16) fp16 encodings, the head's columns from column 0 of its
    bank on (column ``c`` = row ``c // 32``, column ``c % 32``). ``commands``: tuples
    ``(WRITE, space, index, word)``, ``(COLUMN, col, is_write)`` and ``(READ, space, index)``
    in issue order. ``outputs``: per READ, the slice of the result vector it holds
    (``y`` / scores / ``o`` in lanes).
    """

    def __init__(self, mode, columns, commands, outputs, plan):
        self.mode = mode
        self.columns = columns
        self.commands = commands
        self.outputs = outputs
        self.plan = plan


def build_head(mode: str, **arrays) -> HeadJob:
    """Lay out one head and build its commands, following :func:`quant.hbmpim_programs.plan`.

    state_update: ``S`` (dim_head, dim_state), ``d, k, q`` (dim_head,), ``v`` (dim_state,);
    score: ``K`` (tokens, dim_head), ``q`` (dim_head,); attend: ``V`` (tokens, dim_head),
    ``p`` (tokens,). All fp16 encodings.
    """
    from . import hbmpim_programs as hp
    a = {k: np.asarray(v, np.int64) & 0xFFFF for k, v in arrays.items()}
    if mode == "state_update":
        dim_head, length = a["S"].shape
    elif mode == "score":
        length, dim_head = a["K"].shape
    elif mode == "attend":
        length, dim_head = a["V"].shape
    else:
        raise ValueError(f"mode must be one of {hp.MODES}, not {mode!r}")
    pl = hp.plan(mode, dim_head, length)
    cols = np.zeros((pl.data_columns, LANES), np.int64)
    cmds: list = []
    outs: list = []
    base = 0
    blk0 = 0
    for pp in pl.pass_plans:
        prog = hp.program(mode, pp.blocks, pp.iterations)
        words = hp.program_words(prog)
        for c in range(hp.crf_columns_of(prog)):
            w = sum(words[8 * c + j] << (32 * j) for j in range(8))
            cmds.append((WRITE, Space.CRF, c, w))
        n = pp.padded_blocks
        if mode == "state_update":
            for b in range(pp.blocks):
                vb = a["v"][16 * (blk0 + b):16 * (blk0 + b + 1)]
                cmds.append((WRITE, Space.GRF_A, b, lanes_to_column(vb)))
        for b in range(n):
            cmds.append((WRITE, Space.GRF_B, b, 0))
        cmds.append((WRITE, Space.CTRL, 0, 0))
        if mode == "state_update":
            body = _row_commands(hp.loop_body(prog), n)
            for i in range(dim_head):
                srf = [a["d"][i], a["k"][i], a["q"][i]] + [0] * 13
                cmds.append((WRITE, Space.SRF, 0, lanes_to_column(srf)))
                for b in range(pp.blocks):
                    cols[base + i * n + b] = a["S"][i, 16 * (blk0 + b):16 * (blk0 + b + 1)]
                cmds += [(COLUMN, base + i * n + b, w) for b, w in body]
        else:
            scal = a["q"] if mode == "score" else a["p"]
            for g in range(pp.padded_iterations // SRF_ENTRIES):
                sl = [int(scal[x]) if x < len(scal) else 0
                      for x in range(SRF_ENTRIES * g, SRF_ENTRIES * (g + 1))]
                cmds.append((WRITE, Space.SRF, 0, lanes_to_column(sl + [0] * SRF_ENTRIES)))
                for s in range(SRF_ENTRIES):
                    it = SRF_ENTRIES * g + s
                    for b in range(n):
                        c = base + it * n + b
                        if it < pp.iterations and b < pp.blocks:
                            lo = 16 * (blk0 + b)
                            if mode == "score":
                                seg = a["K"][lo:lo + 16, it]
                            else:
                                seg = a["V"][it, lo:lo + 16]
                            cols[c, :len(seg)] = seg
                        cmds.append((COLUMN, c, False))
        for b in range(pp.blocks):
            cmds.append((READ, Space.GRF_B, b))
            outs.append(slice(16 * (blk0 + b), 16 * (blk0 + b + 1)))
        base += n * pp.padded_iterations
        blk0 += pp.blocks
    return HeadJob(mode, cols, cmds, outs, pl)


def _row_commands(body, blocks: int) -> list[tuple[int, bool]]:
    """``(block, bank write)`` of every column command of one pass of a state-update loop
    body over ``blocks`` columns: the k-th bank read (write) of the body goes to block
    ``k mod blocks``; a command that touches no bank column goes to the column of the command
    before it (it stays in the open row)."""
    out: list[tuple[int, bool]] = []
    reads = writes = 0
    for ins in body:
        for _ in range(instruction_commands(ins)):
            if ins.op != Op.NOP and ins.dst == Opd.BANK:
                out.append((writes % blocks, True))
                writes += 1
            elif ins.op != Op.NOP and Opd.BANK in (ins.src0, ins.src1, ins.src2):
                out.append((reads % blocks, False))
                reads += 1
            else:
                out.append((out[-1][0] if out else 0, False))
    if reads != blocks or writes not in (0, blocks):
        raise AssertionError(f"loop body reads {reads} and writes {writes} columns, "
                             f"not {blocks}")
    return out


def run_head(job: HeadJob, model: PcuModel | None = None):
    """Execute ``job`` on the golden model; return ``(columns after, results)`` where
    ``results`` is the list of 16-lane GRF_B reads in order."""
    model = model or PcuModel()
    banks = [job.columns.copy()]
    reads = []
    for cmd in job.commands:
        if cmd[0] == WRITE:
            model.reg_write(cmd[1], cmd[2], cmd[3])
        elif cmd[0] == COLUMN:
            ins = model.column(0, cmd[1], banks)
            if (ins.dst == Opd.BANK) != cmd[2]:
                raise RuntimeError(f"command {cmd} does not match instruction {ins}")
        else:
            reads.append(model.reg_read(cmd[1], cmd[2]))
    if not model.done:
        raise RuntimeError("the program did not reach EXIT at the end of the head")
    return banks[0], reads
