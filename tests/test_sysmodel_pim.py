"""PIM timing: closed form vs the command simulator, and every timing rule on its log."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sysmodel import pim
from sysmodel.config import CONFIG_DIR
from sysmodel.hardware import MODES, REFRESH_RULES, load_hardware
from sysmodel.pim import RoundShape, phase_cycles, round_cycles, round_shapes
from sysmodel.pimsim import simulate_phase

HW = load_hardware(timing_files=(CONFIG_DIR / "spu_timing_defaults.yaml",))
A100 = HW.gpu("A100").memory
H100 = HW.gpu("H100").memory


def check_protocol(hbm, log, shapes, refresh="window", max_postponed=8):
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
        # COMPs at least tCCD_L (and the unit's interval) apart, plus the turnaround gaps.
        for i, (a, b) in enumerate(zip(comps, comps[1:]), start=1):
            gap = shape.gap if shape.gap_every and i % shape.gap_every == 0 else 0
            assert b.time - a.time >= max(t.tCCD_L, shape.comp_interval + gap)
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
        start = min(c.time for c in cmds)
        end = max([pre.time + t.tRP] + [c.time + t.burst for c in reads])
        if refresh == "window":
            # The whole round (incl. its precharge and reads) inside one refresh period.
            period = start // t.tREFI
            assert end <= (period + 1) * t.tREFI - t.tRFC
        prev_pre, prev_acts = pre, ra
    times = sorted(c.time for c in log if c.name != "REF")
    refs = sorted(c.time for c in log if c.name == "REF")
    for ref in refs:
        i = bisect.bisect_left(times, ref)
        assert i == len(times) or times[i] >= ref + t.tRFC
    if refresh == "postponed":
        # REF only with every bank closed: after the previous round's precharge + tRP.
        pres = sorted(c.time for c in log if c.name == "PRECHARGES")
        for ref in refs:
            before = [p for p in pres if p <= ref]
            assert not before or ref >= before[-1] + t.tRP
        # JEDEC: never more than max_postponed refreshes owed (at any command or REF).
        for tau in times + refs:
            issued = bisect.bisect_left(refs, tau)
            assert tau // t.tREFI - issued <= max_postponed
        for a, b in zip([0] + refs, refs):
            assert b - a <= (max_postponed + 1) * t.tREFI


def _shapes(hbm, unit, mode):
    """Round shapes of a unit; a PCU's with its plan's traffic (a 128 x 64 head)."""
    if not unit.is_pcu:
        return round_shapes(hbm, unit, mode)
    p = pim.pcu_plan(mode, 128, 64)
    reg, reads = -(-p.reg_write_columns // p.rows), -(-p.result_read_columns // p.rows)
    head = p.pass_plans[0]
    return round_shapes(hbm, unit, mode, reg + 1, reg, reads,
                        pass_shape=(head.blocks, head.iterations))


@pytest.mark.parametrize("refresh", REFRESH_RULES)
@pytest.mark.parametrize("hbm", [A100, H100], ids=["A100", "H100"])
@pytest.mark.parametrize("unit", list(HW.units), ids=list(HW.units))
@pytest.mark.parametrize("mode", MODES)
def test_closed_form_matches_simulator(hbm, unit, mode, refresh):
    first, rest = _shapes(hbm, HW.units[unit], mode)
    cf, cr = round_cycles(hbm, first), round_cycles(hbm, rest)
    # PCU rounds are 2-5x longer (and 4x the commands): 96 rounds already span 50+ refreshes.
    cases = ((1, 1), (3, 2), (5, 16), (2, 48)) + (() if HW.units[unit].is_pcu else ((1, 130),))
    for groups, cpg in cases:
        closed = int(phase_cycles(hbm.timing, cf, cr, groups, cpg, refresh=refresh))
        cycles, log = simulate_phase(hbm, first, rest, groups, cpg, refresh=refresh)
        assert abs(closed - cycles) <= 0.01 * cycles, (groups, cpg, closed, cycles)
        shapes = [first if i == 0 else rest for _ in range(groups) for i in range(cpg)]
        check_protocol(hbm, log, shapes, refresh)


@settings(max_examples=60, deadline=None)
@given(comps=st.integers(1, 300), interval=st.sampled_from([4, 8, 12, 16]),
       depth=st.integers(1, 6), wb=st.booleans(), regs_first=st.integers(0, 120),
       regs=st.integers(0, 60), reads=st.integers(0, 64), groups=st.integers(1, 4),
       cpg=st.integers(1, 24), gap_every=st.sampled_from([0, 1, 4, 8, 12, 16]),
       gap=st.integers(0, 40), refresh=st.sampled_from(REFRESH_RULES),
       max_postponed=st.integers(1, 8))
def test_random_rounds_agree_and_obey_rules(comps, interval, depth, wb, regs_first, regs,
                                            reads, groups, cpg, gap_every, gap, refresh,
                                            max_postponed):
    common = dict(comps=comps, comp_interval=interval, writeback_delay=(depth - 1) * 4,
                  result_delay=depth * 4, writes_back=wb, result_reads=reads,
                  gap_every=gap_every, gap=gap)
    first = RoundShape(reg_writes=max(regs_first, regs), **common)
    rest = RoundShape(reg_writes=regs, **common)
    cf, cr = round_cycles(A100, first), round_cycles(A100, rest)
    kw = dict(refresh=refresh, max_postponed=max_postponed)
    t = A100.timing
    limit = t.tREFI - t.tRFC if refresh == "window" else max_postponed * t.tREFI
    if max(cf, cr) > limit:
        with pytest.raises(ValueError):
            phase_cycles(t, cf, cr, groups, cpg, **kw)
        return
    closed = int(phase_cycles(t, cf, cr, groups, cpg, **kw))
    cycles, log = simulate_phase(A100, first, rest, groups, cpg, **kw)
    assert abs(closed - cycles) <= 0.01 * cycles
    check_protocol(A100, log, [first if i == 0 else rest for _ in range(groups)
                               for i in range(cpg)], refresh, max_postponed)


@settings(max_examples=8, deadline=None)
@given(length=st.integers(200, 3700), groups=st.integers(1, 3), cpg=st.integers(1, 60))
def test_postponed_refresh_long_rounds_agree(length, groups, cpg):
    """Rounds near a whole tREFI, many refreshes: the closed form is the simulator's."""
    extra = (length - 436) // 4
    shape = RoundShape(comps=64 + max(0, extra), comp_interval=4, writeback_delay=12,
                       result_delay=16, writes_back=True, reg_writes=16, result_reads=32)
    c = round_cycles(A100, shape)
    closed = int(phase_cycles(A100.timing, c, c, groups, cpg, refresh="postponed"))
    cycles, log = simulate_phase(A100, shape, shape, groups, cpg, refresh="postponed")
    assert abs(closed - cycles) <= 0.01 * cycles
    check_protocol(A100, log, [shape] * (groups * cpg), "postponed")


def test_postponed_refresh_costs_trfc_per_trefi():
    """A controller's refresh costs about tRFC / tREFI; the window rule idles much more."""
    t = A100.timing
    s = 100 * 436                                  # the Pimba round, by hand below
    # R = floor((S_{n-1} - tREFI) / (tREFI - tRFC)) + 1 = floor((43164 - 3900) / 3640) + 1.
    assert int(phase_cycles(t, 436, 436, 1, 100, refresh="postponed")) == s + 11 * t.tRFC
    for length in (436, 1180, 2180, 3600):
        n = 4000
        total = int(phase_cycles(t, length, length, 1, n, refresh="postponed"))
        overhead = 1 - n * length / total
        assert abs(overhead - t.tRFC / t.tREFI) < 0.002, (length, overhead)
    # window: 2180-cycle rounds, one per 3640-cycle window: 44 % of the time idle or REF.
    window = int(phase_cycles(t, 2180, 2180, 1, 100, refresh="window"))
    assert 1 - 100 * 2180 / window > 0.4
    with pytest.raises(ValueError, match="more than 8 refreshes"):
        phase_cycles(t, 8 * t.tREFI + 1, 10, 1, 1, refresh="postponed")
    with pytest.raises(ValueError, match="more than 2 refreshes"):
        simulate_phase(A100, RoundShape(700, 16, 0, 4, False, 0, 0),
                       RoundShape(700, 16, 0, 4, False, 0, 0), 1, 2, refresh="postponed",
                       max_postponed=2)
    with pytest.raises(ValueError, match="allowed: postponed, window"):
        phase_cycles(t, 436, 436, 1, 1, refresh="sometimes")


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
    _, rest = round_shapes(A100, HW.units["timemux_fp16_naive"], "state_update")
    # 64 COMPs of 4 SPU cycles (16 bus cycles): last COMP at 104 + 63 x 16 = 1112; depth 1:
    # write-back at once, precharge at 1112 + tWR 16 = 1128, closed at 1142; results at
    # 1112 + 4, 32 reads -> 1116 + 64 = 1180.
    assert round_cycles(A100, rest) == 1180


def test_rounds_never_cross_refresh_and_pack_greedily():
    t = A100.timing
    avail = t.tREFI - t.tRFC                      # 3640 cycles per period
    w = dict(refresh="window")
    assert int(phase_cycles(t, 436, 436, 1, 8, **w)) == 8 * 436            # 3488 <= 3640
    assert int(phase_cycles(t, 436, 436, 1, 9, **w)) == t.tREFI + 436      # the 9th waits
    assert int(phase_cycles(t, 1000, 1000, 7, 1, **w)) == 2 * t.tREFI + 1000
    # Two lengths: f r f r ... with f + r + f > avail -> two rounds per period.
    assert 1236 + 1180 + 1236 > avail >= 1236 + 1180
    assert int(phase_cycles(t, 1236, 1180, 3, 2, **w)) == 2 * t.tREFI + 1236 + 1180
    with pytest.raises(ValueError, match="does not fit between refreshes"):
        phase_cycles(t, avail + 1, 10, 1, 1, **w)


@pytest.mark.parametrize("dealing", ["groups", "rows"])
def test_state_update_time_linear_in_state_bytes(dealing):
    unit = replace(HW.units["pimba_spu"], dealing=dealing)
    t = A100.timing
    base = None
    for k in (1, 2, 4, 8):
        # k x the state: k x the chunk groups (k x 1280 banks x 7 groups of 2 rows).
        groups, cpg = pim.state_groups(A100, unit, 128 * k, 70, 64, 64)
        cycles = float(pim.phase_time_s(A100, unit, "state_update", groups, cpg)) * 1.512e9
        base = base or cycles
        assert abs(cycles - k * base) <= k * t.tREFI * 0.01 + t.tREFI
    # Whole refresh periods: exactly linear.
    one = int(phase_cycles(t, 436, 436, 8, 1, refresh="window"))
    assert int(phase_cycles(t, 436, 436, 80, 1, refresh="window")) == 9 * t.tREFI + one


def test_mx8_halves_rows_of_fp16():
    pimba, tm = HW.units["pimba_spu"], HW.units["timemux_fp16_naive"]
    g8, c8 = pim.state_groups(A100, pimba, 32, 80, 128, 64)
    g16, c16 = pim.state_groups(A100, tm, 32, 80, 128, 64)
    assert (g8 * c8 * 2, c8) == (g16 * c16, c16) == (2 * 32 * 80 * 4 * 2, 2)
    # Each row holds 1 KB: rows x 1 KB = the state's bytes.
    assert g8 * c8 * 1024 == 32 * 80 * 128 * 64 * 1


def test_phase_work_counts():
    unit = replace(HW.units["pimba_spu"], dealing="groups")
    w = pim.phase_work(A100, unit, "state_update", 10, 3)
    assert int(w.rows) == 30 and int(w.subchunks) == 30 * 32
    # reads + write-backs inside; REG_WRITE: (3 + 1) at group start, 1 otherwise; 2 reads back.
    assert int(w.column_accesses) == 2 * 960 + 10 * 4 + 20 * 1 + 30 * 2
    assert float(w.comps) == 30 * 64 / 16


@pytest.mark.parametrize("refresh", REFRESH_RULES)
def test_vectorised_phase_matches_scalar(refresh):
    t = A100.timing
    cpg = np.arange(1, 200)
    vec = phase_cycles(t, 460, 436, 3, cpg, refresh=refresh)
    assert [int(v) for v in vec] == [int(phase_cycles(t, 460, 436, 3, int(c), refresh=refresh))
                                     for c in cpg]
    if refresh == "window":
        # 3 x (f r r) = 3996 > 3640: the ninth round waits for the next window.
        assert list(itertools.islice(vec, 3)) == [3 * 460, 3 * 460 + 3 * 436, t.tREFI + 436]
