"""State-update datapath slice of an SPE in int8 with an fp16 group scale (INT8G32).

``s' = d (.) s + k * v`` over one 32-value sub-chunk (one group), bit-exact with
:func:`quant.spe_int8.update_words`; the normative text is ``docs/spe_int8.md``. Ports are
those of every SPE slice (:mod:`hw.spe_float`, :func:`quant.spe_slice.slice_ports`)::

    i_valid In(1)   i_s, i_d, i_k In(272)   i_v In(24)   o_valid Out(1)   o_s Out(272)

A sub-chunk word holds ``q_i`` (int8) at bits ``[8i, 8i+8)`` and the fp16 scale at
``[256, 272)``; the scalar word ``q_v`` at ``[0, 8)`` and its scale at ``[8, 24)``. One
operation per cycle, no stalls; ``o_valid``/``o_s`` belong to the operation presented with
``i_valid`` :attr:`SpeInt8.latency` cycles (clock edges) earlier.

Pipeline (:data:`STAGES`; every stage ends in a register, data registers are reset-less):

1. ``mul``: per lane two 8x8 signed multipliers, ``P1 = q_d q_s``, ``P2 = q_k q_v``, kept as
   sign and a 15-bit magnitude (``|P| <= 2**14``); two shared fp16 multipliers
   (:class:`hw.fpmul.FPMul`) for the scale products ``A = sigma_d sigma_s`` and
   ``B = sigma_k sigma_v``.
2. ``deq``: per lane two dequantizers "integer x fp16 -> fp16": the exact 15 x 11-bit
   significand product (26 bits) rounded once by :func:`hw.fpmul.round_pack` (RNE; the
   result is never below the subnormal quantum, so no right shifter), plus the NaN / inf
   cases of ``A``.
3. ``add``: per lane one fp16 adder (:class:`hw.fpadd.FPAdd`), ``y = x1 + x2``.
4. ``scale``: a 31-comparator max tree over the 15-bit magnitudes of ``y`` (fp16 encodings
   order like magnitudes), an all-ones-exponent detector (NaN group) and one fp16
   multiplier ``sigma' = M * C`` with the constant ``C`` = :data:`quant.spe_int8.SCALE_C`;
   ``y`` travels along.
5. ``round`` (output register): ``sigma'`` normalized once (leading-zero count); per lane
   ``|y|`` normalized, the exponent difference ``D``, a restoring divider of the two 11-bit
   normalized significands giving ``K + 1`` quotient bits and the remainder, a right shift by
   ``K - F - D`` to ``floor(|y| / sigma' * 2**F)``, the rounding (``F = 1`` guard bit plus
   sticky for ``"rne"``, ``F = 8`` bits plus the lane's random byte for ``"sr"``), the clamp
   at 127 and the sign; zero group
   (``sigma' = 0``) and NaN group override the lanes. With ``"sr"`` the PRBS31 generator
   (:class:`hw.lfsr.LFSR`, 32 lanes x 8 bits) sits here, enabled by the stage's valid bit,
   so it advances once per valid operation, NaN and zero groups included.

With ``K = 7 + F`` the divider has 16 steps (``"sr"``) or 9 (``"rne"``) of a 12-bit
subtract-and-select per lane. ``K - F = 7`` integer bits suffice: ``sigma'`` is ``M * C``
rounded, so ``|y| / sigma' <= M / sigma' < 191`` and ``D <= 7`` for every finite ``M``
(an exhaustive check over all ``M`` is in ``tests/test_spe_int8.py``); the shift amount is
never negative and no "quotient too large" detector is needed.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.fpadd import FPAdd
from hw.fpmul import FPMul, Operand, decode_operand, round_pack
from hw.lfsr import LFSR, check_seed
from hw.pipeline import Staged
from quant.constants import DEFAULT_SITE_SEEDS
from quant.constants import INT8_GROUP as GROUP
from quant.constants import INT8_NAN_SCALE as NAN_SCALE
from quant.constants import INT8_Q_BITS as Q_BITS
from quant.constants import INT8_Q_MAX as Q_MAX
from quant.constants import INT8_ROUNDINGS as ROUNDINGS
from quant.constants import INT8_SCALAR_BITS as SCALAR_BITS
from quant.constants import INT8_SCALE_BITS as SCALE_BITS
from quant.constants import INT8_SCALE_C as SCALE_C
from quant.constants import INT8_SR_BITS as SR_BITS
from quant.constants import INT8_WORD_BITS as WORD_BITS
from quant.fpformat import get_format

__all__ = ["SpeInt8", "STAGES"]

#: Register stages of the pipeline, in order (see the module docstring).
STAGES = ("mul", "deq", "add", "scale", "round")

_FP16 = get_format("fp16")
_MAN = _FP16.man_bits                 # 10
_SIG = _MAN + 1                       # 11-bit significands
_PMAG = 15                            # |q_a * q_b| <= 2**14
_D_MAX = 7                            # largest exponent difference D (module docstring)
_MAG_BITS = 7                         # |q| <= 127


def _lzc(m: Module, value: Value, name: str) -> Signal:
    """Leading zeros of ``value`` (``len(value)`` for zero)."""
    width = len(value)
    out = Signal(range(width + 1), name=name)
    m.d.comb += out.eq(width)
    for i in range(width):            # the highest set bit wins (last assignment)
        with m.If(value[i]):
            m.d.comb += out.eq(width - 1 - i)
    return out


class SpeInt8(Staged, wiring.Component):
    """32 lanes of ``s' = d (.) s + k * v`` in INT8G32 (int8 values, one fp16 scale).

    Parameters
    ----------
    rounding : {"rne", "sr"}
        Rounding of the requantizer (the fp16 steps inside are always RNE).
    seed : int, optional
        ``rounding="sr"`` only: reset value of the requantizer's PRBS31 generator (31-bit,
        non-zero; default ``DEFAULT_SITE_SEEDS["add"]``).
    lanes : int
        Values per operation; must be 32 (one INT8G32 group).

    Members
    -------
    i_valid : In(1)
        An operation is presented this cycle.
    i_s, i_d, i_k : In(272)
        State, decay and key sub-chunk words.
    i_v : In(24)
        The broadcast element of ``v`` (scalar word).
    o_valid : Out(1)
        ``o_s`` holds the result of the operation presented :attr:`latency` cycles earlier.
    o_s : Out(272)
        Updated state sub-chunk word.
    """

    def __init__(self, *, rounding: str = "rne", seed: int | None = None, lanes: int = GROUP):
        if not isinstance(rounding, str) or rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be 'rne' or 'sr', not {rounding!r}")
        if rounding == "rne":
            if seed is not None:
                raise ValueError("seed is only meaningful with rounding='sr'")
        else:
            seed = check_seed(DEFAULT_SITE_SEEDS["add"] if seed is None else seed)
        if isinstance(lanes, bool) or not isinstance(lanes, int):
            raise TypeError(f"lanes must be an int, not {lanes!r}")
        if lanes != GROUP:
            raise ValueError(f"lanes must be {GROUP} (one INT8G32 group), not {lanes}")
        self._rounding = rounding
        self._seed = seed
        self._lanes = lanes
        super().__init__({
            "i_valid": In(1),
            "i_s": In(WORD_BITS),
            "i_d": In(WORD_BITS),
            "i_k": In(WORD_BITS),
            "i_v": In(SCALAR_BITS),
            "o_valid": Out(1),
            "o_s": Out(WORD_BITS),
        })

    @property
    def rounding(self) -> str:
        """Rounding of the requantizer, ``"rne"`` or ``"sr"``."""
        return self._rounding

    @property
    def seed(self) -> int | None:
        """Reset value of the requantizer's generator (``None`` for ``"rne"``)."""
        return self._seed

    @property
    def lanes(self) -> int:
        """Values per operation (32)."""
        return self._lanes

    @property
    def seeds(self) -> dict | None:
        """The generator seeds as for every SPE slice (:attr:`hw.spe_float.SpeFloat.seeds`):
        the requantizer draws from site ``add``; the multiply sites round to nearest in fp16
        and have no generator (``None`` for ``"rne"``)."""
        if self._seed is None:
            return None
        return {**DEFAULT_SITE_SEEDS, "add": self._seed}

    @property
    def fmt(self) -> str:
        """Number format of the slice."""
        return "int8"

    @property
    def frac_bits(self) -> int:
        """Fraction bits of the quotient before rounding (8 for SR, 1 guard bit for RNE)."""
        return SR_BITS if self._rounding == "sr" else 1

    @property
    def stages(self) -> tuple[str, ...]:
        """The register stages, :data:`STAGES` (``elaborate`` builds one valid register each)."""
        return STAGES


    # -----------------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        # valid bits: one register per stage, the last is o_valid
        valid = {}
        prev = self.i_valid
        for name in STAGES:
            v = self.o_valid if name == STAGES[-1] else Signal(name=f"{name}_valid")
            m.d.sync += v.eq(prev)
            valid[name] = prev = v

        def q_of(word, i):
            return word[Q_BITS * i:Q_BITS * (i + 1)].as_signed()

        def sigma_of(word):
            return word[lanes * Q_BITS:lanes * Q_BITS + SCALE_BITS]

        # ---- 1 mul: integer products, scale products ------------------------------------
        mul_a = m.submodules.mul_a = FPMul(_FP16, latency=1)
        mul_b = m.submodules.mul_b = FPMul(_FP16, latency=1)
        m.d.comb += [
            mul_a.a.eq(sigma_of(self.i_d)), mul_a.b.eq(sigma_of(self.i_s)),
            mul_b.a.eq(sigma_of(self.i_k)), mul_b.b.eq(self.i_v[Q_BITS:]),
        ]
        qv = self.i_v[:Q_BITS].as_signed()
        prods = []
        for i in range(lanes):
            pair = []
            for j, (x, y) in enumerate(((q_of(self.i_d, i), q_of(self.i_s, i)),
                                        (q_of(self.i_k, i), qv))):
                p = Signal(signed(2 * Q_BITS), name=f"mul_p{j + 1}_{i}")
                neg = Signal(name=f"mul_neg{j + 1}_{i}", reset_less=True)
                mag = Signal(_PMAG, name=f"mul_mag{j + 1}_{i}", reset_less=True)
                m.d.comb += p.eq(x * y)
                m.d.sync += [neg.eq(p < 0), mag.eq(Mux(p < 0, -p, p)[:_PMAG])]
                pair.append((neg, mag))
            prods.append(pair)

        # ---- 2 deq: integer x fp16 -> fp16 ----------------------------------------------
        scales = [decode_operand(m, _FP16, mul.o, f"deq_{name}")
                  for mul, name in ((mul_a, "a"), (mul_b, "b"))]
        xs = []
        for i in range(lanes):
            pair = []
            for j, (neg, mag) in enumerate(prods[i]):
                x = Signal(_FP16.width, name=f"deq_x{j + 1}_{i}", reset_less=True)
                m.d.sync += x.eq(self._dequantize(m, neg, mag, scales[j], f"deq{j + 1}_{i}"))
                pair.append(x)
            xs.append(pair)

        # ---- 3 add: y = x1 + x2 ---------------------------------------------------------
        ys = []
        for i in range(lanes):
            add = m.submodules[f"add{i}"] = FPAdd(_FP16, latency=1)
            m.d.comb += [add.a.eq(xs[i][0]), add.b.eq(xs[i][1])]
            ys.append(add.o)

        # ---- 4 scale: max |y|, NaN group, sigma' = M * C --------------------------------
        mag_w = _FP16.width - 1
        level = [y[:mag_w] for y in ys]
        depth = 0
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level) - 1, 2):
                mx = Signal(mag_w, name=f"scale_max{depth}_{j // 2}")
                a, b = level[j], level[j + 1]
                m.d.comb += mx.eq(Mux(a > b, a, b))
                nxt.append(mx)
            if len(level) % 2:
                nxt.append(level[-1])
            level, depth = nxt, depth + 1
        big = level[0]
        mul_c = m.submodules.mul_c = FPMul(_FP16, latency=1)
        m.d.comb += [mul_c.a.eq(Cat(big, Const(0, 1))), mul_c.b.eq(SCALE_C)]
        nan_group = Signal(name="scale_nan", reset_less=True)
        m.d.sync += nan_group.eq(Cat(*(y[_MAN:mag_w] == _FP16.exp_max_field
                                       for y in ys)).any())
        y4 = []
        for i in range(lanes):
            y = Signal(_FP16.width, name=f"scale_y{i}", reset_less=True)
            m.d.sync += y.eq(ys[i])
            y4.append(y)
        sigma = mul_c.o

        # ---- 5 round: |y| / sigma', rounding, clamp, sign, group cases ------------------
        frac = self.frac_bits
        k = _D_MAX + frac                     # quotient bits K..0 of my_n * 2**K / ms_n
        rand = None
        if self._rounding == "sr":
            lfsr = m.submodules.lfsr = LFSR(lanes=lanes, rbits=SR_BITS, seed=self._seed)
            m.d.comb += lfsr.i_en.eq(valid["scale"])
            rand = lfsr.o_rand

        s_op = decode_operand(m, _FP16, sigma, "round_sigma")
        s_lz = _lzc(m, s_op.sig, "round_sigma_lz")
        ms_n = Signal(_SIG, name="round_sigma_sig")
        es_n = Signal(signed(7), name="round_sigma_exp")       # exponent minus leading zeros
        m.d.comb += [ms_n.eq(s_op.sig << s_lz), es_n.eq(s_op.exp - s_lz)]
        zero_group = Signal(name="round_zero")
        m.d.comb += zero_group.eq(sigma[:mag_w] == 0)

        qs = []
        for i in range(lanes):
            lane_rand = rand[i] if rand is not None else None
            qs.append(self._requantize(m, y4[i], ms_n, es_n, k, frac, lane_rand, f"round{i}"))
        clear = nan_group | zero_group
        out_sigma = Mux(nan_group, NAN_SCALE, Mux(zero_group, 0, sigma))
        m.d.sync += self.o_s.eq(Cat(*(Mux(clear, 0, q) for q in qs), out_sigma))
        return m

    @staticmethod
    def _dequantize(m: Module, neg: Value, mag: Value, a: Operand, prefix: str) -> Value:
        """fp16 encoding of ``(-1)**neg * mag * a`` (``a`` a decoded fp16 scale product),
        rounded once (RNE)."""
        sign = Signal(name=f"{prefix}_sign")
        m.d.comb += sign.eq(neg ^ a.sign)
        prod = Signal(_PMAG + _SIG, name=f"{prefix}_prod")
        m.d.comb += prod.eq(mag * a.sig)
        # value = prod * 2**(a.exp - bias - man) = prod / 2**(W-1) * 2**(exp_b - bias)
        off = len(prod) - 1 - _MAN
        exp_b = Signal(range(1 + off, _FP16.exp_max_field + off + 1), name=f"{prefix}_expb")
        m.d.comb += exp_b.eq(a.exp + off)
        finite = round_pack(m, _FP16, sign, prod, exp_b, rounding="rne", rand=None,
                            right_shift=False, prefix=prefix)
        result = Signal(_FP16.width, name=f"{prefix}_res")
        with m.If(a.is_nan | (a.is_inf & (mag == 0))):
            m.d.comb += result.eq(_FP16.nan_bits)
        with m.Elif(a.is_inf):
            m.d.comb += result.eq(Cat(Const(_FP16.inf_bits, _FP16.width - 1), sign))
        with m.Else():
            m.d.comb += result.eq(finite)
        return result

    @staticmethod
    def _requantize(m: Module, y: Value, ms_n: Value, es_n: Value, k: int, frac: int,
                    rand: Value | None, prefix: str) -> Value:
        """int8 ``sign(y) * min(127, rho(|y| / sigma'))`` of one lane (finite ``y``, nonzero
        ``sigma'`` given as normalized significand ``ms_n`` and exponent ``es_n``)."""
        y_op = decode_operand(m, _FP16, y, f"{prefix}_y")
        y_lz = _lzc(m, y_op.sig, f"{prefix}_lz")
        my_n = Signal(_SIG, name=f"{prefix}_sig")
        dist = Signal(signed(8), name=f"{prefix}_d")       # D = ey_n - es_n, |D| <= 40
        m.d.comb += [my_n.eq(y_op.sig << y_lz), dist.eq(y_op.exp - y_lz - es_n)]

        # Restoring division: Z = floor(my_n * 2**k / ms_n) (k + 1 bits), rem the remainder.
        zbits = []
        ge = Signal(name=f"{prefix}_z{k}")
        m.d.comb += ge.eq(my_n >= ms_n)
        zbits.append(ge)
        rem = Signal(_SIG, name=f"{prefix}_r{k}")
        m.d.comb += rem.eq(Mux(ge, my_n - ms_n, my_n))
        for j in range(k - 1, -1, -1):
            diff = Signal(signed(_SIG + 2), name=f"{prefix}_diff{j}")
            m.d.comb += diff.eq(Cat(Const(0, 1), rem) - ms_n)
            bit = Signal(name=f"{prefix}_z{j}")
            nrem = Signal(_SIG, name=f"{prefix}_r{j}")
            m.d.comb += [
                bit.eq(~diff[-1]),
                nrem.eq(Mux(bit, diff[:_SIG], Cat(Const(0, 1), rem))),
            ]
            zbits.append(bit)
            rem = nrem
        z = Cat(*reversed(zbits))             # bit j = quotient bit of weight 2**(j - k)

        # t = floor(Q * 2**frac) = Z >> (k - frac - D). D <= 7 = k - frac for every group
        # (sigma' = M * C rounded keeps M / sigma' below 191; checked exhaustively over all
        # M in tests/test_spe_int8.py), so the amount is never negative; amounts beyond
        # k + 1 leave only the sticky bits (a zero y gives D < 0 and Z = 0: q = 0).
        sh = Signal(range(k + 2), name=f"{prefix}_sh")
        amount = Signal(signed(9), name=f"{prefix}_amt")
        m.d.comb += [
            amount.eq((k - frac) - dist),
            sh.eq(Mux(amount > k + 1, k + 1, amount[:len(sh)])),
        ]
        ext = Signal(2 * (k + 1), name=f"{prefix}_ext")
        m.d.comb += ext.eq(Cat(Const(0, k + 1), z) >> sh)
        t = ext[k + 1:]

        q = Signal(9, name=f"{prefix}_q")   # t < 2**(8 + frac): q <= 2**8
        if rand is None:
            sticky = ext[:k + 1].any() | rem.any()
            keep = t[1:]
            m.d.comb += q.eq(keep + (t[0] & (sticky | keep[0])))
        else:
            m.d.comb += q.eq((t + rand) >> frac)
        mag = Signal(_MAG_BITS, name=f"{prefix}_mag")
        m.d.comb += mag.eq(Mux(q > Q_MAX, Q_MAX, q[:_MAG_BITS]))
        out = Signal(Q_BITS, name=f"{prefix}_out")
        m.d.comb += out.eq(Mux(y_op.sign, -mag, mag))
        return out


register_unit("spe_int8", lambda: SpeInt8())
register_unit("spe_int8_sr", lambda: SpeInt8(rounding="sr"))
