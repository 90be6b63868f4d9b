"""The rounding primitive of the MX units (:func:`sround`), as combinational logic.

Hardware form of :func:`quant.mx8.round_shifted`. The specification rounds the non-negative
integer ``v * 2**-shift`` by truncating it to ``r`` fraction bits, adding ``R`` and dropping the
``r`` fraction bits, saturating at the largest magnitude; round-to-nearest is ``r = 1, R = 1``,
stochastic rounding ``r = rbits`` with ``R`` random. The hardware keeps one shifter for both
modes: it always truncates to ``rbits`` fraction bits and, for round-to-nearest, adds
``2**(rbits - 1)``. That is the same function, because for ``t`` with ``rbits`` fraction bits
``((t >> (rbits - 1)) + 1) >> 1 == (t + 2**(rbits - 1)) >> rbits``: the bits below the first
fraction bit never carry into the kept part when half an LSB is added.

So one rounding lane is a right shifter, an ``rbits``-bit adder on the fraction (the carry
into the kept bits is all that matters), an incrementer and a saturation mux; the stochastic
on/off switch is a 2:1 mux on the adder's second input.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from quant.constants import EXP_NAN, MAG_BITS

__all__ = ["MxRoundingUnit", "RENORMS", "bitlen", "or_all", "sround", "round_addend", "check_renorm",
           "check_seed_or_none", "rand_layout", "round_source"]


def round_addend(rand: Value, stoch: Value, rbits: int) -> Value:
    """The value added below the kept LSB: ``rand`` when ``stoch`` else half an LSB."""
    return Mux(stoch, rand, Const(1 << (rbits - 1), unsigned(rbits)))


def sround(v: Value, shift: Value, addend: Value, *, rbits: int, mag_bits: int = 6,
           bias: int = 0) -> Value:
    """Round ``v * 2**-(shift - bias)`` to a ``mag_bits``-bit magnitude (saturating).

    Parameters
    ----------
    v : Value
        Non-negative integer (unsigned).
    shift : Value
        Unsigned shift amount, biased by ``bias`` (so right shifts down to ``-bias``, i.e.
        left shifts, can be expressed); any amount is allowed, large ones give 0.
    addend : Value
        ``rbits``-bit value added below the kept LSB (:func:`round_addend`).
    rbits : int
        Fraction bits kept before the addition.
    bias : int
        See ``shift``.

    Returns an unsigned ``mag_bits``-bit value: ``min((t + addend) >> rbits, 2**mag_bits - 1)``
    with ``t = floor(v * 2**(rbits + bias - shift))``.
    """
    pre = rbits + bias
    ext = v.as_unsigned() << pre            # v with pre fraction bits
    width = len(ext)
    amt_bits = ceil_log2(width + 1)
    if len(shift) > amt_bits:
        big = shift[amt_bits:].any()
        amt = shift[:amt_bits]
    else:
        big = Const(0, 1)
        amt = shift
    t = Mux(big, 0, ext >> amt)             # floor(v * 2**(pre - shift))
    rounded = ((t + addend) >> rbits)
    mag_max = (1 << mag_bits) - 1
    return Mux(rounded > mag_max, mag_max, rounded[:mag_bits])


# --------------------------------------------------------------------------------------------
# Parameters and random-bit plumbing shared by the rounding units
# --------------------------------------------------------------------------------------------

#: Renormalization policies (:data:`quant.spe.RENORMS`).
RENORMS = ("lod", "fixed")


def check_renorm(renorm) -> str:
    """Validate the renormalization policy (``"lod"`` or ``"fixed"``)."""
    if not isinstance(renorm, str):
        raise TypeError(f"renorm must be a str, not {renorm!r}")
    if renorm not in RENORMS:
        raise ValueError(f"renorm must be one of {RENORMS}, not {renorm!r}")
    return renorm


def check_seed_or_none(seed):
    """``None`` (random bits from the ``i_rand`` port) or a valid LFSR seed."""
    if seed is None:
        return None
    from .lfsr import check_seed
    return check_seed(seed)


def rand_layout(lanes: int, rbits: int) -> data.ArrayLayout:
    """Random bits of one rounding event: lane ``i`` is ``rand[i]``."""
    return data.ArrayLayout(unsigned(rbits), lanes)


def round_source(m: Module, *, lanes: int, rbits: int, seed, en: Value, port_rand: Value):
    """The random bits of the rounding stage.

    With a ``seed`` an internal :class:`hw.lfsr.LFSR` (submodule ``lfsr``) is instantiated and
    advanced by ``en`` (a valid stochastic operation in the rounding stage); without one the
    bits ``port_rand`` (piped along with the operation from the ``i_rand`` port) are used.
    Returns a view of :func:`rand_layout`.
    """
    if seed is None:
        return port_rand
    from .lfsr import LFSR
    m.submodules.lfsr = lfsr = LFSR(lanes=lanes, rbits=rbits, seed=seed)
    m.d.comb += lfsr.i_en.eq(en)
    return lfsr.o_rand


def or_all(values):
    """Bitwise OR of equal-width values."""
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc


def bitlen(m: Module, value: Value, name: str) -> Signal:
    """Bit length of an unsigned value (0 -> 0, 1 -> 1, 4 -> 3): a priority encoder on its
    leading one. ``bitlen(OR of values) == bitlen(max of values)``, which is how the units
    find a group's largest magnitude without a comparator tree."""
    out = Signal(range(len(value) + 1), name=name)
    m.d.comb += out.eq(0)
    for i in range(len(value)):  # the highest set bit wins (last assignment)
        with m.If(value[i]):
            m.d.comb += out.eq(i + 1)
    return out


class MxRoundingUnit:
    """Mixin of the MX8 sub-chunk units with a rounding stage (:class:`hw.mx_mul.MxMul`,
    :class:`hw.mx_add.MxAdd`): validates ``rbits``, ``renorm`` and ``seed``, builds the common
    streaming ports (``i_valid``, ``i_stoch``, ``i_a``, ``i_b`` of shape ``b_shape``,
    ``o_valid``, ``o_y``, and ``i_rand`` when ``seed is None``) and exposes the parameters.
    Subclasses also derive from :class:`amaranth.lib.wiring.Component`."""

    def _init_rounding_unit(self, *, lanes: int, rbits: int, renorm: str, seed,
                            b_shape) -> None:
        from amaranth.lib.wiring import In, Out

        from .lfsr import check_rbits
        from .mx8_layout import mx_subchunk_layout

        self._rbits = check_rbits(rbits)
        self._renorm = check_renorm(renorm)
        self._seed = check_seed_or_none(seed)
        sub = mx_subchunk_layout()
        ports = {"i_valid": In(1), "i_stoch": In(1), "i_a": In(sub), "i_b": In(b_shape),
                 "o_valid": Out(1), "o_y": Out(sub)}
        if seed is None:
            ports["i_rand"] = In(rand_layout(lanes, rbits))
        super().__init__(ports)

    @property
    def rbits(self) -> int:
        """Random bits of stochastic rounding."""
        return self._rbits

    @property
    def renorm(self) -> str:
        """Renormalization policy (``"lod"`` or ``"fixed"``)."""
        return self._renorm

    @property
    def seed(self) -> int | None:
        """Reset value of the internal generator (``None``: bits from ``i_rand``)."""
        return self._seed

    def _rounding_stage(self, m: Module, *, prefix: str, valid: Value, stoch: Value,
                        port_rand: Value, values, shifts, exps, nans, negs, mus=None,
                        bias: int = 0) -> None:
        """The last stage of an MX unit: round every value of every group (:func:`sround`,
        random bits from :func:`round_source`), clear zero and NaN groups, and register the
        result on ``o_y``/``o_valid``. Per group ``g``: ``values[g][i]`` (unsigned), the shift
        ``shifts[g]`` (or a list of one shift per value), the result exponent ``exps[g]``,
        the NaN flag ``nans[g]``, the signs
        ``negs[g][i]`` and the result micro-exponents ``mus[g]`` (``None``: all 0). Signals are
        named ``<prefix>_mag<g>_<i>``, ``<prefix>_zero<g>``, ``<prefix>_clear<g>``."""

        rbits = self._rbits
        group = len(values[0])
        rand = round_source(m, lanes=len(values) * group, rbits=rbits, seed=self._seed,
                            en=valid & stoch, port_rand=port_rand)
        m.d.sync += self.o_valid.eq(valid)
        for g, vals in enumerate(values):
            mags = []
            for i, v in enumerate(vals):
                mag = Signal(MAG_BITS, name=f"{prefix}_mag{g}_{i}")
                add = round_addend(rand[g * group + i], stoch, rbits)
                shift = shifts[g][i] if isinstance(shifts[g], list) else shifts[g]
                m.d.comb += mag.eq(sround(v, shift, add, rbits=rbits, bias=bias))
                mags.append(mag)
            zero = Signal(name=f"{prefix}_zero{g}")
            clear = Signal(name=f"{prefix}_clear{g}")
            m.d.comb += [
                zero.eq(~or_all(mags).any() & ~nans[g]),
                clear.eq(zero | nans[g]),
            ]
            y = self.o_y[g]
            m.d.sync += [
                y.exp.eq(Mux(nans[g], EXP_NAN, Mux(zero, 0, exps[g]))),
                y.mu.eq(Const(0, len(y.mu)) if mus is None else Mux(clear, 0, mus[g])),
            ]
            for i in range(group):
                m.d.sync += [
                    y.elems[i].mag.eq(Mux(clear, 0, mags[i])),
                    y.elems[i].sign.eq(~clear & negs[g][i] & mags[i].any()),
                ]
