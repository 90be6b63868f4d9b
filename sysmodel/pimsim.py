"""Event-driven command simulator of one pseudo-channel running PIM rounds.

It issues every command of every round (ACT4, REG_WRITE, COMP, write-back, PRECHARGES,
RESULT_READ, REF) at the earliest cycle allowed by per-bank state, the rolling tFAW window,
the data bus, the COMP spacing (incl. a PCU program's read/write turnaround gaps) and the
refresh rule (``postponed``: owed REFs at each round boundary; ``window``: no round crosses a
tREFI window's refresh), and records a command log. It is the reference the
closed form of :mod:`sysmodel.pim` is tested against (and the log is what the protocol checks
in the tests read); sweeps use the closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .hardware import HbmSpec
from .pim import RoundShape


@dataclass(frozen=True)
class Command:
    """One logged command: issue cycle, name, banks it touches, round index."""

    time: int
    name: str
    banks: tuple
    round: int


@dataclass
class _Bank:
    act: int = -10**9          # last ACT
    ready: int = 0             # precharged from this cycle on
    last_read: int = -10**9
    last_write: int = -10**9


@dataclass
class _State:
    banks: list
    acts: list = field(default_factory=list)      # (time, banks) of activations, for tFAW
    last_act_cmd: int = -10**9
    last_act_group: int = -1
    bus_free: int = 0                              # data bus free from this cycle
    last_column: int = -10**9                      # last column command on the bus

    def copy(self) -> "_State":
        return _State([_Bank(**vars(b)) for b in self.banks], list(self.acts),
                      self.last_act_cmd, self.last_act_group, self.bus_free, self.last_column)


class PseudoChannelSim:
    """Schedules rounds on one pseudo-channel.

    Parameters
    ----------
    hbm : HbmSpec
        Memory organisation and timing.
    """

    def __init__(self, hbm: HbmSpec, refresh: str | None = None,
                 max_postponed: int | None = None):
        self.hbm = hbm
        self.t = hbm.timing
        self.refresh = hbm.refresh if refresh is None else refresh
        self.max_postponed = (hbm.max_postponed_refreshes if max_postponed is None
                              else max_postponed)
        if self.refresh not in ("postponed", "window"):
            raise ValueError(f"unknown refresh rule {self.refresh!r} "
                             "(allowed: postponed, window)")
        self.state = _State([_Bank() for _ in range(hbm.banks_per_pc)])
        self.log: list[Command] = []
        self.now = 0
        self.period = 0
        self.refreshes = 0

    # -- constraint helpers -------------------------------------------------------------
    def _faw_ok(self, st: _State, time: int, count: int) -> int:
        """Earliest cycle >= time at which ``count`` more activations fit the tFAW window."""
        while True:
            window = [(a, n) for a, n in st.acts if a > time - self.t.tFAW]
            if sum(n for _, n in window) + count <= 4:
                return time
            time = min(a for a, _ in window) + self.t.tFAW

    def _schedule_round(self, st: _State, start: int, shape: RoundShape, index: int):
        t, log = self.t, []
        nb = self.hbm.banks_per_bank_group
        groups = self.hbm.bank_groups_per_pc
        # ACT4 per bank group.
        for g in range(groups):
            banks = tuple(range(g * nb, (g + 1) * nb))
            rrd = t.tRRD_L if g == st.last_act_group else t.tRRD_S
            time = max(start, st.last_act_cmd + rrd,
                       *(st.banks[b].ready for b in banks),
                       *(st.banks[b].act + t.tRC for b in banks))
            time = self._faw_ok(st, time, len(banks))
            st.acts.append((time, len(banks)))
            st.last_act_cmd, st.last_act_group = time, g
            for b in banks:
                st.banks[b].act = time
            log.append(Command(time, "ACT4", banks, index))
        # REG_WRITEs on the data bus from the start of the round.
        reg_done = start
        for _ in range(shape.reg_writes):
            time = max(start, st.bus_free, st.last_column + t.tCCD_S)
            st.bus_free, st.last_column = time + t.burst, time
            reg_done = time + t.burst
            log.append(Command(time, "REG_WRITE", (), index))
        # COMPs.
        all_banks = tuple(range(len(st.banks)))
        time = max(reg_done, *(b.act + t.tRCD for b in st.banks))
        last_comp = None
        for i in range(shape.comps):
            if last_comp is not None:
                gap = shape.gap if shape.gap_every and i % shape.gap_every == 0 else 0
                time = max(time, last_comp + shape.comp_interval + gap, last_comp + t.tCCD_L)
            for b in st.banks:
                b.last_read = time
                if shape.writes_back:
                    b.last_write = time + shape.writeback_delay
            log.append(Command(time, "COMP", all_banks, index))
            if shape.writes_back:
                log.append(Command(time + shape.writeback_delay, "WRITEBACK", all_banks, index))
            last_comp = time
        # PRECHARGES.
        pre = max(max(b.act + t.tRAS, b.last_read + t.tRTP_L, b.last_write + t.tWR)
                  for b in st.banks)
        for b in st.banks:
            b.ready = pre + t.tRP
        log.append(Command(pre, "PRECHARGES", all_banks, index))
        end = pre + t.tRP
        # RESULT_READs.
        ready = last_comp + shape.result_delay
        for _ in range(shape.result_reads):
            time = max(ready, st.bus_free, st.last_column + t.tCCD_S)
            st.bus_free, st.last_column = time + t.burst, time
            log.append(Command(time, "RESULT_READ", (), index))
        end = max(end, st.bus_free)
        # The next round may not start before tRC / tFAW allow its first ACT4 either; it waits
        # in _schedule_round, so the round's own end is what is returned.
        return end, log

    # -- public --------------------------------------------------------------------------
    def _issue_due_refreshes(self) -> None:
        """``postponed`` rule: at a round boundary, issue every REF due by now."""
        t = self.t
        while (self.refreshes + 1) * t.tREFI <= self.now:
            ref_time = max(self.now, *(b.ready for b in self.state.banks))
            self.log.append(Command(ref_time, "REF", tuple(range(len(self.state.banks))), -1))
            self.refreshes += 1
            self.now = ref_time + t.tRFC
            for b in self.state.banks:
                b.ready = max(b.ready, self.now)

    def run(self, shapes) -> int:
        """Run rounds back to back; return the cycle at which the last one ends."""
        if self.refresh == "postponed":
            return self._run_postponed(shapes)
        t = self.t
        for index, shape in enumerate(shapes):
            trial = self.state.copy()
            refresh_at = (self.period + 1) * t.tREFI - t.tRFC
            end, log = self._schedule_round(trial, self.now, shape, index)
            if end > refresh_at:
                ref_time = max(refresh_at, self.now)
                self.log.append(Command(ref_time, "REF", tuple(range(len(trial.banks))), -1))
                self.period += 1
                self.now = self.period * t.tREFI
                for b in self.state.banks:
                    b.ready = max(b.ready, self.now)
                trial = self.state.copy()
                end, log = self._schedule_round(trial, self.now, shape, index)
                if end > (self.period + 1) * t.tREFI - t.tRFC:
                    raise ValueError("a round does not fit between two refreshes")
            self.state = trial
            self.log.extend(log)
            self.now = end
        return self.now

    def _run_postponed(self, shapes) -> int:
        limit = self.max_postponed * self.t.tREFI
        for index, shape in enumerate(shapes):
            if index:
                self._issue_due_refreshes()
            start = self.now
            end, log = self._schedule_round(self.state, start, shape, index)
            if end - start > limit:
                raise ValueError(f"a round of {end - start} cycles would owe more than "
                                 f"{self.max_postponed} refreshes")
            self.log.extend(log)
            self.now = end
        return self.now


def simulate_phase(hbm: HbmSpec, first: RoundShape, rest: RoundShape, groups: int,
                   chunks_per_group: int, refresh: str | None = None,
                   max_postponed: int | None = None) -> tuple[int, list]:
    """Simulate ``groups`` chunk groups of ``chunks_per_group`` rounds on one PC.

    Returns
    -------
    cycles : int
        End of the last round.
    log : list of Command
        Every command issued.
    """
    sim = PseudoChannelSim(hbm, refresh, max_postponed)
    shapes = [first if i == 0 else rest for _ in range(groups) for i in range(chunks_per_group)]
    cycles = sim.run(shapes)
    return cycles, sim.log
