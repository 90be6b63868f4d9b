"""The format's and the SPU protocol's constants: one source, importable without torch.

Every package reads these numbers from here: the golden model (:mod:`quant.mx8`,
:mod:`quant.spe`, :mod:`quant.rng`, :mod:`quant.spe_int8`), the RTL (``hw/``, which must not
import torch), the benches (``cosim/``) and the system model (``sysmodel/``). This module
imports nothing but the standard library. What each number means: ``docs/mx8.md`` (format,
arithmetic), ``docs/spu.md`` (the SPU's commands and registers), ``docs/spe_int8.md`` (int8).
"""

from __future__ import annotations

import enum

__all__ = [
    # MX8 format
    "GROUP", "PAIRS", "MAG_BITS", "EXP_BITS", "BIAS", "MAG_MAX", "EXP_NAN", "GROUP_BITS",
    "SCALAR_BITS",
    # DRAM column / sub-chunk
    "COLUMN_BITS", "GROUPS_PER_COLUMN", "LANES", "COLUMNS", "FP16_LANES",
    # SPE arithmetic
    "ADD_FRAC_BITS", "RBITS", "DOT_GUARD_BITS", "DOT_Y_BITS", "DOT_X_NAN", "ATTEND_PARTIALS",
    "ATTEND_ROW", "FMA_FRAC_BITS", "ATTEND_PARTIALS_FUSED", "attend_partials", "ONE_EXP",
    "ONE_MAG",
    # random bits
    "LFSR_WIDTH", "LFSR_TAPS", "SITES", "DEFAULT_SITE_SEEDS",
    # int8 format (docs/spe_int8.md)
    "INT8_GROUP", "INT8_Q_MAX", "INT8_Q_BITS", "INT8_SCALE_BITS", "INT8_WORD_BITS",
    "INT8_SCALAR_BITS", "INT8_SCALE_C", "INT8_NAN_SCALE", "INT8_SR_BITS", "INT8_ROUNDINGS",
    # SPU protocol
    "BANKS", "MODES", "TIMING_KEYS", "CmdCode", "Reg", "Mode", "ADDR_BITS", "MODE_BITS",
]

# ---- MX8 format (docs/mx8.md) -----------------------------------------------------------------
GROUP = 16  #: values per group
PAIRS = GROUP // 2  #: pairs per group (one micro-exponent each)
MAG_BITS = 6  #: magnitude bits per value
EXP_BITS = 8  #: shared exponent bits
BIAS = 127  #: exponent bias
MAG_MAX = (1 << MAG_BITS) - 1  #: 63
EXP_NAN = 0xFF  #: exponent value marking a NaN group
GROUP_BITS = EXP_BITS + PAIRS + GROUP * (MAG_BITS + 1)  #: 128
SCALAR_BITS = EXP_BITS + 1 + MAG_BITS + 1  #: a broadcast scalar: exp, mu, magnitude, sign
#: The encoding of 1.0 (every value of a group, and a broadcast scalar): exponent ``BIAS``,
#: ``mu = 0``, magnitude ``2**(MAG_BITS - 1)``, positive; the fused attend multiplies by it.
ONE_EXP = BIAS
ONE_MAG = 1 << (MAG_BITS - 1)

# ---- one DRAM column: a sub-chunk --------------------------------------------------------------
COLUMN_BITS = 256  #: bits of one DRAM column (one column command)
GROUPS_PER_COLUMN = COLUMN_BITS // GROUP_BITS  #: 2 MX8 groups per column
LANES = GROUPS_PER_COLUMN * GROUP  #: 32 values per sub-chunk (the SPE's lanes)
COLUMNS = 32  #: columns per DRAM row of one bank (1 KB row / 256-bit columns)
FP16_LANES = COLUMN_BITS // 16  #: fp16 values per column (the fp16 baselines' lanes)

# ---- SPE arithmetic (docs/mx8.md) -------------------------------------------------------------
#: Fraction bits kept below the result LSB when the adder aligns an addend (truncation).
ADD_FRAC_BITS = 8
#: Random bits of stochastic rounding in every SPE datapath (the accuracy study's choice,
#: docs/study.md); the default of :class:`quant.spe.SPEConfig` and of the hardware slices.
RBITS = 8
#: Extra fraction bits of the dot-product accumulator for the lower-exponent group.
DOT_GUARD_BITS = 8
#: Width of the signed dot-product mantissa Y.
DOT_Y_BITS = 28
#: X value marking a NaN dot product.
DOT_X_NAN = 0x1FF
#: Interleaved partial accumulators of the attend mode (per bank): enough to cover the
#: adder's latency at one COMP per SPU cycle (hw.spu.Spu checks it; docs/spu.md).
ATTEND_PARTIALS = 2
#: The same with the fused update (``SPEConfig(fused=True)``): attend's token sum and fold go
#: through the fused multiply-add, whose 5 stages need 3 partials per bank (2 banks x 3 >= 5).
ATTEND_PARTIALS_FUSED = 3


def attend_partials(fused: bool) -> int:
    """Attend partials per bank: :data:`ATTEND_PARTIALS_FUSED` with the fused update, else
    :data:`ATTEND_PARTIALS` (the golden model's and the SPU's one rule)."""
    return ATTEND_PARTIALS_FUSED if fused else ATTEND_PARTIALS


#: Tokens per row in the attend mode: one DRAM row of a bank holds 32 sub-chunks (1 KB row,
#: 256-bit columns); the partials are folded at the end of every row.
ATTEND_ROW = COLUMNS
#: Fraction bits the fused adder keeps below a full-width product's LSB when it aligns it.
FMA_FRAC_BITS = 8

# ---- random bits (docs/mx8.md §8) --------------------------------------------------------------
#: Width of the generator state (bits).
LFSR_WIDTH = 31
#: Recurrence lags: b[n] = b[n - 31] ^ b[n - 28].
LFSR_TAPS = (31, 28)
#: Rounding sites of the State-update Processing Engine, in a fixed order.
SITES = ("mul_decay", "mul_outer", "add")
#: Reset seeds of the three generators of one SPE (31-bit, non-zero, distinct).
DEFAULT_SITE_SEEDS = {"mul_decay": 0x2545F491, "mul_outer": 0x1B873593, "add": 0x5BD1E995}

# ---- int8 with an fp16 group scale (docs/spe_int8.md) ------------------------------------------
INT8_GROUP = 32  #: values per group (= lanes of one sub-chunk)
INT8_Q_MAX = 127  #: largest magnitude the requantizer produces
INT8_Q_BITS = 8  #: bits per value
INT8_SCALE_BITS = 16  #: bits of the group scale (an IEEE binary16 encoding)
INT8_WORD_BITS = INT8_GROUP * INT8_Q_BITS + INT8_SCALE_BITS  #: sub-chunk port word
INT8_SCALAR_BITS = INT8_Q_BITS + INT8_SCALE_BITS  #: scalar port word (value + scale)
INT8_SCALE_C = 0x2008  #: fp16 encoding of C, the binary16 value nearest to 1/127
INT8_NAN_SCALE = 0x7E00  #: scale of a NaN group (the fp16 canonical NaN)
INT8_SR_BITS = RBITS  #: random bits per value of stochastic rounding
INT8_ROUNDINGS = ("rne", "sr")  #: rounding modes of the requantizer

# ---- the SPU's protocol (docs/spu.md) ----------------------------------------------------------
#: Banks sharing one SPU.
BANKS = 2
#: The SPU's modes (register MODE), in the order of their codes; also the keys of the timing
#: data (:mod:`sysmodel.measured`) and the programs of the HBM-PIM PCU.
MODES = ("state_update", "score", "attend")
#: Keys of each mode's entry in the measured SPU timing (:mod:`sysmodel.measured`).
TIMING_KEYS = ("pipeline_depth", "spu_cycles_per_comp", "comps_per_row_pair", "utilization",
               "vectors_checked")
#: Bits of the SPU's address port ``i_addr``.
ADDR_BITS = 8
#: Bits of the mode code in the MODE register's data (the stochastic flag follows).
MODE_BITS = 2


class CmdCode(enum.IntEnum):
    """The command of a cycle (``i_cmd``, 2 bits); :class:`hw.spu.Cmd` is its RTL enum."""
    NOP = 0
    REG_WRITE = 1
    COMP = 2
    RESULT_READ = 3


class Reg(enum.IntEnum):
    """REG_WRITE targets (the ``reg`` field of the register address)."""
    D = 0          #: decay sub-chunk of the bank's chunk group
    Q = 1          #: query sub-chunk (state update, score)
    K = 2          #: key sub-chunk (state update)
    V = 3          #: v of the chunk (state update) / scores of the row (attend), one per column
    MODE = 4       #: the MODE word: :class:`Mode` and the stochastic-rounding flag
    ACC_CLEAR = 5  #: zero the bank's attend accumulator (all its partials; attend mode only)


class Mode(enum.IntEnum):
    """Codes of the MODE register, in the order of :data:`MODES`."""
    STATE_UPDATE = 0
    SCORE = 1
    ATTEND = 2


assert GROUP_BITS == 128 and GROUPS_PER_COLUMN * GROUP_BITS == COLUMN_BITS
assert tuple(m.name.lower() for m in Mode) == MODES
assert len(Mode) <= 1 << MODE_BITS
