"""The State-update Processing Unit (:class:`Spu`): one MX8 SPE shared by two DRAM banks.

Full description, timing diagrams and the reasons behind each decision: ``docs/spu.md``.

The SPU runs at the SPU clock (one tCCD_L). Its pipeline advances one *iteration* on every
accepted COMP and holds between COMPs (gaps for refresh, register writes, ...), except after a
COMP marked *last* (the final COMP of a row pair), after which it drains by itself. Every COMP
reads a fresh sub-chunk from one bank, alternating A, B, A, B, ...; the state-update write-back
of the sub-chunk read ``read_to_write`` iterations earlier goes to the other bank, because
``read_to_write`` is odd::

    iteration  n      n+1 .. n+3    n+4 .. n+7      n+8            n+9            n+11
    stage      F      M (MxMul x2)  A (MxAdd)       W | D (MxDot)  write-back     result reg
               fetch  decay, outer  decay + outer   ...            bank(n mod 2)  partial

Stage ``F`` registers the column read in the COMP cycle; ``M`` and ``A`` are the arithmetic
units (:class:`hw.mx_mul.MxMul`, :class:`hw.mx_add.MxAdd`, :class:`hw.mx_dot.MxDot`) used as
black boxes with their own ``latency``, clock-enabled by the iteration; ``W`` is a write-back
register inserted only when it is needed to make ``read_to_write`` odd (with the current units
``1 + 3 + 4 = 8`` is even, so ``W`` is there and ``read_to_write = 9``).
Each stage register is one ``Signal`` of its stage's layout (:mod:`hw.spu_stages`: the
operation's tag, the data the next stage reads, the copies of the bank and column selects).

``fused=True`` (unit ``spu_mx8_fused``): ``M`` and ``A`` are one fused multiply-add
(:class:`hw.mx_fma.MxFma`, one rounding, ``X``, 5 stages) and there is no multiplier or adder
besides it; ``1 + 5 = 6`` is even, so ``W`` stays and ``read_to_write = 7``. Attend goes
through the same unit (``P + 1 * V * score``, the fold ``P_0 + 1 * P_k * 1``) with
:data:`quant.constants.ATTEND_PARTIALS_FUSED` partials per bank (docs/spu.md section 8).

Modes (register MODE): state update (decay and outer product, add, write-back, dot with q),
attention score (dot of q with each key sub-chunk; no multipliers, no write-back) and attention
attend (score times value sub-chunk on the outer-product multiplier, accumulated by the adder
in :func:`quant.constants.attend_partials` interleaved partial sums per bank, column ``c`` into
partial ``c mod P``, so that the adder loop covers its latency at one COMP per iteration; after
the last COMP of a row pair the partials of each bank are folded into partial 0 in the drain,
in the order :func:`quant.spe.attention_attend` specifies).
"""

from __future__ import annotations

import functools
import math
import operator

from amaranth.hdl import C, Cat, EnableInserter, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


from quant.constants import (ADDR_BITS, ATTEND_ROW, BANKS, GROUP, MODES, ONE_EXP, ONE_MAG, Mode,
                             Reg, attend_partials)

from .export import register_unit
from .lfsr import check_rbits, check_site_seeds
from .mx8_layout import mx_group_scalar, mx_scalar_layout, mx_subchunk_layout
from .mx_add import MxAdd
from .mx_dot import MxDot
from .mx_fma import MxFma
from .mx_mul import MxMul
from .spu_bank import COLUMN_BITS, COLUMNS, bank_port, mux_tree
from .spu_protocol import (Cmd, addr_layout, comp_addr, data_layout, mode_word, reg_addr,
                           result_addr)
from .spu_stages import (COL_COPIES, SELECT_COPIES, add_stage_layout, dot_stage_layout,
                         fetch_stage_layout, fma_stage_layout, mul_stage_layout, tag_layout,
                         writeback_stage_layout)
from .sround import check_renorm

__all__ = ["Cmd", "Reg", "Mode", "MODES", "BANKS", "Spu", "reg_addr", "comp_addr",
           "result_addr", "mode_word", "SELECT_COPIES", "COL_COPIES"]

#: Operand registers that attend mode does not read; they hold the bank's attend partials
#: (partial k in ``ATTEND_PARTIAL_REGS[k]``), so the partials cost no storage of their own.
ATTEND_PARTIAL_REGS = (Reg.D, Reg.K, Reg.Q)


class Spu(wiring.Component):
    """Pipelined MX8 State-update Processing Unit for a pair of banks.

    Parameters
    ----------
    rbits : int
        Random bits of stochastic rounding (1..8).
    renorm : {"lod", "fixed"}
        Renormalization policy of the multipliers and the adder.
    seeds : dict, optional
        Reset values of the three site generators (``mul_decay``, ``mul_outer``, ``add``);
        default :data:`quant.constants.DEFAULT_SITE_SEEDS`.
    fused : bool
        The state update as one fused multiply-add with one rounding
        (:class:`hw.mx_fma.MxFma`, ``quant.spe.SPEConfig(fused=True)``, docs/mx8.md section
        8a) instead of two multipliers and the adder; needs ``renorm="lod"``. Attend's token
        sums and folds go through the same unit (``quant.spe.attention_attend`` with
        ``fused``), so the SPU has no multiplier or adder besides it (score is unchanged).
        The fused unit's generator is reset to ``seeds["add"]``; ``seeds["mul_decay"]`` and
        ``seeds["mul_outer"]`` are unused.

    Members
    -------
    i_cmd : In(Cmd)
        Command of this cycle: NOP, REG_WRITE, COMP, RESULT_READ.
    i_addr : In(8)
        REG_WRITE: :func:`reg_addr`; COMP: :func:`comp_addr`; RESULT_READ: :func:`result_addr`.
    i_data : In(256)
        REG_WRITE data (a sub-chunk, or :func:`mode_word`).
    o_comp_ready : Out(1)
        A COMP in this cycle is accepted (low while a row pair drains and in the extra
        iterations of an attend COMP). A registered function of the state.
    o_busy : Out(1)
        Operations in flight (results or write-backs outstanding).
    o_err : Out(1)
        Sticky: an illegal REG_WRITE (an operand overwritten before an in-flight operation
        used it, MODE written while busy, an unknown register or mode).
    o_rvalid, o_rdata : Out(1), Out(256)
        Response to the RESULT_READ of the previous cycle: a 37-bit partial
        (:func:`hw.mx_dot.dot_out_layout`, zero-extended) or, in attend mode, the accumulator.
    bank : Out(bank_port()).array(2)
        Column accesses of bank A (0) and B (1).
    """

    def __init__(self, *, rbits: int = 8, renorm: str = "lod", seeds: dict | None = None,
                 fused: bool = False, _even_distance: bool = False):
        self._rbits = check_rbits(rbits)
        self._renorm = check_renorm(renorm)
        self._seeds = check_site_seeds(seeds)
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool, not {fused!r}")
        if fused and renorm != "lod":
            raise ValueError(f"fused=True needs renorm='lod' (the fused adder has no other "
                             f"policy), not {renorm!r}")
        if not isinstance(_even_distance, bool):
            raise TypeError(f"_even_distance must be a bool, not {_even_distance!r}")
        # Test hook: drop the write-back register so that read_to_write is even (collides).
        self._even = _even_distance
        self._fused = fused
        if fused:
            self._fma = MxFma(rbits=rbits, seed=self._seeds["add"])
        else:
            self._mul_decay = MxMul(scalar=False, rbits=rbits, renorm=renorm,
                                    seed=self._seeds["mul_decay"])
            self._mul_outer = MxMul(scalar=True, rbits=rbits, renorm=renorm,
                                    seed=self._seeds["mul_outer"])
            self._add = MxAdd(rbits=rbits, renorm=renorm, seed=self._seeds["add"])
        self._dot = MxDot()
        if self.attend_partials > len(ATTEND_PARTIAL_REGS):
            raise ValueError(f"quant.constants.attend_partials({fused}) = "
                             f"{self.attend_partials} exceeds the operand registers free in "
                             f"attend mode ({len(ATTEND_PARTIAL_REGS)})")
        if COLUMNS != ATTEND_ROW:
            raise ValueError(f"quant.constants.ATTEND_ROW ({ATTEND_ROW}) must equal the "
                             f"columns per row ({COLUMNS})")
        super().__init__({
            "i_cmd": In(Cmd),
            "i_addr": In(ADDR_BITS),
            "i_data": In(COLUMN_BITS),
            "o_comp_ready": Out(1),
            "o_busy": Out(1),
            "o_err": Out(1),
            "o_rvalid": Out(1),
            "o_rdata": Out(COLUMN_BITS),
            "bank": Out(bank_port()).array(BANKS),
        })

    # ---- parameters ----------------------------------------------------------------------
    @property
    def rbits(self) -> int:
        return self._rbits

    @property
    def renorm(self) -> str:
        return self._renorm

    @property
    def seeds(self) -> dict:
        return dict(self._seeds)

    @property
    def fused(self) -> bool:
        """The state update is one fused multiply-add (one rounding)."""
        return self._fused

    # ---- timing ---------------------------------------------------------------------------
    @property
    def update_stages(self) -> tuple[str, ...]:
        """The stages of the state update from its COMP to the new sub-chunk: ``F``, then the
        multipliers' (``M.*``) and the adder's (``A.*``), or the fused unit's (``X.*``)."""
        if self._fused:
            return ("F", *(f"X.{s}" for s in self._fma.stages))
        return ("F", *(f"M.{s}" for s in self._mul_outer.stages),
                *(f"A.{s}" for s in self._add.stages))

    @property
    def writeback_stage(self) -> int:
        """1 when the write-back register ``W`` is present (it makes ``read_to_write`` odd):
        when :attr:`update_stages` are even in number."""
        if self._even:
            return 0
        return 1 - len(self.update_stages) % 2

    @property
    def read_to_write(self) -> int:
        """Iterations from the COMP that reads a sub-chunk to its write-back (state update):
        :attr:`update_stages` plus ``W``. Odd: the write-back then always goes to the bank not
        read in that iteration."""
        return len(self.update_stages) + self.writeback_stage

    @property
    def attend_partials(self) -> int:
        """Partial accumulators per bank in attend mode
        (:func:`quant.constants.attend_partials`: 2, or 3 with ``fused``)."""
        return attend_partials(self._fused)

    @property
    def _accumulator(self):
        """The unit attend accumulates in: the adder, or the fused unit (``fused``)."""
        return self._fma if self._fused else self._add

    @property
    def _attend_prefix(self) -> tuple[str, ...]:
        """Attend's stages before the accumulator: the outer-product multiplier's (none when
        ``fused``: the fused unit multiplies)."""
        return () if self._fused else tuple(f"M.{s}" for s in self._mul_outer.stages)

    @property
    def _acc_stage(self) -> str:
        return "X" if self._fused else "A"

    @property
    def iteration_interval(self) -> dict[str, int]:
        """SPU cycles (iterations) per COMP, per mode. Attend: a partial accumulator is a loop
        through the accumulator (the adder, or the fused unit); the two banks alternate and
        each bank rotates over its partials, so a partial comes back every ``2 * partials``
        COMPs, and a COMP takes ``ceil(accumulator latency / (2 * partials))`` iterations (1
        with 2 partials and the adder's 4 stages, 3 partials and the fused unit's 5)."""
        return {"state_update": 1, "score": 1,
                "attend": max(1, math.ceil(self._accumulator.latency
                                           / (BANKS * self.attend_partials)))}

    @property
    def fold_iterations(self) -> int:
        """Iterations of the attend fold sequence after a row pair (0 with one partial): fold
        step ``k`` of bank ``b`` enters the accumulator at iteration
        ``(k - 1) * accumulator latency + b`` (each step waits for the previous one's sum)."""
        p = self.attend_partials
        return 0 if p == 1 else (p - 2) * self._accumulator.latency + BANKS

    @property
    def mode_stages(self) -> dict[str, tuple[str, ...]]:
        """Per mode, the stages (SPU cycles) from a COMP to the last thing it produces, in
        order: ``F`` (fetch), the units' own stages (``M.*`` multipliers, ``A.*`` adder,
        ``X.*`` the fused unit, ``D.*`` dot product), ``R`` (the result memory or, in attend
        mode, the partial written), then in attend mode the fold after the row pair
        (``fold<k>``: the steps entering the accumulator one per iteration, then the last step
        through it, ``fold.A.*`` or ``fold.X.*``)."""
        acc = tuple(f"{self._acc_stage}.{s}" for s in self._accumulator.stages)
        dot = tuple(f"D.{s}" for s in self._dot.stages)
        fold = () if self.fold_iterations == 0 else (
            tuple(f"fold{k}" for k in range(self.fold_iterations - 1))
            + tuple(f"fold.{a}" for a in acc))
        return {"state_update": (*self.update_stages, *dot, "R"), "score": ("F", *dot, "R"),
                "attend": ("F", *self._attend_prefix, *acc, "R", *fold)}

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages of the state update (the mode with every unit; :attr:`mode_stages`)."""
        return self.mode_stages["state_update"]

    @property
    def latency(self) -> dict[str, int]:
        """Pipeline depth per mode, the number of its :attr:`mode_stages`: SPU cycles from a
        COMP (cycle 0) until everything it produces is done and readable (results by
        RESULT_READ, write-backs in the bank), when the pipeline drains (after a last COMP)."""
        return {mode: len(stages) for mode, stages in self.mode_stages.items()}

    @property
    def comps_per_row_pair(self) -> int:
        """COMPs that process one open row in each of the two banks (every mode)."""
        return BANKS * COLUMNS

    @property
    def result_read_latency(self) -> int:
        """Cycles from a RESULT_READ to ``o_rvalid``."""
        return 1

    # ---- hardware -------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        sub = mx_subchunk_layout()
        tag = tag_layout
        fused = self._fused
        # fused: no multiplier and adder stages (the fused unit's X stages instead)
        lat_m = 0 if fused else self._mul_outer.latency
        lat_a = 0 if fused else self._add.latency
        lat_d = self._dot.latency
        lat_x = self._fma.latency if fused else 0
        # the unit attend accumulates in (its output feeds the partials) and its latency
        lat_acc = self._accumulator.latency
        bubbles = self.iteration_interval["attend"] - 1

        # ---- architectural state ----------------------------------------------------------
        mode = Signal(2)
        stoch = Signal()
        opnd = {r: [Signal(COLUMN_BITS, name=f"reg_{r.name.lower()}{b}") for b in range(BANKS)]
                for r in (Reg.D, Reg.Q, Reg.K, Reg.V)}
        n_part = self.attend_partials
        # The attend partials live in operand registers that attend mode does not use
        # (ATTEND_PARTIAL_REGS): no storage of their own (docs/spu.md, "leaner SPU").
        acc = [[opnd[r][b] for r in ATTEND_PARTIAL_REGS[:n_part]] for b in range(BANKS)]
        part_regs = {int(r) for r in ATTEND_PARTIAL_REGS[:n_part]}
        fold_pend = Signal()
        # the fold counter and its copies (each counts by itself, like rd_bank's copies); copy
        # g gives the fold step's bank to slice g of the partial multiplexer
        fold_its = [Signal(range(max(1, self.fold_iterations)),
                           name="fold_it" if g == 0 else f"fold_it_c{g}")
                    for g in range(SELECT_COPIES)]
        fold_it = fold_its[0]
        # rd_bank and its copies: each copy computes its own next value from itself, so that
        # no synthesis pass sees two flip-flops with the same input and merges them.
        rd_banks = [Signal(name="rd_bank" if g == 0 else f"rd_bank_c{g}")
                    for g in range(SELECT_COPIES)]
        rd_bank = rd_banks[0]
        colptr = [Signal(range(COLUMNS), name=f"colptr{b}") for b in range(BANKS)]
        flush = Signal()
        bubble = Signal(range(bubbles + 1))
        err = Signal()
        su = mode == int(Mode.STATE_UPDATE)
        sc = mode == int(Mode.SCORE)
        att = mode == int(Mode.ATTEND)

        # ---- stage registers (hw/spu_stages.py): the tag of each operation beside the units,
        # the data the next stage reads, the copies of the bank and column selects ----------
        f_stage = Signal(fetch_stage_layout)
        m_stages = [Signal(mul_stage_layout, name=f"m_stage{i}") for i in range(lat_m)]
        a_stages = [Signal(add_stage_layout, name=f"a_stage{i}") for i in range(lat_a)]
        d_stages = [Signal(dot_stage_layout, name=f"d_stage{i}") for i in range(lat_d)]
        x_stages = [Signal(fma_stage_layout, name=f"x_stage{i}") for i in range(lat_x)]
        w_stage = Signal(writeback_stage_layout)
        f_tag, f_data = f_stage.tag, f_stage.data
        # copies of f_tag.bank and f_tag.col (the same values; f_tag's own fields drive the
        # control logic and the pipeline tags)
        f_banks = [f_stage.bank_c[g] for g in range(SELECT_COPIES)]
        f_cols = [f_stage.col_c[g] for g in range(COL_COPIES)]
        mul_tags = [s.tag for s in m_stages]
        add_tags = [s.tag for s in a_stages]
        dot_tags = [s.tag for s in d_stages]
        # fused: the stages beside the fused unit (state update, attend and its fold)
        fma_tags = [s.tag for s in x_stages]
        w_tag, w_data = w_stage.tag, w_stage.data
        d_out = dot_tags[-1]
        # the accumulator's stages: attend's partial sums come out of the last one
        acc_tags = fma_tags if fused else add_tags
        a_out = acc_tags[-1]
        all_tags = [f_tag, *mul_tags, *add_tags, *fma_tags, *dot_tags] + (
            [w_tag] if self.writeback_stage else [])

        busy = Signal()
        m.d.comb += busy.eq(Cat(*(t.valid for t in all_tags)).any() | fold_pend)

        # ---- command decode ----------------------------------------------------------------
        is_comp = self.i_cmd == Cmd.COMP
        ready = Signal()
        comp = Signal()
        adv = Signal()
        # the address and data ports through the command layouts (hw/spu_protocol.py)
        addr = data.View(addr_layout, self.i_addr)
        wdata = data.View(data_layout, self.i_data)
        last = addr.comp.last
        m.d.comb += [
            ready.eq((bubble == 0) & ~(flush & busy)),
            comp.eq(is_comp & ready),
            adv.eq(comp | (bubble != 0) | (flush & busy)),
            self.o_comp_ready.eq(ready),
            self.o_busy.eq(busy),
            self.o_err.eq(err),
        ]

        # ---- arithmetic units, clock-enabled by the iteration ------------------------------
        dot = self._dot
        if fused:
            fma = acc_unit = self._fma
            m.submodules.fma = EnableInserter(adv)(fma)
        else:
            mul_d, mul_o, add = self._mul_decay, self._mul_outer, self._add
            acc_unit = add
            m.submodules.mul_decay = EnableInserter(adv)(mul_d)
            m.submodules.mul_outer = EnableInserter(adv)(mul_o)
            m.submodules.add = EnableInserter(adv)(add)
        m.submodules.dot = EnableInserter(adv)(dot)

        def sel(regs, bank):
            """``regs[bank]``; ``bank`` a list of copies of the select: copy ``g`` selects
            slice ``g`` of the value (see :data:`SELECT_COPIES`)."""
            if not isinstance(bank, list):
                return Mux(bank, regs[1], regs[0])
            w = len(regs[0]) // len(bank)
            return Cat(*(Mux(b, regs[1][g * w:(g + 1) * w], regs[0][g * w:(g + 1) * w])
                         for g, b in enumerate(bank)))

        # ---- F: fetch (bank read in the COMP cycle, registered) ----------------------------
        for b in range(BANKS):
            m.d.comb += [
                self.bank[b].rd.eq(comp & (rd_bank == b)),
                self.bank[b].rd_col.eq(colptr[b]),
            ]
        rdata = sel([self.bank[0].rdata, self.bank[1].rdata], rd_banks)
        with m.If(adv):
            m.d.sync += [
                f_tag.valid.eq(comp),
                f_tag.bank.eq(rd_bank),
                f_tag.col.eq(Mux(rd_bank, colptr[1], colptr[0])),
                f_data.eq(rdata),
                *(fb.eq(rb) for fb, rb in zip(f_banks, rd_banks)),
                *(fc.eq(Mux(rb, colptr[1], colptr[0])) for fc, rb in zip(f_cols, rd_banks)),
            ]
        with m.If(comp):
            with m.If(last):
                m.d.sync += [*(rb.eq(0) for rb in rd_banks), *(c.eq(0) for c in colptr)]
            with m.Else():
                m.d.sync += [rb.eq(~rb) for rb in rd_banks]
                for b in range(BANKS):
                    with m.If(rd_bank == b):
                        m.d.sync += colptr[b].eq(colptr[b] + 1)
            m.d.sync += flush.eq(last)
            if self.fold_iterations:
                m.d.sync += fold_pend.eq(last & att)
        with m.Elif(~busy):
            m.d.sync += flush.eq(0)
        if bubbles:
            with m.If(comp & att):
                m.d.sync += bubble.eq(bubbles)
            with m.Elif(bubble != 0):
                m.d.sync += bubble.eq(bubble - 1)

        # ---- M: decay d*S and outer product k*v_j (attend: V*score) ------------------------
        # the V operand as one signal: viewed field by field below, an expression would be
        # emitted again at every use (some 33,000 part-selects in the Verilog)
        v_sel = Signal(len(opnd[Reg.V][0]), name="v_sel")
        m.d.comb += v_sel.eq(sel(opnd[Reg.V], f_banks))
        v_view = data.View(sub, v_sel)
        scalars = []
        for j in range(COLUMNS):
            g, i = v_view[j // GROUP], j % GROUP
            scalars.append(mx_group_scalar(g, i).as_value())
        sw = len(scalars[0]) // COL_COPIES
        assert sw * COL_COPIES == len(scalars[0])
        # the scalar multiplexer, one bit slice per copy of the column
        scalar = Cat(*(mux_tree([sc_[g * sw:(g + 1) * sw] for sc_ in scalars], fc)
                       for g, fc in enumerate(f_cols)))
        if fused:
            # the operation entering the fused unit from F (state update and attend COMPs;
            # the fold steps are muxed in below)
            pre_tag = Signal(tag)
            m.d.comb += [pre_tag.eq(f_tag), pre_tag.valid.eq(f_tag.valid & (su | att))]
            pre_banks = f_banks
        else:
            m.d.comb += [
                mul_d.i_valid.eq(f_tag.valid & su),
                mul_d.i_stoch.eq(stoch),
                mul_d.i_a.eq(f_data),
                mul_d.i_b.eq(sel(opnd[Reg.D], f_banks)),
                mul_o.i_valid.eq(f_tag.valid & (su | att)),
                mul_o.i_stoch.eq(stoch),
                mul_o.i_a.eq(Mux(att, f_data, sel(opnd[Reg.K], f_banks))),
                mul_o.i_b.eq(scalar),
            ]
            # copies of the bank of each multiplier stage's tag (the last select the partial
            # that the adder reads, slice by slice)
            m_banks = [[s.bank_c[g] for g in range(SELECT_COPIES)] for s in m_stages]
            with m.If(adv):
                m.d.sync += [c.eq(p) for c, p in zip(m_banks[0], f_banks)]
                m.d.sync += [c.eq(p) for i in range(1, lat_m) for c, p in zip(m_banks[i],
                                                                             m_banks[i - 1])]
                m.d.sync += mul_tags[0].eq(f_tag)
                m.d.sync += mul_tags[0].valid.eq(f_tag.valid & (su | att))
                m.d.sync += [mul_tags[i].eq(mul_tags[i - 1]) for i in range(1, lat_m)]
            pre_tag, pre_banks = mul_tags[-1], m_banks[-1]

        # ---- A (fused: X): update d*S + k*v_j (attend: P_c + V*score, the fold P_0 + P_k) --
        part_bits = max(1, (n_part - 1).bit_length())

        def part_of(t):
            """The partial a tag's sum goes to: ``col mod P``, partial 0 for a fold step."""
            if n_part == 1:
                return 0
            if n_part & (n_part - 1) == 0:
                return Mux(t.fold, 0, t.col[:part_bits])
            # not a power of two: a table of the columns
            return Mux(t.fold, 0, mux_tree([C(c % n_part, part_bits) for c in range(COLUMNS)],
                                           t.col))

        a_part = Signal(range(n_part))
        m.d.comb += a_part.eq(part_of(a_out))

        def acc_read(bank, part, bank_copies=None):
            """Partial ``part`` of ``bank``, the adder's output forwarded when it is that
            partial's new value (it is written at the end of this iteration). The partial
            multiplexer selects with ``bank_copies`` (copies of ``bank``) when given."""
            regs = [sel([acc[0][k], acc[1][k]], bank if bank_copies is None else bank_copies)
                    for k in range(n_part)]
            reg = mux_tree(regs, part) if n_part > 1 else regs[0]
            fwd = a_out.valid & att & (a_out.bank == bank) & (a_part == part)
            return Mux(fwd, acc_unit.o_y.as_value(), reg)

        # Fold sequence (attend, after the last COMP of a row pair): it starts when no COMP is
        # left before the accumulator's output stage; step k of bank b enters at fold
        # iteration (k - 1) * lat_acc + b.
        quiet = ~Cat(*(t.valid for t in [f_tag, *mul_tags, *acc_tags[:-1]])).any()
        fold_run = Signal()
        fold_tag = Signal(tag)
        if self.fold_iterations:
            m.d.comb += fold_run.eq(fold_pend & ((fold_it != 0) | quiet))
            # Continuous assignments (no case statement: see hw.spu_bank.mux_tree).
            def fold_hits(counter):
                return [(counter == it, *divmod(it, lat_acc))
                        for it in range(self.fold_iterations) if it % lat_acc < BANKS]

            def fold_bank(counter):
                return Cat(*(h & (b == 1) for h, _, b in fold_hits(counter))).any()

            hits = fold_hits(fold_it)
            fold_banks = [fold_bank(c) for c in fold_its]
            m.d.comb += [
                fold_tag.valid.eq(fold_run & Cat(*(h for h, _, _ in hits)).any()),
                fold_tag.bank.eq(fold_bank(fold_it)),
                fold_tag.col.eq(functools.reduce(operator.or_, (
                    Mux(h, k + 1, 0) for h, k, _ in hits))),
                fold_tag.fold.eq(1),
            ]
            with m.If(adv & fold_run):
                with m.If(fold_it == self.fold_iterations - 1):
                    m.d.sync += fold_pend.eq(0)
                for c in fold_its:
                    m.d.sync += c.eq(Mux(c == self.fold_iterations - 1, 0, c + 1))
        else:
            fold_banks = [0] * SELECT_COPIES
        a_in_banks = [Mux(fold_tag.valid, fb, pb) for fb, pb in zip(fold_banks, pre_banks)]
        a_in = Signal(tag)
        m.d.comb += a_in.eq(Mux(fold_tag.valid, fold_tag.as_value(), pre_tag.as_value()))
        acc_in = acc_read(a_in.bank, part_of(a_in), a_in_banks)
        fold_in = acc_read(fold_tag.bank, fold_tag.col[:part_bits],
                           fold_banks if self.fold_iterations else None)
        if fused:
            # state update d*S + k*v_j; attend P_c * 1 + V * score; fold P_0 * 1 + P_k * 1
            one_sub = sub.const([{"exp": ONE_EXP, "mu": [0] * (GROUP // 2),
                                  "elems": [{"mag": ONE_MAG, "sign": 0}] * GROUP}] * sub.length)
            one = mx_scalar_layout().const({"exp": ONE_EXP, "mu": 0, "mag": ONE_MAG, "sign": 0})
            # "state update" for the operand multiplexers, in copies like the bank select's
            # (copy g selects slice g): the mode register alone would drive some 768
            # multiplexers. Copy g is registered with the F stage as su XOR rd_bank copy g, so
            # each copy has its own input and no synthesis pass merges them; su = that XOR
            # f_stage's bank copy g.
            f_su_x = [Signal(name=f"f_su_x{g}") for g in range(SELECT_COPIES)]
            with m.If(adv):
                m.d.sync += [x.eq(su ^ rb) for x, rb in zip(f_su_x, rd_banks)]
            f_sus = [x ^ fb for x, fb in zip(f_su_x, f_banks)]

            def su_mux(a, b):
                """``a`` in state-update mode, else ``b``, slice ``g`` by copy ``g``."""
                w = COLUMN_BITS // SELECT_COPIES
                return Cat(*(Mux(s_, a[g * w:(g + 1) * w], b[g * w:(g + 1) * w])
                             for g, s_ in enumerate(f_sus)))
            m.d.comb += [
                fma.i_valid.eq(a_in.valid),
                fma.i_stoch.eq(stoch),
                fma.i_a.eq(su_mux(f_data, acc_in)),
                fma.i_b.eq(su_mux(sel(opnd[Reg.D], f_banks), one_sub.as_value())),
                fma.i_c.eq(Mux(fold_tag.valid, fold_in,
                               su_mux(sel(opnd[Reg.K], f_banks), f_data))),
                fma.i_e.eq(Mux(fold_tag.valid, one.as_value(), scalar)),
            ]
        else:
            m.d.comb += [
                add.i_valid.eq(a_in.valid),
                add.i_stoch.eq(stoch),
                add.i_a.eq(Mux(att, acc_in, mul_d.o_y.as_value())),
                add.i_b.eq(Mux(fold_tag.valid, fold_in, mul_o.o_y.as_value())),
            ]
        with m.If(adv):
            m.d.sync += acc_tags[0].eq(a_in)
            m.d.sync += [acc_tags[i].eq(acc_tags[i - 1]) for i in range(1, lat_acc)]
            with m.If(a_out.valid & att):
                for b in range(BANKS):
                    for k in range(n_part):
                        with m.If((a_out.bank == b) & (a_part == k)):
                            m.d.sync += acc[b][k].eq(acc_unit.o_y)
            # A fold step consumes partial k: it restarts from zero (after the write above,
            # so it wins over the last COMP's sum, forwarded into the fold).
            # (slice g of a partial by copy g of the fold bank: no flip-flop with a fanout of
            # 256 bits)
            with m.If(fold_tag.valid & (self.fold_iterations > 0)):
                w = COLUMN_BITS // SELECT_COPIES
                for b in range(BANKS):
                    for k in range(1, n_part):
                        for g, fb in enumerate(fold_banks):
                            with m.If((fb == b) & (fold_tag.col == k)):
                                m.d.sync += acc[b][k][g * w:(g + 1) * w].eq(0)

        # ---- W: write-back (odd read-to-write distance) and D: dot product with q ----------
        # the new state sub-chunk: the adder's (state update mode) or the fused unit's
        u_out, u_y = (fma_tags[-1], fma.o_y) if fused else (a_out, add.o_y)
        if self.writeback_stage:
            with m.If(adv):
                m.d.sync += [w_tag.eq(u_out), w_tag.valid.eq(u_out.valid & su),
                             w_data.eq(u_y)]
            wb_tag, wb_data = w_tag, w_data
            wb_valid = w_tag.valid
        else:
            wb_tag, wb_data = u_out, u_y.as_value()
            wb_valid = u_out.valid & su
        for b in range(BANKS):
            m.d.comb += [
                self.bank[b].wr.eq(adv & wb_valid & (wb_tag.bank == b)),
                self.bank[b].wr_col.eq(wb_tag.col),
                self.bank[b].wdata.eq(wb_data),
            ]
        dot_src = Signal(tag)
        m.d.comb += [
            dot_src.eq(Mux(sc, f_tag.as_value(), u_out.as_value())),
            dot_src.valid.eq(Mux(sc, f_tag.valid, u_out.valid & su)),
            dot.i_valid.eq(dot_src.valid),
            dot.i_a.eq(Mux(sc, f_data, u_y.as_value())),
            dot.i_b.eq(sel(opnd[Reg.Q], dot_src.bank)),
        ]
        with m.If(adv):
            m.d.sync += dot_tags[0].eq(dot_src)
            m.d.sync += [dot_tags[i].eq(dot_tags[i - 1]) for i in range(1, lat_d)]

        # ---- result registers ---------------------------------------------------------------
        m.submodules.results = results = Memory(shape=len(dot.o_p.as_value()),
                                                depth=BANKS * COLUMNS, init=[])
        wp = results.write_port()
        rp = results.read_port()
        m.d.comb += [
            wp.en.eq(adv & d_out.valid),
            wp.addr.eq(Cat(d_out.col, d_out.bank)),
            wp.data.eq(dot.o_p),
        ]
        is_rr = self.i_cmd == Cmd.RESULT_READ
        r_bank = Signal()
        r_att = Signal()
        m.d.comb += rp.addr.eq(addr.result)
        m.d.sync += self.o_rvalid.eq(is_rr)
        with m.If(is_rr):
            m.d.sync += [r_att.eq(att), r_bank.eq(addr.result.bank)]
        # attend: the accumulator as it is after the request cycle (like the result memory's
        # transparent read), read through the bank multiplexer, with no 256-bit output register
        m.d.comb += self.o_rdata.eq(Mux(r_att, sel([a[0] for a in acc], r_bank), rp.data))

        # ---- REG_WRITE and hazards ----------------------------------------------------------
        is_rw = self.i_cmd == Cmd.REG_WRITE
        w_reg = addr.reg.reg
        w_bank = addr.reg.bank

        def pending(tags, bank):
            return Cat(*(t.valid & (t.bank == bank) for t in tags)).any()

        # d, k, v are read by the operation in F in the iteration after its COMP: a write is
        # too early only while that operation waits in F (no advance in this cycle).
        early = pending([f_tag], w_bank) & ~adv
        # q (dot input) and the accumulator: conservatively, any operation of the bank before
        # the dot product / accumulator update.
        late = pending([f_tag, *mul_tags, *add_tags, *fma_tags], w_bank) | fold_pend
        # in attend mode the registers holding the partials must not be written
        owned = att & Cat(*(w_reg == r for r in sorted(part_regs))).any()
        hazard = Signal()
        with m.Switch(w_reg):
            with m.Case(int(Reg.D), int(Reg.K), int(Reg.V)):
                m.d.comb += hazard.eq(early | owned)
            with m.Case(int(Reg.Q)):
                m.d.comb += hazard.eq(late | owned)
            with m.Case(int(Reg.ACC_CLEAR)):
                m.d.comb += hazard.eq(late | ~att)
            with m.Case(int(Reg.MODE)):
                m.d.comb += hazard.eq(busy | (wdata.mode.mode > int(Mode.ATTEND)))
            with m.Default():
                m.d.comb += hazard.eq(1)
        with m.If(is_rw):
            with m.If(hazard):
                m.d.sync += err.eq(1)
            with m.Switch(w_reg):
                for r in (Reg.D, Reg.Q, Reg.K, Reg.V):
                    with m.Case(int(r)):
                        for b in range(BANKS):
                            with m.If(w_bank == b):
                                m.d.sync += opnd[r][b].eq(self.i_data)
                with m.Case(int(Reg.MODE)):
                    m.d.sync += [mode.eq(wdata.mode.mode), stoch.eq(wdata.mode.stochastic),
                                 *(rb.eq(0) for rb in rd_banks), *(c.eq(0) for c in colptr)]
                    # entering attend mode clears the partials (the d/k registers)
                    with m.If(wdata.mode.mode == int(Mode.ATTEND)):
                        m.d.sync += [p.eq(0) for a in acc for p in a]
                with m.Case(int(Reg.ACC_CLEAR)):
                    with m.If(att):
                        for b in range(BANKS):
                            with m.If(w_bank == b):
                                m.d.sync += [p.eq(0) for p in acc[b]]
        return m


register_unit("spu_mx8", lambda: Spu())
register_unit("spu_mx8_fused", lambda: Spu(fused=True))
