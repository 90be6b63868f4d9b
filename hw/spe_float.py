"""State-update datapath slice of an SPE built from the float units (baseline formats).

``o_s[i] = d[i] * s[i] + k[i] * v`` for 32 lanes: one :class:`~hw.fpmul.FPMul` per lane for
the decay, one for the outer-product term (``v`` broadcast to every lane) and one
:class:`~hw.fpadd.FPAdd` per lane: stages 2 and 3 of the SPU pipeline (docs/design.md §3),
for fp16 / fp8 state instead of MX8. Both stages are registered, so :attr:`SpeFloat.latency`
is 2.

Every SPE slice (this one, :class:`hw.spe_mx8.SpeMx8`, the int8 slice) has the same streaming
ports, so one testbench drives them all; :func:`quant.spe_slice.reference` is their golden
model and :func:`quant.spe_slice.slice_ports` gives the port widths::

    i_valid In(1)   i_s, i_d, i_k In(W)   i_v In(Wv)   o_valid Out(1)   o_s Out(W)

Here ``W = 32 * width`` (lane ``i`` at bits ``[i*width, (i+1)*width)``) and ``Wv = width``.
One operation per cycle; ``o_valid``/``o_s`` belong to the operation presented with
``i_valid`` :attr:`~SpeFloat.latency` cycles earlier (clock edges in between).

With ``rounding="sr"`` the slice holds its own random-bit generators, one
:class:`hw.lfsr.LFSR` per rounding site (:data:`quant.rng.SITES`: ``mul_decay``,
``mul_outer``, ``add``), each advancing exactly when its stage processes a valid operation and
handing lane ``i`` the stream bits ``[i*r, (i+1)*r)`` of that operation's block,
``r`` = :data:`hw.fpmul.SR_BITS`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.fpadd import FPAdd
from hw.fpmul import SR_BITS, FPMul, check_params
from hw.lfsr import LFSR, check_site_seeds
from hw.pipeline import Staged
from quant.constants import LANES
from quant.fpformat import FloatFormat

__all__ = ["SpeFloat", "check_slice_params"]


def check_slice_params(rounding, seeds) -> dict[str, int] | None:
    """Validate ``rounding`` (``"rne"`` or ``"sr"``) and ``seeds`` of an SPE slice.

    Returns the seeds (site -> seed, the defaults of :data:`quant.constants.DEFAULT_SITE_SEEDS`
    when ``None``) for ``"sr"``, ``None`` for ``"rne"``.

    Raises
    ------
    ValueError
        Unknown rounding; ``seeds`` given with ``rounding="rne"``; seeds not naming exactly the
        three sites, or a seed zero or wider than 31 bits.
    TypeError
        ``seeds`` not a dict, or a seed not an int.
    """
    if rounding not in ("rne", "sr"):
        raise ValueError(f"rounding must be 'rne' or 'sr', not {rounding!r}")
    if rounding == "rne":
        if seeds is not None:
            raise ValueError("seeds is only meaningful with rounding='sr'")
        return None
    return check_site_seeds(seeds)


class SpeFloat(Staged, wiring.Component):
    """``lanes`` x (decay multiply, outer-product multiply, add) in one float format.

    Parameters
    ----------
    fmt : FloatFormat or str
        State/operand format (``"fp16"``, ``"e4m3"``, ``"e5m2"`` ...).
    lanes : int
        Number of lanes (32: one sub-chunk of 32 values; in fp16 that is two DRAM columns).
        The registered units have 32; fewer keep simulations short.
    rounding : {"rne", "sr"}
        Rounding of every multiplier and adder.
    seeds : dict, optional
        ``rounding="sr"``: reset values of the three generators (``mul_decay``, ``mul_outer``,
        ``add``); default :data:`quant.constants.DEFAULT_SITE_SEEDS`.

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_s : In(lanes * width)
        State sub-chunk, lane ``i`` at bits ``[i*width, (i+1)*width)``.
    i_d : In(lanes * width)
        Decay (a per-lane gate; a scalar decay is the same value in every lane).
    i_k : In(lanes * width)
        Key sub-chunk.
    i_v : In(width)
        The broadcast element of ``v``.
    o_valid : Out(1)
        ``o_s`` holds the result of the operation presented :attr:`latency` cycles earlier.
    o_s : Out(lanes * width)
        Updated state ``d * s + k * v``.
    """

    def __init__(self, fmt, *, lanes: int = LANES, rounding: str = "rne",
                 seeds: dict | None = None):
        sr_bits = SR_BITS if rounding == "sr" else None
        self._float, self._sr_bits = check_params(fmt, rounding, sr_bits, 1)
        self._seeds = check_slice_params(rounding, seeds)
        if isinstance(lanes, bool) or not isinstance(lanes, int):
            raise TypeError(f"lanes must be an int, not {lanes!r}")
        if not 1 <= lanes <= 256:
            raise ValueError(f"lanes must be in 1..256, not {lanes}")
        self._lanes = lanes
        self._rounding = rounding
        kw = {"rounding": rounding, "sr_bits": sr_bits, "latency": 1}
        self._decay = [FPMul(self._float, **kw) for _ in range(lanes)]
        self._outer = [FPMul(self._float, **kw) for _ in range(lanes)]
        self._add = [FPAdd(self._float, **kw) for _ in range(lanes)]
        w = self._float.width
        super().__init__({
            "i_valid": In(1),
            "i_s": In(lanes * w),
            "i_d": In(lanes * w),
            "i_k": In(lanes * w),
            "i_v": In(w),
            "o_valid": Out(1),
            "o_s": Out(lanes * w),
        })

    @property
    def fmt(self) -> str:
        """Format name (``"fp16"``, ``"e4m3"``, ``"e5m2"``)."""
        return self._float.name

    @property
    def float_format(self) -> FloatFormat:
        """The :class:`~quant.fparith.FloatFormat` of state and operands."""
        return self._float

    @property
    def lanes(self) -> int:
        """Number of lanes."""
        return self._lanes

    @property
    def rounding(self) -> str:
        """``"rne"`` or ``"sr"``."""
        return self._rounding

    @property
    def sr_bits(self) -> int | None:
        """Random bits per rounded value (``"sr"``), else ``None``."""
        return self._sr_bits

    @property
    def seeds(self) -> dict[str, int] | None:
        """Reset values of the site generators (``"sr"``), else ``None``."""
        return None if self._seeds is None else dict(self._seeds)

    @property
    def stages(self) -> tuple[str, ...]:
        """The register stages: the multipliers' (side by side), then the adders'."""
        return (tuple(f"mul.{s}" for s in self._decay[0].stages)
                + tuple(f"add.{s}" for s in self._add[0].stages))


    def elaborate(self, platform):
        m = Module()
        w = self._float.width
        lat_m = self._decay[0].latency
        lat_a = self._add[0].latency

        # valid beside the data: lat_m registers to the adder's input, lat_a more to o_valid
        chain = [self.i_valid]
        for n in range(lat_m + lat_a):
            v = Signal(name=f"valid{n + 1}")
            m.d.sync += v.eq(chain[-1])
            chain.append(v)
        add_valid = chain[lat_m]
        m.d.comb += self.o_valid.eq(chain[-1])

        rand = {}
        if self._rounding == "sr":
            enables = {"mul_decay": self.i_valid, "mul_outer": self.i_valid, "add": add_valid}
            for site, en in enables.items():
                gen = m.submodules[f"lfsr_{site}"] = LFSR(lanes=self._lanes,
                                                          rbits=self._sr_bits,
                                                          seed=self._seeds[site])
                m.d.comb += gen.i_en.eq(en)
                rand[site] = gen.o_rand

        v_in = self.i_v
        for i in range(self._lanes):
            bits = slice(i * w, (i + 1) * w)
            decay = m.submodules[f"decay{i}"] = self._decay[i]
            outer = m.submodules[f"outer{i}"] = self._outer[i]
            add = m.submodules[f"add{i}"] = self._add[i]
            m.d.comb += [
                decay.a.eq(self.i_d[bits]), decay.b.eq(self.i_s[bits]),
                outer.a.eq(self.i_k[bits]), outer.b.eq(v_in),
                add.a.eq(decay.o), add.b.eq(outer.o),
                self.o_s[bits].eq(add.o),
            ]
            if rand:
                m.d.comb += [
                    decay.rnd.eq(rand["mul_decay"][i]),
                    outer.rnd.eq(rand["mul_outer"][i]),
                    add.rnd.eq(rand["add"][i]),
                ]
        return m


for _name in ("fp16", "e4m3", "e5m2"):
    register_unit(f"spe_{_name}", lambda f=_name: SpeFloat(f))
    register_unit(f"spe_{_name}_sr", lambda f=_name: SpeFloat(f, rounding="sr"))
