"""Parameterized IEEE-style floating-point multiplier (any exponent/mantissa width).

The arithmetic is defined by :mod:`quant.fparith` (round-to-nearest-even or stochastic
rounding, subnormals, inf/NaN, saturation for the fp8 formats); this module also holds the
pieces shared with :class:`hw.fpadd.FPAdd`: the encoding layout, operand decoding and the
normalize/round/pack stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.pipeline import Staged
from quant.constants import RBITS
from quant.fpformat import FloatFormat, get_format

__all__ = ["FPMul", "float_layout", "check_params", "Operand", "decode_operand", "round_pack"]


def float_layout(fmt: FloatFormat) -> data.StructLayout:
    """Layout of one encoding: ``man`` (LSBs), ``exp``, ``sign`` (MSB)."""
    return data.StructLayout({
        "man": unsigned(fmt.man_bits),
        "exp": unsigned(fmt.exp_bits),
        "sign": unsigned(1),
    })


def check_params(fmt, rounding, sr_bits, latency):
    """Validate the common unit parameters; return ``(fmt, sr_bits)``.

    Raises
    ------
    TypeError
        ``fmt`` is not a :class:`~quant.fparith.FloatFormat` or a format name; ``sr_bits`` or
        ``latency`` is not an int.
    ValueError
        Unknown format name or rounding mode, ``sr_bits`` out of 1..24 (or given for RNE),
        ``latency`` not 0 or 1.
    """
    if not isinstance(fmt, (FloatFormat, str)):
        raise TypeError(f"fmt must be a FloatFormat or a format name, not {fmt!r}")
    fmt = get_format(fmt)
    if rounding not in ("rne", "sr"):
        raise ValueError(f"rounding must be 'rne' or 'sr', not {rounding!r}")
    if rounding == "sr":
        if sr_bits is None:
            raise ValueError("rounding='sr' needs sr_bits")
        if not isinstance(sr_bits, int) or isinstance(sr_bits, bool):
            raise TypeError(f"sr_bits must be an int, not {sr_bits!r}")
        if not 1 <= sr_bits <= 24:
            raise ValueError(f"sr_bits must be in 1..24, not {sr_bits}")
    elif sr_bits is not None:
        raise ValueError("sr_bits is only meaningful with rounding='sr'")
    if not isinstance(latency, int) or isinstance(latency, bool):
        raise TypeError(f"latency must be an int, not {latency!r}")
    if latency not in (0, 1):
        raise ValueError(f"latency must be 0 (combinational) or 1 (registered), not {latency}")
    return fmt, sr_bits


@dataclass(frozen=True)
class Operand:
    """Decoded operand (Amaranth values). ``sig`` includes the hidden bit; ``exp`` is the
    effective biased exponent (1 for subnormals)."""

    sign: Value
    exp: Value
    sig: Value
    is_zero: Value
    is_inf: Value
    is_nan: Value


def decode_operand(m: Module, fmt: FloatFormat, raw: Value, prefix: str) -> Operand:
    """Decode an encoding into sign, effective exponent, significand and class flags."""
    v = data.View(float_layout(fmt), raw)
    all_ones = v.exp == fmt.exp_max_field
    sig = Signal(fmt.man_bits + 1, name=f"{prefix}_sig")
    exp = Signal(fmt.exp_bits, name=f"{prefix}_exp")
    m.d.comb += [
        sig.eq(Cat(v.man, v.exp != 0)),
        exp.eq(Mux(v.exp == 0, 1, v.exp)),
    ]
    if fmt.has_inf:
        is_inf = all_ones & (v.man == 0)
        is_nan = all_ones & (v.man != 0)
    else:
        is_inf = Const(0, 1)
        is_nan = all_ones & (v.man == (1 << fmt.man_bits) - 1)
    is_zero = (v.exp == 0) & (v.man == 0)
    return Operand(v.sign, exp, sig, is_zero, is_inf, is_nan)


def round_pack(m: Module, fmt: FloatFormat, sign: Value, sig: Value, exp_b: Value, *,
               rounding: str, rand: Value | None, right_shift: bool, prefix: str) -> Value:
    """Normalize, round and pack a finite exact-enough result.

    The value is ``sig / 2**(W-1) * 2**(exp_b - bias)`` with ``W = len(sig)`` (binary point
    after the MSB; ``sig`` need not be normalized). ``sig`` must carry at least
    ``max(2, sr_bits)`` bits below the result LSB, and every bit that is not exact must be
    folded into the bottom one (sticky). Returns the encoding (``sign`` in the MSB); overflow
    gives inf or max-finite per ``fmt.saturate``, a zero ``sig`` gives a signed zero.

    ``right_shift`` adds the shifter for results below the subnormal range (needed by the
    multiplier, not by the adder whose results are never smaller than the operands' quantum).
    """
    man = fmt.man_bits
    width = len(sig)
    assert width - 1 - man >= 2
    lzc = Signal(range(width + 1), name=f"{prefix}_lzc")
    m.d.comb += lzc.eq(width)
    for i in range(width):          # the highest set bit wins (last assignment)
        with m.If(sig[i]):
            m.d.comb += lzc.eq(width - 1 - i)

    if exp_b.shape().signed:
        lo, hi = -(1 << (len(exp_b) - 1)), (1 << (len(exp_b) - 1)) - 1
    else:
        lo, hi = 0, (1 << len(exp_b)) - 1
    t = Signal(range(lo - width, hi + 1), name=f"{prefix}_t")
    left = Signal(range(width + 1), name=f"{prefix}_lsh")
    texp = Signal(range(1, max(hi, 1) + 1), name=f"{prefix}_texp")
    m.d.comb += t.eq(exp_b - lzc)
    m.d.comb += texp.eq(Mux(t >= 1, t, 1))
    with m.If(t >= 1):
        m.d.comb += left.eq(lzc)
    with m.Elif(exp_b >= 1):
        m.d.comb += left.eq(exp_b - 1)
    shifted = Signal(width, name=f"{prefix}_norm")
    m.d.comb += shifted.eq(sig << left)
    sticky_r = Const(0, 1)
    if right_shift:
        right = Signal(range(width + 1), name=f"{prefix}_rsh")
        with m.If((t < 1) & (exp_b < 1)):
            m.d.comb += right.eq(Mux(1 - exp_b > width, width, 1 - exp_b))
        ext = Signal(2 * width, name=f"{prefix}_rext")
        m.d.comb += ext.eq(Cat(Const(0, width), shifted) >> right)
        shifted = ext[width:]
        sticky_r = ext[:width].any()

    top = shifted[width - 1 - man:]          # man + 1 bits: hidden + fraction
    rest = shifted[:width - 1 - man]
    inc = Signal(name=f"{prefix}_inc")
    if rounding == "rne":
        sticky = rest[:-1].any() | sticky_r
        m.d.comb += inc.eq(rest[-1] & (sticky | top[0]))
    else:
        r = len(rand)
        assert len(rest) >= r
        m.d.comb += inc.eq((rest[-r:] + rand)[r])

    pack_w = len(texp) + man + 1
    pack = Signal(pack_w, name=f"{prefix}_pack")
    m.d.comb += pack.eq(((texp - 1) << man) + top + inc)
    over_bits = fmt.max_finite_bits if fmt.saturate else fmt.inf_bits
    mag = Signal(fmt.width - 1, name=f"{prefix}_mag")
    with m.If(sig == 0):
        m.d.comb += mag.eq(0)
    with m.Elif(pack > fmt.max_finite_bits):
        m.d.comb += mag.eq(over_bits)
    with m.Else():
        m.d.comb += mag.eq(pack)
    return Cat(mag, sign)


class FloatOpBase(Staged, wiring.Component):
    """Ports, parameter checks and properties shared by :class:`FPMul` and
    :class:`hw.fpadd.FPAdd` (two operands ``a``, ``b``, result ``o``, optional ``rnd``)."""

    def __init__(self, fmt, *, rounding="rne", sr_bits=None, latency=0):
        self._fmt, self._sr_bits = check_params(fmt, rounding, sr_bits, latency)
        self._rounding = rounding
        self._latency = latency
        w = self._fmt.width
        ports = {"a": In(w), "b": In(w), "o": Out(w)}
        if rounding == "sr":
            ports["rnd"] = In(sr_bits)
        super().__init__(ports)

    @property
    def fmt(self) -> FloatFormat:
        """Operand/result format."""
        return self._fmt

    @property
    def rounding(self) -> str:
        """Rounding mode, ``"rne"`` or ``"sr"``."""
        return self._rounding

    @property
    def sr_bits(self) -> int | None:
        """Random bits per result (stochastic rounding), else ``None``."""
        return self._sr_bits

    @property
    def stages(self) -> tuple[str, ...]:
        """The register stages: the output register when ``latency`` is 1, else none."""
        return ("out",) if self._latency else ()




class FPMul(FloatOpBase):
    """Floating-point multiplier ``o = a * b`` for any small IEEE-style format.

    Bit-exact with :func:`quant.fparith.ref_mul`.

    Parameters
    ----------
    fmt : FloatFormat or str
        Operand/result format (``"fp16"``, ``"e4m3"``, ``"e5m2"`` or a custom
        :class:`~quant.fparith.FloatFormat`).
    rounding : {"rne", "sr"}
        Round-to-nearest-even, or stochastic rounding with ``sr_bits`` random bits taken from
        the ``rnd`` port (``rand`` is a SystemVerilog keyword).
    sr_bits : int, optional
        Random bits per result (``rounding="sr"`` only).
    latency : {0, 1}
        0: combinational; 1: the result is registered in the ``sync`` domain.

    Members
    -------
    a : In(fmt.width)
        First operand encoding.
    b : In(fmt.width)
        Second operand encoding.
    rnd : In(sr_bits)
        Random bits (present with ``rounding="sr"``), e.g. from an LFSR.
    o : Out(fmt.width)
        Product encoding, valid ``latency`` cycles after the operands.
    """

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        man = fmt.man_bits
        a = decode_operand(m, fmt, self.a, "a")
        b = decode_operand(m, fmt, self.b, "b")
        sign = a.sign ^ b.sign

        # Exact product: sig_p / 2**(2*man+1) * 2**(exp_b - bias), sig_p in [0, 4).
        pad = max(0, (self._sr_bits or 0) - (man + 1))
        prod = Signal(2 * man + 2 + pad)
        m.d.comb += prod.eq(Cat(Const(0, pad), a.sig * b.sig) if pad else a.sig * b.sig)
        emax = fmt.exp_max_field
        exp_b = Signal(range(3 - fmt.bias, 2 * emax - fmt.bias + 2))
        m.d.comb += exp_b.eq(a.exp + b.exp - fmt.bias + 1)
        rand = self.rnd if self._rounding == "sr" else None
        finite = round_pack(m, fmt, sign, prod, exp_b, rounding=self._rounding, rand=rand,
                            right_shift=True, prefix="p")

        result = Signal(fmt.width)
        nan = a.is_nan | b.is_nan | (a.is_inf & b.is_zero) | (b.is_inf & a.is_zero)
        with m.If(nan):
            m.d.comb += result.eq(fmt.nan_bits)
        if fmt.has_inf:
            with m.Elif(a.is_inf | b.is_inf):
                m.d.comb += result.eq(Cat(Const(fmt.inf_bits, fmt.width - 1), sign))
        with m.Else():
            m.d.comb += result.eq(finite)

        if self.stages:                 # the output register of the stage list
            m.d.sync += self.o.eq(result)
        else:
            m.d.comb += self.o.eq(result)
        return m


#: Random bits of the registered stochastic-rounding variants: the SPE's (quant.spe.RBITS).
SR_BITS = RBITS

for _name in ("fp16", "e4m3", "e5m2"):
    register_unit(f"fpmul_{_name}", lambda f=_name: FPMul(f))
    register_unit(f"fpmul_{_name}_sr", lambda f=_name: FPMul(f, rounding="sr", sr_bits=SR_BITS))
