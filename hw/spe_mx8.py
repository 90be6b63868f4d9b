"""State-update datapath slice of the MX8 SPE (:class:`SpeMx8`), for the area comparison.

``o_s = add(mul(s, d), mul_scalar(k, v))`` on one 32-value sub-chunk (two MX8 groups): the
decay multiplier (:class:`hw.mx_mul.MxMul`, element-wise), the outer-product multiplier
(:class:`~hw.mx_mul.MxMul` with ``scalar=True``, ``v`` broadcast) and the adder
(:class:`hw.mx_add.MxAdd`), composed exactly as in the SPU (:mod:`hw.spu`) but without its
command interface, registers and dot product. Same streaming ports as every SPE slice
(:mod:`hw.spe_float`)::

    i_valid In(1)   i_s, i_d, i_k In(256)   i_v In(16)   o_valid Out(1)   o_s Out(256)

``i_s``, ``i_d``, ``i_k``, ``o_s`` are :func:`hw.mx8_layout.mx_subchunk_layout` words (group 0
in bits 0-127), ``i_v`` a :func:`hw.mx8_layout.mx_scalar_layout` word (exp bits 0-7, mu bit
8, mag bits 9-14, sign bit 15). Golden model: :func:`quant.spe_slice.reference` with
``fmt="mx8"``.

``rounding="rne"`` (round to nearest, the MX rounding: half away from zero on the magnitude)
builds the units without generators (``seed=None``, ``i_rand`` tied to 0, ``i_stoch`` = 0),
so synthesis removes the stochastic-rounding logic. ``rounding="sr"`` builds them with their
internal PRBS31 generators (one per site, :data:`quant.rng.SITES`) and ``i_stoch`` = 1: each
generator advances when its unit's rounding stage holds a valid operation, lane ``i`` taking
stream bits ``[8i, 8i+8)`` of that operation's block.

``fused=True`` replaces the two multipliers and the adder by the fused unit
(:class:`hw.mx_fma.MxFma`, docs/mx8.md section 8a): both products enter the adder at full
width, aligned, and the sum is rounded once; golden model :func:`quant.spe_slice.reference`
with ``fused=True``. Only the ``add`` site rounds, so ``rounding="sr"`` builds one generator
(seed ``seeds["add"]``).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.constants import LANES, RBITS

from .export import register_unit
from .mx8_layout import mx_scalar_layout, mx_subchunk_layout
from .mx_add import MxAdd
from .mx_fma import MxFma
from .mx_mul import MxMul
from .pipeline import Staged
from .spe_float import check_slice_params
from .sround import check_renorm

__all__ = ["SpeMx8"]


class SpeMx8(Staged, wiring.Component):
    """One MX8 sub-chunk x (decay multiply, outer-product multiply, add), fully pipelined.

    Parameters
    ----------
    rounding : {"rne", "sr"}
        Round to nearest (no generators) or stochastic rounding with 8 random bits from the
        internal generators.
    seeds : dict, optional
        ``rounding="sr"``: reset values of the three generators (``mul_decay``, ``mul_outer``,
        ``add``); default :data:`quant.constants.DEFAULT_SITE_SEEDS`.
    renorm : {"lod", "fixed"}
        Renormalization policy of the multipliers and the adder (:class:`quant.spe.SPEConfig`).
    fused : bool
        One fused multiply-add with one rounding (:class:`hw.mx_fma.MxFma`) instead of three
        rounded operations (``SPEConfig(fused=True)``; needs ``renorm="lod"``).

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_s, i_d, i_k : In(256)
        State, decay and key sub-chunks (:func:`hw.mx8_layout.mx_subchunk_layout`).
    i_v : In(16)
        The broadcast element of ``v`` (:func:`hw.mx8_layout.mx_scalar_layout`).
    o_valid : Out(1)
        ``o_s`` holds the result of the operation presented :attr:`latency` cycles earlier.
    o_s : Out(256)
        The updated state sub-chunk.
    """

    def __init__(self, *, rounding: str = "rne", seeds: dict | None = None,
                 renorm: str = "lod", fused: bool = False):
        self._seeds = check_slice_params(rounding, seeds)
        self._renorm = check_renorm(renorm)
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool, not {fused!r}")
        if fused and renorm != "lod":
            raise ValueError(f"fused=True needs renorm='lod' (the fused adder has no other "
                             f"policy), not {renorm!r}")
        self._fused = fused
        self._rounding = rounding
        seed = (lambda site: None) if self._seeds is None else self._seeds.get
        kw = {"rbits": RBITS, "renorm": renorm}
        if fused:
            self._fma = MxFma(rbits=RBITS, seed=seed("add"))
        else:
            self._mul_decay = MxMul(scalar=False, seed=seed("mul_decay"), **kw)
            self._mul_outer = MxMul(scalar=True, seed=seed("mul_outer"), **kw)
            self._add = MxAdd(seed=seed("add"), **kw)
            assert self._mul_decay.latency == self._mul_outer.latency
        width = mx_subchunk_layout().size
        super().__init__({
            "i_valid": In(1),
            "i_s": In(width),
            "i_d": In(width),
            "i_k": In(width),
            "i_v": In(mx_scalar_layout().size),
            "o_valid": Out(1),
            "o_s": Out(width),
        })

    @property
    def fmt(self) -> str:
        return "mx8"

    @property
    def lanes(self) -> int:
        return LANES

    @property
    def rounding(self) -> str:
        """``"rne"`` or ``"sr"``."""
        return self._rounding

    @property
    def rbits(self) -> int:
        """Random bits per rounded value (used with ``"sr"``)."""
        return RBITS

    @property
    def renorm(self) -> str:
        return self._renorm

    @property
    def fused(self) -> bool:
        """One fused multiply-add (one rounding) instead of three rounded operations."""
        return self._fused

    @property
    def seeds(self) -> dict[str, int] | None:
        """Reset values of the site generators (``"sr"``), else ``None``."""
        return None if self._seeds is None else dict(self._seeds)

    @property
    def stages(self) -> tuple[str, ...]:
        """The register stages: the multipliers' (side by side), then the adder's; or the
        fused unit's."""
        if self._fused:
            return tuple(f"fma.{s}" for s in self._fma.stages)
        return (tuple(f"mul.{s}" for s in self._mul_decay.stages)
                + tuple(f"add.{s}" for s in self._add.stages))


    def elaborate(self, platform):
        if self._fused:
            return self._elaborate_fused()
        m = Module()
        mul_d = m.submodules.mul_decay = self._mul_decay
        mul_o = m.submodules.mul_outer = self._mul_outer
        add = m.submodules.add = self._add
        stoch = int(self._rounding == "sr")
        for unit in (mul_d, mul_o, add):
            m.d.comb += unit.i_stoch.eq(stoch)
            if unit.seed is None:
                m.d.comb += unit.i_rand.as_value().eq(0)
        m.d.comb += [
            mul_d.i_valid.eq(self.i_valid),
            mul_d.i_a.eq(self.i_s),
            mul_d.i_b.eq(self.i_d),
            mul_o.i_valid.eq(self.i_valid),
            mul_o.i_a.eq(self.i_k),
            mul_o.i_b.eq(self.i_v),
            add.i_valid.eq(mul_d.o_valid),
            add.i_a.eq(mul_d.o_y),
            add.i_b.eq(mul_o.o_y),
            self.o_valid.eq(add.o_valid),
            self.o_s.eq(add.o_y),
        ]
        return m

    def _elaborate_fused(self):
        m = Module()
        fma = m.submodules.fma = self._fma
        m.d.comb += fma.i_stoch.eq(int(self._rounding == "sr"))
        if fma.seed is None:
            m.d.comb += fma.i_rand.as_value().eq(0)
        m.d.comb += [
            fma.i_valid.eq(self.i_valid),
            fma.i_a.eq(self.i_s),
            fma.i_b.eq(self.i_d),
            fma.i_c.eq(self.i_k),
            fma.i_e.eq(self.i_v),
            self.o_valid.eq(fma.o_valid),
            self.o_s.eq(fma.o_y),
        ]
        return m


register_unit("spe_mx8", lambda: SpeMx8())
register_unit("spe_mx8_sr", lambda: SpeMx8(rounding="sr"))
register_unit("spe_mx8_fused", lambda: SpeMx8(fused=True))
register_unit("spe_mx8_fused_sr", lambda: SpeMx8(rounding="sr", fused=True))
