"""PIM timing, closed form: pseudo-channel command rounds mapped onto the whole memory.

A *round* is what one pseudo-channel (PC) does with one open row in each of its banks:

1. ``ACT4`` x (banks / 4). An ACT4 opens four banks, so it fills the four-activation tFAW
   window by itself: consecutive ACT4s are ``max(tFAW, tRRD_S)`` apart.
2. ``REG_WRITE`` of the operands, one 32-byte column each, back to back on the PC bus
   (``tCCD_S`` apart, a ``burst`` long) from the start of the round -- hidden in the gaps between
   ACT4s unless there are more than fit.
3. ``COMP`` x n, ``spu_cycles_per_comp * tCCD_L`` apart; the first one ``tRCD`` after the last
   ACT4 and after the last REG_WRITE burst. The last COMP's write-back comes
   ``(pipeline_depth - 1) * tCCD_L`` later, its results ``pipeline_depth * tCCD_L`` later.
4. ``PRECHARGES`` once ``tRAS`` (from the last ACT4), ``tRTP_L`` (from the last COMP read) and
   ``tWR`` (from the last write-back) have passed; the banks are closed ``tRP`` later.
   ``RESULT_READ``s (one column each, on the bus) start when the results are ready and overlap
   the precharge. The round ends when both are done.

Refresh: time is cut into refresh periods of ``tREFI`` cycles, each ending with an all-bank
refresh of ``tRFC``; a round never crosses one, so it waits for the next period when it would.
A PIM phase starts at the beginning of a period.

Mapping: the state (or KV cache) of a layer is cut into chunk groups (one head, one dim_head
range of one request, all state columns / tokens); whole groups are dealt to the banks of the
memory, so the busiest bank holds ``ceil(groups / banks)`` groups of ``chunks_per_group``
rows, and every PC runs that many rounds in lock step.

:mod:`sysmodel.pimsim` schedules the same rounds command by command; the tests hold both to
within 1 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hardware import HbmSpec, HbmTiming, PimUnit, ceil_div


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
    """

    comps: int
    comp_interval: int
    writeback_delay: int
    result_delay: int
    writes_back: bool
    reg_writes: int
    result_reads: int


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
    last_comp = first_comp + (shape.comps - 1) * shape.comp_interval
    precharge = max(last_act + t.tRAS, last_comp + t.tRTP_L)
    if shape.writes_back:
        precharge = max(precharge, last_comp + shape.writeback_delay + t.tWR)
    end = max(precharge + t.tRP, t.tRC, last_act + t.tFAW)
    if shape.result_reads:
        reads_start = last_comp + shape.result_delay
        end = max(end, reads_start + (shape.result_reads - 1) * t.tCCD_S + t.burst)
    return end


def phase_cycles(t: HbmTiming, first: int, rest: int, groups: np.ndarray | int,
                 chunks_per_group: np.ndarray | int) -> np.ndarray:
    """Cycles of a PIM phase: ``groups`` chunk groups of ``chunks_per_group`` rounds each.

    The first round of a group lasts ``first`` cycles (it also loads the group's shared
    operands), the others ``rest``. Refresh as in the module docstring. Vectorised over
    ``groups`` and ``chunks_per_group``.
    """
    groups = np.asarray(groups, dtype=np.int64)
    cpg = np.asarray(chunks_per_group, dtype=np.int64)
    groups, cpg = np.broadcast_arrays(groups, cpg)
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
        Sub-chunks processed (COMPs of one unit).
    column_accesses : int
        Column reads and writes inside the banks plus REG_WRITE and RESULT_READ columns.
    comps : float
        COMP commands (each drives every unit of one pseudo-channel).
    """

    rows: int
    subchunks: int
    column_accesses: int
    comps: float


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


def round_shapes(hbm: HbmSpec, unit: PimUnit, mode: str) -> tuple[RoundShape, RoundShape]:
    """Shapes of a group's first round and of its other rounds for ``mode``."""
    tm = unit.mode(mode)
    t = hbm.timing
    start, steady, reads = _mode_counts(hbm, unit, mode, unit.format.bits_per_value)
    banks = hbm.banks_per_pc
    common = dict(comps=tm.comps_per_row_pair, comp_interval=tm.spu_cycles_per_comp * t.tCCD_L,
                  writeback_delay=(tm.pipeline_depth - 1) * t.tCCD_L,
                  result_delay=tm.pipeline_depth * t.tCCD_L,
                  writes_back=(mode == "state_update"), result_reads=reads * banks)
    return (RoundShape(reg_writes=start * banks, **common),
            RoundShape(reg_writes=steady * banks, **common))


def layout(hbm: HbmSpec, unit: PimUnit, groups, chunks_per_group):
    """Rounds of the busiest bank: (groups per bank, chunks per group), vectorised."""
    groups = np.asarray(groups, dtype=np.int64)
    return -(-groups // hbm.banks), np.asarray(chunks_per_group, dtype=np.int64)


def phase_time_s(hbm: HbmSpec, unit: PimUnit, mode: str, groups, chunks_per_group) -> np.ndarray:
    """Seconds of a PIM phase over ``groups`` chunk groups (whole memory), vectorised."""
    first, rest = (round_cycles(hbm, s) for s in round_shapes(hbm, unit, mode))
    per_bank, cpg = layout(hbm, unit, groups, chunks_per_group)
    cycles = phase_cycles(hbm.timing, first, rest, per_bank, cpg)
    return cycles / (hbm.clock_ghz * 1e9)


def phase_work(hbm: HbmSpec, unit: PimUnit, mode: str, groups, chunks_per_group) -> "PhaseWork":
    """Rows, sub-chunks, column accesses and COMP commands of a phase (whole memory)."""
    groups = np.asarray(groups, dtype=np.int64)
    cpg = np.asarray(chunks_per_group, dtype=np.int64)
    rows = groups * cpg
    sub = rows * hbm.columns_per_row
    start, steady, reads = _mode_counts(hbm, unit, mode, unit.format.bits_per_value)
    inside = sub * (2 if mode == "state_update" else 1)
    io = groups * start + (rows - groups) * steady + rows * reads
    # A COMP command drives every unit of a pseudo-channel: one per comps_per_row_pair for
    # each row of every bank of the PC.
    comps = rows * unit.mode(mode).comps_per_row_pair / hbm.banks_per_pc
    return PhaseWork(rows=rows, subchunks=sub, column_accesses=inside + io, comps=comps)


def state_groups(hbm: HbmSpec, unit: PimUnit, batch: int, heads: int, dim_head: int,
                 dim_state: int) -> tuple[int, int]:
    """Chunk groups and chunks per group of one layer's states (per GPU)."""
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
