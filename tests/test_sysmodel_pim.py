"""PIM timing: closed form vs the command simulator, and every timing rule on its log."""

from __future__ import annotations

import bisect
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sysmodel import pim
from sysmodel.config import CONFIG_DIR
from sysmodel.hardware import MODES, load_hardware
from sysmodel.pim import RoundShape, phase_cycles, round_cycles, round_shapes
from sysmodel.pimsim import simulate_phase

HW = load_hardware(timing_files=(CONFIG_DIR / "spu_timing_defaults.yaml",))
A100 = HW.gpu("A100").memory
H100 = HW.gpu("H100").memory


def check_protocol(hbm, log, shapes):
    """Assert every DRAM/PIM timing rule on a simulator command log."""
    t = hbm.timing
    acts = [c for c in log if c.name == "ACT4"]
    # tFAW: at most four bank activations in any tFAW window; tRRD between ACT commands.
    for i, a in enumerate(acts):
        window = [b for b in acts[max(0, i - 4):i + 1] if a.time - t.tFAW < b.time]
        assert sum(len(b.banks) for b in window) <= 4
    for a, b in zip(acts, acts[1:]):
        assert b.time - a.time >= t.tRRD_S
    by_round = {}
    for c in log:
        by_round.setdefault(c.round, []).append(c)
    prev_pre = None
    prev_acts = None
    for r, cmds in sorted((k, v) for k, v in by_round.items() if k >= 0):
        shape = shapes[r]
        ra = [c for c in cmds if c.name == "ACT4"]
        comps = [c for c in cmds if c.name == "COMP"]
        wbs = [c for c in cmds if c.name == "WRITEBACK"]
        regs = [c for c in cmds if c.name == "REG_WRITE"]
        reads = [c for c in cmds if c.name == "RESULT_READ"]
        (pre,) = [c for c in cmds if c.name == "PRECHARGES"]
        assert len(ra) == hbm.banks_per_pc // 4 and len(comps) == shape.comps
        assert len(regs) == shape.reg_writes and len(reads) == shape.result_reads
        assert sorted(b for a in ra for b in a.banks) == list(range(hbm.banks_per_pc))
        # tRCD: every bank open before the first COMP; REG_WRITEs done before it too.
        assert comps[0].time >= max(a.time for a in ra) + t.tRCD
        if regs:
            assert comps[0].time >= regs[-1].time + t.burst
        # COMPs at least tCCD_L (and the unit's interval) apart.
        for a, b in zip(comps, comps[1:]):
            assert b.time - a.time >= max(t.tCCD_L, shape.comp_interval)
        # PRECHARGES after tRAS, tRTP (last read) and tWR (last write-back).
        assert pre.time >= max(a.time for a in ra) + t.tRAS
        assert pre.time >= comps[-1].time + t.tRTP_L
        if shape.writes_back:
            assert len(wbs) == shape.comps and pre.time >= wbs[-1].time + t.tWR
        # RESULT_READ after the results exist; bus bursts never overlap.
        if reads:
            assert reads[0].time >= comps[-1].time + shape.result_delay
        bus = sorted(c.time for c in regs + reads)
        for a, b in zip(bus, bus[1:]):
            assert b - a >= max(t.burst, t.tCCD_S)
        # tRP before re-activating, tRC between activations of a bank.
        if prev_pre is not None:
            assert min(a.time for a in ra) >= prev_pre.time + t.tRP
            for a, b in zip(prev_acts, ra):
                assert b.time - a.time >= t.tRC
        # The whole round (incl. its precharge and reads) inside one refresh period.
        start = min(c.time for c in cmds)
        end = max([pre.time + t.tRP] + [c.time + t.burst for c in reads])
        period = start // t.tREFI
        assert end <= (period + 1) * t.tREFI - t.tRFC
        prev_pre, prev_acts = pre, ra
    times = sorted(c.time for c in log if c.name != "REF")
    for ref in (c for c in log if c.name == "REF"):
        i = bisect.bisect_left(times, ref.time)
        assert i == len(times) or times[i] >= ref.time + t.tRFC


@pytest.mark.parametrize("hbm", [A100, H100], ids=["A100", "H100"])
@pytest.mark.parametrize("unit", list(HW.units), ids=list(HW.units))
@pytest.mark.parametrize("mode", MODES)
def test_closed_form_matches_simulator(hbm, unit, mode):
    first, rest = round_shapes(hbm, HW.units[unit], mode)
    cf, cr = round_cycles(hbm, first), round_cycles(hbm, rest)
    for groups, cpg in ((1, 1), (3, 2), (5, 16), (2, 48), (1, 130)):
        closed = int(phase_cycles(hbm.timing, cf, cr, groups, cpg))
        cycles, log = simulate_phase(hbm, first, rest, groups, cpg)
        assert abs(closed - cycles) <= 0.01 * cycles, (groups, cpg, closed, cycles)
        shapes = [first if i == 0 else rest for _ in range(groups) for i in range(cpg)]
        check_protocol(hbm, log, shapes)


@settings(max_examples=40, deadline=None)
@given(comps=st.integers(1, 300), interval=st.sampled_from([4, 8, 12, 16]),
       depth=st.integers(1, 6), wb=st.booleans(), regs_first=st.integers(0, 120),
       regs=st.integers(0, 60), reads=st.integers(0, 64), groups=st.integers(1, 4),
       cpg=st.integers(1, 24))
def test_random_rounds_agree_and_obey_rules(comps, interval, depth, wb, regs_first, regs,
                                            reads, groups, cpg):
    common = dict(comps=comps, comp_interval=interval, writeback_delay=(depth - 1) * 4,
                  result_delay=depth * 4, writes_back=wb, result_reads=reads)
    first = RoundShape(reg_writes=max(regs_first, regs), **common)
    rest = RoundShape(reg_writes=regs, **common)
    cf, cr = round_cycles(A100, first), round_cycles(A100, rest)
    if max(cf, cr) > A100.timing.tREFI - A100.timing.tRFC:
        with pytest.raises(ValueError):
            phase_cycles(A100.timing, cf, cr, groups, cpg)
        return
    closed = int(phase_cycles(A100.timing, cf, cr, groups, cpg))
    cycles, log = simulate_phase(A100, first, rest, groups, cpg)
    assert abs(closed - cycles) <= 0.01 * cycles
    check_protocol(A100, log, [first if i == 0 else rest for _ in range(groups)
                               for i in range(cpg)])


def test_pimba_round_by_hand():
    """HBM2E, Pimba SPU, state update: the brief's numbers worked through by hand."""
    first, rest = round_shapes(A100, HW.units["pimba_spu"], "state_update")
    # 16 banks: v per bank (1 column of MX8), plus d, q, k per bank at a group's start;
    # 2 columns of fp16 partial dot products back per bank.
    assert (first.reg_writes, rest.reg_writes, rest.result_reads) == (64, 16, 32)
    # ACT4s at 0, 30, 60, 90 (tFAW); first COMP at 90 + tRCD 14 = 104 (REG_WRITEs hidden:
    # 16 x 2 = 32 cycles); 64 COMPs every tCCD_L = 4 -> last at 356; results at 356 + 4 x 4;
    # 32 RESULT_READs of 2 cycles -> 372 + 64 = 436. Precharge ends earlier: 356 + 12 + tWR 16
    # = 384, + tRP 14 = 398.
    assert round_cycles(A100, rest) == 436
    # A group's first round: 64 REG_WRITEs take 128 cycles > 104, delaying the COMPs by 24.
    assert round_cycles(A100, first) == 460


def test_time_multiplexed_round_by_hand():
    _, rest = round_shapes(A100, HW.units["hbm_pim_tm_fp16"], "state_update")
    # 64 COMPs of 4 SPU cycles (16 bus cycles): last COMP at 104 + 63 x 16 = 1112; depth 1:
    # write-back at once, precharge at 1112 + tWR 16 = 1128, closed at 1142; results at
    # 1112 + 4, 32 reads -> 1116 + 64 = 1180.
    assert round_cycles(A100, rest) == 1180


def test_rounds_never_cross_refresh_and_pack_greedily():
    t = A100.timing
    avail = t.tREFI - t.tRFC                      # 3640 cycles per period
    assert int(phase_cycles(t, 436, 436, 1, 8)) == 8 * 436            # 3488 <= 3640
    assert int(phase_cycles(t, 436, 436, 1, 9)) == t.tREFI + 436      # the 9th waits
    assert int(phase_cycles(t, 1000, 1000, 7, 1)) == 2 * t.tREFI + 1000
    # Two lengths: f r f r ... with f + r + f > avail -> two rounds per period.
    assert 1236 + 1180 + 1236 > avail >= 1236 + 1180
    assert int(phase_cycles(t, 1236, 1180, 3, 2)) == 2 * t.tREFI + 1236 + 1180
    with pytest.raises(ValueError, match="does not fit between refreshes"):
        phase_cycles(t, avail + 1, 10, 1, 1)


def test_state_update_time_linear_in_state_bytes():
    unit = HW.units["pimba_spu"]
    t = A100.timing
    base = None
    for k in (1, 2, 4, 8):
        # k x the state: k x the chunk groups (k x 1280 banks x 7 groups of 2 rows).
        groups, cpg = pim.state_groups(A100, unit, 128 * k, 70, 64, 64)
        cycles = float(pim.phase_time_s(A100, unit, "state_update", groups, cpg)) * 1.512e9
        base = base or cycles
        assert abs(cycles - k * base) <= k * t.tREFI * 0.01 + t.tREFI
    # Whole refresh periods: exactly linear.
    one = int(phase_cycles(t, 436, 436, 8, 1))
    assert int(phase_cycles(t, 436, 436, 80, 1)) == 9 * t.tREFI + one


def test_mx8_halves_rows_of_fp16():
    pimba, tm = HW.units["pimba_spu"], HW.units["hbm_pim_tm_fp16"]
    g8, c8 = pim.state_groups(A100, pimba, 32, 80, 128, 64)
    g16, c16 = pim.state_groups(A100, tm, 32, 80, 128, 64)
    assert (g8 * c8 * 2, c8) == (g16 * c16, c16) == (2 * 32 * 80 * 4 * 2, 2)
    # Each row holds 1 KB: rows x 1 KB = the state's bytes.
    assert g8 * c8 * 1024 == 32 * 80 * 128 * 64 * 1


def test_phase_work_counts():
    unit = HW.units["pimba_spu"]
    w = pim.phase_work(A100, unit, "state_update", 10, 3)
    assert int(w.rows) == 30 and int(w.subchunks) == 30 * 32
    # reads + write-backs inside; REG_WRITE: (3 + 1) at group start, 1 otherwise; 2 reads back.
    assert int(w.column_accesses) == 2 * 960 + 10 * 4 + 20 * 1 + 30 * 2
    assert float(w.comps) == 30 * 64 / 16


def test_vectorised_phase_matches_scalar():
    t = A100.timing
    cpg = np.arange(1, 200)
    vec = phase_cycles(t, 436, 436, 3, cpg)
    assert [int(v) for v in vec] == [int(phase_cycles(t, 436, 436, 3, int(c))) for c in cpg]
    assert list(itertools.islice(vec, 3)) == [3 * 436, 6 * 436, t.tREFI + 436]
