"""HBM-PIM (Samsung Aquabolt-XL) Programmable Computing Unit: ISA, programs, data layout and
command plan -- the one definition used by the RTL (``hw/hbmpim_pcu.py``), the golden model
(:mod:`quant.hbmpim_pcu`), the co-simulation bench (``cosim/hbmpim_pcu_bench.py``) and the
system model. Standard library only (no torch).

Sources (docs/baselines.md has the details):

* Lee et al., "Hardware Architecture and Software Stack for PIM Based on Commercial DRAM
  Technology", ISCA 2021: one PCU per bank pair, 16 fp16 lanes, CRF of 32 32-bit
  instructions, GRF_A / GRF_B of 8 x 256 bits, SRF_M / SRF_A of 8 fp16 scalars; every
  column command (RD/WR) in all-bank PIM mode executes one CRF instruction; JUMP is a
  zero-cycle static loop.
* SAITPublic/PIMSimulator (``src/PIMCmd.h``, ``src/PIMRank.cpp``, ``src/PIMBlock.cpp``,
  ``src/tests/PIMCmdGen.h``, README "PIM Instruction-Set Architecture"): opcode numbers (NOP 0,
  ADD 1, MUL 2, MAC 3, MAD 4, MOV 8, FILL 9, JUMP 14, EXIT 15), MAC accumulates into GRF_B,
  the SRF is one 256-bit register whose lanes 0-7 are SRF_M and 8-15 SRF_A (one host write
  loads all 16 scalars), AAM (address-aligned mode) takes the GRF index from the column
  address and repeats the instruction over consecutive column commands, and the GEMV kernel is
  ``MAC(AAM) GRF_B += GRF_A * BANK`` plus ``JUMP``.

Encoding (ours; the field *meanings* follow PIMSimulator, the bit positions are our choice)::

    [31:28] opcode   [27:25] dst kind  [24:22] dst idx   [21:19] src0 kind [18:16] src0 idx
    [15:13] src1 kind [12:10] src1 idx [9:7] src2 kind   [6:4] src2 idx    [3] aam  [2:0] 0
    JUMP:   [27:23] target  [22:7] count   (taken ``count`` times, back to ``target``)
    NOP:    [22:7] count   (occupies ``count + 1`` column commands)
    AAM:    [22:7] is not used; the repeat count ``n`` is in ``count`` of the record and
            encoded in [6:4] as log2(n) (src2 is unused by AAM instructions)

Operand kinds: NONE 0, BANK 1 (the column of the command's bank), GRF_A 2, GRF_B 3, SRF_M 4,
SRF_A 5 (6, 7 invalid). With AAM the index of every GRF operand is ``col & (n - 1)``
(``col`` = the command's column address) and the instruction executes on ``n`` consecutive
column commands (``n`` in 1, 2, 4, 8; PIMSimulator always repeats 8 times: a partial pass of
fewer blocks would then waste commands on padding).

Arithmetic: every multiply and every add is rounded to fp16 (round to nearest even): MAC and
MAD round twice (docs/baselines.md "Rounding": PIMSimulator computes ``src0 * src1 + dst``
with ``half_float::half`` of half 2.1.0, whose ``operator*`` and ``operator+`` each return a
correctly rounded half).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from functools import lru_cache

from .constants import COLUMN_BITS, COLUMNS, FP16_LANES, MODES

__all__ = [
    "LANES", "CRF_ENTRIES", "GRF_ENTRIES", "SRF_ENTRIES", "INSTR_BITS", "COLUMNS_PER_ROW",
    "CRF_WORDS_PER_COLUMN", "CRF_COLUMNS", "AAM_REPEATS", "COUNT_MAX", "SU_MAX_BLOCKS",
    "SU_TEMP_BASE", "loop_body",
    "Op", "Opd", "Space", "Instruction", "encode", "decode", "validate_program",
    "program_words", "crf_columns_of", "reg_addr", "SRF_D", "SRF_K", "SRF_Q",
    "state_update_program", "scalar_mac_program", "program", "PROGRAMS", "MODES",
    "Plan", "PassPlan", "passes", "plan", "commands_per_column", "instruction_commands",
    "executed_commands", "OPERAND_RULES",
]

#: fp16 lanes = fp16 values per 32-byte (256-bit) column.
LANES = FP16_LANES
#: Command register file entries (32-bit instructions).
CRF_ENTRIES = 32
#: Entries of GRF_A and of GRF_B (256 bits each).
GRF_ENTRIES = 8
#: Entries of SRF_M and of SRF_A (one fp16 scalar each).
SRF_ENTRIES = 8
#: Bits per instruction.
INSTR_BITS = 32
#: Columns (32 bytes) per 1 KB DRAM row.
COLUMNS_PER_ROW = COLUMNS
#: Instructions per 256-bit host write of the CRF.
CRF_WORDS_PER_COLUMN = COLUMN_BITS // INSTR_BITS
#: Host writes that load the whole CRF.
CRF_COLUMNS = CRF_ENTRIES // CRF_WORDS_PER_COLUMN
#: Allowed AAM repeat counts (the GRF index is ``col & (n - 1)``).
AAM_REPEATS = (1, 2, 4, 8)
#: Largest JUMP / NOP count (16-bit field).
COUNT_MAX = (1 << 16) - 1
#: State update: column blocks one pass covers = columns per run of bank reads / writes
#: (GRF_B holds their y accumulators and, from :data:`SU_TEMP_BASE` on, their updated columns,
#: which MAC can only write into GRF_B; docs/baselines.md "State update").
SU_MAX_BLOCKS = GRF_ENTRIES // 2
#: GRF_B entry of the updated column of block 0 (block ``b``: ``SU_TEMP_BASE + b``).
SU_TEMP_BASE = SU_MAX_BLOCKS
#: SRF_M entries of the state update's per-row scalars.
SRF_D, SRF_K, SRF_Q = 0, 1, 2


class Op(enum.IntEnum):
    """Opcodes (PIMSimulator's ``PIMCmdType`` numbers)."""
    NOP = 0
    ADD = 1
    MUL = 2
    MAC = 3
    MAD = 4
    MOV = 8
    FILL = 9
    JUMP = 14
    EXIT = 15


class Opd(enum.IntEnum):
    """Operand kinds."""
    NONE = 0
    BANK = 1
    GRF_A = 2
    GRF_B = 3
    SRF_M = 4
    SRF_A = 5


class Space(enum.IntEnum):
    """Host-visible register spaces (``reg_addr(space, index)``)."""
    CRF = 0      # index 0..3: instructions 8*index .. 8*index+7 (instruction 8*index+w in
    #              bits [32w, 32w+32) of the written column)
    GRF_A = 1    # index 0..7
    GRF_B = 2    # index 0..7 (writes and result reads)
    SRF = 3      # index 0: lanes 0-7 SRF_M[0..7], lanes 8-15 SRF_A[0..7]
    CTRL = 4     # index 0: start the program (PC 0, loop state cleared)


_SPACE_SIZE = {Space.CRF: CRF_COLUMNS, Space.GRF_A: GRF_ENTRIES, Space.GRF_B: GRF_ENTRIES,
               Space.SRF: 1, Space.CTRL: 1}


def reg_addr(space: Space, index: int = 0) -> int:
    """Address of a host register write/read: ``space << 3 | index``."""
    space = Space(space)
    if not 0 <= index < _SPACE_SIZE[space]:
        raise ValueError(f"{space.name} index must be in 0..{_SPACE_SIZE[space] - 1}, "
                         f"not {index}")
    return (int(space) << 3) | index


_GRF = (Opd.GRF_A, Opd.GRF_B)
_REG_INDEX = {Opd.GRF_A: GRF_ENTRIES, Opd.GRF_B: GRF_ENTRIES, Opd.SRF_M: SRF_ENTRIES,
              Opd.SRF_A: SRF_ENTRIES}

#: Allowed operand kinds per opcode: (dst, src0, src1, src2).
_RULES = {
    Op.ADD: (_GRF, _GRF + (Opd.BANK,), _GRF + (Opd.BANK, Opd.SRF_A), (Opd.NONE,)),
    Op.MUL: (_GRF, _GRF + (Opd.BANK,), _GRF + (Opd.BANK, Opd.SRF_M), (Opd.NONE,)),
    Op.MAC: ((Opd.GRF_B,), _GRF + (Opd.BANK,), _GRF + (Opd.BANK, Opd.SRF_M), (Opd.NONE,)),
    Op.MAD: (_GRF, _GRF + (Opd.BANK,), _GRF + (Opd.BANK, Opd.SRF_M), _GRF + (Opd.SRF_A,)),
    Op.MOV: (_GRF + (Opd.BANK,), _GRF + (Opd.BANK,), (Opd.NONE,), (Opd.NONE,)),
    Op.FILL: (_GRF, (Opd.BANK,), (Opd.NONE,), (Opd.NONE,)),
}
_COMPUTE = tuple(_RULES)
#: Allowed operand kinds per compute opcode: ``(dst, src0, src1, src2)`` tuples of :class:`Opd`.
OPERAND_RULES = _RULES


@dataclass(frozen=True)
class Instruction:
    """One CRF instruction (a record; :func:`encode` gives its 32-bit word).

    ``count``: JUMP -- times the jump is taken; NOP -- extra commands it occupies; AAM
    instruction -- its repeat count ``n`` (1, 2, 4, 8). ``target``: JUMP destination.
    """

    op: int
    dst: int = Opd.NONE
    dst_idx: int = 0
    src0: int = Opd.NONE
    src0_idx: int = 0
    src1: int = Opd.NONE
    src1_idx: int = 0
    src2: int = Opd.NONE
    src2_idx: int = 0
    aam: bool = False
    count: int = 0
    target: int = 0

    def __str__(self) -> str:
        try:
            op = Op(self.op)
        except ValueError:
            return f"<opcode {self.op}>"
        if op is Op.JUMP:
            return f"JUMP {self.target} x{self.count}"
        if op is Op.NOP:
            return f"NOP x{self.count + 1}"
        if op is Op.EXIT:
            return "EXIT"

        def opd(kind, idx):
            try:
                k = Opd(kind)
            except ValueError:
                return f"<kind {kind}>"
            if k in _GRF and self.aam:
                return f"{k.name}[col]"
            return k.name if k in (Opd.BANK, Opd.NONE) else f"{k.name}[{idx}]"
        parts = [opd(self.dst, self.dst_idx), opd(self.src0, self.src0_idx)]
        if self.src1 != Opd.NONE:
            parts.append(opd(self.src1, self.src1_idx))
        if self.src2 != Opd.NONE:
            parts.append(opd(self.src2, self.src2_idx))
        return f"{op.name}{'(AAM x%d)' % self.count if self.aam else ''} " + ", ".join(parts)


def _field(value: int, bits: int, shift: int) -> int:
    return (int(value) & ((1 << bits) - 1)) << shift


def encode(ins: Instruction) -> int:
    """The 32-bit word of ``ins`` (validated first, see :func:`validate_program`)."""
    _check_instruction(ins, CRF_ENTRIES, CRF_ENTRIES)
    word = _field(ins.op, 4, 28)
    if ins.op in (Op.JUMP, Op.NOP):
        return word | _field(ins.target, 5, 23) | _field(ins.count, 16, 7)
    if ins.op == Op.EXIT:
        return word
    word |= (_field(ins.dst, 3, 25) | _field(ins.dst_idx, 3, 22) | _field(ins.src0, 3, 19)
             | _field(ins.src0_idx, 3, 16) | _field(ins.src1, 3, 13)
             | _field(ins.src1_idx, 3, 10) | _field(int(ins.aam), 1, 3))
    if ins.aam:
        return word | _field(ins.count.bit_length() - 1, 3, 4)
    return word | _field(ins.src2, 3, 7) | _field(ins.src2_idx, 3, 4)


def decode(word: int) -> Instruction:
    """The record of a 32-bit word (not validated: :func:`validate_program` does that)."""
    word = int(word) & 0xFFFFFFFF

    def f(bits, shift):
        return (word >> shift) & ((1 << bits) - 1)
    op = f(4, 28)
    if op in (Op.JUMP, Op.NOP):
        return Instruction(op, target=f(5, 23), count=f(16, 7))
    if op == Op.EXIT:
        return Instruction(op)
    aam = bool(f(1, 3))
    common = dict(dst=f(3, 25), dst_idx=f(3, 22), src0=f(3, 19), src0_idx=f(3, 16),
                  src1=f(3, 13), src1_idx=f(3, 10), aam=aam)
    if aam:
        return Instruction(op, count=1 << f(3, 4), **common)
    return Instruction(op, src2=f(3, 7), src2_idx=f(3, 4), **common)


def _check_instruction(ins: Instruction, pc: int, length: int) -> None:
    """Raise a one-line ValueError naming the first problem of ``ins`` at ``pc``; the message
    is only built on error (this runs for every instruction the system model plans)."""
    problem = _instruction_problem(ins, pc)
    if problem is not None:
        raise ValueError(f"instruction {pc} ({ins}): {problem}")


def _instruction_problem(ins: Instruction, pc: int) -> str | None:
    """The problem of ``ins`` at ``pc`` (text without the ``instruction N`` prefix), or None."""
    try:
        op = Op(ins.op)
    except ValueError:
        return (f"unknown opcode {ins.op}; allowed "
                f"{', '.join(f'{o.name} {o.value}' for o in Op)}")
    if op in (Op.JUMP, Op.NOP):
        if not 0 <= ins.count <= COUNT_MAX:
            return f"count must be in 0..{COUNT_MAX}, not {ins.count}"
        if op is Op.JUMP and not 0 <= ins.target < pc:
            return (f"JUMP target must be an earlier instruction (0..{pc - 1}), "
                    f"not {ins.target}")
        return None
    if op is Op.EXIT:
        return None
    kinds = (ins.dst, ins.src0, ins.src1, ins.src2)
    idxs = (ins.dst_idx, ins.src0_idx, ins.src1_idx, ins.src2_idx)
    for name, kind, idx, allowed in zip(("dst", "src0", "src1", "src2"), kinds, idxs,
                                        _RULES[op]):
        if kind not in _OPD_VALUES:
            return (f"{name} has unknown operand kind {kind}; allowed "
                    f"{', '.join(o.name for o in allowed)}")
        if kind not in allowed:
            return (f"{name} cannot be {Opd(kind).name} for {op.name}; allowed "
                    f"{', '.join(o.name for o in allowed)}")
        size = _REG_INDEX.get(kind)
        if size is not None and not 0 <= idx < size:
            return f"{name} register {Opd(kind).name}[{idx}] out of range 0..{size - 1}"
    if (ins.src0 == Opd.BANK) + (ins.src1 == Opd.BANK) + (ins.src2 == Opd.BANK) > 1:
        return "at most one BANK source per instruction"
    if ins.dst == Opd.BANK and Opd.BANK in (ins.src0, ins.src1, ins.src2):
        return "cannot read and write the bank in one instruction"
    if ins.aam:
        if ins.count not in AAM_REPEATS:
            return f"AAM repeat count must be one of {AAM_REPEATS}, not {ins.count}"
        if ins.src2 != Opd.NONE:
            return "AAM instructions cannot have src2"
    elif ins.count != 0:
        return f"count is only for JUMP, NOP and AAM, not {ins.count}"
    return None


_OPD_VALUES = frozenset(int(o) for o in Opd)


def validate_program(prog) -> list[Instruction]:
    """Check a program (records or 32-bit words); return it as records.

    Raises :class:`ValueError` with one line naming the first problem: an unknown opcode or
    operand kind, a register index out of range, an operand not allowed for the opcode, a
    JUMP that is not backward or whose body holds another JUMP, a program longer than the
    CRF or not ending with its only EXIT.
    """
    prog = tuple(p if isinstance(p, Instruction) else decode(p) for p in prog)
    return list(_validated(prog))


@lru_cache(maxsize=4096)
def _validated(prog: tuple) -> tuple:
    """:func:`validate_program` of a tuple of records (pure: memoised)."""
    if not prog:
        raise ValueError("program is empty; it must end with EXIT")
    if len(prog) > CRF_ENTRIES:
        raise ValueError(f"program has {len(prog)} instructions; the CRF holds {CRF_ENTRIES}")
    for pc, ins in enumerate(prog):
        _check_instruction(ins, pc, len(prog))
        if ins.op == Op.EXIT and pc != len(prog) - 1:
            raise ValueError(f"instruction {pc} (EXIT): EXIT must be the last instruction")
        if ins.op == Op.JUMP:
            body = prog[ins.target:pc]
            if any(b.op in (Op.JUMP, Op.EXIT) for b in body):
                raise ValueError(f"instruction {pc} ({ins}): loops cannot nest (a JUMP in "
                                 f"its body {ins.target}..{pc - 1})")
            if all(b.op == Op.JUMP for b in body) or not body:
                raise ValueError(f"instruction {pc} ({ins}): empty loop body")
    if prog[-1].op != Op.EXIT:
        raise ValueError(f"program must end with EXIT, not {prog[-1]}")
    if prog[0].op == Op.JUMP:
        raise ValueError("instruction 0: a program cannot start with JUMP")
    return prog


def program_words(prog) -> list[int]:
    """32-bit words of a (validated) program, padded with EXIT to the CRF size."""
    prog = validate_program(prog)
    words = [encode(i) for i in prog]
    return words + [encode(Instruction(Op.EXIT))] * (CRF_ENTRIES - len(words))


def crf_columns_of(prog) -> int:
    """Host column writes that load ``prog`` into the CRF."""
    return math.ceil(len(validate_program(prog)) / CRF_WORDS_PER_COLUMN)


def instruction_commands(ins: Instruction) -> int:
    """Column commands one instruction occupies (JUMP and EXIT: none)."""
    if ins.op in (Op.JUMP, Op.EXIT):
        return 0
    if ins.op == Op.NOP:
        return ins.count + 1
    return ins.count if ins.aam else 1


def executed_commands(prog) -> int:
    """Column commands a whole run of ``prog`` takes (loops unrolled)."""
    prog = validate_program(prog)
    total = 0
    for pc, ins in enumerate(prog):
        total += instruction_commands(ins)
        if ins.op == Op.JUMP:
            total += ins.count * sum(instruction_commands(b) for b in prog[ins.target:pc])
    return total


# --------------------------------------------------------------------------------------
# The programs
# --------------------------------------------------------------------------------------

def state_update_program(blocks: int, rows: int) -> list[Instruction]:
    """State update of ``rows`` state rows ``i`` (dim_head) times ``blocks`` columns, the
    bank reads and the bank writes of a row in runs (docs/baselines.md "State update").

    Layout: lanes along dim_state; the column of (row ``i``, block ``b``) holds
    ``S[i, 16 b : 16 b + 16]``. Registers (``n = blocks`` <= :data:`SU_MAX_BLOCKS` = 4):
    GRF_A[b] = ``v`` block ``b``; GRF_B[b] = the ``y`` accumulator of block ``b``;
    GRF_B[4 + b] = the updated column of block ``b`` (MAC can only write GRF_B); SRF_M[0, 1,
    2] = ``d_i, k_i, q_i`` (one host SRF write per row ``i``, between the iterations). Per row,
    four runs of ``n`` instructions, four column commands per column::

        MUL GRF_B[4+b]  = BANK * SRF_M[0]          b = 0..n-1   n RD  (d_i * S[i, b])
        MAC GRF_B[4+b] += GRF_A[b] * SRF_M[1]      b = 0..n-1   (+ k_i * v_b; no bank)
        MAC GRF_B[b]   += GRF_B[4+b] * SRF_M[2]    b = 0..n-1   (y_b += q_i S'[i, b]; no bank)
        MOV BANK        = GRF_B[4+b]               b = 0..n-1   n WR  (write-back)

    Commands that touch no bank column go out as RD (the kind of the command before them),
    so a row has one RD->WR and one WR->RD switch whatever ``n``: ``2 / n`` per column. The
    body is unrolled (every instruction names its registers statically); a JUMP repeats it
    ``rows - 1`` times. The arithmetic is the one-column-at-a-time program's: every column
    sees ``MUL``, ``MAC k``, ``MAC q`` in that order.
    """
    if not 1 <= blocks <= SU_MAX_BLOCKS:
        raise ValueError(f"blocks must be in 1..{SU_MAX_BLOCKS}, not {blocks}")
    if not 1 <= rows <= COUNT_MAX + 1:
        raise ValueError(f"rows must be in 1..{COUNT_MAX + 1}, not {rows}")
    return list(_state_update_program(blocks, rows))


@lru_cache(maxsize=None)
def _state_update_program(blocks: int, rows: int) -> tuple:
    t = SU_TEMP_BASE
    bs = range(blocks)
    body = [Instruction(Op.MUL, Opd.GRF_B, t + b, Opd.BANK, 0, Opd.SRF_M, SRF_D) for b in bs]
    body += [Instruction(Op.MAC, Opd.GRF_B, t + b, Opd.GRF_A, b, Opd.SRF_M, SRF_K)
             for b in bs]
    body += [Instruction(Op.MAC, Opd.GRF_B, b, Opd.GRF_B, t + b, Opd.SRF_M, SRF_Q)
             for b in bs]
    body += [Instruction(Op.MOV, Opd.BANK, 0, Opd.GRF_B, t + b) for b in bs]
    return tuple(_loop(body, rows))


def scalar_mac_program(blocks: int, scalars: int) -> list[Instruction]:
    """Score and attend: ``GRF_B[b] += BANK * SRF_M[s]`` over ``scalars`` scalars (padded to a
    multiple of 8) and ``blocks`` column blocks (padded to a power of two ``n``).

    One AAM MAC per SRF_M entry, each repeated over ``n`` consecutive columns (GRF_B index =
    ``col & (n - 1)``): the body is 8 instructions covering 8 scalars x ``n`` columns, the
    host writes the next 8 scalars into SRF_M between iterations, a JUMP repeats the body.
    Score: scalars = q_i (dim_head), blocks = 16-token blocks of keys stored transposed
    (column (i, b) = ``K[16 b : 16 b + 16, i]``). Attend: scalars = p_t (tokens), blocks =
    16-wide dim_head blocks (column (t, b) = ``V[t, 16 b : 16 b + 16]``).
    """
    n = _aam_repeat(blocks)
    groups = _ceil_div(scalars, SRF_ENTRIES)
    if not 1 <= groups <= COUNT_MAX + 1:
        raise ValueError(f"scalars must be in 1..{(COUNT_MAX + 1) * SRF_ENTRIES}, "
                         f"not {scalars}")
    return list(_scalar_mac_program(n, groups))


@lru_cache(maxsize=None)
def _scalar_mac_program(n: int, groups: int) -> tuple:
    body = [Instruction(Op.MAC, Opd.GRF_B, 0, Opd.BANK, 0, Opd.SRF_M, s, aam=True, count=n)
            for s in range(SRF_ENTRIES)]
    return tuple(_loop(body, groups))


def _loop(body: list[Instruction], iterations: int) -> list[Instruction]:
    prog = list(body)
    if iterations > 1:
        prog.append(Instruction(Op.JUMP, target=0, count=iterations - 1))
    prog.append(Instruction(Op.EXIT))
    return validate_program(prog)


def _aam_repeat(blocks: int) -> int:
    if not 1 <= blocks <= GRF_ENTRIES:
        raise ValueError(f"blocks must be in 1..{GRF_ENTRIES}, not {blocks}")
    return 1 << (blocks - 1).bit_length()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def program(mode: str, blocks: int, iterations: int) -> list[Instruction]:
    """The program of one pass: ``blocks`` column blocks, ``iterations`` = state rows (state
    update) or scalars (score: dim_head, attend: tokens)."""
    if mode == "state_update":
        return state_update_program(blocks, iterations)
    if mode in ("score", "attend"):
        return scalar_mac_program(blocks, iterations)
    raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


#: The programs at full register use (state update: 4 blocks x 64 rows; score and attend:
#: 8 blocks x 64 scalars). Other shapes: :func:`program`.
PROGRAMS = {
    "state_update": program("state_update", SU_MAX_BLOCKS, 64),
    "score": program("score", GRF_ENTRIES, 64),
    "attend": program("attend", GRF_ENTRIES, 64),
}


def loop_body(prog) -> list[Instruction]:
    """The instructions a (validated) program repeats: its JUMP's body, or all of it but
    EXIT when it has no loop."""
    prog = validate_program(prog)
    if len(prog) > 1 and prog[-2].op == Op.JUMP:
        return prog[prog[-2].target:-2]
    return prog[:-1]


def commands_per_column(mode: str) -> int:
    """Steady-state column commands per data column, counted from ``PROGRAMS[mode]``'s loop
    body: commands it occupies / bank columns it reads."""
    if mode not in PROGRAMS:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    body = loop_body(PROGRAMS[mode])
    cmds = sum(instruction_commands(i) for i in body)
    reads = sum(instruction_commands(i) for i in body
                if Opd.BANK in (i.src0, i.src1, i.src2))
    if cmds % reads:
        raise AssertionError(f"{mode}: {cmds} commands for {reads} columns")
    return cmds // reads


# --------------------------------------------------------------------------------------
# The plan of a head
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PassPlan:
    """One pass: ``blocks`` column blocks (``padded_blocks`` with the AAM padding) for all
    ``iterations`` rows/scalars (``padded_iterations`` with the SRF padding)."""

    blocks: int
    padded_blocks: int
    iterations: int
    padded_iterations: int
    srf_writes: int


@dataclass(frozen=True)
class Plan:
    """Command plan of one head of one request held by one bank (docs/baselines.md).

    ``data_columns`` includes padding columns (score/attend shapes that are not a power of
    two / a multiple of 8); the breakdown of ``reg_write_columns`` is
    ``crf_columns + grf_columns + srf_columns + ctrl_columns``.
    """

    rows: int
    data_columns: int
    compute_commands: int
    bank_writes: int
    reg_write_columns: int
    result_read_columns: int
    passes: int = 0
    crf_columns: int = 0
    grf_columns: int = 0
    srf_columns: int = 0
    ctrl_columns: int = 0
    pass_plans: tuple = field(default=(), compare=False, repr=False)


def _check_int(name: str, value, lo: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, not {value}")
    return value


def passes(mode: str, dim_head: int, length: int) -> list[PassPlan]:
    """The passes of a head (see :func:`plan`)."""
    _check_int("dim_head", dim_head)
    _check_int("length", length)
    if mode == "state_update":
        if length % LANES:
            raise ValueError(f"state update: dim_state (length) must be a multiple of "
                             f"{LANES}, not {length}")
        blocks, iters, cap = length // LANES, dim_head, SU_MAX_BLOCKS
    elif mode == "score":
        blocks, iters, cap = _ceil_div(length, LANES), dim_head, GRF_ENTRIES
    elif mode == "attend":
        if dim_head % LANES:
            raise ValueError(f"attend: dim_head must be a multiple of {LANES}, not {dim_head}")
        blocks, iters, cap = dim_head // LANES, length, GRF_ENTRIES
    else:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    npass = _ceil_div(blocks, cap)
    sizes = [blocks // npass + (1 if p < blocks % npass else 0) for p in range(npass)]
    out = []
    for nb in sizes:
        if mode == "state_update":
            out.append(PassPlan(nb, nb, iters, iters, iters))
        else:
            groups = _ceil_div(iters, SRF_ENTRIES)
            out.append(PassPlan(nb, _aam_repeat(nb), iters, groups * SRF_ENTRIES, groups))
    return out


def plan(mode: str, dim_head: int, length: int, per_element_decay: bool = False) -> Plan:
    """Layout and column commands of one head of one request held by one bank.

    ``length`` is dim_state (state update) or the number of tokens (score, attend). The
    columns are split into passes of at most :data:`SU_MAX_BLOCKS` (state update: one run of
    bank reads and one of bank writes per row) or :data:`GRF_ENTRIES` (score, attend) blocks,
    balanced; every pass loads its program into the CRF, its ``v`` blocks into GRF_A (state
    update), zeroes its accumulators in GRF_B (the updated-column temporaries need no
    initialisation), starts the program (CTRL), writes the SRF once per row ``i`` (state
    update) or per 8 scalars (score, attend), and reads its accumulators back.
    ``per_element_decay`` (decay varying along dim_head, GLA/HGRN2, versus one per head,
    Mamba-2/RetNet) does not change the plan: ``d_i`` travels in the same SRF write as
    ``k_i`` and ``q_i``, once per row either way. Pure: memoised on its arguments.
    """
    if not isinstance(per_element_decay, bool):
        raise TypeError(f"per_element_decay must be a bool, not {per_element_decay!r}")
    _check_int("dim_head", dim_head)
    _check_int("length", length)
    return _plan(mode, dim_head, length, per_element_decay)


@lru_cache(maxsize=65536)
def _pass_counts(mode: str, blocks: int, iterations: int) -> tuple[int, int]:
    """(column commands, CRF columns) of one pass's program."""
    prog = program(mode, blocks, iterations)
    return executed_commands(prog), crf_columns_of(prog)


@lru_cache(maxsize=65536)
def _plan(mode: str, dim_head: int, length: int, per_element_decay: bool) -> Plan:
    pp = passes(mode, dim_head, length)
    data = cmds = crf = grf = srf = ctrl = reads = 0
    for p in pp:
        pcmds, pcrf = _pass_counts(mode, p.blocks, p.iterations)
        data += p.padded_blocks * p.padded_iterations
        cmds += pcmds
        crf += pcrf
        grf += p.padded_blocks * (2 if mode == "state_update" else 1)
        srf += p.srf_writes
        ctrl += 1
        reads += p.blocks
    return Plan(
        rows=_ceil_div(data, COLUMNS_PER_ROW),
        data_columns=data,
        compute_commands=cmds,
        bank_writes=data if mode == "state_update" else 0,
        reg_write_columns=crf + grf + srf + ctrl,
        result_read_columns=reads,
        passes=len(pp), crf_columns=crf, grf_columns=grf, srf_columns=srf,
        ctrl_columns=ctrl, pass_plans=tuple(pp),
    )
