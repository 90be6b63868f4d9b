"""PIM timing, closed form: pseudo-channel command rounds mapped onto the whole memory.

A *round* is what one pseudo-channel (PC) does with one open row in each of its banks:

1. ``ACT4`` x (banks / 4). An ACT4 opens four banks, so it fills the four-activation tFAW
   window by itself: consecutive ACT4s are ``max(tFAW, tRRD_S)`` apart.
2. ``REG_WRITE`` of the operands, one 32-byte column each, back to back on the PC bus
   (``tCCD_S`` apart, a ``burst`` long) from the start of the round -- hidden in the gaps between
   ACT4s unless there are more than fit.
3. ``COMP`` x n, ``spu_cycles_per_comp * tCCD_L`` apart; the first one ``tRCD`` after the last
   ACT4 and after the last REG_WRITE burst. An HBM-PIM PCU's COMPs are its PIM column
   commands (one CRF instruction each, one tCCD_L slot); where its program switches between
   bank reads and bank writes, the DRAM read/write turnarounds of one loop body add ``gap``
   cycles every ``gap_every`` (= body) commands (:func:`pcu_turnaround`). The last COMP's
   write-back comes ``(pipeline_depth - 1) * tCCD_L`` later, its results
   ``pipeline_depth * tCCD_L`` later.
4. ``PRECHARGES`` once ``tRAS`` (from the last ACT4), ``tRTP_L`` (from the last COMP read) and
   ``tWR`` (from the last write-back) have passed; the banks are closed ``tRP`` later.
   ``RESULT_READ``s (one column each, on the bus) start when the results are ready and overlap
   the precharge. The round ends when both are done.

Refresh (``HbmSpec.refresh``), a PIM phase starting right after a refresh:

* ``postponed`` (a memory controller): all-bank REF ``k`` falls due at ``k * tREFI``; at every
  round boundary the controller issues every REF that has fallen due (each ``tRFC`` long,
  back to back), so it never owes more than one round's worth of refreshes; a round may not
  be longer than ``max_postponed_refreshes * tREFI`` (JEDEC allows at most 8 owed, see
  docs/sysmodel.md). Refreshes due after the last round are not part of the phase.
* ``window`` (the old rule, an ablation): time is cut into periods of ``tREFI``, each ending
  with a ``tRFC`` refresh; a round never crosses one, so it waits for the next period.

Mapping (``PimUnit.dealing``): the state (or KV cache) of a layer is cut into chunk groups (one
head, one dim_head range of one request, all state columns / tokens; for the PCU one head).
``groups`` deals whole groups to the banks (the busiest bank holds ``ceil(groups / banks)``);
``rows`` cuts every group into ``p`` pieces of ``ceil(chunks / p)`` rows, ``p`` chosen per phase
to minimise the busiest bank's rounds, each piece loading the group's operands again.
Every PC runs the busiest bank's rounds in lock step.

:mod:`sysmodel.pimsim` schedules the same rounds command by command; the tests hold both to
within 1 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .hardware import MAX_POSTPONED_LIMIT, HbmSpec, HbmTiming, PimUnit, ceil_div

#: Largest number of pieces a chunk group is cut into by the ``rows`` dealing.
MAX_PIECES = 64


@dataclass(frozen=True)
class RoundShape:
    """The commands of one round in one pseudo-channel.

    Members
    -------
    comps : int
        COMP commands.
    comp_interval : int
        Bus cycles between COMPs.
    writeback_delay : int
        Cycles from a COMP to its write-back (update mode).
    result_delay : int
        Cycles from the last COMP until its results can be read.
    writes_back : bool
        Whether COMPs write the row back (state update) or only read it (attention).
    reg_writes : int
        REG_WRITE columns of the round.
    result_reads : int
        RESULT_READ columns of the round.
    gap_every, gap : int
        ``gap`` extra cycles after every ``gap_every``-th COMP (0: none): read/write
        turnarounds of a PCU program.
    """

    comps: int
    comp_interval: int
    writeback_delay: int
    result_delay: int
    writes_back: bool
    reg_writes: int
    result_reads: int
    gap_every: int = 0
    gap: int = 0

    def comp_offset(self, i: int) -> int:
        """Cycles from the first COMP to COMP ``i`` (0-based)."""
        gaps = i // self.gap_every if self.gap_every else 0
        return i * self.comp_interval + gaps * self.gap


def act4_count(hbm: HbmSpec) -> int:
    """ACT4 commands per round (they open every bank of the PC)."""
    return hbm.banks_per_pc // 4


def act4_spacing(t: HbmTiming) -> int:
    """Cycles between consecutive ACT4s: four activations per tFAW, and tRRD."""
    return max(t.tFAW, t.tRRD_S)


def round_cycles(hbm: HbmSpec, shape: RoundShape) -> int:
    """Duration of one round in bus cycles (closed form of the rules in the module docstring)."""
    t = hbm.timing
    last_act = (act4_count(hbm) - 1) * act4_spacing(t)
    reg_done = (shape.reg_writes - 1) * t.tCCD_S + t.burst if shape.reg_writes else 0
    first_comp = max(last_act + t.tRCD, reg_done)
    last_comp = first_comp + shape.comp_offset(shape.comps - 1)
    precharge = max(last_act + t.tRAS, last_comp + t.tRTP_L)
    if shape.writes_back:
        precharge = max(precharge, last_comp + shape.writeback_delay + t.tWR)
    end = max(precharge + t.tRP, t.tRC, last_act + t.tFAW)
    if shape.result_reads:
        reads_start = last_comp + shape.result_delay
        end = max(end, reads_start + (shape.result_reads - 1) * t.tCCD_S + t.burst)
    return end


def phase_cycles(t: HbmTiming, first: int, rest: int, groups: np.ndarray | int,
                 chunks_per_group: np.ndarray | int, *, refresh: str,
                 max_postponed: int = MAX_POSTPONED_LIMIT) -> np.ndarray:
    """Cycles of a PIM phase: ``groups`` chunk groups of ``chunks_per_group`` rounds each.

    The first round of a group lasts ``first`` cycles (it also loads the group's shared
    operands), the others ``rest``. ``refresh`` is ``postponed`` or ``window`` (module
    docstring). Vectorised over ``groups`` and ``chunks_per_group``.
    """
    groups = np.asarray(groups, dtype=np.int64)
    cpg = np.asarray(chunks_per_group, dtype=np.int64)
    groups, cpg = np.broadcast_arrays(groups, cpg)
    if refresh == "postponed":
        return _postponed_phase(t, first, rest, groups, cpg, max_postponed)
    if refresh != "window":
        raise ValueError(f"unknown refresh rule {refresh!r} (allowed: postponed, window)")
    avail = t.tREFI - t.tRFC
    if max(first, rest) > avail:
        raise ValueError(f"a round of {max(first, rest)} cycles does not fit between refreshes "
                         f"({avail} cycles)")
    n = groups * cpg
    k_first, k_rest = avail // first, avail // rest
    if k_first == k_rest:
        # Every period holds exactly k rounds, whatever their mix.
        k = k_rest
        periods = np.maximum(-(-n // k), 1)
        tail = n - (periods - 1) * k
        firsts = (n - 1) // cpg - (n - tail - 1) // cpg
        out = (periods - 1) * t.tREFI + firsts * first + (tail - firsts) * rest
        return np.where(n > 0, out, 0)
    out = np.empty(n.shape, dtype=np.int64)
    for idx in np.ndindex(n.shape):
        out[idx] = _greedy_phase(t, first, rest, int(groups[idx]), int(cpg[idx]))
    return out


def _postponed_phase(t: HbmTiming, first: int, rest: int, groups: np.ndarray, cpg: np.ndarray,
                     max_postponed: int) -> np.ndarray:
    """Closed form of the ``postponed`` rule.

    After rounds worth ``S`` cycles of work, the controller has issued the least ``R`` with
    no REF due at ``S + R tRFC``: ``R = 0`` for ``S < tREFI``, else
    ``floor((S - tREFI) / (tREFI - tRFC)) + 1``. The phase ends with its last round, so the
    refreshes issued are those of the boundary before it: ``T = S_n + tRFC R(S_{n-1})``.
    """
    if not 1 <= max_postponed <= MAX_POSTPONED_LIMIT:
        raise ValueError(f"max_postponed {max_postponed} out of range "
                         f"(allowed: 1..{MAX_POSTPONED_LIMIT})")
    longest = max(first, rest)
    if longest > max_postponed * t.tREFI:
        raise ValueError(f"a round of {longest} cycles would owe more than {max_postponed} "
                         f"refreshes (tREFI {t.tREFI})")
    n = groups * cpg
    total = groups * first + (n - groups) * rest
    last = np.where(cpg == 1, first, rest)
    before = total - last
    period, net = t.tREFI, t.tREFI - t.tRFC
    refs = np.where(before >= period, (before - period) // net + 1, 0)
    return np.where(n > 0, total + refs * t.tRFC, 0)


def _greedy_phase(t: HbmTiming, first: int, rest: int, groups: int, cpg: int) -> int:
    """Round-by-round packing into refresh periods, for rounds of two lengths."""
    avail = t.tREFI - t.tRFC
    period, used = 0, 0
    for _ in range(groups):
        for i in range(cpg):
            length = first if i == 0 else rest
            if used + length > avail:
                period, used = period + 1, 0
            used += length
    return period * t.tREFI + used if groups * cpg else 0


@dataclass(frozen=True)
class PhaseWork:
    """What one PIM phase moves, for energy, over the whole memory (fields may be arrays).

    Members
    -------
    rows : int
        Rows (chunks) opened, i.e. bank activations.
    subchunks : int
        Data columns processed (sub-chunks; one COMP of a COMP unit each).
    column_accesses : int
        Column reads and writes inside the banks plus REG_WRITE and RESULT_READ columns.
    comps : float
        COMP (PIM column) commands, each driving every unit of one pseudo-channel.
    reg_writes : int
        REG_WRITE columns (included in ``column_accesses``).
    """

    rows: int
    subchunks: int
    column_accesses: int
    comps: float
    reg_writes: int = 0


@dataclass(frozen=True)
class Phase:
    """A PIM phase of one layer (fields are arrays over the KV lengths for attention).

    Members
    -------
    time_s : array
        Seconds.
    work : PhaseWork
        Traffic for energy.
    partials : array
        Partial results the GPU sums per output value (1: results are complete).
    pieces : array
        Pieces each chunk group (head) is cut into by the dealing.
    """

    time_s: np.ndarray
    work: PhaseWork
    partials: np.ndarray
    pieces: np.ndarray


# -- COMP units (SPU, fp16 units): chunk groups -------------------------------------------

def _mode_counts(hbm: HbmSpec, unit: PimUnit, mode: str, operand_bits: int) -> tuple:
    """REG_WRITE columns per bank (group start, other rounds) and RESULT_READ per bank."""
    col_bits = hbm.column_bytes * 8
    cols_per_row = hbm.columns_per_row
    values_per_col = col_bits // unit.format.bits_per_value
    operand_cols = ceil_div(cols_per_row * operand_bits, col_bits)   # one value per sub-chunk
    partial_cols = ceil_div(cols_per_row * unit.result_bytes * 8, col_bits)
    if mode == "state_update":
        # d, q, k sub-chunks once per chunk group; v (one element per state column) per chunk;
        # one partial dot product per sub-chunk back.
        return 3 + operand_cols, operand_cols, partial_cols
    if mode == "score":
        # q once per chunk group; one partial score per sub-chunk (token) back.
        return 1, 0, partial_cols
    if mode == "attend":
        # one score per token in; the accumulated sub-chunk (values_per_col values) back.
        acc_cols = ceil_div(values_per_col * unit.result_bytes * 8, col_bits)
        return operand_cols, operand_cols, acc_cols
    raise ValueError(f"unknown PIM mode {mode!r} (allowed: state_update, score, attend)")


def comps_per_round(hbm: HbmSpec, unit: PimUnit, mode: str) -> int:
    """COMPs (PIM column commands) one unit issues for one open row in each of its banks."""
    tm = unit.mode(mode)
    if tm.commands_per_column:
        return tm.commands_per_column * hbm.columns_per_row * unit.banks_per_unit
    return tm.comps_per_row_pair


def round_shapes(hbm: HbmSpec, unit: PimUnit, mode: str, reg_first: int | None = None,
                 reg_rest: int | None = None, reads: int | None = None,
                 pass_shape: tuple[int, int] | None = None) -> tuple[RoundShape, RoundShape]:
    """Shapes of a group's (piece's) first round and of its other rounds for ``mode``.

    REG_WRITE and RESULT_READ columns per bank default to the COMP units' counts
    (:func:`_mode_counts`); a PCU passes its plan's, and ``pass_shape`` = ``(blocks,
    iterations)`` of the pass whose program sets the read/write turnarounds
    (:func:`pcu_turnaround`; default: the full-width program).
    """
    tm = unit.mode(mode)
    t = hbm.timing
    if reg_first is None:
        reg_first, reg_rest, reads = _mode_counts(hbm, unit, mode, unit.format.bits_per_value)
    banks = hbm.banks_per_pc
    gap_every, gap = pcu_turnaround(hbm, unit, mode, *(pass_shape or (None, None)))
    common = dict(comps=comps_per_round(hbm, unit, mode),
                  comp_interval=tm.spu_cycles_per_comp * t.tCCD_L,
                  writeback_delay=(tm.pipeline_depth - 1) * t.tCCD_L,
                  result_delay=tm.pipeline_depth * t.tCCD_L,
                  writes_back=(mode == "state_update"), result_reads=reads * banks,
                  gap_every=gap_every, gap=gap)
    return (RoundShape(reg_writes=reg_first * banks, **common),
            RoundShape(reg_writes=reg_rest * banks, **common))


def deal(hbm: HbmSpec, unit: PimUnit, groups, rows, first: int, rest: int):
    """Deal ``groups`` chunk groups of ``rows`` rows each to the banks (vectorised over rows).

    Returns ``(pieces, per_bank, piece_rows)``: pieces per group, pieces on the busiest bank,
    rows per piece. ``groups`` dealing: one piece. ``rows`` dealing: the ``p`` in
    ``1..min(rows, MAX_PIECES)`` with the fewest busiest-bank cycles
    ``ceil(groups p / banks) (first + (ceil(rows / p) - 1) rest)``; ties go to fewer pieces.
    """
    rows = np.asarray(rows, dtype=np.int64)
    groups = np.broadcast_to(np.asarray(groups, dtype=np.int64), rows.shape)
    banks = hbm.banks
    if unit.dealing == "groups":
        return np.ones_like(rows), -(-groups // banks), rows
    cand = np.arange(1, MAX_PIECES + 1, dtype=np.int64).reshape((-1,) + (1,) * rows.ndim)
    piece_rows = -(-rows // cand)
    pieces = -(-rows // piece_rows)                     # pieces actually needed
    per_bank = -(-(groups * pieces) // banks)
    cost = per_bank * (first + (piece_rows - 1) * rest)
    cost = np.where(cand <= np.maximum(rows, 1), cost, np.iinfo(np.int64).max)
    best = np.argmin(cost, axis=0)
    pick = np.take_along_axis
    return (pick(pieces, best[None], 0)[0], pick(per_bank, best[None], 0)[0],
            pick(piece_rows, best[None], 0)[0])


def _chunk_phase(hbm: HbmSpec, unit: PimUnit, mode: str, groups: int, cpg) -> Phase:
    first_s, rest_s = round_shapes(hbm, unit, mode)
    first, rest = round_cycles(hbm, first_s), round_cycles(hbm, rest_s)
    cpg = np.asarray(cpg, dtype=np.int64)
    pieces, per_bank, piece_rows = deal(hbm, unit, groups, cpg, first, rest)
    cycles = phase_cycles(hbm.timing, first, rest, per_bank, piece_rows, refresh=hbm.refresh,
                          max_postponed=hbm.max_postponed_refreshes)
    rows = groups * cpg
    sub = rows * hbm.columns_per_row
    start, steady, reads = _mode_counts(hbm, unit, mode, unit.format.bits_per_value)
    inside = sub * (2 if mode == "state_update" else 1)
    starts = groups * pieces
    regs = starts * start + (rows - starts) * steady
    io = regs + rows * reads
    # A COMP drives every unit of a pseudo-channel: comps_per_round for each row of every
    # bank of the PC.
    comps = rows * comps_per_round(hbm, unit, mode) / hbm.banks_per_pc
    work = PhaseWork(rows=rows, subchunks=sub, column_accesses=inside + io, comps=comps,
                     reg_writes=regs)
    return Phase(time_s=cycles / (hbm.clock_ghz * 1e9), work=work,
                 partials=np.ones_like(cpg), pieces=pieces)


def phase_time_s(hbm: HbmSpec, unit: PimUnit, mode: str, groups, chunks_per_group) -> np.ndarray:
    """Seconds of a COMP unit's phase over ``groups`` chunk groups (whole memory)."""
    return _chunk_phase(hbm, unit, mode, groups, chunks_per_group).time_s


def phase_work(hbm: HbmSpec, unit: PimUnit, mode: str, groups, chunks_per_group) -> PhaseWork:
    """Rows, sub-chunks, column accesses and COMP commands of a COMP unit's phase."""
    return _chunk_phase(hbm, unit, mode, groups, chunks_per_group).work


def state_groups(hbm: HbmSpec, unit: PimUnit, batch: int, heads: int, dim_head: int,
                 dim_state: int) -> tuple[int, int]:
    """Chunk groups and chunks per group of one layer's states (per GPU), COMP units."""
    values_per_col = hbm.column_bytes * 8 // unit.format.bits_per_value
    groups = batch * heads * ceil_div(dim_head, values_per_col)
    return groups, ceil_div(dim_state, hbm.columns_per_row)


def kv_groups(hbm: HbmSpec, unit: PimUnit, batch: int, heads: int, dim_head: int,
              kv_len) -> tuple[int, np.ndarray]:
    """Chunk groups and chunks per group of one layer's K (or V) cache, per KV length."""
    values_per_col = hbm.column_bytes * 8 // unit.format.bits_per_value
    groups = batch * heads * ceil_div(dim_head, values_per_col)
    kv_len = np.asarray(kv_len, dtype=np.int64)
    return groups, -(-kv_len // hbm.columns_per_row)


# -- HBM-PIM PCU: one head per group, traffic from quant.hbmpim_programs ---------------------

def _programs():
    from quant import hbmpim_programs
    return hbmpim_programs


_PLANS: dict = {}
_BY_SHAPE: dict = {}


def pcu_plan(mode: str, dim_head: int, length: int, per_element_decay: bool = False):
    """``quant.hbmpim_programs.plan``, memoised on the head's shape and on its passes (the
    plan is a function of the mode and :func:`quant.hbmpim_programs.passes` only)."""
    shape = (mode, dim_head, length, per_element_decay)
    if shape not in _BY_SHAPE:
        key = (mode, tuple(_programs().passes(mode, dim_head, length)), per_element_decay)
        if key not in _PLANS:
            _PLANS[key] = _programs().plan(mode, dim_head, length,
                                           per_element_decay=per_element_decay)
        _BY_SHAPE[shape] = _PLANS[key]
    return _BY_SHAPE[shape]


@lru_cache(maxsize=None)
def _turnaround_pattern(mode: str, blocks: int | None = None,
                        iterations: int | None = None) -> tuple[int, int, int]:
    """(commands, RD->WR switches, WR->RD switches) of one pass through the loop body of
    ``program(mode, blocks, iterations)`` (default: ``PROGRAMS[mode]``, full width).

    Bank reads are RD commands, bank writes WR commands; an instruction that touches no bank
    column may go out as either and takes the kind of the command before it (no switch), so
    a run of reads, no-bank commands and writes switches once each way per body.
    """
    hp = _programs()
    prog = hp.PROGRAMS[mode] if blocks is None else hp.program(mode, blocks, iterations)
    return body_switches(prog)


def body_switches(prog) -> tuple[int, int, int]:
    """(commands, RD->WR switches, WR->RD switches) of one pass through ``prog``'s loop body
    (the rule of :func:`_turnaround_pattern`)."""
    hp = _programs()
    kinds = []
    for ins in hp.loop_body(prog):
        n = hp.instruction_commands(ins)
        kind = None if ins.op == hp.Op.NOP else "W" if ins.dst == hp.Opd.BANK else (
            "R" if hp.Opd.BANK in (ins.src0, ins.src1, ins.src2) else None)
        kinds += [kind] * n
    known = [k for k in kinds if k]
    if not known:
        return len(kinds), 0, 0
    prev = known[-1]                       # the loop repeats: the body follows itself
    rw = wr = 0
    for k in kinds:
        k = k or prev
        rw += prev == "R" and k == "W"
        wr += prev == "W" and k == "R"
        prev = k
    return len(kinds), rw, wr


def pcu_turnaround(hbm: HbmSpec, unit: PimUnit, mode: str, blocks: int | None = None,
                   iterations: int | None = None) -> tuple[int, int]:
    """``(gap_every, gap)`` of a PCU's COMPs in ``mode``: the extra cycles beyond tCCD_L of
    the RD->WR and WR->RD switches of one loop body of ``program(mode, blocks, iterations)``
    (default: the full-width program), charged once per body (every ``gap_every`` = body
    commands). ``(0, 0)`` for COMP units, switch-free programs and ``PimUnit.turnaround ==
    "free"`` (an ablation)."""
    tm = unit.mode(mode)
    if not tm.commands_per_column or unit.turnaround == "free":
        return 0, 0
    t = hbm.timing
    cmds, rw, wr = _turnaround_pattern(mode, blocks, iterations)
    if not rw + wr:
        return 0, 0
    gap = rw * max(0, t.read_to_write - t.tCCD_L) + wr * max(0, t.write_to_read - t.tCCD_L)
    return cmds, gap


@lru_cache(maxsize=65536)
def _pcu_piece(mode: str, dim_head: int, piece_len: int, decay: bool) -> tuple:
    """Per piece of a head: rows, data columns, column accesses, column commands, REG_WRITE
    columns; REG_WRITE and RESULT_READ columns per row (rounded up), blocks and iterations of
    the first (largest) pass, rows."""
    piece = pcu_plan(mode, dim_head, piece_len, decay)
    head_pass = piece.pass_plans[0]
    return (piece.rows, piece.data_columns,
            piece.data_columns + piece.bank_writes + piece.reg_write_columns
            + piece.result_read_columns,
            piece.compute_commands, piece.reg_write_columns,
            ceil_div(piece.reg_write_columns, piece.rows),
            ceil_div(piece.result_read_columns, piece.rows),
            head_pass.blocks, head_pass.iterations, piece.rows)


def _pcu_phase(hbm: HbmSpec, unit: PimUnit, mode: str, heads_total: int, dim_head: int,
               lengths, decay: bool) -> Phase:
    shape = np.shape(lengths)
    lengths = np.atleast_1d(np.asarray(lengths, dtype=np.int64))
    quantum = _programs().LANES if mode == "state_update" else 1
    uniq, inverse = np.unique(lengths, return_inverse=True)
    fulls = [pcu_plan(mode, dim_head, int(n), decay) for n in uniq]
    full_rows = np.array([p.rows for p in fulls], dtype=np.int64)
    # Choose the pieces on the full plan's rows (per-round traffic spread evenly).
    probe_first, _ = round_shapes(hbm, unit, mode, 0, 0, 0)
    base = round_cycles(hbm, probe_first)
    pieces, _, _ = deal(hbm, unit, heads_total, full_rows, base, base)
    rows_out = []                           # per unique length: traffic, shape
    for n, p in zip(uniq.tolist(), pieces.tolist()):
        piece_len = ceil_div(ceil_div(n, p), quantum) * quantum
        p = ceil_div(n, piece_len)
        rows_out.append(_pcu_piece(mode, dim_head, piece_len, decay) + (p,))
    table = np.array(rows_out, dtype=np.int64).reshape(-1, 11)
    npieces = table[:, 10]
    # Traffic: p pieces of piece_len (the last one may be up to p - 1 quanta shorter:
    # counted full, like its rounds).
    out = {k: npieces * table[:, i] for i, k in enumerate(("rows", "data", "acc", "cmds",
                                                           "regs"))}
    # reg, reads, blocks and iterations of the first (largest) pass, per_bank, rows
    shapes = np.column_stack([table[:, 5:9], -(-(heads_total * npieces) // hbm.banks),
                              table[:, 9]])
    # Rounds: one shape per (REG_WRITE, RESULT_READ) columns per bank and turnaround pattern
    # (from the program of the head's first pass: its blocks; the iterations only set the
    # JUMP count), vectorised per shape.
    out["cycles"] = np.zeros(len(uniq), dtype=np.int64)
    passes, where = np.unique(shapes[:, 2:4], axis=0, return_inverse=True)
    gaps = np.array([pcu_turnaround(hbm, unit, mode, int(b), int(i)) for b, i in passes],
                    dtype=np.int64).reshape(-1, 2)
    keys = np.column_stack([shapes[:, :2], gaps[np.ravel(where)]])
    for key in np.unique(keys, axis=0):
        sel = np.all(keys == key, axis=1)
        j = int(np.flatnonzero(sel)[0])
        reg, reads = int(key[0]), int(key[1])
        first_s, _ = round_shapes(hbm, unit, mode, reg, reg, reads,
                                  pass_shape=(int(shapes[j, 2]), int(shapes[j, 3])))
        cyc = round_cycles(hbm, first_s)
        out["cycles"][sel] = phase_cycles(hbm.timing, cyc, cyc, shapes[sel, 4], shapes[sel, 5],
                                          refresh=hbm.refresh,
                                          max_postponed=hbm.max_postponed_refreshes)
    units_per_pc = hbm.banks_per_pc // unit.banks_per_unit

    def per_length(values):                 # back to the shape of ``lengths`` (0-d: scalar)
        return np.reshape(values[inverse], shape)
    work = PhaseWork(rows=heads_total * per_length(out["rows"]),
                     subchunks=heads_total * per_length(out["data"]),
                     column_accesses=heads_total * per_length(out["acc"]),
                     comps=heads_total * per_length(out["cmds"]) / units_per_pc,
                     reg_writes=heads_total * per_length(out["regs"]))
    pieces_all = per_length(npieces)
    partials = pieces_all if mode == "attend" else np.ones_like(pieces_all)
    return Phase(time_s=per_length(out["cycles"]) / (hbm.clock_ghz * 1e9), work=work,
                 partials=partials, pieces=pieces_all)


# -- one entry point ----------------------------------------------------------------------

def phase(hbm: HbmSpec, unit: PimUnit, mode: str, batch: int, heads: int, dim_head: int,
          length, per_element_decay: bool = False) -> Phase:
    """A PIM phase of one layer on one GPU's memory.

    ``length`` is dim_state (state update) or the KV length(s) (score, attend; an array over
    the output steps). ``partials``: for COMP units the GPU sums ``ceil(dim_head / values
    per column)`` partial dot products per state column / score and one partial accumulator
    per chunk (attend); a PCU accumulates over dim_head itself, and its attend leaves one
    partial per piece.
    """
    if unit.is_pcu:
        return _pcu_phase(hbm, unit, mode, batch * heads, dim_head, length, per_element_decay)
    if mode == "state_update":
        groups, cpg = state_groups(hbm, unit, batch, heads, dim_head, length)
    else:
        groups, cpg = kv_groups(hbm, unit, batch, heads, dim_head, length)
    ph = _chunk_phase(hbm, unit, mode, groups, cpg)
    per_head = groups // (batch * heads)
    partials = np.asarray(cpg) if mode == "attend" else np.full(np.shape(cpg), per_head)
    return Phase(time_s=ph.time_s, work=ph.work, partials=partials, pieces=ph.pieces)
